//! The memory tier over the disks: bodies of disk objects kept in RAM, least
//! recently used first out, within `ContentMemoryRatio` of the memory
//! `SystemMemoryRatio` grants. A body enters when it is stored and when it is
//! read whole from its disk, so what clients ask for again is served from memory.
//! Each body is counted in its vhost's [`VhostIo`] (`Memory`), and so is a
//! body pushed out to make room (`CacheFileEvent.Swap`, `SecuredMemory`).

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;
use std::sync::Arc;

use super::disk::{DiskFile, VhostIo};

/// Shards of the tier (object numbers spread evenly over them).
const SHARDS: usize = 16;

/// A body held in memory.
pub type Chunks = Arc<[Bytes]>;

/// Bodies in memory are held in pieces of about this size, whether stored from
/// a fill or read from their disk: a hit is then sent in few large writes.
pub const PIECE: u64 = 1 << 20;

struct Shard {
    /// Bodies by object number, with their length and their vhost's counts.
    bodies: LruCache<u64, (Chunks, u64, Arc<VhostIo>)>,
    /// Bytes held.
    bytes: u64,
}

/// Disk objects' bodies in memory.
pub struct HotBodies {
    shards: Box<[Mutex<Shard>]>,
    /// Byte budget of each shard.
    shard_capacity: u64,
}

impl std::fmt::Debug for HotBodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (bodies, bytes) = self.usage();
        f.debug_struct("HotBodies")
            .field("bodies", &bodies)
            .field("bytes", &bytes)
            .finish()
    }
}

impl HotBodies {
    /// A tier holding about `capacity` bytes.
    pub fn new(capacity: u64) -> HotBodies {
        HotBodies {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        bodies: LruCache::unbounded(),
                        bytes: 0,
                    })
                })
                .collect(),
            shard_capacity: (capacity / SHARDS as u64).max(1),
        }
    }

    /// Largest body the tier keeps.
    pub fn max_body(&self) -> u64 {
        self.shard_capacity / 2
    }

    fn shard(&self, number: u64) -> &Mutex<Shard> {
        &self.shards[(number as usize) % SHARDS]
    }

    /// The body of object `number`, if it is in memory (counts as a use).
    pub fn get(&self, number: u64) -> Option<Chunks> {
        self.shard(number)
            .lock()
            .bodies
            .get(&number)
            .map(|(c, ..)| c.clone())
    }

    /// Keeps `body`, the body of `file`'s object, swapping older bodies out.
    pub fn insert(&self, file: &DiskFile, body: Chunks) {
        let len = file.body_len();
        if len > self.max_body() {
            return;
        }
        let io = file.io().clone();
        io.entered_memory(len);
        let mut shard = self.shard(file.number).lock();
        if let Some((_, (_, old, old_io))) = shard.bodies.push(file.number, (body, len, io)) {
            // The same object's body again (the tier is unbounded by count).
            shard.bytes -= old;
            old_io.left_memory(old, false);
        }
        shard.bytes += len;
        while shard.bytes > self.shard_capacity {
            match shard.bodies.pop_lru() {
                Some((_, (_, n, io))) => {
                    shard.bytes -= n;
                    io.left_memory(n, true);
                }
                None => break,
            }
        }
    }

    /// Forgets the body of object `number` (it left the cache).
    pub fn remove(&self, number: u64) {
        let mut shard = self.shard(number).lock();
        if let Some((_, n, io)) = shard.bodies.pop(&number) {
            shard.bytes -= n;
            io.left_memory(n, false);
        }
    }

    /// Bodies and bytes held.
    pub fn usage(&self) -> (usize, u64) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock();
            (n + s.bodies.len(), b + s.bytes)
        })
    }
}
