//! The log writer: one thread owns every open log file; each log ([`Sink`])
//! gathers its formatted lines in a bounded buffer the thread takes whole.
//!
//! The request path formats its line and appends it to its sink's buffer under
//! a short lock; when the buffers hold their capacity of lines together, the line
//! is dropped and counted ([`Sink::dropped`], [`DROPPED`]), so a slow or stuck disk never
//! stalls serving; lines a full or failing disk refuses are dropped and counted alike.
//! The thread takes every buffer once per [`GATHER`] while lines come, and sleeps on
//! its control channel when none do (the first line after that wakes it): no wake-up
//! and no cross-thread allocation per line, which is what a queue of `String`s cost.
//! The thread also feeds log trace (the last lines and a broadcast of new ones) and
//! syslog, rolls files on time even when idle, and reopens every file on SIGUSR1;
//! rolled files are compressed and pruned on a thread of their own ([`Finisher`]).

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::roll::{LogFile, Rolled, Time};
use crate::config::log::{LogSettings, Rolling, SyslogDest};

/// Lines dropped because the writer's queue was full, every log together.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines log trace replays to a new follower before the live ones.
pub const RECENT_LINES: usize = 100;

/// Default number of lines that may wait for the writer, every log together.
pub const DEFAULT_QUEUE: usize = 65_536;

/// Which log a sink is: its file stem, its log trace name and its syslog tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// Operations and configuration changes (tracing at info and above).
    Info,
    /// Warnings and errors only (tracing at warn and above).
    Sys,
    /// Clients refused by `<ServiceAccess>`.
    Deny,
    /// Origin failures of every vhost.
    OriginError,
    /// A vhost's client exchanges.
    Access,
    /// A vhost's origin exchanges.
    Origin,
    /// A vhost's 5-minute statistics.
    Monitoring,
}

impl LogKind {
    /// The file stem and the log trace path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Info => "info",
            LogKind::Sys => "sys",
            LogKind::Deny => "deny",
            LogKind::OriginError => "originerror",
            LogKind::Access => "access",
            LogKind::Origin => "origin",
            LogKind::Monitoring => "monitoring",
        }
    }

    /// The log of a log trace path segment.
    pub fn parse(s: &str) -> Option<LogKind> {
        [
            LogKind::Info,
            LogKind::Sys,
            LogKind::Deny,
            LogKind::OriginError,
            LogKind::Access,
            LogKind::Origin,
            LogKind::Monitoring,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether the log belongs to a vhost (log trace needs `?vhost=`).
    pub fn per_vhost(self) -> bool {
        matches!(
            self,
            LogKind::Access | LogKind::Origin | LogKind::Monitoring
        )
    }
}

/// Where a sink's lines go, replaced whole on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The directory of the live file; `None` writes no file (log trace and syslog only).
    pub dir: Option<PathBuf>,
    /// ON/OFF, rolling, syslog receivers.
    pub settings: LogSettings,
    /// The `#Fields:` line at the top of every file, if the format has one.
    pub header: Option<String>,
}

impl Target {
    /// A target that writes nothing (until the configuration is installed).
    pub fn none() -> Target {
        Target {
            dir: None,
            settings: LogSettings {
                on: false,
                rolling: Rolling {
                    minutes: Some(1440),
                    bytes: None,
                    retention: 10,
                    compress: false,
                },
                syslog: Vec::new(),
            },
            header: None,
        }
    }
}

/// One log: the file it writes, its log trace followers, its drop count.
pub struct Sink {
    /// Which log.
    pub kind: LogKind,
    /// The vhost, for per-vhost logs.
    pub vhost: Option<String>,
    /// Where lines go.
    target: ArcSwap<Target>,
    /// Live lines for log trace followers.
    trace: broadcast::Sender<Arc<str>>,
    /// The last [`RECENT_LINES`] lines, replayed to a new follower.
    recent: Mutex<VecDeque<Arc<str>>>,
    /// Lines dropped: the buffers were full, or the file refused them.
    pub dropped: AtomicU64,
    /// Lines waiting for the writer.
    pending: Mutex<Pending>,
    /// The writer's flags, its bound on waiting lines, and the sink registry.
    shared: Arc<Shared>,
    /// The writer's control channel.
    control: SyncSender<Msg>,
}

/// A sink's lines not taken by the writer yet.
#[derive(Default)]
struct Pending {
    /// The lines, each ended by a newline.
    text: String,
    /// How many.
    lines: usize,
}

impl Sink {
    /// Whether a line would go anywhere: the file, syslog or a log trace follower.
    /// Callers check it before formatting, so an unwanted line costs nothing.
    pub fn wanted(&self) -> bool {
        let t = self.target.load();
        (t.settings.on && t.dir.is_some())
            || !t.settings.syslog.is_empty()
            || self.trace.receiver_count() > 0
    }

