//! The running daemon: configuration source, listeners, reload.
//!
//! Reload builds the new runtime and binds any new listen addresses before
//! anything changes; on any error the old configuration keeps serving.
//! Listen addresses present before and after keep their socket (and their
//! bound port, which matters for port 0), so established connections and
//! the accept queue survive a reload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cache::store::Store;
use crate::config::files::ArchiveError;
use crate::config::history::{ConfHistory, ConfKind};
use crate::config::{self, ConfFiles, Config, ConfigErrors};
use crate::log::Logs;
use crate::proxy::{self, Runtime, Scheme};
use crate::snmp::service::{Prepared, Service};
use crate::stats::counter::ObjectEvent;
use crate::stats::Stats;

/// Where the configuration comes from.
#[derive(Debug)]
pub enum ConfSource {
    /// The files of a directory, reread on reload.
    Dir(PathBuf),
    /// Files held in memory (the demo); upload and restore replace them.
    Embedded(parking_lot::RwLock<ConfFiles>),
}

impl ConfSource {
    /// The embedded source of two XML texts.
    pub fn embedded(server_xml: &str, vhosts_xml: &str) -> ConfSource {
        ConfSource::Embedded(parking_lot::RwLock::new(ConfFiles::from_xml(
            server_xml, vhosts_xml,
        )))
    }

    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfSource::Dir(d) => config::load_dir(d),
            ConfSource::Embedded(files) => config::load_files(self.dir(), files.read().clone()),
        }
    }

    /// Validates `files` as if they were this source's.
    pub fn check(&self, files: ConfFiles) -> Result<Config, ConfigErrors> {
        config::load_files(self.dir(), files)
    }

    /// Replaces the source's files by `files`.
    fn install(&self, files: &ConfFiles) -> std::io::Result<()> {
        match self {
            ConfSource::Dir(d) => files.write_dir(d),
            ConfSource::Embedded(f) => {
                *f.write() = files.clone();
                Ok(())
            }
        }
    }

    fn dir(&self) -> &std::path::Path {
        match self {
            ConfSource::Dir(d) => d,
            ConfSource::Embedded(_) => std::path::Path::new("(embedded)"),
        }
    }
}

/// Daemon settings that do not come from the configuration files.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where SNMP indexes and the configuration history are kept; `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    /// GETBULK reply limit in bytes.
    pub snmp_bulk_bytes: usize,
    /// Where the global logs go, and vhost logs without `<Log Dir>`; `None`: no files.
    pub log_dir: Option<PathBuf>,
    /// Lines that may wait for the log writer, every log together.
    pub log_queue: usize,
    /// How often each vhost's monitoring log gets its line (the guide: five minutes).
    pub monitoring_log_every: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            state_dir: None,
            snmp_bulk_bytes: crate::snmp::agent::DEFAULT_BULK_BYTES,
            log_dir: None,
            log_queue: crate::log::writer::DEFAULT_QUEUE,
            monitoring_log_every: std::time::Duration::from_secs(300),
        }
    }
}

/// Why the daemon could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A configuration archive is not readable as one.
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    /// The configuration files could not be written (upload, restore).
    #[error("cannot write the configuration files: {0}")]
    Install(std::io::Error),
    /// The log writer thread could not start.
    #[error("cannot start the log writer: {0}")]
    Logs(std::io::Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

struct Listener {
    /// The address actually bound (differs from the configured one for port 0).
    bound: SocketAddr,
    /// The accept loop.
    task: JoinHandle<()>,
}

/// What a reload changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadSummary {
    /// Reloads so far, this one included.
    pub generation: u64,
    /// Vhosts now configured.
    pub vhosts: usize,
    /// Listen addresses opened by this reload.
    pub opened: Vec<String>,
    /// Listen addresses closed by this reload.
    pub closed: Vec<String>,
}

/// Why the daemon is asked to stop (`/command/terminate`, `/command/restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Exit.
    Terminate,
    /// Start again in the same process (the same program and arguments).
    Restart,
    /// Every cache disk failed and `<Storage OnCrash="selfkill">`: exit with an
    /// error, so systemd starts kurad again.
    DisksFailed,
}

impl Stop {
    /// What the reply and the log say.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Terminate => "terminating",
            Stop::Restart => "restarting",
            Stop::DisksFailed => "every cache disk failed (OnCrash selfkill)",
        }
    }
}

