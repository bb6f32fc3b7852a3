//! Reading a stored body for a client: slices of the chunks in memory, or reads
//! of its disk file on tokio's blocking pool, so a slow disk never holds up a
//! runtime thread. A body read whole from disk enters the memory tier.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::disk::{DiskFile, OpenFile, READ_CHUNK};
use super::hot::{Chunks, HotBodies, PIECE};

/// A piece of a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes made for this response (multipart boundaries).
    Literal(Bytes),
    /// Body bytes `from..to` of the stored object.
    Body {
        /// First byte.
        from: u64,
        /// One past the last byte.
        to: u64,
    },
}

/// Where the body's bytes are.
#[derive(Debug)]
pub enum Source {
    /// In memory.
    Resident(Chunks),
    /// In a disk file.
    File(Arc<DiskFile>),
}

/// A read of one body file in progress: the open file and the bytes read.
type Reading = JoinHandle<io::Result<(Arc<OpenFile>, Bytes)>>;

/// One client's read of a stored body.
#[derive(Debug)]
pub struct BodyReader {
    /// Where the bytes come from.
    source: Source,
    /// What is still to send, in order.
    parts: VecDeque<Part>,
    /// For a resident body: the chunk the last slice came from and its offset.
    cursor: (usize, u64),
    /// The body file once opened.
    file: Option<Arc<OpenFile>>,
    /// A read on the blocking pool.
    reading: Option<Reading>,
    /// A whole body the memory tier will take: the tier and the chunks so far.
    promote: Option<(Arc<HotBodies>, Vec<Bytes>)>,
}

impl BodyReader {
    /// A reader sending `parts` from `source`; `promote` hands a body read whole
    /// from disk to the memory tier.
    pub fn new(source: Source, mut parts: VecDeque<Part>, promote: Option<Arc<HotBodies>>) -> Self {
        // Nothing to send is the end already (hyper asks before polling).
        parts.retain(|p| match p {
            Part::Literal(b) => !b.is_empty(),
            Part::Body { from, to } => from < to,
        });
        BodyReader {
            source,
            parts,
            cursor: (0, 0),
            file: None,
            reading: None,
            promote: promote.map(|hot| (hot, Vec::new())),
        }
    }

    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(b) => b.len() as u64,
                Part::Body { from, to } => to - from,
            })
            .sum()
    }

    /// Whether everything was sent.
    pub fn is_end(&self) -> bool {
        self.parts.is_empty()
    }

    /// The next piece of the body; `None` at the end.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let BodyReader {
            source,
            parts,
            cursor,
            file,
            reading,
            promote,
        } = self;
        let (from, to) = match parts.front_mut() {
            None => return Poll::Ready(None),
            Some(Part::Literal(b)) => {
                let b = std::mem::take(b);
                parts.pop_front();
                return Poll::Ready(Some(Ok(b)));
            }
            Some(Part::Body { from, to }) => (from, *to),
        };
        let out = match source {
            Source::Resident(chunks) => match slice(chunks, cursor, *from, to) {
                Some(b) => b,
                None => {
                    return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                }
            },
            Source::File(df) => {
                // A body on its way into the memory tier is read in the tier's
                // pieces, so its later hits take as few writes as a stored one's
                // (docs/bench/2026-12-03-promote-pieces.md).
                let chunk = if promote.is_some() { PIECE } else { READ_CHUNK };
                let handle = reading.get_or_insert_with(|| {
                    let (at, n) = (*from, chunk.min(to - *from));
                    let (df, open) = (df.clone(), file.clone());
                    tokio::task::spawn_blocking(move || {
                        let f = match open {
                            Some(f) => f,
                            None => Arc::new(df.open()?),
                        };
                        let b = df.read_at(&f, at, n)?;
                        Ok((f, b))
                    })
                });
                let done = ready!(Pin::new(handle).poll(cx));
                *reading = None;
                match done {
                    Ok(Ok((f, b))) => {
                        *file = Some(f);
                        b
                    }
                    Ok(Err(e)) => {
                        df.disk.error("read", &e);
                        return Poll::Ready(Some(Err(e)));
                    }
                    Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                }
            }
        };
        *from += out.len() as u64;
        let part_done = *from >= to;
        if let (Some((hot, got)), Source::File(df)) = (promote.as_mut(), &*source) {
            got.push(out.clone());
            if part_done {
                hot.insert(df, std::mem::take(got).into());
                *promote = None;
            }
        }
        if part_done {
            // Popped now, so `is_end` is true as soon as the last byte is out.
            parts.pop_front();
        }
        Poll::Ready(Some(Ok(out)))
    }
}

/// The bytes from `from` (before `to`) within one chunk of `chunks`, moving
/// `cursor` (chunk index, its offset) there; `None` past the end.
fn slice(chunks: &Chunks, cursor: &mut (usize, u64), from: u64, to: u64) -> Option<Bytes> {
    if from < cursor.1 {
        *cursor = (0, 0);
    }
    loop {
        let c = chunks.get(cursor.0)?;
        let end = cursor.1 + c.len() as u64;
        if from < end {
            let start = (from - cursor.1) as usize;
            let stop = (to.min(end) - cursor.1) as usize;
            return Some(c.slice(start..stop));
        }
        *cursor = (cursor.0 + 1, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    async fn read_all(mut r: BodyReader) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = poll_fn(|cx| r.poll_chunk(cx)).await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn ranges_and_literals_come_out_in_order() {
        let chunks: Chunks = vec![
            Bytes::from_static(b"0123"),
            Bytes::from_static(b"45"),
            Bytes::from_static(b"6789"),
        ]
        .into();
        let parts = VecDeque::from([
            Part::Literal(Bytes::from_static(b"[")),
            Part::Body { from: 3, to: 7 },
            Part::Literal(Bytes::from_static(b"|")),
            Part::Body { from: 0, to: 2 },
            Part::Body { from: 9, to: 10 },
            Part::Literal(Bytes::from_static(b"]")),
        ]);
        let r = BodyReader::new(Source::Resident(chunks), parts, None);
        assert_eq!(r.remaining(), 3 + 4 + 2 + 1);
        assert_eq!(read_all(r).await, b"[3456|019]");
    }
}
