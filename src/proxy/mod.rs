//! The HTTP service: routing tables built from a configuration, and the
//! client connection loop.
//!
//! A [`Runtime`] is immutable; a reload builds a new one and swaps it in, so
//! a request always sees one whole configuration.

pub mod answer;
pub mod body;
pub mod bypass;
pub mod handler;
pub mod headers;
pub mod metered;
pub mod origin;
pub mod router;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::cache::store::Store;
use crate::config::value::Listen;
use crate::config::{Config, VhostConfig, VhostStatus};
use crate::log::{Logs, VhostLog};
use crate::stats::dirs::DirTable;
use crate::stats::system::CONNECTIONS;
use crate::stats::{Stats, VhostStats};
use origin::OriginPool;
use router::Router;

/// A vhost ready to serve.
pub struct VhostRt {
    /// Its own settings (headers, logs, statistics are its own, even as a facade).
    pub cfg: Arc<VhostConfig>,
    /// Where its content comes from (the facade target's pool for a facade).
    pub origin: Arc<OriginPool>,
    /// The vhost whose cached objects it serves (its own name unless a facade).
    pub cache_name: String,
    /// Its statistics (a facade counts its own clients).
    pub stats: Arc<VhostStats>,
    /// Its directory statistics, when `<DirDepth>` is above 0.
    pub dirs: Option<Arc<DirTable>>,
    /// `Keep-Alive: timeout=N`, built once (chapter 6).
    pub keep_alive_value: http::HeaderValue,
    /// Its access, origin and monitoring logs.
    pub log: Arc<VhostLog>,
}

/// Everything a request needs from one configuration.
pub struct Runtime {
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// A router for each configured listen address.
    routers: HashMap<SocketAddr, Router>,
    /// Idle timeout of client connections on each listen address.
    keep_alive: HashMap<SocketAddr, Duration>,
    /// Stats of every configured vhost (inactive ones too), installed when this runtime is.
    pub stats: Vec<Arc<VhostStats>>,
    /// Logs of every configured vhost by name, installed when this runtime is.
    pub logs: HashMap<String, Arc<VhostLog>>,
    /// Origin pools of every configured vhost by name.
    pub pools: HashMap<String, Arc<OriginPool>>,
}

/// The socket addresses a `<Listen>` stands for.
fn listen_addrs(listen: &Listen, listen_ips: &[IpAddr]) -> Vec<SocketAddr> {
    match listen {
        Listen::Off => Vec::new(),
        Listen::Addr(a) => vec![*a],
        Listen::AnyIp(port) if listen_ips.is_empty() => {
            vec![SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), *port)]
        }
        Listen::AnyIp(port) => listen_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, *port))
            .collect(),
    }
}

impl Runtime {
    /// Builds routers, origin pools, stats and log handles for `config`; origin
    /// health carries over from `previous`, the runtime it replaces.
    pub fn new(
        config: Arc<Config>,
        stats: &Stats,
        logs: &Logs,
        previous: Option<&Runtime>,
    ) -> Runtime {
        let vhost_stats = stats.handles(config.vhosts.iter().map(|v| v.name.as_str()));
        let vhost_logs: HashMap<String, Arc<VhostLog>> = config
            .vhosts
            .iter()
            .map(|v| (v.name.clone(), logs.vhost(v)))
            .collect();
        for v in config
            .vhosts
            .iter()
            .filter(|v| v.status == VhostStatus::Inactive)
        {
            vhost_stats[&v.name].dir_table(None);
        }
        let pools: HashMap<String, Arc<OriginPool>> = config
            .vhosts
            .iter()
            .map(|v| {
                let old = previous.and_then(|p| p.pools.get(&v.name));
                (
                    v.name.clone(),
                    OriginPool::new(v, vhost_stats[&v.name].clone(), old.map(Arc::as_ref)),
                )
            })
            .collect();
        let active: Vec<Arc<VhostRt>> = config
            .vhosts
            .iter()
            .filter(|v| v.status != VhostStatus::Inactive)
            .map(|v| {
                let target = match &v.status {
                    VhostStatus::Facade(t) => t.as_str(),
                    _ => v.name.as_str(),
                };
                Arc::new(VhostRt {
                    cfg: v.clone(),
                    origin: pools[target].clone(),
                    cache_name: target.to_string(),
                    stats: vhost_stats[&v.name].clone(),
                    dirs: vhost_stats[&v.name].dir_table(v.dir_stats),
                    keep_alive_value: http::HeaderValue::from_str(&format!(
                        "timeout={}",
                        v.client.keep_alive.as_secs()
                    ))
                    .expect("ASCII digits"),
                    log: vhost_logs[&v.name].clone(),
                })
            })
            .collect();
        let default = config
            .default_vhost
            .as_ref()
            .and_then(|d| active.iter().find(|v| &v.cfg.name == d).cloned());
        let mut by_addr: HashMap<SocketAddr, Vec<Arc<VhostRt>>> = HashMap::new();
        for v in &active {
            for l in &v.cfg.listen {
                for a in listen_addrs(l, &config.server.listen_ips) {
                    by_addr.entry(a).or_default().push(v.clone());
                }
            }
        }
        let keep_alive = by_addr
            .iter()
            .map(|(a, vs)| {
                let longest = vs
                    .iter()
                    .map(|v| v.cfg.client.keep_alive)
                    .max()
                    .unwrap_or_default();
                (*a, longest)
            })
            .collect();
        let routers = by_addr
            .into_iter()
            .map(|(a, vs)| (a, Router::new(&vs, default.clone())))
            .collect();
        Runtime {
            config,
            routers,
            keep_alive,
            stats: vhost_stats.into_values().collect(),
            logs: vhost_logs,
            pools,
        }
    }

    /// The configured listen addresses.
    pub fn listen_addrs(&self) -> BTreeSet<SocketAddr> {
        self.routers.keys().copied().collect()
    }

    /// The vhost for a request on `listen` with `host`.
    pub fn route(&self, listen: SocketAddr, host: &str) -> Option<&Arc<VhostRt>> {
        self.routers.get(&listen)?.route(host)
    }

    fn keep_alive(&self, listen: SocketAddr) -> Duration {
        self.keep_alive
            .get(&listen)
            .copied()
            .unwrap_or(Duration::from_secs(10))
    }
}

/// Ids of client connections (`session-id` in the access log), from 1.
static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Serves one client connection until it closes. The runtime is looked up per
/// request, so a reload applies to the next request on a kept-alive connection.
pub async fn serve_connection(
    runtime: impl Fn() -> Arc<Runtime> + Send + Sync + 'static,
    store: Arc<Store>,
    stream: TcpStream,
    peer: SocketAddr,
    listen: SocketAddr,
) {
    CONNECTIONS
        .accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let idle = runtime().keep_alive(listen);
    let conn = Arc::new(handler::Conn {
        listen,
        local: stream.local_addr().unwrap_or(listen),
        id: NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        peer,
        requests: Default::default(),
        session: Default::default(),
    });
    let runtime = Arc::new(runtime);
    let svc = service_fn(move |req| {
        let (rt, store, conn) = (runtime(), store.clone(), conn.clone());
        async move { Ok::<_, Infallible>(handler::handle(rt, &store, &conn, req).await) }
    });
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
    CONNECTIONS
        .closed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
