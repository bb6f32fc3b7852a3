//! Connections to origin IPs: counted in the vhost's `OriginSession` gauge and in the
//! IP's open-connection count (which `<BalanceMode>Session` reads).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::table::OriginTable;
use crate::stats::counter::{Gauge, OriginEvent};
use crate::stats::system::CONNECTIONS;
use crate::stats::{GaugeGuard, VhostStats};

/// Makes TCP connections for a vhost's requests (`stats` set) or probes (`None`).
#[derive(Clone)]
pub struct Connector {
    /// hyper's connector, with `<ConnectTimeout>` and `TCP_NODELAY`.
    inner: HttpConnector,
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
        Connector {
            inner,
            stats,
            table,
        }
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = OriginConnection;
    type Error = <HttpConnector as tower_service::Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<OriginConnection, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let stats = self.stats.clone();
        let table = self.table.clone();
        Box::pin(async move {
            let started = Instant::now();
            let io = connecting.await?;
            let open = io
                .inner()
                .peer_addr()
                .ok()
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
            Ok(OriginConnection { io, session, open })
        })
    }
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

/// An origin connection, counted while it is open.
pub struct OriginConnection {
    /// The socket.
    io: TokioIo<TcpStream>,
    /// Holds the vhost's `OriginSession` gauge up (request connections only).
    session: Option<GaugeGuard>,
    /// The IP's open-connection count.
    open: Option<Arc<AtomicUsize>>,
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
        self.io.connected()
    }
}

impl hyper::rt::Read for OriginConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for OriginConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
