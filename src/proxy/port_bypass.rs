//! `<PortBypass>` (guide chapter 8): every TCP connection on a bypassed port is relayed
//! byte for byte to the vhost's origin, beneath HTTP. The vhost is there for its
//! origins and its statistics (the guide's `PortBypass` figures, SNMP `portbypass.*`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::origin::table::Balance;
use super::origin::{Leg, OriginPool};
use crate::stats::counter::{Gauge, PortBypassEvent as E};
use crate::stats::{GaugeGuard, VhostStats};

/// One bypassed port of a runtime.
#[derive(Clone)]
pub struct PortRelay {
    /// The vhost's origins.
    pub pool: Arc<OriginPool>,
    /// The vhost's statistics.
    pub stats: Arc<VhostStats>,
    /// The origin port.
    pub dest: u16,
}

/// Relays `client` to an origin IP of `relay` until both sides have closed. The IP
/// is chosen by hashing the client's address over the usable IPs (a client keeps its
/// origin, as TLS sessions passed through want), the next ones tried when a connect
/// fails within `<BypassConnectTimeout>`.
pub async fn relay(relay: &PortRelay, client: TcpStream, peer: SocketAddr) {
    let stats = &relay.stats;
    let _session = GaugeGuard::new(stats, Gauge::PortBypassSessions);
    let table = &relay.pool.table;
    let timeout = relay.pool.connect_timeout(Leg::Bypass {
        affinity: None,
        private: false,
    });
    let mut origin = None;
    for target in table.order(table.usable(), Balance::Client(peer.ip())) {
        let addr = SocketAddr::new(target.ip.addr.ip(), relay.dest);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                origin = Some(s);
                break;
            }
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "port bypass connect failed"),
            Err(_) => tracing::debug!(%addr, "port bypass connect timed out"),
        }
        stats.record_port_bypass(E::ConnectFailure, 1);
    }
    let Some(origin) = origin else {
        return;
    };
    stats.record_port_bypass(E::Established, 1);
    let _ = (client.set_nodelay(true), origin.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (origin_read, origin_write) = origin.into_split();
    let up = pump(
        client_read,
        origin_write,
        stats,
        (E::ClientIn, E::OriginOut),
    );
    let down = pump(
        origin_read,
        client_write,
        stats,
        (E::OriginIn, E::ClientOut),
    );
    tokio::pin!(up, down);
    // The side whose stream ends first closed the relay; the other direction drains.
    tokio::select! {
        _ = &mut up => {
            stats.record_port_bypass(E::ClientClosed, 1);
            down.await;
        }
        _ = &mut down => {
            stats.record_port_bypass(E::OriginClosed, 1);
            up.await;
        }
    }
}

/// Copies `from` into `to` until `from` ends (or either fails), counting the bytes
/// as they pass (`read` for what came in, `wrote` for what went out), then shuts
/// `to` down so the other end sees the close.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stats: &VhostStats,
    (read, wrote): (E, E),
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        stats.record_port_bypass(read, n as u64);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        stats.record_port_bypass(wrote, n as u64);
    }
    let _ = to.shutdown().await;
}
