//! Logging: kurad's own diagnostics through `tracing` (to stderr, and into the
//! info and sys logs), and the guide's log files (chapter 12).
//!
//! [`Logs`] holds one [`Sink`] per log: the global info, sys, deny and
//! originerror logs, and each vhost's access, origin and monitoring logs. A sink
//! keeps its identity across reloads (log trace followers and open files stay);
//! a reload only replaces its [`Target`]. Every line goes through one bounded
//! queue to one writer thread ([`writer`]); files roll as [`roll`] says.

pub mod access;
pub mod lines;
pub mod roll;
pub mod writer;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::log::{MonitoringForm, Xff};
use crate::config::{Config, VhostConfig};
use writer::Writer;
pub use writer::{LogKind, Sink, Target, DROPPED};

/// The stderr filter used when `KURA_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// The default directory of the global logs and of vhost logs without `<Log Dir>`.
pub const DEFAULT_LOG_DIR: &str = "/var/log/kura";

/// The info and sys logs, once a daemon has started (the tracing layer writes to them).
static GLOBAL: ArcSwapOption<GlobalSinks> = ArcSwapOption::const_empty();

/// Installs the global subscriber: stderr filtered by `KURA_LOG`, and the info
/// log (info and above) and sys log (warnings and errors) of the running daemon.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("KURA_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(stderr)
        .with(FileLayer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();
}

/// Writes tracing events into the info and sys logs.
struct FileLayer;

/// Collects an event's message and fields as `message key=value ...`.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(g) = GLOBAL.load_full() else { return };
        let level = *event.metadata().level();
        let to_sys = level <= Level::WARN && g.sys.wanted();
        if !g.info.wanted() && !to_sys {
            return;
        }
        let now = chrono::Local::now();
        let mut line = Line(format!("{} [{level}]", now.format("%Y.%m.%d %H:%M:%S")));
        event.record(&mut line);
        if to_sys {
            g.sys.send(line.0.clone());
        }
        if g.info.wanted() {
            g.info.send(line.0);
        }
    }
}

/// Writes a deny log line (chapter 12): the client at `ip` was refused by
/// `<ServiceAccess>` under `condition` (the rule as written, or `Default`).
pub fn deny(ip: std::net::IpAddr, condition: &str) {
    let Some(g) = GLOBAL.load_full() else { return };
    if g.deny.wanted() {
        g.deny
            .send(lines::deny(chrono::Local::now(), ip, condition));
    }
}

/// Writes an originerror `[ERROR]` line (chapter 12) for a failed origin request of
/// `vhost`; `origin` is the address tried (`host:port`), `request` the method and URI.
pub fn origin_error(
    vhost: &str,
    origin: &str,
    request: (&str, &str),
    taken: std::time::Duration,
    error: &str,
) {
    if let Some(g) = GLOBAL.load_full() {
        origin_line(&g, (vhost, origin, request), taken, (false, error, "-"));
    }
}

/// Whether malformed origin exchanges are wanted as `[WARNING]` lines
/// (`<OriginErrorLog Warning="ON">`), so callers check before gathering facts.
pub fn origin_warnings_wanted() -> bool {
    GLOBAL.load_full().is_some_and(|g| {
        g.origin_warning.load(std::sync::atomic::Ordering::Relaxed) && g.origin_error.wanted()
    })
}

/// Writes an originerror `[WARNING]` line for a malformed exchange (`kind`, one of the
/// guide's HTTP communication errors) when `Warning` is ON; `resinfo` is what the
/// response said (`Res=206,Len=2635`).
pub fn origin_warning(
    vhost: &str,
    origin: &str,
    request: (&str, &str),
    taken: std::time::Duration,
    (kind, resinfo): (&str, &str),
) {
    let Some(g) = GLOBAL.load_full() else { return };
    if g.origin_warning.load(std::sync::atomic::Ordering::Relaxed) {
        origin_line(&g, (vhost, origin, request), taken, (true, kind, resinfo));
    }
}

/// One originerror line: `what` is (warning, sc-error, sc-resinfo).
fn origin_line(
    g: &GlobalSinks,
    (vhost, origin, request): (&str, &str, (&str, &str)),
    taken: std::time::Duration,
    what: (bool, &str, &str),
) {
    if !g.origin_error.wanted() {
        return;
    }
    let host = origin
        .rsplit_once(':')
        .map_or(origin, |(h, _)| h)
        .trim_matches(['[', ']']);
    let ip = if host.parse::<std::net::IpAddr>().is_ok() {
        host
    } else {
        "-"
    };
    g.origin_error.send(lines::origin_error(
        chrono::Local::now(),
        vhost,
        (host, ip),
        request,
        taken,
        what,
    ));
}

