//! A response being fetched from the origin, shared by every client that
//! asked for it meanwhile (collapsed forwarding).
//!
//! One producer task appends body chunks; any number of [`FillReader`]s stream
//! them. What the fill keeps ([`Keeping`]) decides when chunks are dropped:
//! - `Memory`: every chunk (it becomes the cached body);
//! - `Spool`: chunks until the spool writer has put them in the object's file
//!   on disk; a reader that falls behind, or joins late, reads the file;
//! - `Nothing` (too large to keep): chunks every reader has passed; the
//!   producer waits for the slowest reader, so even a 1 GiB body passes
//!   through in bounded memory.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::disk::{Disk, READ_CHUNK};
use super::store::Head;

/// Bytes the producer may run ahead of the slowest reader once nothing is kept,
/// or ahead of the spool writer.
pub const PASS_WINDOW: usize = 1 << 20;

/// Most bytes the spool writer takes at once: a quarter of the window, so the
/// origin is read while the disk is written.
pub const SPOOL_BATCH: usize = PASS_WINDOW / 4;

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

/// What the fill keeps of the body (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeping {
    /// Every chunk, in memory.
    Memory,
    /// Chunks until they are in the object's file.
    Spool,
    /// Chunks until every reader passed them.
    Nothing,
}

/// The object's file being written, as readers of the fill see it.
#[derive(Debug)]
pub struct SpoolFile {
    /// The file (written at its cursor, read with `pread`).
    pub file: Arc<File>,
    /// Its disk, where reads are counted.
    pub disk: Arc<Disk>,
}

#[derive(Debug)]
struct State {
    /// `None` until the origin's head arrives.
    head: Option<HeadOutcome>,
    /// Chunks not yet dropped; `chunks[0]` is chunk number `first`.
    chunks: VecDeque<Bytes>,
    /// Number of the first retained chunk.
    first: usize,
    /// Body bytes before the first retained chunk.
    first_offset: u64,
    /// Bytes in `chunks`.
    buffered: usize,
    /// Body bytes received so far.
    received: u64,
    /// What is kept.
    keeping: Keeping,
    /// The file being written while `keeping` is `Spool` (and after, for
    /// readers still reading it).
    spool: Option<Arc<SpoolFile>>,
    /// Body bytes in the spool file.
    spooled: u64,
    /// `Some` once the body ended.
    end: Option<BodyEnd>,
    /// (reader id, next chunk number) of every reader; one reading the file
    /// has a number at or below `first`, where it goes on in memory.
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
    /// Wakes the producer when readers or the spool writer free window space.
    space: Notify,
}

