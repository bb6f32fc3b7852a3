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
use crate::config::{self, Config, ConfigErrors};
use crate::proxy::{self, Runtime};
use crate::stats::Stats;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfSource {
    /// `server.xml` and `vhosts.xml` in a directory, reread on reload.
    Dir(PathBuf),
    /// Text held in memory (the demo).
    Embedded {
        /// server.xml text.
        server: String,
        /// vhosts.xml text.
        vhosts: String,
    },
}

impl ConfSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfSource::Dir(d) => config::load_dir(d),
            ConfSource::Embedded { server, vhosts } => {
                config::load_str(std::path::Path::new("(embedded)"), server, vhosts)
            }
        }
    }
}

/// Why the daemon could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
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

/// The daemon.
pub struct Daemon {
    source: ConfSource,
    /// The object store; it outlives configurations.
    pub store: Arc<Store>,
    /// The stats core; vhosts keep their history across reloads.
    pub stats: Arc<Stats>,
    runtime: ArcSwap<Runtime>,
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Listener>>,
    generation: AtomicU64,
    /// When the daemon started.
    pub started: Instant,
}

impl Daemon {
    /// Loads the configuration and opens every listen address.
    pub async fn start(source: ConfSource) -> Result<Arc<Daemon>, DaemonError> {
        let config = Arc::new(source.load()?);
        report_not_implemented(&config);
        let store = Store::new(config.server.cache_memory_bytes);
        tracing::info!(
            bytes = config.server.cache_memory_bytes,
            max_object = store.max_object(),
            "memory cache"
        );
        let stats = Arc::new(Stats::default());
        tokio::spawn(stats.clone().run_ticker());
        let daemon = Arc::new(Daemon {
            source,
            store,
            runtime: ArcSwap::from_pointee(Runtime::new(config, &stats)),
            stats,
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            started: Instant::now(),
        });
        daemon.sync_listeners(&daemon.runtime()).await?;
        Ok(daemon)
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

    /// The current runtime.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The bound address of each configured listen address.
    pub async fn bound_addrs(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let l = self.listeners.lock().await;
        let mut v: Vec<_> = l.iter().map(|(k, l)| (*k, l.bound)).collect();
        v.sort();
        v
    }

    /// Rereads the configuration and applies it; on error nothing changes.
    pub async fn reload(self: &Arc<Self>) -> Result<ReloadSummary, DaemonError> {
        let config = Arc::new(self.source.load()?);
        let old = self.runtime();
        if config.server.manager.bind != old.config.server.manager.bind {
            tracing::warn!("a changed <Manager Port> applies at the next restart");
        }
        let new = Arc::new(Runtime::new(config, &self.stats));
        let (opened, closed) = self.sync_listeners(&new).await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let summary = ReloadSummary {
            generation,
            vhosts: new.config.vhosts.len(),
            opened,
            closed,
        };
        report_not_implemented(&new.config);
        tracing::info!(generation, vhosts = summary.vhosts, opened = ?summary.opened, closed = ?summary.closed, "configuration reloaded");
        Ok(summary)
    }

    /// Opens listeners `rt` needs, installs `rt`, then closes listeners it does not need.
    async fn sync_listeners(
        self: &Arc<Self>,
        rt: &Arc<Runtime>,
    ) -> Result<(Vec<String>, Vec<String>), DaemonError> {
        let mut listeners = self.listeners.lock().await;
        let wanted = rt.listen_addrs();
        let mut fresh = Vec::new();
        for addr in wanted.iter().filter(|a| !listeners.contains_key(a)) {
            match TcpListener::bind(addr).await {
                Ok(l) => fresh.push((*addr, l)),
                Err(source) => {
                    return Err(DaemonError::Bind {
                        addr: *addr,
                        source,
                    })
                }
            }
        }
        self.runtime.store(rt.clone());
        self.stats.install(rt.stats.iter().cloned());
        self.stats
            .disks
            .install(rt.config.server.disks.iter().map(|d| d.path.as_path()));
        let mut opened = Vec::new();
        for (addr, l) in fresh {
            let bound = l.local_addr().unwrap_or(addr);
            tracing::info!(service = "http", spec = %addr, addr = %bound, "listening");
            let task = tokio::spawn(accept_loop(self.clone(), l, addr));
            listeners.insert(addr, Listener { bound, task });
            opened.push(addr.to_string());
        }
        let mut closed = Vec::new();
        listeners.retain(|addr, l| {
            let keep = wanted.contains(addr);
            if !keep {
                l.task.abort();
                tracing::info!(spec = %addr, "listener closed");
                closed.push(addr.to_string());
            }
            keep
        });
        Ok((opened, closed))
    }
}

async fn accept_loop(daemon: Arc<Daemon>, listener: TcpListener, listen: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let d = daemon.clone();
                let store = daemon.store.clone();
                tokio::spawn(proxy::serve_connection(
                    move || d.runtime(),
                    store,
                    stream,
                    peer,
                    listen,
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

/// Logs, once per load, what the configuration sets that kura does not do yet.
fn report_not_implemented(config: &Config) {
    for u in &config.not_implemented {
        tracing::warn!(setting = %u.path, at = %u.place, "recognised, not implemented");
    }
}
