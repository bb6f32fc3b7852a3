//! A response body that records its exchange in the stats core when it ends
//! (completely, with an error, or because the client went away).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};

use super::body::{Body, BodyError};
use super::handler::Conn;
use crate::cache::CacheResult;
use crate::log::VhostLog;
use crate::log::{access, lines};
use crate::stats::counter::Side;
use crate::stats::dirs::Dir;
use crate::stats::{Counting, Exchange, GaugeGuard, VhostStats};

/// Approximate bytes of a message head: the start line plus `name: value\r\n` lines.
pub fn head_bytes(headers: &HeaderMap) -> u64 {
    let fields: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (fields + 32) as u64
}

/// The origin side of an exchange, recorded when its body ends.
pub struct OriginLeg {
    /// Origin status.
    pub status: u16,
    /// When the origin request was sent.
    pub started: Instant,
    /// Time until the origin's response head.
    pub time_res: Duration,
    /// Bytes of the request header sent to the origin.
    pub req_head: u64,
    /// Bytes of the request body sent to the origin.
    pub req_body: u64,
    /// Bytes of the origin's response head.
    pub head: u64,
    /// Keeps the vhost's `OriginActiveSession` up until the body ends.
    pub active: GaugeGuard,
    /// The origin log line in the making, when the vhost's origin log wants it.
    pub log: Option<(Arc<crate::log::writer::Sink>, lines::OriginTransaction)>,
    /// What an originerror warning names, when `<OriginErrorLog Warning="ON">` wants one.
    pub call: Option<Box<OriginCall>>,
}

/// The facts of an origin exchange an originerror `[WARNING]` line names.
pub struct OriginCall {
    /// The vhost.
    pub vhost: String,
    /// The origin's address (`ip:port`), `-` when unknown.
    pub origin: String,
    /// Method sent.
    pub method: http::Method,
    /// URI sent.
    pub uri: String,
    /// `Content-Length` received.
    pub content_length: Option<u64>,
}

impl OriginLeg {
    /// The origin closed the connection with `received` body bytes of the
    /// `Content-Length` it announced: `ClosedWhenDownloading`, when warnings are wanted.
    pub fn closed_when_downloading(&self, received: u64) {
        let Some(c) = &self.call else { return };
        let resinfo = match c.content_length {
            Some(len) => format!("Res={},Len={len},Received={received}", self.status),
            None => format!("Res={},Received={received}", self.status),
        };
        crate::log::origin_warning(
            &c.vhost,
            &c.origin,
            (c.method.as_str(), &c.uri),
            self.started.elapsed(),
            ("ClosedWhenDownloading", &resinfo),
        );
    }

    /// Records the origin exchange with `received` body bytes, ended now, and writes
    /// its origin log line.
    pub fn record(self, stats: &VhostStats, received: u64, completed: bool) {
        let taken = self.started.elapsed();
        stats.record(&Exchange {
            side: Side::Origin,
            status: self.status,
            parts: [self.req_head, self.req_body, self.head, received],
            completed,
            time_res: self.time_res,
            time_complete: taken,
        });
        if let Some((sink, mut t)) = self.log {
            t.bytes = received;
            t.broken = !completed;
            t.taken = taken;
            t.first_byte = self.time_res.saturating_sub(t.connect);
            t.complete = taken.saturating_sub(self.time_res);
            sink.send(lines::origin(chrono::Local::now(), &t));
        }
    }
}

/// An access log line in the making: the exchange's facts and the vhost's log.
pub struct AccessPending {
    /// The vhost's logs (format, XFF, sink).
    log: Arc<VhostLog>,
    /// What is known of the exchange so far.
    exchange: access::Exchange,
    /// When the request arrived.
    started: Instant,
}

impl AccessPending {
    /// Formats the line and hands it to the writer.
    fn write(self, sent: u64, completed: bool) {
        let end = access::Ended {
            at: chrono::Local::now(),
            sent,
            completed,
            elapsed: self.started.elapsed(),
        };
        let line = self
            .log
            .access_format
            .line(&self.exchange, &end, self.log.xff);
        self.log.sinks.access.send(line);
    }
}

/// Holds a request's access line until its response exists. Dropped before that
/// (the client left while kura waited for the origin), it writes the line with
/// status and bytes 0, as the guide says.
pub struct AccessGuard(Option<Box<AccessPending>>);