impl Default for Fill {
    fn default() -> Self {
        Fill {
            state: Mutex::new(State {
                head: None,
                chunks: VecDeque::new(),
                first: 0,
                first_offset: 0,
                buffered: 0,
                received: 0,
                keeping: Keeping::Memory,
                spool: None,
                spooled: 0,
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

    /// A reader from the first byte, or `None` when the start is gone (the
    /// fill keeps nothing and dropped it before this client arrived).
    pub fn reader(self: &Arc<Self>) -> Option<FillReader> {
        let mut st = self.state.lock();
        let at = if st.first == 0 {
            Position::Chunk(0)
        } else if st.keeping == Keeping::Spool {
            Position::File
        } else {
            return None;
        };
        let id = st.next_reader;
        st.next_reader += 1;
        let first = st.first;
        st.readers.push((id, first));
        Some(FillReader {
            fill: self.clone(),
            id,
            at,
            offset: 0,
            reading: None,
        })
    }

    /// What the fill keeps now.
    pub fn keeping(&self) -> Keeping {
        self.state.lock().keeping
    }

    /// Appends a chunk.
    pub fn push(&self, chunk: Bytes) {
        let mut st = self.state.lock();
        st.received += chunk.len() as u64;
        st.buffered += chunk.len();
        st.chunks.push_back(chunk);
        trim(&mut st);
        wake_all(&mut st);
    }

    /// From now on the body goes to `file` as well: chunks are dropped once
    /// written there ([`Fill::spooled`]), and readers behind them read it.
    pub fn spool_to(&self, file: SpoolFile) {
        let mut st = self.state.lock();
        st.spool = Some(Arc::new(file));
        st.keeping = Keeping::Spool;
    }

    /// The body will not be kept (too large, or its file failed): chunks are
    /// dropped once every reader passed them. Readers reading the file stop.
    pub fn stop_keeping(&self) {
        let mut st = self.state.lock();
        st.keeping = Keeping::Nothing;
        trim(&mut st);
        wake_all(&mut st);
        drop(st);
        self.space.notify_one();
    }

    /// The chunks from number `*next` on that are not yet in the spool file
    /// (at most about `max` bytes), waiting for some; `Ok(empty)` once all
    /// are written and the body is complete, `Err` when it was truncated or
    /// the fill stopped spooling.
    pub async fn unwritten(&self, next: &mut usize, max: usize) -> Result<Vec<Bytes>, BodyEnd> {
        std::future::poll_fn(|cx| {
            let mut st = self.state.lock();
            if st.keeping != Keeping::Spool || st.end == Some(BodyEnd::Truncated) {
                return Poll::Ready(Err(BodyEnd::Truncated));
            }
            let (mut batch, mut bytes) = (Vec::new(), 0);
            while let Some(c) = st.chunks.get(*next - st.first) {
                if bytes > 0 && bytes + c.len() > max {
                    break;
                }
                bytes += c.len();
                batch.push(c.clone());
                *next += 1;
            }
            if batch.is_empty() && st.end.is_none() {
                st.waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(batch))
        })
        .await
    }

    /// The spool file now holds the body's first `written` bytes.
    pub fn spooled(&self, written: u64) {
        let mut st = self.state.lock();
        st.spooled = written;
        trim(&mut st);
        drop(st);
        self.space.notify_one();
    }

    /// Whether the producer should keep reading: it is keeping the body or has
    /// readers to serve. Waits while the readers, or the spool writer, are a
    /// full window behind.
    pub async fn wait_for_space(&self) -> bool {
        loop {
            let notified = self.space.notified();
            {
                let st = self.state.lock();
                match st.keeping {
                    Keeping::Memory => return true,
                    Keeping::Nothing if st.readers.is_empty() => return false,
                    _ if st.buffered < PASS_WINDOW => return true,
                    _ => {}
                }
            }
            notified.await;
        }
    }

    /// Marks the end of the body; returns the chunks when the whole body was
    /// kept in memory, for the cache to store.
    pub fn finish(&self, end: BodyEnd) -> Option<Vec<Bytes>> {
        let mut st = self.state.lock();
        st.end = Some(end);
        wake_all(&mut st);
        (end == BodyEnd::Complete && st.keeping == Keeping::Memory)
            .then(|| st.chunks.iter().cloned().collect())
    }
}

/// Drops the chunks nobody needs from memory any more.
fn trim(st: &mut State) {
    let keep_from = match st.keeping {
        Keeping::Memory => return,
        // Readers behind the writer read the file.
        Keeping::Spool => usize::MAX,
        Keeping::Nothing => st
            .readers
            .iter()
            .map(|r| r.1)
            .min()
            .unwrap_or(st.first + st.chunks.len()),
    };
    while st.first < keep_from {
        let Some(len) = st.chunks.front().map(|c| c.len()) else {
            break;
        };
        if st.keeping == Keeping::Spool && st.first_offset + len as u64 > st.spooled {
            break;
        }
        st.chunks.pop_front();
        st.buffered -= len;
        st.first += 1;
        st.first_offset += len as u64;
    }
}

/// Where a reader reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// This chunk, in memory.
    Chunk(usize),
    /// The spool file, at the reader's offset, until it reaches the chunks.
    File,
}

/// One client's position in a [`Fill`].
#[derive(Debug)]
pub struct FillReader {
    fill: Arc<Fill>,
    id: u64,
    /// Where the next bytes come from.
    at: Position,
    /// Body bytes read so far.
    offset: u64,
    /// A read of the spool file in progress.
    reading: Option<JoinHandle<std::io::Result<Bytes>>>,
}

impl FillReader {
    /// The next chunk, `None` at the end, or `Err` when the body was truncated.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyEnd>>> {
        loop {
            if let Some(task) = &mut self.reading {
                let read = ready!(Pin::new(task).poll(cx));
                self.reading = None;
                return Poll::Ready(Some(match read {
                    Ok(Ok(bytes)) => {
                        self.offset += bytes.len() as u64;
                        Ok(bytes)
                    }
                    _ => Err(BodyEnd::Truncated),
                }));
            }
            let fill = self.fill.clone();
            let mut st = fill.state.lock();
            match self.at {
                // The writer passed this reader and the chunks went: on from the file.
                Position::Chunk(next) if next < st.first => self.at = Position::File,
                Position::Chunk(next) => return self.next_chunk(&mut st, next, cx),
                Position::File if self.offset == st.first_offset => {
                    self.at = Position::Chunk(st.first);
                }
                Position::File => {
                    // The file holds what is before the chunks in memory, unless
                    // the fill stopped writing it first.
                    let readable = st.first_offset.min(st.spooled);
                    let Some(spool) = st.spool.clone().filter(|_| self.offset < readable) else {
                        return Poll::Ready(Some(Err(BodyEnd::Truncated)));
                    };
                    let (offset, len) = (self.offset, (readable - self.offset).min(READ_CHUNK));
                    drop(st);
                    self.reading = Some(tokio::task::spawn_blocking(move || {
                        spool.disk.read_at(&spool.file, offset, len)
                    }));
                }
            }
        }
    }

    /// Chunk `next` from memory, or the end, or a wait for either.
    fn next_chunk(
        &mut self,
        st: &mut State,
        next: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyEnd>>> {
        if let Some(chunk) = st.chunks.get(next - st.first).cloned() {
            self.at = Position::Chunk(next + 1);
            self.offset += chunk.len() as u64;
            let id = self.id;
            if let Some(r) = st.readers.iter_mut().find(|r| r.0 == id) {
                r.1 = next + 1;
            }
            if st.keeping == Keeping::Nothing {
                trim(st);
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
        st.end == Some(BodyEnd::Complete) && self.offset >= st.received
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        let mut st = self.fill.state.lock();
        let id = self.id;
        st.readers.retain(|r| r.0 != id);
        trim(&mut st);
        drop(st);
        self.fill.space.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    async fn read_all(r: &mut FillReader) -> Result<Vec<u8>, BodyEnd> {
        let mut got = Vec::new();
        while let Some(c) = poll_fn(|cx| r.poll_chunk(cx)).await {
            got.extend_from_slice(&c?);
        }
        Ok(got)
    }

    #[tokio::test]
    async fn readers_see_every_chunk_and_the_end() {
        let fill = Arc::new(Fill::default());
        let mut a = fill.reader().unwrap();
        fill.push(Bytes::from_static(b"ab"));
        let mut b = fill.reader().unwrap();
        fill.push(Bytes::from_static(b"cd"));
        let kept = fill.finish(BodyEnd::Complete).unwrap();
        assert_eq!(kept.concat(), b"abcd");
        for r in [&mut a, &mut b] {
            assert_eq!(read_all(r).await.unwrap(), b"abcd");
            assert!(r.is_end());
        }
    }

    #[tokio::test]
    async fn a_body_not_kept_drops_what_readers_passed() {
        let fill = Arc::new(Fill::default());
        let mut r = fill.reader().unwrap();
        fill.push(Bytes::from(vec![0; 10]));
        fill.stop_keeping();
        fill.push(Bytes::from(vec![0; 10]));
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

    /// A disk in a temporary directory and an object file begun on it.
    fn spool_disk() -> (tempfile::TempDir, Arc<Disk>, crate::cache::disk::TmpObject) {
        let dir = tempfile::tempdir().unwrap();
        let (disk, _) = Disk::open(0, dir.path(), Duration::from_secs(1), 10);
        let tmp = disk.begin(1).unwrap();
        (dir, disk, tmp)
    }

    fn spool(fill: &Fill, disk: &Arc<Disk>, tmp: &crate::cache::disk::TmpObject) {
        fill.spool_to(SpoolFile {
            file: tmp.file(),
            disk: disk.clone(),
        });
    }

    /// A fill spooled to a file drops chunks once written, whoever still needs
    /// them: a reader behind the writer, and one that joins late, read the file
    /// up to the chunks in memory, then go on from memory.
    #[tokio::test]
    async fn readers_behind_the_spool_writer_read_its_file() {
        let (_dir, disk, mut tmp) = spool_disk();
        let fill = Arc::new(Fill::default());
        let mut early = fill.reader().unwrap();
        let chunks = [&b"aaaa"[..], b"bbbb"].map(Bytes::from_static);
        for c in &chunks {
            fill.push(c.clone());
        }
        spool(&fill, &disk, &tmp);
        tmp.append(&chunks).unwrap();
        fill.spooled(tmp.written());
        fill.push(Bytes::from_static(b"cccc"));
        let mut late = fill.reader().expect("a late reader reads the file");
        assert_eq!(fill.finish(BodyEnd::Complete), None, "not kept in memory");
        for r in [&mut early, &mut late] {
            assert_eq!(read_all(r).await.unwrap(), b"aaaabbbbcccc");
            assert!(r.is_end());
        }
        assert_eq!(
            disk.counters
                .reads
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    /// When the fill stops writing its file (too large, or the disk failed),
    /// a reader still reading the file holds the chunks after it in memory, so
    /// it gets every byte; a client arriving after that cannot join.
    #[tokio::test]
    async fn a_reader_in_the_file_when_writing_stops_still_gets_every_byte() {
        let (_dir, disk, mut tmp) = spool_disk();
        let fill = Arc::new(Fill::default());
        spool(&fill, &disk, &tmp);
        let a = Bytes::from_static(b"aaaa");
        fill.push(a.clone());
        tmp.append(&[a]).unwrap();
        fill.spooled(tmp.written());
        let mut in_file = fill.reader().unwrap();
        fill.stop_keeping();
        fill.push(Bytes::from_static(b"bbbb"));
        assert!(fill.reader().is_none(), "the start is gone from memory");
        // The file's name goes with the writer; readers keep it open.
        drop(tmp);
        fill.finish(BodyEnd::Complete);
        assert_eq!(read_all(&mut in_file).await.unwrap(), b"aaaabbbb");
    }
}