/// Writes the originerror lines of an origin IP of `vhost` leaving (`back` false)
/// or coming back into service, with the IPs requests go to now (chapter 12).
pub fn origin_service(
    vhost: &str,
    ip: std::net::SocketAddr,
    back: bool,
    in_service: &[std::net::SocketAddr],
) {
    let Some(g) = GLOBAL.load_full() else { return };
    if g.origin_error.wanted() {
        let now = chrono::Local::now();
        for line in lines::origin_service(now, vhost, ip, back, in_service) {
            g.origin_error.send(line);
        }
    }
}

/// The global logs.
pub struct GlobalSinks {
    /// `<InfoLog>`: tracing events at info and above.
    pub info: Arc<Sink>,
    /// Warnings and errors (no element of its own: `<InfoLog>`'s settings, always ON).
    pub sys: Arc<Sink>,
    /// `<DenyLog>`.
    pub deny: Arc<Sink>,
    /// `<OriginErrorLog>`.
    pub origin_error: Arc<Sink>,
    /// `<OriginErrorLog Warning>`.
    pub origin_warning: std::sync::atomic::AtomicBool,
}

/// A vhost's sinks, kept across reloads.
pub struct VhostSinks {
    /// `access.log`.
    pub access: Arc<Sink>,
    /// `origin.log`.
    pub origin: Arc<Sink>,
    /// `monitoring.log`.
    pub monitoring: Arc<Sink>,
}

/// A vhost's logs as one configuration sets them (built with each runtime).
pub struct VhostLog {
    /// The sinks.
    pub sinks: Arc<VhostSinks>,
    /// The access line format.
    pub access_format: access::Format,
    /// `<Access XFF>`.
    pub xff: Xff,
    /// `<Access Local>`.
    pub access_local: bool,
    /// `<Origin Local>`.
    pub origin_local: bool,
    /// `<Monitoring Form>`.
    pub monitoring_form: MonitoringForm,
    /// Targets of access, origin and monitoring, installed with the runtime.
    targets: [Target; 3],
}

impl VhostLog {
    /// Whether a transaction with the origin at `origin` gets an origin log line: the
    /// log is on, and a loopback origin only with `Local`.
    pub fn wants_origin_line(&self, origin: Option<std::net::SocketAddr>) -> bool {
        let local = origin.is_some_and(|o| crate::config::is_loopback(o.ip()));
        self.sinks.origin.wanted() && (self.origin_local || !local)
    }
}

/// Every log of the daemon.
pub struct Logs {
    /// The writer thread.
    writer: Writer,
    /// `--log-dir`: the global logs, and the vhost logs without `<Log Dir>`; `None`
    /// writes no files (the demo), log trace still works.
    dir: Option<PathBuf>,
    /// The global logs.
    pub global: Arc<GlobalSinks>,
    /// The installed vhosts' sinks by name.
    vhosts: Mutex<HashMap<String, Arc<VhostSinks>>>,
}

impl Logs {
    /// Starts the writer and makes its info and sys logs the tracing layer's.
    pub fn start(dir: Option<PathBuf>, queue: usize) -> std::io::Result<Arc<Logs>> {
        let writer = Writer::start(queue)?;
        let global = Arc::new(GlobalSinks {
            info: writer.sink(LogKind::Info, None),
            sys: writer.sink(LogKind::Sys, None),
            deny: writer.sink(LogKind::Deny, None),
            origin_error: writer.sink(LogKind::OriginError, None),
            origin_warning: std::sync::atomic::AtomicBool::new(false),
        });
        GLOBAL.store(Some(global.clone()));
        Ok(Arc::new(Logs {
            writer,
            dir,
            global,
            vhosts: Mutex::new(HashMap::new()),
        }))
    }

