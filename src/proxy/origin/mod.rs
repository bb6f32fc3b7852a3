//! Requests to a vhost's origins (guide chapter 7): the IP table with exclusion and
//! recovery ([`table`]), the probes that bring IPs back and the health checkers
//! ([`probe`]), and the keep-alive connection pool ([`connect`]).
//!
//! A request tries the IPs `<BalanceMode>` orders, moving on to the next one while
//! that is safe: always when no connection could be made (nothing was sent), and
//! after a timeout or a broken connection only for an idempotent request whose body
//! can be sent again. Each failure counts towards the IP's `<Exclusion>`.

pub mod connect;
pub mod probe;
pub mod table;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderMap, HOST};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::origin::OriginPolicy;
use crate::config::VhostConfig;
use crate::stats::counter::OriginEvent;
use crate::stats::VhostStats;
use connect::Connector;
use table::{Balance, OriginTable, Target};

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
    /// Every origin IP is excluded (chapter 7 error detection and health checks).
    #[error("every origin address is excluded")]
    AllExcluded,
    /// No address accepted a connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The last address tried.
        addr: String,
        /// What the connector said.
        reason: String,
        /// Whether `<ConnectTimeout>` ran out (else the connection was refused or failed).
        timed_out: bool,
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

/// Which leg of chapter 8 a request is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// For the cache (or passed through by the cache): `<ConnectTimeout>`,
    /// `<ReceiveTimeout>`, and `<BalanceMode>` over the URL.
    Cache,
    /// Bypassed: `<BypassConnectTimeout>`, `<BypassReceiveTimeout>`; with
    /// `OriginAffinity` a client's requests stay on one origin IP.
    Bypass {
        /// The client, when its requests keep their origin.
        affinity: Option<IpAddr>,
        /// `Private`: on the client connection's own origin connection.
        private: bool,
    },
}

/// A client connection's own origin connection (`Private` bypass, chapter 8).
pub struct PrivateSession {
    /// Sends requests on it, one at a time.
    sender: hyper::client::conn::http1::SendRequest<OriginBody>,
    /// The IP it is connected to.
    target: Target,
}

/// Where a client connection keeps its private session; dropped with the client
/// connection, which closes the origin connection.
pub type PrivateSlot = tokio::sync::Mutex<Option<PrivateSession>>;

/// The keep-alive pools of a vhost: one per leg, because their connect timeouts differ.
struct Clients {
    /// For the cache.
    cache: Client<Connector, OriginBody>,
    /// For bypassed requests.
    bypass: Client<Connector, OriginBody>,
}

/// A hyper client over `connector`; `reuse` is `<ReuseTimeout>` (zero: no reuse).
fn client(connector: Connector, reuse: Duration) -> Client<Connector, OriginBody> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_timer(TokioTimer::new());
    if reuse.is_zero() {
        builder.pool_max_idle_per_host(0);
    } else {
        builder.pool_idle_timeout(reuse);
    }
    builder.build(connector)
}

/// Both pools of a vhost, their connections counted in `stats`.
fn clients(
    policy: &OriginPolicy,
    bypass_connect: Duration,
    stats: &Arc<VhostStats>,
    table: &Arc<OriginTable>,
) -> Clients {
    let leg = |connect| {
        client(
            Connector::new(connect, Some(stats.clone()), Arc::downgrade(table)),
            policy.reuse_timeout,
        )
    };
    Clients {
        cache: leg(policy.connect_timeout),
        bypass: leg(bypass_connect),
    }
}

/// The origins of one vhost.
pub struct OriginPool {
    /// The vhost's name (for logs).
    pub vhost: String,
    /// Its `<Origin>` and `<OriginOptions>`.
    pub policy: OriginPolicy,
    /// The IPs and their health.
    pub table: Arc<OriginTable>,
    /// `<BypassConnectTimeout>` and `<BypassReceiveTimeout>`.
    bypass_timeouts: (Duration, Duration),
    /// The keep-alive pools; replaced by `/command/resetorigin` so no session is reused.
    clients: ArcSwap<Clients>,
    /// Its statistics.
    stats: Arc<VhostStats>,
    /// Its logs, for probe lines in the origin log.
    pub log: Arc<crate::log::VhostLog>,
}

