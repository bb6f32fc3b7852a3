//! A response being fetched from the origin, shared by every client that
//! asked for it meanwhile (collapsed forwarding).
//!
//! One producer task appends body chunks; any number of [`FillReader`]s stream
//! them. While the object is being kept for the cache every chunk is retained
//! (it becomes the cached body). When it turns out too large to keep, chunks
//! every reader has passed are dropped and the producer waits for the slowest
//! reader, so even a 1 GiB body passes through in bounded memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::store::Head;

/// Bytes the producer may run ahead of the slowest reader once nothing is kept.
pub const PASS_WINDOW: usize = 1 << 20;

/// What a client that joined the fill learns once the origin answered.
#[derive(Debug, Clone)]
pub enum HeadOutcome {
    /// The response is being stored: stream it from the fill.
    Shared(Arc<Head>),
    /// The response cannot be shared: fetch it yourself.
    Pass,
    /// The origin failed: answer with this status.
    Failed(StatusCode),
    /// Serve this stored copy with this result (revalidated, or kept after a failure).
    Stored(Arc<super::store::Object>, super::CacheResult),
}

/// How the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// All of it arrived.
    Complete,
    /// The origin stopped early or timed out; readers must abort their response.
    Truncated,
}

#[derive(Debug)]
struct State {
    /// `None` until the origin's head arrives.
    head: Option<HeadOutcome>,
    /// Chunks not yet dropped; `chunks[0]` is chunk number `first`.
    chunks: VecDeque<Bytes>,
    /// Number of the first retained chunk.
    first: usize,
    /// Bytes in `chunks`.
    buffered: usize,
    /// Body bytes received so far.
    received: u64,
    /// Whether every chunk is kept for the cache.
    retain: bool,
    /// `Some` once the body ended.
    end: Option<BodyEnd>,
    /// (reader id, next chunk number) of every live reader.
    readers: Vec<(u64, usize)>,
    /// Id for the next reader.
    next_reader: u64,
    /// Tasks waiting for the head or for a chunk.
    waiters: Vec<Waker>,
}

/// A shared, in-progress origin response.
#[derive(Debug)]
pub struct Fill {
    state: Mutex<State>,
    /// Wakes the producer when readers free window space.
    space: Notify,
}

impl Default for Fill {
    fn default() -> Self {
        Fill {
            state: Mutex::new(State {
                head: None,
                chunks: VecDeque::new(),
                first: 0,
                buffered: 0,
                received: 0,
                retain: true,
                end: None,
                readers: Vec::new(),
                next_reader: 0,
                waiters: Vec::new(),
            }),
            space: Notify::new(),
        }
    }
}

fn wake_all(st: &mut State) {
    for w in st.waiters.drain(..) {
        w.wake();
    }
}

impl Fill {
    /// Publishes the origin's answer to everyone waiting for it.
    pub fn set_head(&self, outcome: HeadOutcome) {
        let mut st = self.state.lock();
        st.head = Some(outcome);
        wake_all(&mut st);
    }

