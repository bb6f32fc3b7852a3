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
pub mod parts;
pub mod port_bypass;
pub mod router;
pub mod tls;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
    /// The router of HTTPS connections: `<Https>` is server-level, so every active
    /// vhost is reachable by its name and aliases, `<Default>` catching the rest.
    https_router: Router,
    /// The HTTPS addresses and their certificates.
    pub tls: tls::Tls,
    /// Idle timeout of client connections on each listen address.
    keep_alive: HashMap<SocketAddr, Duration>,
    /// Idle timeout on HTTPS addresses: the longest of the active vhosts.
    https_keep_alive: Duration,
    /// Stats of every configured vhost (inactive ones too), installed when this runtime is.
    pub stats: Vec<Arc<VhostStats>>,
    /// Logs of every configured vhost by name, installed when this runtime is.
    pub logs: HashMap<String, Arc<VhostLog>>,
    /// Origin pools of every configured vhost by name.
    pub pools: HashMap<String, Arc<OriginPool>>,
    /// `<PortBypass>` relays by the address they accept on.
    pub port_relays: HashMap<SocketAddr, port_bypass::PortRelay>,
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
        for v in &config.vhosts {
            vhost_stats[&v.name]
                .https_traffic
                .store(v.https_traffic, std::sync::atomic::Ordering::Relaxed);
        }
        let pools: HashMap<String, Arc<OriginPool>> = config
            .vhosts
            .iter()
            .map(|v| {
                let old = previous.and_then(|p| p.pools.get(&v.name));
                (
                    v.name.clone(),
                    OriginPool::new(
                        v,
                        (vhost_stats[&v.name].clone(), vhost_logs[&v.name].clone()),
                        old.map(Arc::as_ref),
                    ),
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
        let https_keep_alive = longest_keep_alive(&active);
        let https_router = Router::new(&active, default.clone());
        let keep_alive = by_addr
            .iter()
            .map(|(a, vs)| (*a, longest_keep_alive(vs)))
            .collect();
        let routers = by_addr
            .into_iter()
            .map(|(a, vs)| (a, Router::new(&vs, default.clone())))
            .collect();
        let port_relays = active
            .iter()
            .flat_map(|v| {
                v.cfg.port_bypass.iter().flat_map(|p| {
                    listen_addrs(&Listen::AnyIp(p.port), &config.server.listen_ips)
                        .into_iter()
                        .map(|a| {
                            let relay = port_bypass::PortRelay {
                                pool: v.origin.clone(),
                                stats: v.stats.clone(),
                                dest: p.dest,
                            };
                            (a, relay)
                        })
                })
            })
            .collect();
        Runtime {
            tls: tls::Tls::new(&config.server.https, &config.server.listen_ips),
            port_relays,
            config,
            routers,
            https_router,
            keep_alive,
            https_keep_alive,
            stats: vhost_stats.into_values().collect(),
            logs: vhost_logs,
            pools,
        }
    }

    /// The configured listen addresses and their scheme.
    pub fn listen_addrs(&self) -> BTreeSet<(SocketAddr, Scheme)> {
        let http = self.routers.keys().map(|a| (*a, Scheme::Http));
        let https = self.tls.listen_addrs().map(|a| (a, Scheme::Https));
        let relays = self.port_relays.keys().map(|a| (*a, Scheme::PortBypass));
        http.chain(https).chain(relays).collect()
    }

    /// The vhost for a request on `conn` with `host`.
    pub fn route(&self, conn: &handler::Conn, host: &str) -> Option<&Arc<VhostRt>> {
        match conn.tls {
            Some(_) => self.https_router.route(host),
            None => self.routers.get(&conn.listen)?.route(host),
        }
    }

    fn keep_alive(&self, listen: SocketAddr, scheme: Scheme) -> Duration {
        match scheme {
            Scheme::Https => self.https_keep_alive,
            // A relay has no idle timeout of its own: either side may keep it open.
            Scheme::PortBypass => Duration::MAX,
            Scheme::Http => self
                .keep_alive
                .get(&listen)
                .copied()
                .unwrap_or(Duration::from_secs(10)),
        }
    }
}

/// The longest `<ClientKeepAliveSec>` of `vhosts`: a connection may serve any of them.
fn longest_keep_alive(vhosts: &[Arc<VhostRt>]) -> Duration {
    vhosts
        .iter()
        .map(|v| v.cfg.client.keep_alive)
        .max()
        .unwrap_or(Duration::from_secs(10))
}

/// What a listening socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// Plain HTTP/1.1 (a vhost `<Listen>`).
    Http,
    /// TLS with HTTP/1.1 or h2 by ALPN (an `<Https Listen>`).
    Https,
    /// Raw TCP relayed to a vhost's origin (a `<PortBypass>`).
    PortBypass,
}

impl Scheme {
    /// `http` or `https`, as logs and the access log's `%H` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::PortBypass => "portbypass",
        }
    }
}

/// Ids of client connections (`session-id` in the access log), from 1.
static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Serves one client connection until it closes; an HTTPS one after its
/// handshake. The runtime is looked up per request, so a reload applies to the
/// next request on a kept-alive connection.
pub async fn serve_connection(
    runtime: impl Fn() -> Arc<Runtime> + Send + Sync + 'static,
    store: Arc<Store>,
    stream: TcpStream,
    peer: SocketAddr,
    listen: SocketAddr,
    scheme: Scheme,
) {
    CONNECTIONS
        .accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let rt = runtime();
    let idle = rt.keep_alive(listen, scheme);
    let local = stream.local_addr().unwrap_or(listen);
    let conn = |tls| handler::Conn {
        listen,
        local,
        id: NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        peer,
        tls,
        requests: Default::default(),
        session: Default::default(),
        private: Default::default(),
    };
    let result = match scheme {
        Scheme::Http => serve(runtime, store, TokioIo::new(stream), conn(None), idle).await,
        Scheme::Https => match tls::accept(&rt.tls, listen, stream, idle).await {
            Ok((stream, info)) => {
                drop(rt);
                let served =
                    serve(runtime, store, TokioIo::new(stream), conn(Some(info)), idle).await;
                CONNECTIONS
                    .tls_closed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                served
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                Ok(())
            }
        },
        Scheme::PortBypass => {
            // Only the relay's pool and stats are held: a reload may retire the runtime.
            if let Some(relay) = rt.port_relays.get(&listen).cloned() {
                drop(rt);
                port_bypass::relay(&relay, stream, peer).await;
            }
            Ok(())
        }
    };
    CONNECTIONS
        .closed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}

/// Runs HTTP/1.1, or h2 when TLS negotiated it, over `io` until the connection ends.
async fn serve<I>(
    runtime: impl Fn() -> Arc<Runtime> + Send + Sync + 'static,
    store: Arc<Store>,
    io: I,
    conn: handler::Conn,
    idle: Duration,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let h2 = conn.tls.is_some_and(|t| t.h2);
    let conn = Arc::new(conn);
    let runtime = Arc::new(runtime);
    let svc = service_fn(move |req| {
        let (rt, store, conn) = (runtime(), store.clone(), conn.clone());
        async move { Ok::<_, Infallible>(handler::handle(rt, &store, &conn, req).await) }
    });
    if h2 {
        // hyper's h2 server has no idle timeout; pings every `idle` at least find
        // and close connections whose client is gone.
        http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(idle)
            .serve_connection(io, svc)
            .await
    } else {
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .keep_alive(true)
            .serve_connection(io, svc)
            .await
    }
}