    /// Hands a formatted line (without newline) to the writer; never blocks
    /// longer than an append.
    pub fn send(&self, line: String) {
        // One bound for every log together, as memory is one.
        let queued = &self.shared.queued;
        if queued.fetch_add(1, Ordering::Relaxed) >= self.shared.capacity {
            queued.fetch_sub(1, Ordering::Relaxed);
            self.drop_lines(1);
            return;
        }
        {
            let mut p = self.pending.lock();
            p.text.push_str(&line);
            p.text.push('\n');
            p.lines += 1;
        }
        // Only the first line after the writer went to sleep wakes it.
        let idle = &self.shared.idle;
        if idle.load(Ordering::Relaxed) && idle.swap(false, Ordering::SeqCst) {
            let _ = self.control.try_send(Msg::Wake);
        }
    }

    /// Counts lines that will never reach the file.
    fn drop_lines(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        DROPPED.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes the lines waiting (the writer).
    fn take(&self) -> Pending {
        let batch = std::mem::take(&mut *self.pending.lock());
        self.shared.queued.fetch_sub(batch.lines, Ordering::Relaxed);
        batch
    }

    /// Replaces where the lines go.
    pub fn set_target(&self, t: Target) {
        if **self.target.load() != t {
            self.target.store(Arc::new(t));
        }
    }

    /// The recent lines and a receiver of every line after them (log trace).
    pub fn follow(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let recent = self.recent.lock();
        let rx = self.trace.subscribe();
        (recent.iter().cloned().collect(), rx)
    }

    /// Gives written lines to log trace; under the `recent` lock, so a new
    /// follower sees each line once, either replayed or live. Without followers
    /// only the last [`RECENT_LINES`] are kept.
    fn publish(&self, batch: &Pending) {
        let live = self.trace.receiver_count() > 0;
        let first_recent = batch.lines.saturating_sub(RECENT_LINES);
        let mut recent = self.recent.lock();
        for (i, line) in batch.text.split_terminator('\n').enumerate() {
            if !live && i < first_recent {
                continue;
            }
            let line: Arc<str> = Arc::from(line);
            if i >= first_recent {
                if recent.len() == RECENT_LINES {
                    recent.pop_front();
                }
                recent.push_back(line.clone());
            }
            if live {
                let _ = self.trace.send(line);
            }
        }
    }
}

/// What the writer thread receives on its control channel.
enum Msg {
    /// Look at the sinks and the reopen flag now.
    Wake,
    /// Answer once every line sent before this is written and flushed.
    Flush(SyncSender<()>),
}

/// State shared between the handles and the writer thread.
struct Shared {
    /// Set by SIGUSR1: close every file, reopen on the next line.
    reopen: AtomicBool,
    /// The writer sleeps on its control channel until a sink wakes it.
    idle: AtomicBool,
    /// `<Host><Name>`, the syslog HOSTNAME.
    host: ArcSwap<String>,
    /// Every sink made, until it is dropped (a vhost removed).
    sinks: Mutex<Vec<Weak<Sink>>>,
    /// Lines waiting in all the sinks.
    queued: AtomicUsize,
    /// Lines that may wait at most; beyond, lines are dropped.
    capacity: usize,
}

impl Shared {
    fn new(capacity: usize) -> Shared {
        Shared {
            reopen: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            host: ArcSwap::from_pointee(String::from("localhost")),
            sinks: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    /// The sinks still in use, forgetting the dropped ones.
    fn live_sinks(&self) -> Vec<Arc<Sink>> {
        let mut sinks = self.sinks.lock();
        sinks.retain(|s| s.strong_count() > 0);
        sinks.iter().filter_map(Weak::upgrade).collect()
    }
}

/// The handle to the writer thread.
pub struct Writer {
    /// The control channel.
    control: SyncSender<Msg>,
    /// Flags and names the thread reads.
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer thread; at most `capacity` lines wait for it.
    pub fn start(capacity: usize) -> std::io::Result<Writer> {
        let (control, rx) = std::sync::mpsc::sync_channel(16);
        let shared = Arc::new(Shared::new(capacity));
        let s = shared.clone();
        std::thread::Builder::new()
            .name("kura-log".into())
            .spawn(move || run(rx, &s))?;
        Ok(Writer { control, shared })
    }

    /// A new sink writing nowhere until its target is set.
    pub fn sink(&self, kind: LogKind, vhost: Option<String>) -> Arc<Sink> {
        let sink = Arc::new(Sink {
            kind,
            vhost,
            target: ArcSwap::from_pointee(Target::none()),
            trace: broadcast::channel(1024).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_LINES)),
            dropped: AtomicU64::new(0),
            pending: Mutex::new(Pending::default()),
            shared: self.shared.clone(),
            control: self.control.clone(),
        });
        self.shared.sinks.lock().push(Arc::downgrade(&sink));
        sink
    }

