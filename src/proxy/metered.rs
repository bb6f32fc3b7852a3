//! A response body that records its exchange in the stats core when it ends
//! (completely, with an error, or because the client went away).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use super::body::{Body, BodyError};
use crate::cache::CacheResult;
use crate::stats::counter::Side;
use crate::stats::{Exchange, VhostStats};

/// Approximate bytes of a message head: the start line plus `name: value\r\n` lines.
pub fn head_bytes(headers: &HeaderMap) -> u64 {
    let fields: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (fields + 32) as u64
}

/// The origin side of a response streamed straight through (not stored).
#[derive(Debug, Clone, Copy)]
pub struct OriginLeg {
    /// Origin status.
    pub status: u16,
    /// When the origin request was sent.
    pub started: Instant,
    /// Time until the origin's response head.
    pub time_res: Duration,
    /// Bytes of the request sent to the origin.
    pub outbound: u64,
    /// Bytes of the origin's response head.
    pub head: u64,
}

/// What is recorded when the body ends.
struct Pending {
    stats: Arc<VhostStats>,
    status: u16,
    result: CacheResult,
    /// Bytes received from the client.
    inbound: u64,
    /// Bytes of the response head sent to the client.
    head: u64,
    started: Instant,
    time_res: Duration,
    origin: Option<OriginLeg>,
}

/// A response body that is counted.
pub struct Metered {
    body: Body,
    /// Body bytes sent so far.
    sent: u64,
    pending: Option<Box<Pending>>,
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

    /// A body whose exchange is recorded in `stats` when it ends.
    #[allow(clippy::too_many_arguments)]
    pub fn counted(
        body: Body,
        stats: Arc<VhostStats>,
        status: u16,
        result: CacheResult,
        inbound: u64,
        head: u64,
        started: Instant,
        origin: Option<OriginLeg>,
    ) -> Self {
        let time_res = started.elapsed();
        Metered {
            body,
            sent: 0,
            pending: Some(Box::new(Pending {
                stats,
                status,
                result,
                inbound,
                head,
                started,
                time_res,
                origin,
            })),
        }
    }

    fn finish(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let now = Instant::now();
        p.stats.record(&Exchange {
            side: Side::Client,
            status: p.status,
            inbound: p.inbound,
            outbound: p.head + self.sent,
            time_res: p.time_res,
            time_complete: now - p.started,
        });
        p.stats.record_result(p.result, self.sent);
        if let Some(o) = p.origin {
            p.stats.record(&Exchange {
                side: Side::Origin,
                status: o.status,
                inbound: o.head + self.sent,
                outbound: o.outbound,
                time_res: o.time_res,
                time_complete: now - o.started,
            });
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
            Poll::Ready(_) => this.finish(),
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
        self.finish();
    }
}