/// The daemon.
pub struct Daemon {
    source: ConfSource,
    /// The object store; it outlives configurations.
    pub store: Arc<Store>,
    /// The stats core; vhosts keep their history across reloads.
    pub stats: Arc<Stats>,
    runtime: ArcSwap<Runtime>,
    /// Open sockets by configured address and what they speak.
    listeners: tokio::sync::Mutex<HashMap<(SocketAddr, Scheme), Listener>>,
    generation: AtomicU64,
    /// When the daemon started.
    pub started: Instant,
    /// The SNMP agent.
    snmp: Service,
    /// Configurations put in force and their archives.
    history: parking_lot::Mutex<ConfHistory>,
    /// Held while a configuration is being put in force, so a reload, an
    /// upload and a restore never interleave.
    applying: tokio::sync::Mutex<()>,
    /// Set when a stop is requested; `main` waits on it.
    stop: tokio::sync::watch::Sender<Option<Stop>>,
    /// The log files, log trace and syslog.
    pub logs: Arc<Logs>,
    /// The host the purge API used last: a target without a host means it (chapter 5).
    pub purge_host: parking_lot::Mutex<Option<String>>,
}

impl Daemon {
    /// Loads the configuration and opens every listen address.
    pub async fn start(source: ConfSource, options: Options) -> Result<Arc<Daemon>, DaemonError> {
        let config = Arc::new(source.load()?);
        let logs =
            Logs::start(options.log_dir.clone(), options.log_queue).map_err(DaemonError::Logs)?;
        logs.install_global(&config);
        report_not_implemented(&config);
        let store = {
            let (storage, memory) = (
                config.server.storage.clone(),
                config.server.cache_memory_bytes,
            );
            tokio::task::spawn_blocking(move || Store::open(&storage, memory))
                .await
                .expect("opening the store does not panic")
        };
        tracing::info!(
            memory = config.server.cache_memory_bytes,
            disks = config.server.storage.disks.len(),
            max_object = store.max_object(),
            max_in_memory = store.max_in_memory(),
            "cache store"
        );
        let stats = Arc::new(Stats::default());
        tokio::spawn(stats.clone().run_ticker());
        let started = Instant::now();
        let state_dir = options.state_dir.filter(|d| match std::fs::create_dir_all(d) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "no state directory; SNMP indexes and the configuration history last until restart");
                false
            }
        });
        if let Some(dir) = &state_dir {
            let (store, storage) = (store.clone(), config.server.storage.clone());
            let path = dir.join(crate::cache::stale::FILE);
            tokio::task::spawn_blocking(move || sync_stale(&store, &storage, &path))
                .await
                .expect("the stale log does not panic");
        }
        let history = ConfHistory::load(state_dir.as_deref());
        let snmp = Service::new(
            state_dir.as_deref(),
            stats.clone(),
            started,
            options.snmp_bulk_bytes,
            &config.server.snmp,
        );
        let daemon = Arc::new(Daemon {
            runtime: ArcSwap::from_pointee(Runtime::new(config, &stats, &logs, None)),
            source,
            store,
            stats,
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            started,
            snmp,
            history: parking_lot::Mutex::new(history),
            applying: tokio::sync::Mutex::new(()),
            stop: tokio::sync::watch::Sender::new(None),
            logs,
            purge_host: parking_lot::Mutex::new(None),
        });
        let rt = daemon.runtime();
        let prepared = daemon.prepare_snmp(&rt.config).await?;
        daemon.sync_listeners(&rt).await?;
        daemon.commit(&rt, ConfKind::Start, prepared);
        tokio::spawn(monitoring_log(
            Arc::downgrade(&daemon),
            options.monitoring_log_every,
        ));
        tokio::spawn(storage_watch(Arc::downgrade(&daemon)));
        tokio::spawn(daily_cleanup(Arc::downgrade(&daemon)));
        Ok(daemon)
    }

    async fn prepare_snmp(&self, config: &Config) -> Result<Option<Prepared>, DaemonError> {
        self.snmp
            .prepare(config)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: config.server.snmp.bind,
                source,
            })
    }

    /// Opens the management port (`<Manager Port>`); the API serves in the background.
    pub async fn start_manager(self: &Arc<Self>) -> Result<SocketAddr, DaemonError> {
        let addr = self.runtime().config.server.manager.bind;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind { addr, source })?;
        let bound = l.local_addr().unwrap_or(addr);
        tracing::info!(service = "manager", spec = %addr, addr = %bound, "listening");
        tokio::spawn(crate::api::serve(self.clone(), l));
        Ok(bound)
    }

    /// The configuration in use.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The bound address of each configured plain HTTP listen address.
    pub async fn bound_addrs(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let l = self.listeners.lock().await;
        let mut v: Vec<_> = l
            .iter()
            .filter(|((_, scheme), _)| *scheme == Scheme::Http)
            .map(|((k, _), l)| (*k, l.bound))
            .collect();
        v.sort();
        v
    }

    /// Rereads the configuration and applies it; on error nothing changes.
    pub async fn reload(self: &Arc<Self>) -> Result<ReloadSummary, DaemonError> {
        let _applying = self.applying.lock().await;
        self.apply(self.source.load()?, ConfKind::Reload).await
    }

    /// Puts `files` in force (`/conf/upload`, `/conf/restore`): validates them,
    /// writes them over the configuration files, then applies them. Invalid
    /// files change nothing; when applying fails (a port that cannot be bound)
    /// the previous files are written back.
    pub async fn replace(
        self: &Arc<Self>,
        files: ConfFiles,
        kind: ConfKind,
    ) -> Result<ReloadSummary, DaemonError> {
        let _applying = self.applying.lock().await;
        let config = self.source.check(files.clone())?;
        let previous = self.runtime().config.files.clone();
        self.source.install(&files).map_err(DaemonError::Install)?;
        let applied = self.apply(config, kind).await;
        if applied.is_err() {
            if let Err(e) = self.source.install(&previous) {
                tracing::error!(error = %e, "cannot write back the configuration in force; the files now differ from it");
            }
        }
        applied
    }

    /// Asks the daemon to stop; [`Daemon::stopped`] returns it.
    pub fn request_stop(&self, stop: Stop) {
        self.stop.send_replace(Some(stop));
    }

    /// Waits until a stop is requested.
    pub async fn stopped(&self) -> Stop {
        let mut rx = self.stop.subscribe();
        loop {
            if let Some(stop) = *rx.borrow_and_update() {
                return stop;
            }
            // The sender lives in `self`, so the channel never closes while we wait.
            let _ = rx.changed().await;
        }
    }

    /// Flushes the cache disks' pending work and marks them cleanly stopped,
    /// so the next start trusts their objects without checking them.
    pub async fn close(&self) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }

    /// The clean-up (`/command/cleanup`, and daily at `<Cleanup><Time>`): drops
    /// cached objects not hit for `age_days` (none when 0: the quotas evict as
    /// needed) and configuration archives older than `<ConfigHistory>`.
    /// Returns the objects and body bytes dropped, and the archives kept.
    pub fn cleanup(&self, age_days: u32) -> (usize, u64, usize) {
        let (count, size) = if age_days > 0 {
            let before = crate::procfs::unix_now().saturating_sub(u64::from(age_days) * 86_400);
            self.store.drop_idle(before)
        } else {
            (0, 0)
        };
        let retention = self.runtime().config.server.config_history_days;
        let mut history = self.history();
        history.prune(retention);
        let archives = history.all().len();
        drop(history);
        tracing::info!(
            age = age_days,
            objects = count,
            bytes = size,
            archives,
            "cleanup"
        );
        (count, size, archives)
    }

    /// Shows each cache disk's state in the monitoring (hwinfo, SNMP diskInfo).
    pub fn publish_disk_states(&self) {
        for disk in self.store.disks() {
            self.stats
                .disks
                .set_cache_state(&disk.path, disk.state().as_str());
        }
    }

    /// Publishes what the cache holds to the stats core (SNMP `contents`): by
    /// vhost (a facade shows its target's objects), and for the host, whose
    /// memory includes the memory tier over the disks.
    pub fn publish_contents(&self) {
        use crate::stats::contents::ContentsSnapshot;
        let by_cache = self.store.contents();
        let mut snapshot = ContentsSnapshot::default();
        for c in by_cache.values() {
            snapshot.host.merge(c);
        }
        let io: HashMap<_, _> = self.store.take_io().into_iter().collect();
        let mut events = self.store.take_object_events();
        for (name, taken) in &io {
            events.entry(name.clone()).or_default()[ObjectEvent::Swap as usize] += taken.swaps;
        }
        for v in &self.runtime().config.vhosts {
            let c = by_cache.get(v.cache_name()).copied().unwrap_or_default();
            if let Some(stats) = self.stats.vhost(&v.name) {
                stats.set_stored(&c);
                if let Some(taken) = io.get(v.cache_name()) {
                    stats.add_file_io(&taken.file_io);
                    stats.add_swapped_bytes(taken.swapped_bytes);
                }
                if let Some(e) = events.get(v.cache_name()) {
                    stats.add_object_events(e);
                }
            }
            snapshot.vhosts.insert(v.name.clone(), c);
        }
        self.stats.contents.publish(snapshot);
    }

    /// The configuration history: archives, newest first.
    pub fn history(&self) -> parking_lot::MutexGuard<'_, ConfHistory> {
        self.history.lock()
    }

    /// Applies a validated configuration.
    async fn apply(
        self: &Arc<Self>,
        config: Config,
        kind: ConfKind,
    ) -> Result<ReloadSummary, DaemonError> {
        let config = Arc::new(config);
        let old = self.runtime();
        if config.server.manager.bind != old.config.server.manager.bind {
            tracing::warn!("a changed <Manager Port> applies at the next restart");
        }
        if config.server.storage != old.config.server.storage
            || config.server.cache_memory_bytes != old.config.server.cache_memory_bytes
        {
            tracing::warn!("changed <Storage> or memory ratios apply at the next restart");
        }
        let new = Arc::new(Runtime::new(
            config,
            &self.stats,
            &self.logs,
            Some(&self.runtime()),
        ));
        let prepared = self.prepare_snmp(&new.config).await?;
        let (opened, closed) = self.sync_listeners(&new).await?;
        self.commit(&new, kind, prepared);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let summary = ReloadSummary {
            generation,
            vhosts: new.config.vhosts.len(),
            opened,
            closed,
        };
        report_not_implemented(&new.config);
        tracing::info!(generation, kind = kind.as_str(), vhosts = summary.vhosts, opened = ?summary.opened, closed = ?summary.closed, "configuration applied");
        Ok(summary)
    }

    /// Records the configuration now in force and hands it to the SNMP agent.
    fn commit(&self, rt: &Runtime, kind: ConfKind, prepared: Option<Prepared>) {
        let mut history = self.history.lock();
        history.record(kind, &rt.config.files, rt.config.server.config_history_days);
        self.snmp.commit(rt, history.all(), prepared);
    }

    /// Opens listeners `rt` needs, installs `rt`, then closes listeners it does not need.
    async fn sync_listeners(
        self: &Arc<Self>,
        rt: &Arc<Runtime>,
    ) -> Result<(Vec<String>, Vec<String>), DaemonError> {
        let mut listeners = self.listeners.lock().await;
        let wanted = rt.listen_addrs();
        let mut fresh = Vec::new();
        for key @ (addr, _) in wanted.iter().filter(|k| !listeners.contains_key(k)) {
            match TcpListener::bind(addr).await {
                Ok(l) => fresh.push((*key, l)),
                Err(source) => {
                    return Err(DaemonError::Bind {
                        addr: *addr,
                        source,
                    })
                }
            }
        }
        self.runtime.store(rt.clone());
        self.logs.install(
            &rt.config,
            rt.logs
                .iter()
                .map(|(name, log)| (name.as_str(), log.as_ref())),
        );
        self.stats.install(rt.stats.iter().cloned());
        self.stats.disks.install(
            rt.config
                .server
                .storage
                .disks
                .iter()
                .map(|d| d.path.as_path()),
        );
        let mut opened = Vec::new();
        for ((addr, scheme), l) in fresh {
            let bound = l.local_addr().unwrap_or(addr);
            tracing::info!(service = scheme.as_str(), spec = %addr, addr = %bound, "listening");
            let task = tokio::spawn(accept_loop(self.clone(), l, addr, scheme));
            listeners.insert((addr, scheme), Listener { bound, task });
            opened.push(listen_name(addr, scheme));
        }
        let mut closed = Vec::new();
        listeners.retain(|key @ (addr, scheme), l| {
            let keep = wanted.contains(key);
            if !keep {
                l.task.abort();
                tracing::info!(service = scheme.as_str(), spec = %addr, "listener closed");
                closed.push(listen_name(*addr, *scheme));
            }
            keep
        });
        Ok((opened, closed))
    }
}

