//! Client-side TLS (guide chapter 9): which `<Https>` block answers a
//! handshake, and the handshake itself.
//!
//! A port with a `*:port` block is one wildcard socket; `IP:port` blocks on that
//! port are chosen by the address the client connected to ("the most specific
//! Listen wins"). Among the blocks of that address the client's SNI picks the first
//! whose certificate names it (SAN DNS names, wildcards included); without SNI, or
//! with a name no certificate has, the first block written is the default. Each
//! block has its own rustls `ServerConfig` (versions, suites, order), built with
//! the runtime, so a reload's certificates serve the next handshake while
//! established connections keep theirs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::server::{Acceptor, ServerConfig};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::config::https::HttpsConfig;
use crate::config::value::Listen;
use crate::stats::system::CONNECTIONS;

/// ALPN protocols offered, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// One `<Https>` block, ready to answer handshakes.
struct Block {
    /// Its rustls configuration (certificate, versions, suites, ALPN).
    config: Arc<ServerConfig>,
    /// Its certificate and key, for matching SNI names against the certificate.
    key: Arc<CertifiedKey>,
}

impl Block {
    fn new(h: &HttpsConfig) -> Block {
        let ring = rustls::crypto::ring::default_provider();
        // TLS 1.3 suites first: rustls picks the version first, then a suite of it.
        let suites = ring
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_some())
            .copied()
            .chain(h.suites.iter().filter_map(|id| {
                ring.cipher_suites
                    .iter()
                    .find(|s| s.suite() == *id)
                    .copied()
            }))
            .collect();
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: suites,
            ..ring
        };
        let versions: &[&rustls::SupportedProtocolVersion] = if h.tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("the ring provider has TLS 1.3 suites and the configuration's TLS 1.2 ones")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(h.key.clone())));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        config.ignore_client_order = h.server_order;
        Block {
            config: Arc::new(config),
            key: h.key.clone(),
        }
    }

    /// Whether the certificate is valid for `name` (its SAN DNS names, as a client checks).
    fn serves(&self, name: &ServerName<'_>) -> bool {
        self.key.end_entity_cert().ok().is_some_and(|der| {
            webpki::EndEntityCert::try_from(der)
                .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
        })
    }
}

/// The blocks of one listening socket.
#[derive(Default)]
struct Site {
    /// `IP:port` blocks sharing a wildcard socket, by the IP written.
    specific: HashMap<IpAddr, Vec<Arc<Block>>>,
    /// `*:port` blocks, or the blocks of an `IP:port` socket of its own.
    general: Vec<Arc<Block>>,
}

/// Every HTTPS listening address of a configuration and its blocks.
#[derive(Default)]
pub struct Tls {
    sites: HashMap<SocketAddr, Site>,
}

impl Tls {
    /// The sockets and blocks of `https`; `*:port` stands for each `listen_ips`
    /// address, as for vhosts.
    pub fn new(https: &[HttpsConfig], listen_ips: &[IpAddr]) -> Tls {
        let mut sites: HashMap<SocketAddr, Site> = HashMap::new();
        let blocks: Vec<(Listen, Arc<Block>)> = https
            .iter()
            .map(|h| (h.listen.clone(), Arc::new(Block::new(h))))
            .collect();
        for (listen, b) in &blocks {
            if let Listen::AnyIp(_) = listen {
                for addr in super::listen_addrs(listen, listen_ips) {
                    sites.entry(addr).or_default().general.push(b.clone());
                }
            }
        }
        // The `*:port` sockets; an `IP:port` one of them receives is served there,
        // ahead of the `*:port` blocks for that IP.
        let wildcards: Vec<SocketAddr> = sites.keys().copied().collect();
        for (listen, b) in &blocks {
            let Listen::Addr(addr) = listen else { continue };
            let covering = wildcards
                .iter()
                .find(|w| w.port() == addr.port() && covers(w.ip(), addr.ip()));
            match covering {
                Some(w) => sites
                    .get_mut(w)
                    .expect("a wildcard socket")
                    .specific
                    .entry(addr.ip())
                    .or_default()
                    .push(b.clone()),
                None => sites.entry(*addr).or_default().general.push(b.clone()),
            }
        }
        Tls { sites }
    }

    /// The addresses to listen on.
    pub fn listen_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.sites.keys().copied()
    }

    /// The configuration answering a client of socket `listen` that connected to
    /// `local` and asked for `sni`.
    fn select(
        &self,
        listen: SocketAddr,
        local: IpAddr,
        sni: Option<&str>,
    ) -> Option<Arc<ServerConfig>> {
        let site = self.sites.get(&listen)?;
        let blocks = site
            .specific
            .get(&local.to_canonical())
            .unwrap_or(&site.general);
        let by_name = sni
            .and_then(|n| ServerName::try_from(n).ok())
            .and_then(|name| blocks.iter().find(|b| b.serves(&name)));
        by_name.or(blocks.first()).map(|b| b.config.clone())
    }
}

/// Whether a socket bound to `bound` receives connections to `ip`.
fn covers(bound: IpAddr, ip: IpAddr) -> bool {
    bound == ip || (bound.is_unspecified() && bound.is_ipv4() == ip.is_ipv4())
}

/// What the handler and the access log know of a TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsInfo {
    /// The negotiated version as the guide's `sc-resinfo` writes it (`TLS1.2`, `TLS1.3`).
    pub version: &'static str,
    /// Whether ALPN chose HTTP/2.
    pub h2: bool,
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket's address is no longer an HTTPS address (a reload removed it).
    #[error("no <Https> serves {0} any more")]
    NoSite(SocketAddr),
    /// The client sent something that is not a TLS handshake, or rustls refused it.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client did not finish in time.
    #[error("handshake timed out")]
    Timeout,
}

/// Runs the server side of a handshake on `stream`, accepted on `listen`; counts
/// it in the SSL figures (`System.SSL`).
pub async fn accept(
    tls: &Tls,
    listen: SocketAddr,
    stream: TcpStream,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, TlsInfo), HandshakeError> {
    let handshake = async {
        let local = stream.local_addr()?.ip();
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
        let config = tls
            .select(listen, local, start.client_hello().server_name())
            .ok_or(HandshakeError::NoSite(listen))?;
        Ok::<_, HandshakeError>(start.into_stream(config).await?)
    };
    let done = tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(Err(HandshakeError::Timeout));
    let stream = match done {
        Ok(s) => s,
        Err(e) => {
            CONNECTIONS.tls_failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    CONNECTIONS.tls_handshakes.fetch_add(1, Ordering::Relaxed);
    let conn = stream.get_ref().1;
    let info = TlsInfo {
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3",
            _ => "TLS1.2",
        },
        h2: conn.alpn_protocol() == Some(b"h2"),
    };
    Ok((stream, info))
}