impl AccessGuard {
    /// A guard for a request, empty when the vhost's access log wants no line
    /// (OFF and nobody tracing it, or a loopback client without `Local="ON"`).
    pub fn new(
        log: &Arc<VhostLog>,
        conn: &Conn,
        parts: &http::request::Parts,
        request: [u64; 2],
        started: Instant,
    ) -> AccessGuard {
        let local_client = crate::config::is_loopback(conn.peer.ip());
        if (local_client && !log.access_local) || !log.sinks.access.wanted() {
            return AccessGuard(None);
        }
        AccessGuard(Some(Box::new(AccessPending {
            log: log.clone(),
            exchange: access::Exchange {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                headers: parts.headers.clone(),
                peer: conn.peer,
                local: conn.local,
                session: conn.id,
                tls: conn.tls.map(|t| t.version),
                request,
                status: 0,
                head: 0,
                content_length: None,
                content_encoding: None,
                result: CacheResult::None,
                time_res: Duration::ZERO,
            },
            started,
        })))
    }

    /// The pending line, now that a response carries it on.
    pub fn take(mut self) -> Option<Box<AccessPending>> {
        self.0.take()
    }
}

impl Drop for AccessGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.write(0, false);
        }
    }
}

/// What is recorded when the body ends.
struct Pending {
    /// Which figures the exchange counts in.
    counting: Counting,
    stats: Arc<VhostStats>,
    dir: Option<Arc<Dir>>,
    status: u16,
    result: CacheResult,
    /// Bytes of the request header and body received from the client.
    request: [u64; 2],
    /// Bytes of the response head sent to the client.
    head: u64,
    started: Instant,
    time_res: Duration,
    /// The origin leg when the body streams straight from the origin.
    origin: Option<OriginLeg>,
    /// Keeps the vhost's `ClientActiveSession` up until the body ends.
    _active: GaugeGuard,
    /// The access line, when the vhost's access log wants one.
    access: Option<Box<AccessPending>>,
}

/// What a counted response records when its body ends.
pub struct Exchanged {
    /// Which figures the exchange counts in (HTTP, SSL or both).
    pub counting: Counting,
    /// The vhost's stats.
    pub stats: Arc<VhostStats>,
    /// The directory the request counts in, when the vhost collects directory statistics.
    pub dir: Option<Arc<Dir>>,
    /// The cache result.
    pub result: CacheResult,
    /// Bytes of the request header and body received from the client.
    pub request: [u64; 2],
    /// When the request arrived.
    pub started: Instant,
    /// The origin leg, when the body streams straight from the origin.
    pub origin: Option<OriginLeg>,
    /// The request's `ClientActiveSession` guard.
    pub active: GaugeGuard,
    /// The request's access line.
    pub access: AccessGuard,
}

/// A response body that is counted.
pub struct Metered {
    body: Body,
    /// Body bytes sent so far.
    sent: u64,
    /// Inline, not boxed: the request path allocates nothing for statistics.
    pending: Option<Pending>,
}

impl Metered {
    /// A body that is not counted (requests no vhost answered).
    pub fn uncounted(body: Body) -> Self {
        Metered {
            body,
            sent: 0,
            pending: None,
        }
    }

    /// A response whose exchange is recorded when its body ends.
    pub fn counted(resp: http::Response<Body>, x: Exchanged) -> http::Response<Metered> {
        let (status, head) = (resp.status().as_u16(), head_bytes(resp.headers()));
        let time_res = x.started.elapsed();
        let mut access = x.access.take();
        if let Some(a) = access.as_mut() {
            let e = &mut a.exchange;
            e.status = status;
            e.head = head;
            e.result = x.result;
            e.time_res = time_res;
            e.content_length = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .or_else(|| resp.body().size_hint().exact());
            e.content_encoding = resp
                .headers()
                .get(http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        }
        resp.map(|body| Metered {
            body,
            sent: 0,
            pending: Some(Pending {
                counting: x.counting,
                stats: x.stats,
                dir: x.dir,
                status,
                result: x.result,
                request: x.request,
                head,
                started: x.started,
                time_res,
                origin: x.origin,
                _active: x.active,
                access,
            }),
        })
    }

    /// Records the exchange once; `completed` says the body went to its end.
    fn finish(&mut self, completed: bool) {
        let Some(p) = self.pending.take() else { return };
        let exchange = Exchange {
            side: Side::Client,
            status: p.status,
            parts: [p.request[0], p.request[1], p.head, self.sent],
            completed,
            time_res: p.time_res,
            time_complete: p.started.elapsed(),
        };
        p.stats
            .record_client(&exchange, p.result, self.sent, p.counting);
        if let Some(d) = p.dir {
            d.record(&exchange, p.result, self.sent, p.counting);
        }
        if let Some(o) = p.origin {
            o.record(&p.stats, self.sent, completed);
        }
        if let Some(a) = p.access {
            a.write(self.sent, completed);
        }
    }
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(e))) => {
                if let (BodyError::Origin(_), Some(p)) = (e, &this.pending) {
                    if let Some(o) = &p.origin {
                        o.closed_when_downloading(this.sent);
                    }
                }
                this.finish(false)
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // hyper stops polling a body that says it is at its end; that is completion too.
        let completed = self.body.is_end_stream();
        self.finish(completed);
    }
}