/// How a reload summary names a listen address: `IP:port`, `https://IP:port` for HTTPS,
/// `portbypass://IP:port` for a `<PortBypass>`.
fn listen_name(addr: SocketAddr, scheme: Scheme) -> String {
    match scheme {
        Scheme::Http => addr.to_string(),
        Scheme::Https => format!("https://{addr}"),
        Scheme::PortBypass => format!("portbypass://{addr}"),
    }
}

async fn accept_loop(
    daemon: Arc<Daemon>,
    listener: TcpListener,
    listen: SocketAddr,
    scheme: Scheme,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if !admitted(&daemon, peer.ip()) {
                    // Closed before a byte is read: the client sees a reset or EOF.
                    drop(stream);
                    continue;
                }
                let d = daemon.clone();
                let store = daemon.store.clone();
                tokio::spawn(proxy::serve_connection(
                    move || d.runtime(),
                    store,
                    stream,
                    peer,
                    listen,
                    scheme,
                ));
            }
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// `<ServiceAccess>` for a new client connection (chapter 14): counted either way,
/// a refusal written to the deny log with the condition that refused it.
fn admitted(daemon: &Daemon, ip: std::net::IpAddr) -> bool {
    use crate::config::access::Verdict;
    use std::sync::atomic::Ordering::Relaxed;
    let rt = daemon.runtime();
    let connections = &crate::stats::system::CONNECTIONS;
    match rt.config.server.service_access.decide(ip) {
        (Verdict::Allow, _) => {
            connections.service_allowed.fetch_add(1, Relaxed);
            true
        }
        (Verdict::Deny, condition) => {
            connections.service_denied.fetch_add(1, Relaxed);
            crate::log::deny(ip, condition);
            false
        }
    }
}

