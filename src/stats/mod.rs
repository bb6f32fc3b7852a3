//! The time-bucketed stats core (guide chapter 10; spec `SNMP.md` 5-10,
//! `MONITORING.md`).
//!
//! Recording a request is a few relaxed atomic adds on the calling thread's
//! slot of its vhost: no lock, no allocation. Once a second the ticker folds
//! every slot into the vhost's history: the last 60 seconds, the last 60
//! completed minutes (with response-time distributions), and RRD-style
//! consolidation rings of 5 minutes (1 day), hours (31 days) and days (1 year)
//! for graphs. Windows (`last second`, `last m minutes`) are sums over those
//! rings, so every export reads the same numbers.

pub mod catalog;
pub mod contents;
pub mod counter;
pub mod dirs;
pub mod disk;
pub mod hist;
pub mod system;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use parking_lot::{Mutex, RwLock};

use crate::cache::CacheResult;
use counter::{Class, Gauge, OriginEvent, Part, Side, N};
use hist::{AtomicHist, Snapshot, BUCKETS};

/// One thread's share of a vhost's counters, on its own cache lines.
#[repr(align(128))]
struct Slot {
    counters: [AtomicU64; N],
    /// This thread's net changes to the gauges (their sum over slots is the value).
    gauges: [std::sync::atomic::AtomicI64; Gauge::ALL.len()],
    /// Response-time distributions, client and origin side.
    hist: [AtomicHist; 2],
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            gauges: Default::default(),
            hist: Default::default(),
        }
    }
}

/// Number of slots per vhost: a power of two near the core count, at most 16.
fn slot_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .next_power_of_two()
        .clamp(2, 16)
}

/// The calling thread's slot number (threads are spread round robin).
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    SLOT.with(|s| *s)
}

/// Holds a gauge up by one for as long as it lives (a request in progress, an
/// open connection), so every path out, including a dropped future, takes it down.
pub struct GaugeGuard {
    stats: Arc<VhostStats>,
    gauge: Gauge,
}

impl GaugeGuard {
    /// Raises `gauge` of `stats` until the guard is dropped.
    pub fn new(stats: &Arc<VhostStats>, gauge: Gauge) -> GaugeGuard {
        stats.gauge_add(gauge, 1);
        GaugeGuard {
            stats: stats.clone(),
            gauge,
        }
    }
}

impl GaugeGuard {
    /// Whether the guard holds up a gauge of `stats`.
    pub fn is_for(&self, stats: &Arc<VhostStats>) -> bool {
        Arc::ptr_eq(&self.stats, stats)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.stats.gauge_add(self.gauge, -1);
    }
}

/// One finished exchange on one side.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Client or origin side.
    pub side: Side,
    /// Response status.
    pub status: u16,
    /// Bytes of the request header, request body, response header and response body.
    pub parts: [u64; 4],
    /// Whether the response body went to its end (not cut short).
    pub completed: bool,
    /// Time until the response head.
    pub time_res: Duration,
    /// Time until the response was complete.
    pub time_complete: Duration,
}

/// Which statistics a client exchange counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Plain HTTP: the HTTP figures.
    Http,
    /// Over TLS: the SSL figures, and the HTTP ones too when `also_http`
    /// (`<Stats><HttpsTraffic>ON`).
    Https {
        /// `<HttpsTraffic>`.
        also_http: bool,
    },
}

impl Counting {
    /// Whether the exchange counts in the HTTP figures.
    pub fn http(self) -> bool {
        matches!(self, Counting::Http | Counting::Https { also_http: true })
    }
}

/// Counter sums and distributions over some seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample<const K: usize = N> {
    /// Unix second the sample starts at.
    pub start: u64,
    /// Seconds it covers (less than its length for the first, partial one).
    pub seconds: u64,
    /// Counter sums.
    pub counts: [u64; K],
    /// Response-time distributions, client and origin (kept for seconds and minutes only).
    pub hist: [Snapshot; 2],
}

impl<const K: usize> Sample<K> {
    /// An empty sample starting at `start`.
    pub fn empty(start: u64) -> Self {
        Sample {
            start,
            seconds: 0,
            counts: [0; K],
            hist: Default::default(),
        }
    }

    fn add(&mut self, other: &Self, with_hist: bool) {
        self.seconds += other.seconds;
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        if with_hist {
            for (a, b) in self.hist.iter_mut().zip(other.hist.iter()) {
                a.merge(b);
            }
        }
    }

