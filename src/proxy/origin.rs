//! Requests to a vhost's origins over a keep-alive connection pool.
//!
//! Addresses are used round-robin; a request that could not connect moves on
//! to the next address when it has no body to replay. (Health checks,
//! exclusion, standby addresses and balance modes come with origin management.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, HOST};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::config::value::OriginAddress;
use crate::config::VhostConfig;
use crate::stats::counter::{Gauge, OriginEvent};
use crate::stats::system::CONNECTIONS;
use crate::stats::{GaugeGuard, VhostStats};

/// The body of a request to an origin as hyper sends it.
pub type OriginBody = Either<Incoming, Either<Empty<Bytes>, Full<Bytes>>>;

/// What a request to an origin carries.
pub enum SendBody {
    /// Nothing.
    Empty,
    /// The client's body, streamed (sent once: a failed connect is not retried).
    Client(Incoming),
    /// A body already read (a cached POST); replayed on each address tried.
    Buffered(Bytes),
}

/// Why an origin request failed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The vhost has no origin address.
    #[error("no origin address configured")]
    NoAddress,
    /// No address accepted a connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The last address tried.
        addr: String,
        /// What the connector said.
        reason: String,
    },
    /// The origin did not answer within `<ReceiveTimeout>`.
    #[error("no response from {addr} within {timeout:?}")]
    Timeout {
        /// The address.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection failed after it was made.
    #[error("origin {addr}: {reason}")]
    Http {
        /// The address.
        addr: String,
        /// What failed.
        reason: String,
    },
}

impl OriginError {
    /// The status a client gets for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            OriginError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// An `HttpConnector` whose connections hold the vhost's `OriginSession` gauge up while open.
#[derive(Clone)]
struct CountingConnector {
    inner: HttpConnector,
    stats: Arc<VhostStats>,
}

impl tower_service::Service<Uri> for CountingConnector {
    type Response = CountedConnection;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<CountedConnection, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let stats = self.stats.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let io = connecting.await?;
            stats.record_origin_event(OriginEvent::Connect, 1);
            stats.record_origin_event(
                OriginEvent::ConnectMicros,
                started.elapsed().as_micros() as u64,
            );
            CONNECTIONS.connected.fetch_add(1, Ordering::Relaxed);
            Ok(CountedConnection {
                io,
                _session: GaugeGuard::new(&stats, Gauge::OriginSessions),
            })
        })
    }
}

/// An origin connection, counted while it is open.
struct CountedConnection {
    io: TokioIo<TcpStream>,
    _session: GaugeGuard,
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        CONNECTIONS.disconnected.fetch_add(1, Ordering::Relaxed);
    }
}

impl Connection for CountedConnection {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for CountedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for CountedConnection {
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

/// The origins of one vhost.
pub struct OriginPool {
    client: Client<CountingConnector, OriginBody>,
    addresses: Vec<(OriginAddress, HeaderValue)>,
    next: AtomicUsize,
    receive_timeout: Duration,
}

impl OriginPool {
    /// A pool for `vhost`'s `<Origin><Address>` list with its timeouts; its
    /// connections count in `stats`.
    pub fn new(vhost: &VhostConfig, stats: Arc<VhostStats>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(vhost.origin.connect_timeout));
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new());
        if vhost.origin.reuse_timeout.is_zero() {
            builder.pool_max_idle_per_host(0);
        } else {
            builder.pool_idle_timeout(vhost.origin.reuse_timeout);
        }
        let addresses = vhost
            .origins
            .iter()
            .map(|a| {
                let host = HeaderValue::from_str(&a.host_header(&vhost.name))
                    .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
                (a.clone(), host)
            })
            .collect();
        OriginPool {
            client: builder.build(CountingConnector {
                inner: connector,
                stats,
            }),
            addresses,
            next: AtomicUsize::new(0),
            receive_timeout: vhost.origin.receive_timeout,
        }
    }

    /// `<ReceiveTimeout>`, also applied between body chunks.
    pub fn receive_timeout(&self) -> Duration {
        self.receive_timeout
    }

    /// Sends a request for `path_and_query`; `headers` must already be origin-bound
    /// (no hop-by-hop headers, no Host).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: SendBody,
    ) -> Result<Response<Incoming>, OriginError> {
        let n = self.addresses.len();
        if n == 0 {
            return Err(OriginError::NoAddress);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let attempts = if matches!(body, SendBody::Client(_)) {
            1
        } else {
            n
        };
        let mut body = Some(body);
        let mut last = None;
        for i in 0..attempts {
            let (addr, host) = &self.addresses[(start + i) % n];
            let uri: Uri = format!("http://{}{}{}", addr.authority(), addr.path, path_and_query)
                .parse()
                .map_err(|e| OriginError::Http {
                    addr: addr.authority(),
                    reason: format!("bad request target: {e}"),
                })?;
            let mut req = Request::builder().method(method.clone()).uri(uri);
            if let Some(h) = req.headers_mut() {
                *h = headers.clone();
                h.insert(HOST, host.clone());
            }
            let req_body = match body.take() {
                Some(SendBody::Client(b)) => Either::Left(b),
                Some(SendBody::Buffered(b)) => {
                    body = Some(SendBody::Buffered(b.clone()));
                    Either::Right(Either::Right(Full::new(b)))
                }
                Some(SendBody::Empty) | None => {
                    body = Some(SendBody::Empty);
                    Either::Right(Either::Left(Empty::new()))
                }
            };
            let req = req.body(req_body).map_err(|e| OriginError::Http {
                addr: addr.authority(),
                reason: e.to_string(),
            })?;
            match tokio::time::timeout(self.receive_timeout, self.client.request(req)).await {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e)) if e.is_connect() => {
                    last = Some(OriginError::Connect {
                        addr: addr.authority(),
                        reason: source_chain(&e),
                    });
                }
                Ok(Err(e)) => {
                    return Err(OriginError::Http {
                        addr: addr.authority(),
                        reason: source_chain(&e),
                    })
                }
                Err(_) => {
                    return Err(OriginError::Timeout {
                        addr: addr.authority(),
                        timeout: self.receive_timeout,
                    })
                }
            }
        }
        Err(last.unwrap_or(OriginError::NoAddress))
    }
}

/// An error and its causes on one line.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