impl OriginPool {
    /// A pool for `vhost`, its connections counted in `stats` and its probes in `log`, keeping what
    /// `previous` (the same vhost's pool before a reload) knew of each IP's health.
    /// Starts the vhost's probes and resolver when called inside a tokio runtime.
    pub fn new(
        vhost: &VhostConfig,
        (stats, log): (Arc<VhostStats>, Arc<crate::log::VhostLog>),
        previous: Option<&OriginPool>,
    ) -> Arc<Self> {
        let policy = vhost.origin.clone();
        let table = Arc::new(OriginTable::new(
            &policy,
            &vhost.name,
            previous.map(|p| p.table.as_ref()),
        ));
        let bypass_timeouts = (vhost.bypass.connect_timeout, vhost.bypass.receive_timeout);
        let pool = Arc::new(OriginPool {
            vhost: vhost.name.clone(),
            clients: ArcSwap::from_pointee(clients(&policy, bypass_timeouts.0, &stats, &table)),
            bypass_timeouts,
            policy,
            table,
            stats,
            log,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            probe::start(&pool);
        }
        pool
    }

    /// The connect timeout of `leg`.
    pub fn connect_timeout(&self, leg: Leg) -> Duration {
        match leg {
            Leg::Cache => self.policy.connect_timeout,
            Leg::Bypass { .. } => self.bypass_timeouts.0,
        }
    }

    /// The receive timeout of `leg`, also applied between body chunks.
    pub fn receive_timeout(&self, leg: Leg) -> Duration {
        match leg {
            Leg::Cache => self.policy.receive_timeout,
            Leg::Bypass { .. } => self.bypass_timeouts.1,
        }
    }

    /// `/command/resetorigin`: every IP usable again, and new connections from now on.
    pub fn reset(&self) {
        self.table.reset(&self.vhost);
        self.clients.store(Arc::new(clients(
            &self.policy,
            self.bypass_timeouts.0,
            &self.stats,
            &self.table,
        )));
    }

    /// Sends a request for `path_and_query`; `headers` must already be origin-bound
    /// (no hop-by-hop headers; a `Host` only when `<Host>` says which). With
    /// `<RedirectionTrace>` a redirect answering a cache fetch is followed once.
    pub async fn send(
        &self,
        leg: Leg,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: SendBody,
    ) -> Result<Response<Incoming>, OriginError> {
        let traced = self.policy.redirection_trace && leg == Leg::Cache && method == Method::GET;
        let kept = traced.then(|| headers.clone());
        let resp = self
            .send_once(leg, method, path_and_query, headers, body)
            .await?;
        match kept {
            Some(headers) => self.trace_redirect(resp, headers).await,
            None => Ok(resp),
        }
    }

    /// `<RedirectionTrace>`: a 301, 302, 303 or 307 with a usable `Location` is replaced
    /// by the answer at that location, asked once (a relative location of this origin
    /// through the pool; an absolute one directly). Otherwise the redirect stands.
    async fn trace_redirect(
        &self,
        resp: Response<Incoming>,
        mut headers: HeaderMap,
    ) -> Result<Response<Incoming>, OriginError> {
        let location = match resp.status().as_u16() {
            301 | 302 | 303 | 307 => resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            _ => None,
        };
        let Some(location) = location else {
            return Ok(resp);
        };
        if location.starts_with('/') {
            return self
                .send_once(Leg::Cache, Method::GET, &location, headers, SendBody::Empty)
                .await;
        }
        let Ok(uri) = location.parse::<Uri>() else {
            return Ok(resp);
        };
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Ok(resp);
        };
        if !matches!(scheme, "http" | "https") {
            return Ok(resp);
        }
        let addr = authority.to_string();
        match http::HeaderValue::from_str(&addr) {
            Ok(host) => headers.insert(HOST, host),
            Err(_) => return Ok(resp),
        };
        let mut req = Request::get(uri);
        if let Some(h) = req.headers_mut() {
            *h = headers;
        }
        let req = req
            .body(Either::Right(Either::Left(Empty::new())))
            .map_err(|e| OriginError::Http {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let clients = self.clients.load_full();
        let started = Instant::now();
        request_within(&clients.cache, req, addr, self.policy.receive_timeout)
            .await
            .map_err(|e| self.failed(e, (&Method::GET, &location), started))
    }

    /// One request, with failover, no redirect followed.
    async fn send_once(
        &self,
        leg: Leg,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: SendBody,
    ) -> Result<Response<Incoming>, OriginError> {
        if self.table.entries.is_empty() {
            return Err(OriginError::NoAddress);
        }
        probe::resolve_unresolved(self).await;
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        let clients = self.clients.load_full();
        let client = match leg {
            Leg::Cache => &clients.cache,
            Leg::Bypass { .. } => &clients.bypass,
        };
        let balance = match leg {
            Leg::Bypass {
                affinity: Some(client),
                ..
            } => Balance::Client(client),
            _ => Balance::Url(path_and_query),
        };
        let mut body = Some(body);
        let mut tried: Vec<std::net::SocketAddr> = Vec::new();
        let mut last = OriginError::AllExcluded;
        // The usable set is read again after each failure: a failure that excludes
        // the last `<Address>` brings in a standby for the next attempt.
        while let Some(target) = self
            .table
            .order(self.table.usable(), balance)
            .into_iter()
            .find(|t| !tried.contains(&t.ip.addr))
        {
            tried.push(target.ip.addr);
            let replayable = !matches!(body, Some(SendBody::Client(_)));
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
            let req = self.request(&method, path_and_query, &headers, &target, req_body)?;
            let started = Instant::now();
            let err = match self
                .exchange(client, &target, req, self.receive_timeout(leg))
                .await
            {
                Ok(resp) => {
                    let request = (&method, path_and_query);
                    self.check_answer(&headers, &resp, (target.ip.addr, request), started);
                    return Ok(resp);
                }
                Err(e) => self.failed(e, (&method, path_and_query), started),
            };
            let retry = replayable && (idempotent || matches!(err, OriginError::Connect { .. }));
            last = err;
            if !retry {
                break;
            }
        }
        Err(last)
    }

    /// A `Private` bypass: the request goes on the client connection's own origin
    /// connection, opened on first use to the IP the client's address hashes to and
    /// opened again if the origin closed it. No failover: the session is the point.
    pub async fn send_private(
        &self,
        slot: &PrivateSlot,
        client: IpAddr,
        (method, path_and_query): (Method, &str),
        headers: HeaderMap,
        body: SendBody,
    ) -> Result<Response<Incoming>, OriginError> {
        let leg = Leg::Bypass {
            affinity: Some(client),
            private: true,
        };
        let mut slot = slot.lock().await;
        if slot.as_ref().is_some_and(|p| p.sender.is_closed()) {
            *slot = None;
        }
        let started = Instant::now();
        let failed = |e| self.failed(e, (&method, path_and_query), started);
        let session = match slot.as_mut() {
            Some(s) => s,
            None => slot.insert(self.open_private(client).await.map_err(failed)?),
        };
        let addr = session.target.ip.addr.to_string();
        let body = match body {
            SendBody::Client(b) => Either::Left(b),
            SendBody::Buffered(b) => Either::Right(Either::Right(Full::new(b))),
            SendBody::Empty => Either::Right(Either::Left(Empty::new())),
        };
        let mut req = self.request(&method, path_and_query, &headers, &session.target, body)?;
        // On a connection of its own the request goes in origin form.
        let address = &self.table.entries[session.target.entry].address;
        *req.uri_mut() = format!("{}{path_and_query}", address.path)
            .parse()
            .map_err(|e| OriginError::Http {
                addr: addr.clone(),
                reason: format!("bad request target: {e}"),
            })?;
        let timeout = self.receive_timeout(leg);
        let exchange = async {
            session.sender.ready().await?;
            session.sender.send_request(req).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(resp)) => {
                let at = (session.target.ip.addr, (&method, path_and_query));
                self.check_answer(&headers, &resp, at, started);
                Ok(resp)
            }
            Ok(Err(e)) => Err(failed(OriginError::Http {
                addr,
                reason: source_chain(&e),
            })),
            Err(_) => Err(failed(OriginError::Timeout { addr, timeout })),
        }
    }

    /// Writes an originerror `[WARNING]` line (`<OriginErrorLog Warning="ON">`) when the
    /// answer from `origin` to `request` is one of the guide's malformed exchanges.
    fn check_answer(
        &self,
        sent: &HeaderMap,
        resp: &Response<Incoming>,
        (origin, (method, uri)): (std::net::SocketAddr, (&Method, &str)),
        started: Instant,
    ) {
        if !crate::log::origin_warnings_wanted() {
            return;
        }
        if let Some((kind, resinfo)) = malformed_answer(sent, resp.status(), resp.headers()) {
            crate::log::origin_warning(
                &self.vhost,
                &origin.to_string(),
                (method.as_str(), uri),
                started.elapsed(),
                (kind, &resinfo),
            );
        }
    }

    /// Counts a failed exchange with one origin IP by the guide's kinds (ConnectTimeout,
    /// ReceiveTimeout, Close) and writes its originerror line: every attempt, so a
    /// failover's failures show before the exclusion they lead to. `request` is the
    /// method and URI asked for, `started` when the attempt began.
    fn failed(
        &self,
        e: OriginError,
        (method, uri): (&Method, &str),
        started: Instant,
    ) -> OriginError {
        let (event, addr, kind) = match &e {
            OriginError::Connect {
                addr, timed_out, ..
            } => {
                let kind = if *timed_out {
                    "Connect-Timeout"
                } else {
                    "Connect-Fail"
                };
                (OriginEvent::ConnectFailure, addr, kind)
            }
            OriginError::Timeout { addr, .. } => {
                (OriginEvent::ReceiveTimeout, addr, "Receive-Timeout")
            }
            OriginError::Http { addr, .. } => (OriginEvent::Close, addr, "ClosedWithoutResponse"),
            OriginError::NoAddress | OriginError::AllExcluded => return e,
        };
        self.stats.record_origin_event(event, 1);
        crate::log::origin_error(
            &self.vhost,
            addr,
            (method.as_str(), uri),
            started.elapsed(),
            kind,
        );
        e
    }

    /// Connects a private session to the IP `client` hashes to.
    async fn open_private(&self, client: IpAddr) -> Result<PrivateSession, OriginError> {
        let target = self
            .table
            .order(self.table.usable(), Balance::Client(client))
            .into_iter()
            .next()
            .ok_or(OriginError::AllExcluded)?;
        let address = &self.table.entries[target.entry].address;
        let addr = target.ip.addr;
        let uri: Uri = format!("{}://{addr}/", address.scheme())
            .parse()
            .expect("an IP authority is a valid URI");
        let mut connector = Connector::new(
            self.bypass_timeouts.0,
            Some(self.stats.clone()),
            Arc::downgrade(&self.table),
        );
        let failed = |e: &(dyn std::error::Error + 'static)| OriginError::Connect {
            addr: addr.to_string(),
            reason: source_chain(e),
            timed_out: timed_out(e),
        };
        let io = tower_service::Service::call(&mut connector, uri)
            .await
            .map_err(|e| failed(e.as_ref()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| failed(&e))?;
        // Ends when either side closes; the client connection's end drops `sender`.
        tokio::spawn(connection);
        Ok(PrivateSession { sender, target })
    }

    /// The request for `target`.
    fn request(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        target: &Target,
        body: OriginBody,
    ) -> Result<Request<OriginBody>, OriginError> {
        let addr = &target.ip.addr;
        let bad = |reason: String| OriginError::Http {
            addr: addr.to_string(),
            reason,
        };
        let address = &self.table.entries[target.entry].address;
        let (scheme, path) = (address.scheme(), &address.path);
        let uri: Uri = format!("{scheme}://{addr}{path}{path_and_query}")
            .parse()
            .map_err(|e| bad(format!("bad request target: {e}")))?;
        let mut req = Request::builder().method(method.clone()).uri(uri);
        if let Some(h) = req.headers_mut() {
            *h = headers.clone();
            if !h.contains_key(HOST) {
                h.insert(HOST, target.host.clone());
            }
        }
        req.body(body).map_err(|e| bad(e.to_string()))
    }

    /// One exchange with one IP, counted towards its exclusion.
    async fn exchange(
        &self,
        client: &Client<Connector, OriginBody>,
        target: &Target,
        req: Request<OriginBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, OriginError> {
        let ip = &target.ip;
        let addr = ip.addr.to_string();
        ip.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = request_within(client, req, addr, timeout).await;
        ip.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let err = match result {
            Ok(resp) => {
                ip.errors.succeed(0);
                return Ok(resp);
            }
            Err(e) => e,
        };
        if self
            .table
            .judge(&self.vhost, ip, || ip.errors.fail(self.policy.exclusion))
        {
            tracing::warn!(vhost = %self.vhost, origin = %ip.addr, error = %err,
                failures = self.policy.exclusion, "origin excluded");
        }
        Err(err)
    }
}

/// Which of the guide's HTTP communication errors (chapter 12, `<OriginErrorLog
/// Warning>`) an answer with `status` and `headers` to a request with `sent` headers
/// is, with its `sc-resinfo` (`Res=206,Len=2635`): a 206 to a request without
/// `Range`, another 2xx to a request with one, or a 206 whose `Content-Length` is not
/// the length of the one range asked for (out of the `Content-Range` total).
fn malformed_answer(
    sent: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<(&'static str, String)> {
    use http::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
    fn text(h: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }
    let length: Option<u64> = text(headers, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
    let kind = match (text(sent, RANGE), status.as_u16()) {
        (None, 206) => "PartialResponseOnNormalRequest",
        (Some(_), 200..=299) if status != StatusCode::PARTIAL_CONTENT => {
            "NotPartialResponseOnRangeRequest"
        }
        (Some(range), 206) => {
            let (_, _, total) = super::parts::content_range(text(headers, CONTENT_RANGE))?;
            let asked = match super::answer::parse_ranges(range, total)?[..] {
                [(first, last)] => last - first + 1,
                _ => return None,
            };
            if length? == asked {
                return None;
            }
            "DifferentContentLengthOnRangeRequest"
        }
        _ => return None,
    };
    let resinfo = match length {
        Some(len) => format!("Res={},Len={len}", status.as_u16()),
        None => format!("Res={}", status.as_u16()),
    };
    Some((kind, resinfo))
}

/// `req` on `client`, answered within `timeout`, its failure named after `addr`.
async fn request_within(
    client: &Client<Connector, OriginBody>,
    req: Request<OriginBody>,
    addr: String,
    timeout: Duration,
) -> Result<Response<Incoming>, OriginError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() => Err(OriginError::Connect {
            addr,
            reason: source_chain(&e),
            timed_out: timed_out(&e),
        }),
        Ok(Err(e)) => Err(OriginError::Http {
            addr,
            reason: source_chain(&e),
        }),
        Err(_) => Err(OriginError::Timeout { addr, timeout }),
    }
}

/// Whether a connect error, or one of its causes, is a timeout.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        let io_timeout = c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        if io_timeout || c.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        cur = c.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::header::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn malformed_answers_are_the_guides_warnings() {
        let plain = headers(&[]);
        let ranged = headers(&[("range", "bytes=100-199")]);
        let status = |n| StatusCode::from_u16(n).unwrap();
        let answer = |sent: &HeaderMap, code, pairs: &[(&'static str, &str)]| {
            malformed_answer(sent, status(code), &headers(pairs))
        };
        let len_1000 = [("content-length", "1000")];
        assert_eq!(answer(&plain, 200, &len_1000), None);
        assert_eq!(
            answer(&plain, 206, &len_1000),
            Some(("PartialResponseOnNormalRequest", "Res=206,Len=1000".into()))
        );
        assert_eq!(
            answer(&ranged, 200, &len_1000),
            Some((
                "NotPartialResponseOnRangeRequest",
                "Res=200,Len=1000".into()
            ))
        );
        let exact = [
            ("content-length", "100"),
            ("content-range", "bytes 100-199/1000"),
        ];
        assert_eq!(answer(&ranged, 206, &exact), None);
        // The range ends past the object: what is left of it is the right length.
        let tail = [
            ("content-length", "50"),
            ("content-range", "bytes 100-149/150"),
        ];
        assert_eq!(answer(&ranged, 206, &tail), None);
        let capped = [
            ("content-length", "60"),
            ("content-range", "bytes 100-159/1000"),
        ];
        assert_eq!(
            answer(&ranged, 206, &capped),
            Some((
                "DifferentContentLengthOnRangeRequest",
                "Res=206,Len=60".into()
            ))
        );
        // Errors and redirects are answers of their own, not malformed exchanges.
        assert_eq!(answer(&ranged, 416, &[]), None);
        assert_eq!(answer(&plain, 304, &[]), None);
    }
}