    /// Approximate bytes this sample holds.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.hist.iter().map(Snapshot::heap_bytes).sum::<usize>()
    }
}

/// A ring of samples each `period` seconds long, consolidated from seconds.
#[derive(Debug)]
struct Ring<const K: usize = N> {
    period: u64,
    capacity: usize,
    with_hist: bool,
    /// The sample being filled.
    current: Option<Sample<K>>,
    /// Completed samples, oldest first.
    done: VecDeque<Sample<K>>,
}

impl<const K: usize> Ring<K> {
    fn new(period: u64, capacity: usize, with_hist: bool) -> Self {
        Ring {
            period,
            capacity,
            with_hist,
            current: None,
            done: VecDeque::new(),
        }
    }

    /// Adds the sample of second `sec`; completes the current period when `sec` is its last second.
    fn push_second(&mut self, sec: u64, s: &Sample<K>) {
        if self.capacity == 0 {
            return;
        }
        let start = sec - sec % self.period;
        if self.current.as_ref().is_some_and(|c| c.start != start) {
            self.complete();
        }
        let cur = self.current.get_or_insert_with(|| Sample::empty(start));
        cur.add(s, self.with_hist);
        if (sec + 1) % self.period == 0 {
            self.complete();
        }
    }

    fn complete(&mut self) {
        if let Some(c) = self.current.take() {
            if self.done.len() == self.capacity {
                self.done.pop_front();
            }
            self.done.push_back(c);
        }
    }

    /// The sum of the last `n` completed samples (fewer when fewer exist);
    /// distributions merged only when `with_hist`.
    fn window(&self, n: usize, with_hist: bool) -> Sample<K> {
        let mut out = Sample::empty(0);
        for s in self.done.iter().rev().take(n) {
            out.start = s.start;
            out.add(s, self.with_hist && with_hist);
        }
        out
    }

    fn bytes(&self) -> usize {
        self.done
            .iter()
            .chain(self.current.iter())
            .map(Sample::<K>::bytes)
            .sum()
    }
}

/// A vhost's history and the last cumulative values it was folded from.
#[derive(Debug)]
struct History {
    last_counts: [u64; N],
    last_hist: [Vec<u64>; 2],
    /// Last folded second (unix), to detect skipped seconds.
    last_sec: Option<u64>,
    /// Last folded second with client requests (or the first folded second).
    last_active: Option<u64>,
    seconds: Ring,
    minutes: Ring,
    five_minutes: Ring,
    hours: Ring,
    days: Ring,
}

/// Which rings a history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    /// Every ring: seconds, minutes, and the 5-minute, hour and day rings for graphs.
    Full,
    /// What the windows need: the last second and the last 60 minutes (directories).
    Short,
}

impl History {
    fn new(kind: HistoryKind) -> History {
        let (seconds, long) = match kind {
            HistoryKind::Full => (60, [288, 744, 366]),
            HistoryKind::Short => (1, [0; 3]),
        };
        History {
            last_counts: [0; N],
            last_hist: [vec![0; BUCKETS], vec![0; BUCKETS]],
            last_sec: None,
            last_active: None,
            seconds: Ring::new(1, seconds, true),
            minutes: Ring::new(60, 60, true),
            five_minutes: Ring::new(300, long[0], false),
            hours: Ring::new(3600, long[1], false),
            days: Ring::new(86_400, long[2], false),
        }
    }
}

/// Which window to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last completed second (minute variable 0, `/monitoring/realtime`).
    LastSecond,
    /// The last `m` completed minutes, 1..=60 (`/monitoring/average` is 5).
    Minutes(u8),
}

/// One vhost's statistics.
pub struct VhostStats {
    /// Vhost name.
    pub name: String,
    /// When its statistics started (the vhost's `Uptime`).
    pub created: std::time::Instant,
    slots: Box<[Slot]>,
    history: Mutex<History>,
    /// Per-directory client statistics, when `<DirDepth>` asks for them.
    dirs: ArcSwapOption<dirs::DirTable>,
    /// `<Stats><HttpsTraffic>` as last configured, for `ClientTraffic.HttpsTraffic`.
    pub https_traffic: std::sync::atomic::AtomicBool,
    /// What the store holds for the vhost now ([`counter::stored_levels`]).
    stored: [AtomicU64; counter::STORED_LEVELS],
}

impl VhostStats {
    fn new(name: &str) -> VhostStats {
        VhostStats::with_history(name, HistoryKind::Full)
    }

