//! The one response body type: no boxing, no copy on hits.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::cache::fill::FillReader;
use crate::cache::read::BodyReader;

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The origin stopped before the end of the body; the client connection is cut
    /// so the client sees a truncated response, never a short "complete" one.
    #[error("origin body truncated")]
    Truncated,
    /// The origin connection failed while streaming.
    #[error("origin body: {0}")]
    Origin(#[from] hyper::Error),
    /// A cache disk failed while the body was read from it.
    #[error("cache disk: {0}")]
    Disk(#[from] std::io::Error),
    /// A part of a partitioned object (`<PartSize>`) could not be had, or is
    /// not a part of the object the response began with.
    #[error("part {index} of the object: {why}")]
    Part {
        /// The part's number.
        index: u64,
        /// What went wrong.
        why: &'static str,
    },
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// No body (HEAD, 304, errors without text).
    Empty,
    /// A small body made here (error pages, API replies).
    Full(Option<Bytes>),
    /// A cached object's body, whole or in ranges, from memory or its disk.
    Stored(BodyReader),
    /// A body still arriving from the origin, shared with other clients.
    Fill(FillReader),
    /// A body streamed straight from the origin (not cached).
    Origin(Incoming),
    /// Chunks made as they come (log trace); ends when the sender is dropped.
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
    /// A partitioned object's body, part after part (`<PartSize>`).
    Parts(Parts),
}

/// The body of a partitioned object: chunks from the task that looks its parts
/// up (or fetches them) in order, and how many bytes are still due.
#[derive(Debug)]
pub struct Parts {
    /// Chunks, or why the body cannot go on.
    pub chunks: tokio::sync::mpsc::Receiver<Result<Bytes, BodyError>>,
    /// Bytes not yet received: the body is short if the task stops before.
    pub remaining: u64,
}

impl Body {
    /// A body with the given bytes.
    pub fn full(b: impl Into<Bytes>) -> Self {
        Body::Full(Some(b.into()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stored(r) => r
                .poll_chunk(cx)
                .map(|c| c.map(|c| c.map(Frame::data).map_err(BodyError::Disk))),
            Body::Fill(r) => r
                .poll_chunk(cx)
                .map(|c| c.map(|c| c.map(Frame::data).map_err(|_| BodyError::Truncated))),
            Body::Origin(inc) => Pin::new(inc).poll_frame(cx).map_err(BodyError::Origin),
            Body::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c)))),
            Body::Parts(p) => match p.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(c))) => {
                    p.remaining = p.remaining.saturating_sub(c.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(c))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if p.remaining > 0 => {
                    Poll::Ready(Some(Err(BodyError::Truncated)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stored(r) => r.is_end(),
            Body::Fill(r) => r.is_end(),
            Body::Origin(inc) => inc.is_end_stream(),
            Body::Stream(_) => false,
            Body::Parts(p) => p.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stored(r) => SizeHint::with_exact(r.remaining()),
            Body::Fill(_) | Body::Stream(_) => SizeHint::default(),
            Body::Origin(inc) => inc.size_hint(),
            Body::Parts(p) => SizeHint::with_exact(p.remaining),
        }
    }
}