/// Writes each vhost's line to its monitoring log every `every` (the guide: the last
/// five minutes' averages, from the same windows as `/monitoring/average`).
async fn monitoring_log(daemon: std::sync::Weak<Daemon>, every: std::time::Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticker.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let rt = daemon.runtime();
        for (name, log) in &rt.logs {
            let sink = &log.sinks.monitoring;
            if sink.wanted() {
                if let Some(line) =
                    crate::api::monitoring::vhost_line(&daemon, name, log.monitoring_form)
                {
                    sink.send(line);
                }
            }
        }
    }
}

/// `<SyncStale>` at start (blocking): the purges a run that did not stop
/// cleanly left in the stale log at `path` are made again, on the disks, before
/// anything is served; then the log takes this run's. With disks only (a
/// Memory-Only cache starts empty anyway); OFF removes the log.
fn sync_stale(store: &Store, storage: &crate::config::StorageConfig, path: &std::path::Path) {
    if !storage.sync_stale || storage.disks.is_empty() {
        let _ = std::fs::remove_file(path);
        return;
    }
    match crate::cache::stale::StaleLog::open(path) {
        Ok((log, entries)) => {
            if !entries.is_empty() {
                let changed = crate::cache::purge::replay(store, &entries);
                store.flush();
                tracing::warn!(
                    entries = entries.len(),
                    objects = changed,
                    "stale.log applied again: the last run did not stop cleanly after these purges"
                );
            }
            // Also a line a crash cut short goes: new entries start on a line of their own.
            log.clear();
            store.keep_stale_log(log);
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "no stale.log: purges made before a crash may come back after it");
        }
    }
}