    /// Statistics named `name` keeping the rings of `kind`.
    pub fn with_history(name: &str, kind: HistoryKind) -> VhostStats {
        VhostStats {
            name: name.to_string(),
            created: std::time::Instant::now(),
            slots: (0..slot_count()).map(|_| Slot::default()).collect(),
            history: Mutex::new(History::new(kind)),
            dirs: ArcSwapOption::empty(),
            https_traffic: Default::default(),
            stored: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Sets what the store holds for the vhost (once a second, from the store's counts).
    pub fn set_stored(&self, contents: &contents::Contents) {
        for (level, value) in self.stored.iter().zip(counter::stored_levels(contents)) {
            level.store(value, Ordering::Relaxed);
        }
    }

    /// Adds the file I/O of the vhost's objects since the last call, in
    /// [`counter::FileIo::ALL`] order (once a second, from the store's counts).
    pub fn add_file_io(&self, io: &[u64; counter::FileIo::ALL.len()]) {
        let c = &self.slot().counters;
        for (e, v) in counter::FileIo::ALL.into_iter().zip(io) {
            c[counter::file_io(e)].fetch_add(*v, Ordering::Relaxed);
        }
    }

    /// Adds the body bytes of the vhost's objects swapped out of the memory tier
    /// since the last call (`SecuredMemory`).
    pub fn add_swapped_bytes(&self, bytes: u64) {
        self.slot().counters[counter::SECURED_MEMORY].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds the events of the vhost's objects since the last call, in
    /// [`counter::ObjectEvent::ALL`] order (once a second, from the store's counts).
    pub fn add_object_events(&self, events: &[u64; counter::ObjectEvent::ALL.len()]) {
        let c = &self.slot().counters;
        for (e, v) in counter::ObjectEvent::ALL.into_iter().zip(events) {
            c[counter::object_event(e)].fetch_add(*v, Ordering::Relaxed);
        }
    }

    /// The directory table for `policy` (`None`: depth 0, the vhost is its one
    /// directory). The current table is kept when its policy is the same, so
    /// a reload keeps the history; a different policy starts a new one.
    pub fn dir_table(&self, policy: Option<dirs::DirPolicy>) -> Option<Arc<dirs::DirTable>> {
        let current = self.dirs.load_full();
        if current.as_ref().map(|t| t.policy) == policy {
            return current;
        }
        let table = policy.map(|p| Arc::new(dirs::DirTable::new(&self.name, p)));
        self.dirs.store(table.clone());
        table
    }

    /// The directory settings and windows (`/` and each directory with traffic
    /// in `w`, by path); `None` without directory statistics (the vhost is its `/`).
    pub fn dir_windows(&self, w: Window) -> Option<(dirs::DirPolicy, Vec<(String, Sample)>)> {
        self.dirs.load().as_ref().map(|t| (t.policy, t.windows(w)))
    }

    /// Seconds since the last folded second with client requests, as of `now`.
    fn idle_since(&self, now: u64) -> u64 {
        let last = self.history.lock().last_active.unwrap_or(now);
        now.saturating_sub(1).saturating_sub(last)
    }

    #[inline]
    fn slot(&self) -> &Slot {
        &self.slots[thread_slot() & (self.slots.len() - 1)]
    }

    /// Records one finished exchange.
    #[inline]
    pub fn record(&self, e: &Exchange) {
        if cfg!(feature = "no-stats-recording") {
            return;
        }
        let slot = self.slot();
        let c = &slot.counters;
        let add = |i: usize, v: u64| {
            c[i].fetch_add(v, Ordering::Relaxed);
        };
        let (res, done) = (
            e.time_res.as_micros() as u64,
            e.time_complete.as_micros() as u64,
        );
        let [req_head, req_body, res_head, res_body] = e.parts;
        let (request, response) = (req_head + req_body, res_head + res_body);
        // The client sends the request to kura; kura receives the origin's response.
        let (inbound, outbound) = match e.side {
            Side::Client => (request, response),
            Side::Origin => (response, request),
        };
        add(counter::requests(e.side), 1);
        add(counter::inbound(e.side), inbound);
        add(counter::outbound(e.side), outbound);
        for (p, v) in Part::ALL.into_iter().zip(e.parts) {
            add(counter::part(e.side, p), v);
        }
        for class in std::iter::once(Class::Total).chain(Class::of(e.status)) {
            add(counter::responses(e.side, class), 1);
            add(counter::completed(e.side, class), u64::from(e.completed));
            add(counter::time_res(e.side, class), res);
            add(counter::time_complete(e.side, class), done);
        }
        slot.hist[e.side as usize].record(done);
    }

    /// Records a client exchange with its result code and body bytes sent: in the
    /// HTTP figures unless `counting` keeps it out, and in the SSL figures when it
    /// came over TLS (the guide's `<Stats><HttpsTraffic>`).
    pub fn record_client(&self, e: &Exchange, result: CacheResult, bytes: u64, counting: Counting) {
        if counting.http() {
            self.record(e);
            self.record_result(result, bytes);
        }
        if counting != Counting::Http && !cfg!(feature = "no-stats-recording") {
            let [req_head, req_body, res_head, res_body] = e.parts;
            let c = &self.slot().counters;
            c[counter::ssl_inbound()].fetch_add(req_head + req_body, Ordering::Relaxed);
            c[counter::ssl_outbound()].fetch_add(res_head + res_body, Ordering::Relaxed);
        }
    }

    /// Records a client request's result code and the bytes sent for it.
    #[inline]
    pub fn record_result(&self, r: CacheResult, bytes: u64) {
        if cfg!(feature = "no-stats-recording") {
            return;
        }
        let c = &self.slot().counters;
        c[counter::result(r)].fetch_add(1, Ordering::Relaxed);
        c[counter::result_bytes(r)].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts an origin event (`n` is 1, or microseconds for `ConnectMicros`).
    #[inline]
    pub fn record_origin_event(&self, e: OriginEvent, n: u64) {
        if cfg!(feature = "no-stats-recording") {
            return;
        }
        self.slot().counters[counter::origin_event(e)].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a client request bypassed to the origin.
    #[inline]
    pub fn record_bypass(&self) {
        if cfg!(feature = "no-stats-recording") {
            return;
        }
        self.slot().counters[counter::BYPASSED].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a port bypass event (`n` bytes for the traffic events).
    #[inline]
    pub fn record_port_bypass(&self, e: counter::PortBypassEvent, n: u64) {
        if cfg!(feature = "no-stats-recording") {
            return;
        }
        self.slot().counters[counter::port_bypass(e)].fetch_add(n, Ordering::Relaxed);
    }

    /// Moves a gauge by `delta` (+1 when something opens, -1 when it closes).
    #[inline]
    pub fn gauge_add(&self, g: Gauge, delta: i64) {
        if cfg!(feature = "no-stats-recording") {
            return;
        }
        self.slot().gauges[g as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// A gauge's current value.
    pub fn gauge(&self, g: Gauge) -> u64 {
        let sum: i64 = self
            .slots
            .iter()
            .map(|s| s.gauges[g as usize].load(Ordering::Relaxed))
            .sum();
        sum.max(0) as u64
    }

    /// Folds everything recorded since the last fold into the second ending at `now` (unix seconds).
    pub fn fold(&self, now: u64) {
        let mut counts = [0u64; N];
        let mut hist = [vec![0u64; BUCKETS], vec![0u64; BUCKETS]];
        for slot in self.slots.iter() {
            for (sum, c) in counts.iter_mut().zip(slot.counters.iter()) {
                *sum += c.load(Ordering::Relaxed);
            }
            for (side, h) in slot.hist.iter().enumerate() {
                h.add_to(&mut hist[side]);
            }
        }
        let mut guard = self.history.lock();
        let hs = &mut *guard;
        let sec = now.saturating_sub(1);
        if hs.last_sec.is_some_and(|l| sec <= l) {
            return;
        }
        let mut sample = Sample::empty(sec);
        sample.seconds = 1;
        for ((d, n), l) in sample
            .counts
            .iter_mut()
            .zip(counts.iter())
            .zip(hs.last_counts.iter())
        {
            *d = n - l;
        }
        sample.hist = [
            Snapshot::delta(&hist[0], &hs.last_hist[0]),
            Snapshot::delta(&hist[1], &hs.last_hist[1]),
        ];
        // Gauges and store levels are sampled, not differenced: a window sums one
        // sample per second.
        for g in Gauge::ALL {
            sample.counts[counter::gauge(g)] = self.gauge(g);
        }
        for (i, level) in self.stored.iter().enumerate() {
            sample.counts[counter::stored_level(i)] = level.load(Ordering::Relaxed);
        }
        for i in counter::sampled() {
            counts[i] = 0;
        }
        if hs.last_active.is_none() || sample.counts[counter::requests(Side::Client)] > 0 {
            hs.last_active = Some(sec);
        }
        hs.last_counts = counts;
        hs.last_hist = hist;
        hs.last_sec = Some(sec);
        for ring in [
            &mut hs.seconds,
            &mut hs.minutes,
            &mut hs.five_minutes,
            &mut hs.hours,
            &mut hs.days,
        ] {
            ring.push_second(sec, &sample);
        }
        drop(guard);
        if let Some(t) = self.dirs.load().as_ref() {
            t.fold(now);
        }
    }

    /// Totals since the vhost's statistics started, as of the last fold: counters
    /// and the client and origin latency buckets (monotonic, for `/metrics`).
    pub fn totals(&self) -> ([u64; N], [Vec<u64>; 2]) {
        let hs = self.history.lock();
        (hs.last_counts, hs.last_hist.clone())
    }

    /// Sums over a window. A window longer than the history holds is what exists.
    pub fn window(&self, w: Window) -> Sample {
        self.read(w, true)
    }

    /// Counter sums over a window, without the distributions (cheaper; SNMP needs no quantiles).
    pub fn counts(&self, w: Window) -> Sample {
        self.read(w, false)
    }

    fn read(&self, w: Window, with_hist: bool) -> Sample {
        let hs = self.history.lock();
        match w {
            Window::LastSecond => hs.seconds.window(1, with_hist),
            Window::Minutes(m) => hs.minutes.window(usize::from(m), with_hist),
        }
    }

    /// Bytes of history this vhost holds now.
    pub fn history_bytes(&self) -> usize {
        let hs = self.history.lock();
        [
            &hs.seconds,
            &hs.minutes,
            &hs.five_minutes,
            &hs.hours,
            &hs.days,
        ]
        .iter()
        .map(|r| r.bytes())
        .sum::<usize>()
            + self.slots.len() * (std::mem::size_of::<Slot>() + 2 * BUCKETS * 8)
            + self.dirs.load().as_ref().map_or(0, |t| t.history_bytes())
    }
}

/// Sums vhost windows into one; its length is the longest of them (vhosts
/// added later have shorter histories, not a shorter window).
fn sum_windows(windows: impl Iterator<Item = Sample>) -> Sample {
    let mut out = Sample::empty(0);
    for s in windows {
        if s.seconds > out.seconds {
            out.start = s.start;
        }
        let seconds = out.seconds.max(s.seconds);
        out.add(&s, true);
        out.seconds = seconds;
    }
    out
}

/// Statistics of every vhost.
#[derive(Default)]
pub struct Stats {
    vhosts: RwLock<HashMap<String, Arc<VhostStats>>>,
    /// Completed folds; readers that cache windows compare it.
    generation: AtomicU64,
    /// Host system figures.
    pub system: system::SystemStats,
    /// Per-`<Disk>` figures, in configuration order.
    pub disks: disk::DiskStats,
    /// What the cache holds, published by the daemon once a second.
    pub contents: contents::ContentsBoard,
}

impl Stats {
    /// Stats handles for `names`: the existing ones (with their history) and
    /// new ones. Nothing changes until [`Stats::install`].
    pub fn handles<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, Arc<VhostStats>> {
        let map = self.vhosts.read();
        names
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    map.get(n)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(VhostStats::new(n))),
                )
            })
            .collect()
    }

    /// Makes `vhosts` the set that is folded and reported; vhosts not in it are
    /// dropped with their history.
    pub fn install(&self, vhosts: impl IntoIterator<Item = Arc<VhostStats>>) {
        *self.vhosts.write() = vhosts.into_iter().map(|v| (v.name.clone(), v)).collect();
    }

    /// The stats of one vhost.
    pub fn vhost(&self, name: &str) -> Option<Arc<VhostStats>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Folds every vhost and samples the system and the disks (called once a second).
    pub fn fold(&self, now: u64) {
        self.system.sample(now);
        let all: Vec<Arc<VhostStats>> = self.vhosts.read().values().cloned().collect();
        for v in all {
            v.fold(now);
        }
        // Last: its stat and statvfs calls are the only ones that could be slow (a
        // disk going bad), and the traffic of this second is folded by then.
        self.disks.sample(now);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The host aggregate over a window: the sum over every vhost.
    pub fn host_window(&self, w: Window) -> Sample {
        self.sum(None, w, true)
    }

    /// A view's aggregate over a window: the sum over its member vhosts that exist.
    pub fn view_window(&self, members: &[String], w: Window) -> Sample {
        self.sum(Some(members), w, true)
    }

    /// Counter sums of the host (`members` `None`) or a view, without distributions.
    pub fn sum_counts(&self, members: Option<&[String]>, w: Window) -> Sample {
        self.sum(members, w, false)
    }

    fn sum(&self, members: Option<&[String]>, w: Window, with_hist: bool) -> Sample {
        let map = self.vhosts.read();
        let found: Vec<Arc<VhostStats>> = match members {
            None => map.values().cloned().collect(),
            Some(m) => m.iter().filter_map(|m| map.get(m).cloned()).collect(),
        };
        drop(map);
        sum_windows(found.iter().map(|v| v.read(w, with_hist)))
    }

    /// Folds so far: windows change only when this does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Runs the once-a-second fold, aligned to whole seconds of the wall clock.
    pub async fn run_ticker(self: Arc<Self>) {
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let to_next =
                Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()));
            tokio::time::sleep(to_next).await;
            self.fold(crate::procfs::unix_now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(v: &VhostStats, status: u16, bytes: u64) {
        v.record(&Exchange {
            side: Side::Client,
            status,
            parts: [100, 0, 0, bytes],
            completed: true,
            time_res: Duration::from_micros(200),
            time_complete: Duration::from_micros(500),
        });
        v.record_result(CacheResult::Hit, bytes);
    }

    #[test]
    fn last_second_and_minute_windows_sum_exactly() {
        let v = VhostStats::new("a");
        let t0 = 30_000_000 * 60; // a minute boundary
        v.fold(t0);
        for sec in 1..=120u64 {
            for _ in 0..sec % 7 {
                hit(&v, 200, 1000);
            }
            v.fold(t0 + sec);
        }
        // What is recorded before fold(t0 + s) is second t0 + s - 1: the last second had 120 % 7.
        assert_eq!(
            v.window(Window::LastSecond).counts[counter::requests(Side::Client)],
            120 % 7
        );
        let per_minute: u64 = (1..=60u64).map(|s| s % 7).sum();
        let m1 = v.window(Window::Minutes(1));
        assert_eq!(m1.seconds, 60);
        assert_eq!(
            m1.counts[counter::requests(Side::Client)],
            (61..=120u64).map(|s| s % 7).sum::<u64>()
        );
        let m2 = v.window(Window::Minutes(2));
        assert_eq!(m2.seconds, 120);
        assert_eq!(
            m2.counts[counter::requests(Side::Client)],
            (1..=120u64).map(|s| s % 7).sum::<u64>()
        );
        assert_eq!(
            m2.counts[counter::result(CacheResult::Hit)],
            m2.counts[counter::requests(Side::Client)]
        );
        assert!(per_minute > 0);
        assert_eq!(
            m2.hist[0].count(),
            m2.counts[counter::requests(Side::Client)]
        );
    }

    #[test]
    fn partial_history_is_not_zero_padded() {
        let v = VhostStats::new("a");
        let t0 = 30_000_000 * 60;
        v.fold(t0 + 30);
        for sec in 31..=150 {
            hit(&v, 404, 10);
            v.fold(t0 + sec);
        }
        // Completed minutes: [t0, t0+60) partial (31 s from the first fold on), [t0+60, t0+120)
        // full. The third is still running and not part of any window.
        let m5 = v.window(Window::Minutes(5));
        assert_eq!(m5.seconds, 31 + 60);
        assert_eq!(m5.counts[counter::responses(Side::Client, Class::C4xx)], 90);
        assert_eq!(
            m5.counts[counter::time_res(Side::Client, Class::C4xx)],
            90 * 200
        );
    }

    #[test]
    fn a_reload_keeps_the_directory_table_only_when_its_policy_is_unchanged() {
        let v = VhostStats::new("a");
        let p = |depth| {
            Some(dirs::DirPolicy {
                depth,
                accum: false,
            })
        };
        let first = v.dir_table(p(1)).unwrap();
        first.dir_for("/img/x.jpg");
        assert!(Arc::ptr_eq(&first, &v.dir_table(p(1)).unwrap()));
        let second = v.dir_table(p(2)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.tracked(), 1, "a new policy starts with / alone");
        assert!(v.dir_table(None).is_none());
        assert!(v.dir_windows(Window::LastSecond).is_none());
    }

    #[test]
    fn counts_stay_exact_across_threads() {
        let v = Arc::new(VhostStats::new("a"));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        hit(&v, 200, 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        v.fold(1_800_000_001);
        let s = v.window(Window::LastSecond);
        assert_eq!(s.counts[counter::requests(Side::Client)], 80_000);
        assert_eq!(s.counts[counter::result_bytes(CacheResult::Hit)], 240_000);
    }
}