    /// Waits for the origin's answer.
    pub async fn head(&self) -> HeadOutcome {
        std::future::poll_fn(|cx| {
            let mut st = self.state.lock();
            match &st.head {
                Some(h) => Poll::Ready(h.clone()),
                None => {
                    st.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// A reader starting at the first chunk, or `None` when the start is gone
    /// (the fill stopped keeping chunks before this client arrived).
    pub fn reader(self: &Arc<Self>) -> Option<FillReader> {
        let mut st = self.state.lock();
        if st.first > 0 {
            return None;
        }
        let id = st.next_reader;
        st.next_reader += 1;
        st.readers.push((id, 0));
        Some(FillReader {
            fill: self.clone(),
            id,
            next: 0,
        })
    }

    /// Appends a chunk. `max_keep` is the largest body the cache keeps: past it
    /// the fill stops retaining and `false` is returned once (the caller then
    /// stops advertising the fill to new clients).
    pub fn push(&self, chunk: Bytes, max_keep: u64) -> bool {
        let mut st = self.state.lock();
        st.received += chunk.len() as u64;
        st.buffered += chunk.len();
        st.chunks.push_back(chunk);
        let was_retaining = st.retain;
        if st.retain && st.received > max_keep {
            st.retain = false;
        }
        if !st.retain {
            trim(&mut st);
        }
        wake_all(&mut st);
        !was_retaining || st.retain
    }

    /// Whether the producer should keep reading: it has readers to serve or it is
    /// storing the object. Waits while the readers are a full window behind.
    pub async fn wait_for_space(&self) -> bool {
        loop {
            let notified = self.space.notified();
            {
                let st = self.state.lock();
                if st.retain {
                    return true;
                }
                if st.readers.is_empty() {
                    return false;
                }
                if st.buffered < PASS_WINDOW {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Marks the end of the body; returns the retained chunks when the whole
    /// body was kept, for the cache to store.
    pub fn finish(&self, end: BodyEnd) -> Option<Vec<Bytes>> {
        let mut st = self.state.lock();
        st.end = Some(end);
        wake_all(&mut st);
        (end == BodyEnd::Complete && st.retain).then(|| st.chunks.iter().cloned().collect())
    }
}

/// Drops chunks every reader has passed (only once nothing is retained).
fn trim(st: &mut State) {
    let slowest = st
        .readers
        .iter()
        .map(|r| r.1)
        .min()
        .unwrap_or(st.first + st.chunks.len());
    while st.first < slowest {
        match st.chunks.pop_front() {
            Some(c) => {
                st.buffered -= c.len();
                st.first += 1;
            }
            None => break,
        }
    }
}

/// One client's position in a [`Fill`].
#[derive(Debug)]
pub struct FillReader {
    fill: Arc<Fill>,
    id: u64,
    next: usize,
}

impl FillReader {
    /// The next chunk, `None` at the end, or `Err` when the body was truncated.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyEnd>>> {
        let mut st = self.fill.state.lock();
        if let Some(chunk) = st.chunks.get(self.next - st.first).cloned() {
            self.next += 1;
            let (id, next) = (self.id, self.next);
            if let Some(r) = st.readers.iter_mut().find(|r| r.0 == id) {
                r.1 = next;
            }
            if !st.retain {
                trim(&mut st);
                self.fill.space.notify_one();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        match st.end {
            Some(BodyEnd::Complete) => Poll::Ready(None),
            Some(BodyEnd::Truncated) => Poll::Ready(Some(Err(BodyEnd::Truncated))),
            None => {
                st.waiters.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_end(&self) -> bool {
        let st = self.fill.state.lock();
        st.end == Some(BodyEnd::Complete) && self.next >= st.first + st.chunks.len()
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        let mut st = self.fill.state.lock();
        let id = self.id;
        st.readers.retain(|r| r.0 != id);
        if !st.retain {
            trim(&mut st);
        }
        drop(st);
        self.fill.space.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn readers_see_every_chunk_and_the_end() {
        let fill = Arc::new(Fill::default());
        let mut a = fill.reader().unwrap();
        assert!(fill.push(Bytes::from_static(b"ab"), 100));
        let mut b = fill.reader().unwrap();
        assert!(fill.push(Bytes::from_static(b"cd"), 100));
        let kept = fill.finish(BodyEnd::Complete).unwrap();
        assert_eq!(kept.concat(), b"abcd");
        for r in [&mut a, &mut b] {
            let mut got = Vec::new();
            while let Some(c) = poll_fn(|cx| r.poll_chunk(cx)).await {
                got.extend_from_slice(&c.unwrap());
            }
            assert_eq!(got, b"abcd");
        }
    }

    #[tokio::test]
    async fn oversize_bodies_drop_what_readers_passed() {
        let fill = Arc::new(Fill::default());
        let mut r = fill.reader().unwrap();
        assert!(fill.push(Bytes::from(vec![0; 10]), 15));
        assert!(
            !fill.push(Bytes::from(vec![0; 10]), 15),
            "crossing the limit stops retaining"
        );
        assert!(
            fill.reader().is_some(),
            "nothing was dropped yet: the reader is at 0"
        );
        poll_fn(|cx| r.poll_chunk(cx)).await.unwrap().unwrap();
        assert!(
            fill.reader().is_none(),
            "the first chunk is gone once every reader passed it"
        );
        assert_eq!(fill.finish(BodyEnd::Complete), None);
    }
}
