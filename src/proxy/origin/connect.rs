//! Connections to origin IPs, plain or TLS (`https://` addresses): counted in the
//! vhost's `OriginSession` gauge and in the IP's open-connection count (which
//! `<BalanceMode>Session` reads).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::table::OriginTable;
use crate::stats::counter::{Gauge, OriginEvent};
use crate::stats::system::CONNECTIONS;
use crate::stats::{GaugeGuard, VhostStats};

/// Facts of one origin connection, handed to every response it carries (hyper's
/// connection extras) for the origin log.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The connection's id (`cs-sid`), from 1 in the process.
    pub id: u64,
    /// kura's end (`c-ip`).
    pub local: Option<SocketAddr>,
    /// The origin's end (`s-ip`, `s-port`).
    pub peer: Option<SocketAddr>,
    /// The `Host` its address sends (`s-domain`).
    pub domain: String,
    /// Time the connection took to make (`time-connect` of its first transaction).
    pub connect: Duration,
    /// Transactions answered so far (`cs-tcount`).
    transactions: Arc<std::sync::atomic::AtomicU64>,
}

impl ConnInfo {
    /// Counts a transaction on the connection; its number, from 1.
    pub fn next_transaction(&self) -> u64 {
        self.transactions.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Ids of origin connections (`cs-sid`).
static NEXT_ORIGIN_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Makes connections for a vhost's requests (`stats` set) or probes (`None`).
#[derive(Clone)]
pub struct Connector {
    /// hyper's connector, with `<ConnectTimeout>` and `TCP_NODELAY`.
    inner: HttpConnector,
    /// TLS for `https://` request URIs, verifying against the system's roots.
    tls: TlsConnector,
    /// The vhost's statistics, for request connections.
    stats: Option<Arc<VhostStats>>,
    /// The table whose IPs count their open connections.
    table: Weak<OriginTable>,
}

impl Connector {
    /// A connector giving up after `connect_timeout`.
    pub fn new(
        connect_timeout: Duration,
        stats: Option<Arc<VhostStats>>,
        table: Weak<OriginTable>,
    ) -> Connector {
        let mut inner = HttpConnector::new();
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(connect_timeout));
        inner.enforce_http(false);
        Connector {
            inner,
            tls: TlsConnector::from(client_tls().clone()),
            stats,
            table,
        }
    }
}

/// The TLS client settings of every origin connection, built once: the system's
/// trusted roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured), HTTP/1.1 by ALPN.
fn client_tls() -> &'static Arc<rustls::ClientConfig> {
    static CONFIG: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "a system CA certificate could not be read");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "origin TLS trust roots");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    &CONFIG
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = OriginConnection;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<OriginConnection, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        // A followed redirect names its host; an origin IP's name comes from its address.
        let named = uri
            .host()
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .and_then(|h| ServerName::try_from(h.to_string()).ok());
        let connecting = self.inner.call(uri);
        let stats = self.stats.clone();
        let table = self.table.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let started = Instant::now();
            let tcp = connecting.await?;
            let peer = tcp.inner().peer_addr().ok();
            let local = tcp.inner().local_addr().ok();
            let io = if https {
                let name = named
                    .or_else(|| peer.and_then(|p| server_name(&table, p)))
                    .ok_or_else(|| io::Error::other("no origin address for this IP"))?;
                let stream = tls.connect(name, tcp.into_inner()).await?;
                Io::Tls(Box::new(TokioIo::new(stream)))
            } else {
                Io::Plain(tcp)
            };
            // Probes are not sessions: only request connections count as open.
            let open = peer
                .filter(|_| stats.is_some())
                .and_then(|peer| open_count(&table, peer));
            if let Some(open) = &open {
                open.fetch_add(1, Ordering::Relaxed);
            }
            let session = stats.map(|stats| {
                stats.record_origin_event(OriginEvent::Connect, 1);
                stats.record_origin_event(
                    OriginEvent::ConnectMicros,
                    started.elapsed().as_micros() as u64,
                );
                CONNECTIONS.connected.fetch_add(1, Ordering::Relaxed);
                GaugeGuard::new(&stats, Gauge::OriginSessions)
            });
            let domain = peer.and_then(|p| host_of(&table, p)).unwrap_or_default();
            let info = ConnInfo {
                id: NEXT_ORIGIN_CONN.fetch_add(1, Ordering::Relaxed),
                local,
                peer,
                domain,
                connect: started.elapsed(),
                transactions: Default::default(),
            };
            Ok(OriginConnection {
                io,
                session,
                open,
                info,
            })
        })
    }
}

/// The name an `https://` address's certificate must carry: its host.
fn server_name(table: &Weak<OriginTable>, peer: SocketAddr) -> Option<ServerName<'static>> {
    let table = table.upgrade()?;
    let entry = table
        .entries
        .iter()
        .find(|e| e.ips().iter().any(|ip| ip.addr == peer))?;
    ServerName::try_from(entry.address.host.clone()).ok()
}

/// The `Host` the table's address of IP `peer` sends.
fn host_of(table: &Weak<OriginTable>, peer: SocketAddr) -> Option<String> {
    let table = table.upgrade()?;
    let entry = table
        .entries
        .iter()
        .find(|e| e.ips().iter().any(|ip| ip.addr == peer))?;
    entry.host.to_str().ok().map(str::to_string)
}

/// The open-connection count of the table's IP `peer`.
fn open_count(table: &Weak<OriginTable>, peer: SocketAddr) -> Option<Arc<AtomicUsize>> {
    let table = table.upgrade()?;
    table
        .entries
        .iter()
        .flat_map(|e| e.ips())
        .find(|ip| ip.addr == peer)
        .map(|ip| ip.open.clone())
}

/// The stream of an origin connection.
enum Io {
    /// Plain TCP.
    Plain(TokioIo<TcpStream>),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

/// An origin connection, counted while it is open.
pub struct OriginConnection {
    /// The stream.
    io: Io,
    /// Holds the vhost's `OriginSession` gauge up (request connections only).
    session: Option<GaugeGuard>,
    /// The IP's open-connection count.
    open: Option<Arc<AtomicUsize>>,
    /// What the origin log says of it.
    info: ConnInfo,
}

impl Drop for OriginConnection {
    fn drop(&mut self) {
        if self.session.is_some() {
            CONNECTIONS.disconnected.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(open) = &self.open {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Connection for OriginConnection {
    fn connected(&self) -> Connected {
        let connected = match &self.io {
            Io::Plain(io) => io.connected(),
            Io::Tls(_) => Connected::new(),
        };
        connected.extra(self.info.clone())
    }
}

/// Calls `$method` on whichever stream the connection has.
macro_rules! on_io {
    ($self:expr, $io:ident => $call:expr) => {
        match &mut $self.get_mut().io {
            Io::Plain($io) => $call,
            Io::Tls(boxed) => {
                let $io = &mut **boxed;
                $call
            }
        }
    };
}

impl hyper::rt::Read for OriginConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        on_io!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl hyper::rt::Write for OriginConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_io!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_io!(self, io => Pin::new(io).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_io!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }
}