    /// Closes every file; each is opened again by its next line (logrotate's SIGUSR1).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
        // A busy thread sees the flag after its batch anyway.
        let _ = self.control.try_send(Msg::Wake);
    }

    /// Waits until every line queued so far is on disk, at most `limit` (kurad
    /// stopping or restarting; a stalled disk must not hold the stop forever).
    pub fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done);
        loop {
            match self.control.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = wait.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    /// Sets the syslog HOSTNAME.
    pub fn set_host(&self, name: &str) {
        self.shared.host.store(Arc::new(name.to_string()));
    }
}

/// A file the writer has open, with the sink it belongs to.
struct Slot {
    /// The sink; the file is closed once the sink is gone (a vhost removed).
    sink: Weak<Sink>,
    /// The file.
    file: LogFile,
    /// When a write error was last reported, to report one a minute at most.
    last_error: Option<Instant>,
}

impl Slot {
    fn report(&mut self, what: &str, e: &std::io::Error) {
        if self
            .last_error
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_error = Some(Instant::now());
            tracing::warn!(file = %self.file.path().display(), error = %e, "cannot {what} the log file; its lines are lost until it works again");
        }
    }
}

/// How long the thread lets lines gather while they come: one wake-up and one `write`
/// per log per interval (a wake-up per line cost about as much CPU as the request it
/// logged). Lines reach the file and log trace at most this much later.
pub const GATHER: Duration = Duration::from_millis(20);

fn run(rx: Receiver<Msg>, shared: &Shared) {
    let mut slots: HashMap<usize, Slot> = HashMap::new();
    let mut syslog = Syslog::default();
    let mut finisher = Finisher::default();
    let mut last_tick = Instant::now();
    let mut busy = false;
    loop {
        let mut first = None;
        if busy {
            std::thread::sleep(GATHER);
        } else {
            shared.idle.store(true, Ordering::SeqCst);
            // A line sent before the flag was up did not wake us: look once more.
            let waiting = shared
                .live_sinks()
                .iter()
                .any(|s| s.pending.lock().lines > 0);
            if !waiting {
                first = match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
            }
            shared.idle.store(false, Ordering::SeqCst);
        }
        let flushes: Vec<SyncSender<()>> = first
            .into_iter()
            .chain(rx.try_iter())
            .filter_map(|m| match m {
                Msg::Flush(done) => Some(done),
                Msg::Wake => None,
            })
            .collect();
        if shared.reopen.swap(false, Ordering::Relaxed) {
            for s in slots.values_mut() {
                if let Err(e) = s.file.reopen() {
                    s.report("close", &e);
                }
            }
            tracing::info!("log files reopened");
        }
        let now = Time::from(std::time::SystemTime::now());
        let host = shared.host.load();
        busy = false;
        for sink in shared.live_sinks() {
            let batch = sink.take();
            if batch.lines > 0 {
                busy = true;
                let outputs = (&mut slots, &mut syslog, &mut finisher);
                write(outputs, &host, &sink, &batch, now);
            }
        }
        for s in slots.values_mut() {
            if let Err(e) = s.file.flush() {
                s.report("write", &e);
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            slots.retain(|_, s| s.sink.strong_count() > 0);
            for s in slots.values_mut() {
                match s.file.tick(now) {
                    Ok(Some(r)) => finisher.finish(r),
                    Ok(None) => {}
                    Err(e) => s.report("roll", &e),
                }
            }
        }
    }
    for s in slots.values_mut() {
        let _ = s.file.flush();
    }
}

/// Writes a sink's lines to its file, syslog and log trace.
fn write(
    (slots, syslog, finisher): (&mut HashMap<usize, Slot>, &mut Syslog, &mut Finisher),
    host: &str,
    sink: &Arc<Sink>,
    batch: &Pending,
    now: Time,
) {
    sink.publish(batch);
    let target = sink.target.load();
    for line in batch.text.split_terminator('\n') {
        for d in &target.settings.syslog {
            syslog.send(d, host, sink.kind, line, now);
        }
    }
    let key = Arc::as_ptr(sink) as usize;
    let Some(dir) = target.dir.as_ref().filter(|_| target.settings.on) else {
        slots.remove(&key);
        return;
    };
    let fresh = || Slot {
        sink: Arc::downgrade(sink),
        file: LogFile::new(
            dir.clone(),
            sink.kind.as_str(),
            target.header.clone(),
            target.settings.rolling.clone(),
        ),
        last_error: None,
    };
    let slot = slots.entry(key).or_insert_with(fresh);
    if !slot
        .file
        .is_for(dir, target.header.as_deref(), &target.settings.rolling)
    {
        let _ = slot.file.flush();
        *slot = fresh();
    }
    for (i, line) in batch.text.split_terminator('\n').enumerate() {
        match slot.file.write(line, now) {
            Ok(Some(r)) => finisher.finish(r),
            Ok(None) => {}
            Err(e) => {
                // A full or failing disk: the rest of the batch would fail alike.
                sink.drop_lines((batch.lines - i) as u64);
                slot.report("write", &e);
                return;
            }
        }
    }
}

/// Compresses and prunes rolled files on one thread of its own, in the order they
/// rolled, so the writer goes on and two finishes never race over the same files.
#[derive(Default)]
struct Finisher {
    /// The thread's queue, once it is started (by the first roll).
    queue: Option<std::sync::mpsc::Sender<Rolled>>,
}

impl Finisher {
    fn finish(&mut self, r: Rolled) {
        if self.queue.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Rolled>();
            let spawned = std::thread::Builder::new()
                .name("kura-log-roll".into())
                .spawn(move || {
                    for r in rx {
                        let path = r.path.clone();
                        if let Err(e) = r.finish() {
                            tracing::warn!(file = %path.display(), error = %e, "cannot compress or prune rolled logs");
                        }
                    }
                });
            match spawned {
                Ok(_) => self.queue = Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the log roll thread");
                    return;
                }
            }
        }
        if let Some(q) = &self.queue {
            let _ = q.send(r);
        }
    }
}