    /// A vhost's logs for a new runtime: its sinks (the installed ones when the vhost
    /// exists already) and the settings `install` will apply.
    pub fn vhost(&self, cfg: &VhostConfig) -> Arc<VhostLog> {
        let sinks = self
            .vhosts
            .lock()
            .get(&cfg.name)
            .cloned()
            .unwrap_or_else(|| {
                let sink = |k| self.writer.sink(k, Some(cfg.name.clone()));
                Arc::new(VhostSinks {
                    access: sink(LogKind::Access),
                    origin: sink(LogKind::Origin),
                    monitoring: sink(LogKind::Monitoring),
                })
            });
        let l = &cfg.logs;
        let access_format = access::Format::compile(&l.access_form).unwrap_or_else(|e| {
            // The guide: a wrong format falls back to the default.
            tracing::warn!(vhost = %cfg.name, error = %e, "<AccessFormat> is not valid; the access log uses Form=\"ston\"");
            access::Format::Ston
        });
        let dir = l
            .dir
            .clone()
            .or_else(|| self.dir.clone())
            .map(|d| d.join(&cfg.name));
        let target = |settings: &crate::config::log::LogSettings, header| Target {
            dir: dir.clone(),
            settings: settings.clone(),
            header,
        };
        Arc::new(VhostLog {
            targets: [
                target(&l.access, access_format.header()),
                target(
                    &l.origin,
                    Some(format!("#Fields: {}", lines::ORIGIN_FIELDS)),
                ),
                target(&l.monitoring, None),
            ],
            sinks,
            access_format,
            xff: l.xff,
            access_local: l.access_local,
            origin_local: l.origin_local,
            monitoring_form: l.monitoring_form,
        })
    }

    /// Applies a configuration that is now in force: every log's target, and the
    /// vhosts log trace can follow.
    pub fn install<'a>(
        &self,
        config: &Config,
        vhosts: impl IntoIterator<Item = (&'a str, &'a VhostLog)>,
    ) {
        self.install_global(config);
        let mut map = HashMap::new();
        for (name, v) in vhosts {
            let [a, o, m] = v.targets.clone();
            v.sinks.access.set_target(a);
            v.sinks.origin.set_target(o);
            v.sinks.monitoring.set_target(m);
            map.insert(name.to_string(), v.sinks.clone());
        }
        *self.vhosts.lock() = map;
    }

    /// Applies the global logs' settings (at start, before anything else is logged).
    pub fn install_global(&self, config: &Config) {
        let g = &config.server.logs;
        self.writer.set_host(&config.server.name);
        let global = |settings: &crate::config::log::LogSettings, header: Option<&str>| Target {
            dir: self.dir.clone(),
            settings: settings.clone(),
            header: header.map(str::to_string),
        };
        let mut sys = g.info.clone();
        sys.on = true;
        self.global.info.set_target(global(&g.info, None));
        self.global.sys.set_target(global(&sys, None));
        self.global.deny.set_target(global(
            &g.deny,
            Some(&format!("#Fields: {}", lines::DENY_FIELDS)),
        ));
        self.global.origin_error.set_target(global(
            &g.origin_error,
            Some(&format!("#Fields: {}", lines::ORIGIN_ERROR_FIELDS)),
        ));
        self.global
            .origin_warning
            .store(g.origin_warning, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits (at most `limit`) until every queued line is written: before kurad
    /// exits or restarts.
    pub fn flush(&self, limit: std::time::Duration) {
        self.writer.flush(limit);
    }

    /// Closes every file; the next line reopens it (SIGUSR1).
    pub fn reopen(&self) {
        self.writer.reopen();
    }

    /// The sink log trace follows: a global log, or a vhost's.
    pub fn sink(&self, kind: LogKind, vhost: Option<&str>) -> Option<Arc<Sink>> {
        let g = &self.global;
        match kind {
            LogKind::Info => Some(g.info.clone()),
            LogKind::Sys => Some(g.sys.clone()),
            LogKind::Deny => Some(g.deny.clone()),
            LogKind::OriginError => Some(g.origin_error.clone()),
            LogKind::Access | LogKind::Origin | LogKind::Monitoring => {
                let v = self
                    .vhosts
                    .lock()
                    .get(&vhost?.to_ascii_lowercase())?
                    .clone();
                Some(match kind {
                    LogKind::Access => v.access.clone(),
                    LogKind::Origin => v.origin.clone(),
                    _ => v.monitoring.clone(),
                })
            }
        }
    }

    /// Every sink, global ones first (for `/metrics`).
    pub fn sinks(&self) -> Vec<Arc<Sink>> {
        let g = &self.global;
        let mut v = vec![
            g.info.clone(),
            g.sys.clone(),
            g.deny.clone(),
            g.origin_error.clone(),
        ];
        let vhosts = self.vhosts.lock();
        let mut names: Vec<&String> = vhosts.keys().collect();
        names.sort();
        for n in names {
            let s = &vhosts[n];
            v.extend([s.access.clone(), s.origin.clone(), s.monitoring.clone()]);
        }
        v
    }
}