/// Follows the cache disks once a second: the store moves off failed disks
/// (and applies `OnCrash`), and the monitoring shows each disk's state.
async fn storage_watch(daemon: std::sync::Weak<Daemon>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let store = daemon.store.clone();
        let event = tokio::task::spawn_blocking(move || store.maintain())
            .await
            .ok()
            .flatten();
        daemon.publish_disk_states();
        daemon.publish_contents();
        if event == Some(crate::cache::store::StoreEvent::SelfKill) {
            tracing::error!("every cache disk failed; OnCrash is selfkill: stopping");
            daemon.request_stop(Stop::DisksFailed);
            return;
        }
    }
}

/// Runs the clean-up once a day at `<Cleanup><Time>` (local time), with `<Age>`.
async fn daily_cleanup(daemon: std::sync::Weak<Daemon>) {
    use chrono::Timelike;
    let mut last_day = None;
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(20));
    loop {
        ticker.tick().await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        let now = chrono::Local::now();
        let cleanup = daemon.runtime().config.server.cleanup;
        let minute = now.hour() * 60 + now.minute();
        if minute == cleanup.minute_of_day && last_day != Some(now.date_naive()) {
            last_day = Some(now.date_naive());
            daemon.cleanup(cleanup.age_days);
        }
    }
}

/// Logs, once per load, what the configuration sets that kura does not do yet.
fn report_not_implemented(config: &Config) {
    for u in &config.not_implemented {
        tracing::warn!(setting = %u.path, at = %u.place, "recognised, not implemented");
    }
}