/// Syslog over UDP (RFC 3164 frames).
#[derive(Default)]
struct Syslog {
    /// The socket, bound on first use.
    socket: Option<UdpSocket>,
    /// Resolved receivers (`Dest` as written to its address).
    resolved: HashMap<String, Option<SocketAddr>>,
}

impl Syslog {
    fn send(&mut self, d: &SyslogDest, host: &str, kind: LogKind, line: &str, now: Time) {
        let addr = *self
            .resolved
            .entry(d.dest.clone())
            .or_insert_with(|| d.dest.to_socket_addrs().ok().and_then(|mut a| a.next()));
        let Some(addr) = addr else {
            // Try to resolve again next time.
            self.resolved.remove(&d.dest);
            return;
        };
        if self.socket.is_none() {
            self.socket = UdpSocket::bind(("::", 0))
                .or_else(|_| UdpSocket::bind(("0.0.0.0", 0)))
                .ok();
        }
        if let Some(s) = &self.socket {
            let _ = s.send_to(frame(d, host, kind, line, now).as_bytes(), addr);
        }
    }
}

/// An RFC 3164 frame: `<PRI>Mmm dd hh:mm:ss HOSTNAME kura/LOG: line`, at most 1024 bytes.
pub fn frame(d: &SyslogDest, host: &str, kind: LogKind, line: &str, now: Time) -> String {
    let mut f = format!(
        "<{}>{} {host} kura/{}: {line}",
        u16::from(d.facility) * 8 + u16::from(d.severity),
        now.format("%b %e %H:%M:%S"),
        kind.as_str().to_ascii_uppercase(),
    );
    if f.len() > 1024 {
        let mut end = 1024;
        while !f.is_char_boundary(end) {
            end -= 1;
        }
        f.truncate(end);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn frames_carry_priority_time_host_and_tag() {
        let d = SyslogDest {
            facility: 19,
            severity: 6,
            dest: "127.0.0.1:514".into(),
        };
        let t = chrono::Local
            .with_ymd_and_hms(2013, 3, 2, 11, 24, 24)
            .unwrap();
        assert_eq!(
            frame(&d, "edge1", LogKind::OriginError, "x y", t),
            "<158>Mar  2 11:24:24 edge1 kura/ORIGINERROR: x y"
        );
        let long = "é".repeat(600);
        assert!(frame(&d, "h", LogKind::Info, &long, t).len() <= 1024);
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        // A sink nobody takes lines from: the second line does not fit.
        // Sinks nobody takes lines from, two lines of room in all.
        let (control, _rx) = std::sync::mpsc::sync_channel(1);
        let w = Writer {
            control,
            shared: Arc::new(Shared::new(2)),
        };
        let a = w.sink(LogKind::Access, Some("a.test".into()));
        let b = w.sink(LogKind::Access, Some("b.test".into()));
        let before = DROPPED.load(Ordering::Relaxed);
        a.send("one".into());
        b.send("two".into());
        a.send("three".into());
        b.send("four".into());
        assert_eq!(a.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(b.dropped.load(Ordering::Relaxed), 1);
        assert!(DROPPED.load(Ordering::Relaxed) >= before + 2);
        // Taking a sink's lines makes room again.
        assert_eq!(a.take().text, "one\n");
        a.send("five".into());
        assert_eq!(a.dropped.load(Ordering::Relaxed), 1);
    }
}
