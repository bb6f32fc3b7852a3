//! One cache disk (`<Disk>`): object files, their commit, reads and deletion,
//! and the disk's health.
//!
//! Layout under the configured directory:
//! `objects/XX/NNNNNNNNNNNNNNNN` (the object number in hex, `XX` its low byte),
//! `tmp/` for files being written, and `clean`, present only while kurad is
//! stopped after a clean shutdown. A file is written in `tmp/` and renamed into
//! `objects/` once complete, so `objects/` never holds a partial file after a
//! crash of kurad; a power loss can still tear one, which the body checksum
//! catches before it is served (see [`DiskFile::verified`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::fields::Fields;
use super::record::{self, Footer, FOOTER_LEN};
use super::store::Head;
use crate::stats::counter::FileIo;

/// Bytes read from a disk at a time when streaming a body.
pub const READ_CHUNK: u64 = 256 * 1024;

/// Share of a file system kept free when a disk has no `Quota`...
const RESERVE_PERCENT: u64 = 5;
/// ...at most this much: on a large or shared file system 5 % of its size can
/// be more than is free at all (what `statvfs` counts in the total is not all
/// usable), and a cache that stores nothing helps nobody.
const RESERVE_MAX: u64 = 1 << 30;

/// A disk's state, as `/monitoring/hwinfo` and SNMP `diskInfoStatus` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    /// In service.
    Normal,
    /// Taken out after `DiskFailCount` errors within `DiskFailSec`, or unusable at start.
    Invalid,
    /// Taken out by the administrator (`/command/unmount`).
    Unmounted,
}

impl DiskState {
    /// The guide's word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskState::Normal => "Normal",
            DiskState::Invalid => "Invalid",
            DiskState::Unmounted => "Unmounted",
        }
    }

    fn from_u8(v: u8) -> DiskState {
        match v {
            0 => DiskState::Normal,
            1 => DiskState::Invalid,
            _ => DiskState::Unmounted,
        }
    }
}

/// Work done off the request path by a disk's own thread.
enum Chore {
    /// Delete an object file no longer indexed.
    Unlink(u64),
    /// Write a new head over an object file (after a purge, expire or revalidation).
    Rewrite {
        /// The object number.
        number: u64,
        /// The footer with the new head's length and checksum.
        footer: Footer,
        /// The new head record.
        record: Vec<u8>,
    },
    /// Answer once every earlier chore is done.
    Flush(mpsc::SyncSender<()>),
}

/// Counters of a disk's cache I/O (all since start).
#[derive(Debug, Default)]
pub struct DiskCounters {
    /// Object files committed.
    pub writes: AtomicU64,
    /// Bytes written in them.
    pub written_bytes: AtomicU64,
    /// Reads of object bodies.
    pub reads: AtomicU64,
    /// Body bytes read.
    pub read_bytes: AtomicU64,
    /// I/O errors.
    pub errors: AtomicU64,
}

/// What one vhost's disk objects cost outside the index, counted where it
/// happens (each object file carries its vhost's): the file I/O of
/// `VirtualHost.Disk` and its files open now; and its bodies in the memory
/// tier, with those swapped out of it (`CacheFileEvent.Swap`, `SecuredMemory`).
#[derive(Debug, Default)]
pub struct VhostIo {
    /// Counts since last taken, in [`FileIo::ALL`] order.
    counts: [AtomicU64; FileIo::ALL.len()],
    /// Files open now.
    opened: AtomicU64,
    /// Body bytes in the memory tier now.
    in_memory: AtomicU64,
    /// Bodies swapped out of the memory tier since last taken.
    swaps: AtomicU64,
    /// Their bytes.
    swapped_bytes: AtomicU64,
}

/// [`VhostIo`]'s counts since they were last taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IoTaken {
    /// File I/O, in [`FileIo::ALL`] order.
    pub file_io: [u64; FileIo::ALL.len()],
    /// Bodies swapped out of the memory tier (their objects stay on disk).
    pub swaps: u64,
    /// Their bytes (`SecuredMemory`).
    pub swapped_bytes: u64,
}

impl VhostIo {
    fn add(&self, e: FileIo, n: u64) {
        self.counts[e as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The counts so far; they start again from zero.
    pub fn take(&self) -> IoTaken {
        let take = |n: &AtomicU64| n.swap(0, Ordering::Relaxed);
        IoTaken {
            file_io: std::array::from_fn(|i| take(&self.counts[i])),
            swaps: take(&self.swaps),
            swapped_bytes: take(&self.swapped_bytes),
        }
    }

    /// A body of `len` bytes entered the memory tier.
    pub fn entered_memory(&self, len: u64) {
        self.in_memory.fetch_add(len, Ordering::Relaxed);
    }

    /// A body of `len` bytes left the memory tier: `swapped` out to make room
    /// (its object stays on disk), or with its object.
    pub fn left_memory(&self, len: u64, swapped: bool) {
        self.in_memory.fetch_sub(len, Ordering::Relaxed);
        if swapped {
            self.swaps.fetch_add(1, Ordering::Relaxed);
            self.swapped_bytes.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// Body bytes of the vhost's objects in the memory tier now.
    pub fn in_memory(&self) -> u64 {
        self.in_memory.load(Ordering::Relaxed)
    }

    /// The vhost's object files open for reading now (`FileOpened`).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// An object file open for reading, counted in its vhost's `FileOpened` until
/// it is closed.
#[derive(Debug)]
pub struct OpenFile {
    /// The file.
    file: File,
    /// Its vhost's counters, where it is counted as open.
    io: Arc<VhostIo>,
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.io.opened.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One cache disk.
#[derive(Debug)]
pub struct Disk {
    /// Position in `<Storage>` (SNMP `diskIndex` - 1).
    pub index: usize,
    /// The directory as configured.
    pub path: PathBuf,
    /// Bytes of object files this disk may hold: its `Quota`, or what the file
    /// system can give less a reserve.
    capacity: AtomicU64,
    /// A [`DiskState`].
    state: AtomicU8,
    /// Whether its directories were prepared (a disk missing at start is
    /// tried again until it appears).
    prepared: AtomicBool,
    /// When the recent errors happened (at most `fail_count + 1` kept).
    errors: Mutex<VecDeque<Instant>>,
    /// `DiskFailSec`.
    fail_window: Duration,
    /// `DiskFailCount`.
    fail_count: u32,
    /// Object files indexed on this disk.
    pub objects: AtomicU64,
    /// Bytes of those files.
    pub bytes: AtomicU64,
    /// Body bytes in files being written in `tmp/` (bodies written as they
    /// arrive), counted against the quota with `bytes`.
    pub writing: AtomicU64,
    /// I/O counters.
    pub counters: DiskCounters,
    /// Head rewrites queued, and done by the chore thread: while they differ, a
    /// head read from a file may be older than its object's (`<Indexing>Disk`
    /// reads waits for them).
    rewrites: (AtomicU64, AtomicU64),
    /// The disk's chore thread.
    chores: Mutex<mpsc::Sender<Chore>>,
}

/// An object file found by a scan.
pub struct Found {
    /// Object number (from the file name).
    pub number: u64,
    /// The object's cache key.
    pub key: String,
    /// The object's head.
    pub head: Head,
    /// The footer read.
    pub footer: Footer,
}

impl Disk {
    /// Opens the disk at `path`: creates its directories and empties `tmp/`.
    /// Returns the disk and whether the last stop was clean. A directory that
    /// cannot be prepared gives a disk in state Invalid.
    pub fn open(
        index: usize,
        path: &Path,
        fail_window: Duration,
        fail_count: u32,
    ) -> (Arc<Disk>, bool) {
        let (tx, rx) = mpsc::channel();
        let disk = Arc::new(Disk {
            index,
            path: path.to_path_buf(),
            capacity: AtomicU64::new(0),
            state: AtomicU8::new(DiskState::Normal as u8),
            prepared: AtomicBool::new(false),
            errors: Mutex::new(VecDeque::new()),
            fail_window,
            fail_count,
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            writing: AtomicU64::new(0),
            counters: DiskCounters::default(),
            rewrites: (AtomicU64::new(0), AtomicU64::new(0)),
            chores: Mutex::new(tx),
        });
        let worker = Arc::downgrade(&disk);
        let spawned = std::thread::Builder::new()
            .name(format!("kura-disk{}", index + 1))
            .spawn(move || chore_loop(worker, rx));
        let clean = match spawned.and_then(|_| disk.prepare()) {
            Ok(clean) => {
                disk.prepared.store(true, Ordering::Release);
                clean
            }
            Err(e) => {
                tracing::error!(disk = %path.display(), error = %e, "cache disk unusable; it is Invalid");
                disk.set_state(DiskState::Invalid);
                false
            }
        };
        (disk, clean)
    }

    /// Creates `objects/00..ff` and `tmp/`, deletes what `tmp/` holds (fills a
    /// crash interrupted), and takes the clean-stop marker away. The directory
    /// itself must exist: a disk that is not mounted must not turn into a cache
    /// on the root file system.
    fn prepare(&self) -> io::Result<bool> {
        if !self.path.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the directory does not exist",
            ));
        }
        for i in 0..=255u8 {
            std::fs::create_dir_all(self.path.join("objects").join(format!("{i:02x}")))?;
        }
        let tmp = self.path.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            std::fs::remove_file(entry?.path())?;
        }
        let marker = self.path.join("clean");
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker)?;
            // Gone for good before any new file may be written without a check.
            File::open(&self.path)?.sync_all()?;
        }
        Ok(clean)
    }

    /// For a disk whose directory could not be prepared at start: tries again
    /// (blocking), and puts it in service (empty) when it works now.
    pub fn retry_prepare(&self, quota: Option<u64>) -> bool {
        if self.prepared.load(Ordering::Acquire) || self.prepare().is_err() {
            return false;
        }
        self.prepared.store(true, Ordering::Release);
        self.wipe();
        self.size(quota, 0);
        self.set_state(DiskState::Normal);
        tracing::info!(disk = %self.path.display(), "cache disk ready");
        true
    }

    /// Sets the byte budget: `quota`, or free space plus `cached` bytes already
    /// held, less a reserve of the file system (5 %, at most 1 GiB).
    pub fn size(&self, quota: Option<u64>, cached: u64) {
        let capacity = quota.unwrap_or_else(|| match nix::sys::statvfs::statvfs(&self.path) {
            Ok(s) => {
                let (total, avail) = (s.blocks(), s.blocks_available());
                budget(total * s.fragment_size(), avail * s.fragment_size(), cached)
            }
            Err(_) => 0,
        });
        if capacity == 0 && self.is_normal() {
            tracing::warn!(disk = %self.path.display(), "cache disk has no room (its file system has less free than the reserve, 5 % of it or 1 GiB): nothing is stored on it");
        }
        self.capacity.store(capacity, Ordering::Relaxed);
    }

    /// Whether the directories were prepared (the disk has been usable).
    pub fn is_prepared(&self) -> bool {
        self.prepared.load(Ordering::Acquire)
    }

    /// Bytes of object files this disk may hold.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// The disk's state.
    pub fn state(&self) -> DiskState {
        DiskState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether objects may be stored on and served from the disk.
    pub fn is_normal(&self) -> bool {
        self.state() == DiskState::Normal
    }

    /// Changes the state; back to Normal forgets past errors.
    pub fn set_state(&self, state: DiskState) {
        if state == DiskState::Normal {
            self.errors.lock().clear();
        }
        self.state.store(state as u8, Ordering::Release);
    }

    /// Counts an I/O error; past `DiskFailCount` within `DiskFailSec` the disk
    /// becomes Invalid.
    pub fn error(&self, what: &str, e: &io::Error) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut errors = self.errors.lock();
        errors.push_back(now);
        while errors
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.fail_window)
        {
            errors.pop_front();
        }
        let over = errors.len() > self.fail_count as usize;
        while errors.len() > self.fail_count as usize + 1 {
            errors.pop_front();
        }
        drop(errors);
        tracing::warn!(disk = %self.path.display(), error = %e, what, "cache disk I/O error");
        if over && self.is_normal() {
            tracing::error!(disk = %self.path.display(), "cache disk failed too often; it is Invalid");
            self.set_state(DiskState::Invalid);
        }
    }

    /// The path of object file `number`.
    pub fn object_path(&self, number: u64) -> PathBuf {
        self.path
            .join("objects")
            .join(format!("{:02x}", number & 0xff))
            .join(format!("{number:016x}"))
    }

    /// Writes object `number` (blocking): body, head and footer in `tmp/`, then
    /// renamed into `objects/`, counted in `io` (its vhost's). Nothing is left
    /// behind on failure.
    pub fn write(
        self: &Arc<Self>,
        (number, key): (u64, &str),
        head: &Head,
        body: &[Bytes],
        io: Arc<VhostIo>,
    ) -> io::Result<DiskFile> {
        let mut tmp = self.begin(number)?;
        tmp.append(body)?;
        tmp.commit(key, head, io)
    }

    /// Starts object file `number` in `tmp/` (blocking), for its body to be
    /// appended as it arrives.
    pub fn begin(self: &Arc<Self>, number: u64) -> io::Result<TmpObject> {
        if !self.is_normal() {
            return Err(io::Error::other("the disk is out of service"));
        }
        let path = self.path.join("tmp").join(format!("{number:016x}"));
        // Readable too: clients that join a fill late read what was written.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(TmpObject {
            disk: self.clone(),
            number,
            path,
            file: Arc::new(file),
            crc: crc32fast::Hasher::new(),
            body_len: 0,
            committed: false,
        })
    }

    /// Reads `len` body bytes at `offset` of an open object file (blocking).
    pub fn read_at(&self, file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.counters.read_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(Bytes::from(buf))
    }

    /// Lists every object file (blocking), reading the 256 directories on as
    /// many threads as there are cores; files that are not whole objects are
    /// deleted.
    /// With `keep_fields` false (`<Indexing>Disk`, which reads heads back when
    /// asked for) each head found is kept without its header fields, so the
    /// scan's peak memory is about what the index keeps.
    pub fn scan(&self, keep_fields: bool) -> Vec<Found> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        (0..=255u8)
                            .filter(|i| usize::from(*i) % threads == t)
                            .flat_map(|i| self.scan_dir(i, keep_fields))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        })
    }

    /// The object files of `objects/XX`.
    fn scan_dir(&self, i: u8, keep_fields: bool) -> Vec<Found> {
        let dir = self.path.join("objects").join(format!("{i:02x}"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let number = entry
                .file_name()
                .to_str()
                .and_then(|n| u64::from_str_radix(n, 16).ok());
            let object = number.and_then(|n| read_object(&path).map(|o| (n, o)));
            match object {
                Some((number, (key, mut head, footer))) => {
                    if !keep_fields {
                        head.headers = Fields::default();
                    }
                    found.push(Found {
                        number,
                        key,
                        head,
                        footer,
                    })
                }
                None => {
                    tracing::warn!(file = %path.display(), "not a whole cached object; deleted");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        found
    }

    /// Deletes every object file (blocking): `/command/mount` invalidates what
    /// the disk held.
    pub fn wipe(&self) {
        for i in 0..=255u8 {
            let dir = self.path.join("objects").join(format!("{i:02x}"));
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Waits (at most 10 s) until the deletions and head rewrites queued so far
    /// are done (blocking).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.chores.lock().send(Chore::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Waits until the disk's queued deletions and head rewrites are done, then
    /// flushes the file system and leaves the clean-stop marker (blocking).
    pub fn close(&self) {
        self.flush();
        if !self.is_normal() {
            return;
        }
        let marked = File::open(&self.path)
            .and_then(|d| nix::unistd::syncfs(d.as_raw_fd()).map_err(io::Error::from))
            .and_then(|()| File::create(self.path.join("clean")))
            .and_then(|f| f.sync_all());
        if let Err(e) = marked {
            tracing::warn!(disk = %self.path.display(), error = %e, "no clean-stop marker; objects are checked at the next start");
        }
    }

    /// Whether a file can be written, synced and deleted in `tmp/` (blocking):
    /// how a failed disk is tried again.
    pub fn probe(&self) -> bool {
        let path = self.path.join("tmp").join("probe");
        let ok = File::create(&path)
            .and_then(|mut f| f.write_all(b"kura").and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::remove_file(&path));
        ok.is_ok()
    }

    fn chore(&self, chore: Chore) {
        if matches!(chore, Chore::Rewrite { .. }) {
            self.rewrites.0.fetch_add(1, Ordering::AcqRel);
        }
        let _ = self.chores.lock().send(chore);
    }

    /// Reads the key, head and footer of object file `number` (blocking), after
    /// the head rewrites queued so far: what a file says is then its object's
    /// latest head. `None` when the file is gone or not a whole object.
    pub fn read_head(&self, number: u64) -> Option<(String, Head, Footer)> {
        if self.rewrites.0.load(Ordering::Acquire) != self.rewrites.1.load(Ordering::Acquire) {
            self.flush();
        }
        let found = read_object(&self.object_path(number))?;
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let len = u64::from(found.2.head_len) + FOOTER_LEN;
        self.counters.read_bytes.fetch_add(len, Ordering::Relaxed);
        Some(found)
    }

    /// Queues writing `head` over the head of object file `number`, whose
    /// footer is `footer`, counted in `io` (its vhost's).
    pub fn rewrite_head(
        &self,
        (number, footer): (u64, Footer),
        key: &str,
        head: &Head,
        io: &VhostIo,
    ) {
        let record = record::encode_head(key, head);
        let footer = Footer {
            head_len: record.len() as u32,
            head_crc: crc32fast::hash(&record),
            ..footer
        };
        io.add(FileIo::WriteCount, 1);
        io.add(FileIo::WriteSize, record.len() as u64 + FOOTER_LEN);
        self.chore(Chore::Rewrite {
            number,
            footer,
            record,
        });
    }

    /// Queues deleting object file `number`, counted in `io` (its vhost's).
    pub fn remove(&self, number: u64, io: &VhostIo) {
        io.add(FileIo::Delete, 1);
        self.chore(Chore::Unlink(number));
    }
}

/// An object file being written in `tmp/`: its body so far. Deleted when
/// dropped before [`TmpObject::commit`].
#[derive(Debug)]
pub struct TmpObject {
    /// The disk it is written on.
    disk: Arc<Disk>,
    /// The object number (its file name).
    number: u64,
    /// Where it is in `tmp/`.
    path: PathBuf,
    /// The file, shared with readers of the body written so far.
    file: Arc<File>,
    /// CRC-32 of the body so far.
    crc: crc32fast::Hasher,
    /// Body bytes written so far.
    body_len: u64,
    /// Whether it was renamed into `objects/`.
    committed: bool,
}

impl TmpObject {
    /// The file, for reading what was written (with `pread`).
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// The disk it is written on.
    pub fn disk(&self) -> &Arc<Disk> {
        &self.disk
    }

    /// Body bytes written so far.
    pub fn written(&self) -> u64 {
        self.body_len
    }

    /// Appends body bytes (blocking); they are in the file when it returns.
    pub fn append(&mut self, body: &[Bytes]) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(READ_CHUNK as usize, &*self.file);
        for chunk in body {
            self.crc.update(chunk);
            out.write_all(chunk)?;
        }
        out.flush()?;
        let len = body.iter().map(|c| c.len() as u64).sum::<u64>();
        self.body_len += len;
        self.disk.writing.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the file with the head and footer and renames it into `objects/`
    /// (blocking), counted in `io` (its vhost's) as one write of the file.
    pub fn commit(mut self, key: &str, head: &Head, io: Arc<VhostIo>) -> io::Result<DiskFile> {
        if !self.disk.is_normal() {
            return Err(io::Error::other("the disk is out of service"));
        }
        let head_record = record::encode_head(key, head);
        let footer = Footer {
            body_len: self.body_len,
            head_len: head_record.len() as u32,
            body_crc: self.crc.clone().finalize(),
            head_crc: crc32fast::hash(&head_record),
        };
        // Head and footer in one write.
        let mut tail = head_record;
        tail.extend_from_slice(&footer.encode());
        (&*self.file).write_all(&tail)?;
        std::fs::rename(&self.path, self.disk.object_path(self.number))?;
        self.committed = true;
        let disk = &self.disk.counters;
        disk.writes.fetch_add(1, Ordering::Relaxed);
        disk.written_bytes
            .fetch_add(footer.file_len(), Ordering::Relaxed);
        io.add(FileIo::Create, 1);
        io.add(FileIo::WriteCount, 1);
        io.add(FileIo::WriteSize, footer.file_len());
        Ok(DiskFile::new(
            self.disk.clone(),
            self.number,
            footer,
            true,
            io,
        ))
    }
}

impl Drop for TmpObject {
    fn drop(&mut self) {
        // Committed, the file is counted in `bytes` once it is indexed.
        self.disk
            .writing
            .fetch_sub(self.body_len, Ordering::Relaxed);
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The bytes a disk without `Quota` may hold on a file system of `total` bytes
/// with `avail` free, when the cache already holds `cached` there.
fn budget(total: u64, avail: u64, cached: u64) -> u64 {
    let reserve = (total / 100 * RESERVE_PERCENT).min(RESERVE_MAX);
    (avail + cached).saturating_sub(reserve)
}

/// Reads the footer and head of the object file at `path`.
fn read_object(path: &Path) -> Option<(String, Head, Footer)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut foot = [0u8; FOOTER_LEN as usize];
    file.read_exact_at(&mut foot, len.checked_sub(FOOTER_LEN)?)
        .ok()?;
    let footer = Footer::decode(&foot)?;
    if footer.file_len() != len {
        return None;
    }
    let mut rec = vec![0u8; footer.head_len as usize];
    file.read_exact_at(&mut rec, footer.body_len).ok()?;
    if crc32fast::hash(&rec) != footer.head_crc {
        return None;
    }
    let (key, head) = record::decode_head(&Bytes::from(rec))?;
    Some((key, head, footer))
}

/// The disk thread: deletions and head rewrites, in order.
fn chore_loop(disk: std::sync::Weak<Disk>, rx: mpsc::Receiver<Chore>) {
    for chore in rx {
        let Some(disk) = disk.upgrade() else { return };
        let result = match chore {
            Chore::Unlink(number) => match std::fs::remove_file(disk.object_path(number)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Chore::Rewrite {
                number,
                footer,
                record,
            } => {
                let done = rewrite(&disk.object_path(number), footer, &record);
                disk.rewrites.1.fetch_add(1, Ordering::AcqRel);
                done
            }
            Chore::Flush(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err(e) = result {
            disk.error("update", &e);
        }
    }
}

/// Replaces the head of an object file in place. A crash in between leaves a
/// file whose length disagrees with its footer, deleted by the next scan.
fn rewrite(path: &Path, footer: Footer, record: &[u8]) -> io::Result<()> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    file.set_len(footer.body_len)?;
    file.write_all_at(record, footer.body_len)?;
    file.write_all_at(&footer.encode(), footer.body_len + record.len() as u64)
}

/// A stored object's file. The file is deleted when the last holder lets go
/// after the index dropped the object, so a client still streaming an evicted
/// object finishes it.
#[derive(Debug)]
pub struct DiskFile {
    /// The disk holding it.
    pub disk: Arc<Disk>,
    /// Object number: the file name.
    pub number: u64,
    /// Its footer (body length and checksums).
    footer: Footer,
    /// Whether the body is known whole: true when written by this process or
    /// found after a clean stop; otherwise its checksum is checked once before
    /// it is first served.
    verified: AtomicBool,
    /// Set when the index dropped the object: the file goes with the last holder.
    doomed: AtomicBool,
    /// Where its vhost's file I/O is counted.
    io: Arc<VhostIo>,
}

impl DiskFile {
    /// A file of `disk` with this footer, its I/O counted in `io`.
    pub fn new(
        disk: Arc<Disk>,
        number: u64,
        footer: Footer,
        verified: bool,
        io: Arc<VhostIo>,
    ) -> DiskFile {
        DiskFile {
            disk,
            number,
            footer,
            verified: AtomicBool::new(verified),
            doomed: AtomicBool::new(false),
            io,
        }
    }

    /// Bytes the file takes: what its disk is charged.
    pub fn size(&self) -> u64 {
        self.footer.file_len()
    }

    /// Whether the body's checksum is known to hold.
    pub fn verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    /// Checks the body against its checksum (blocking); `false` when it does not
    /// match or cannot be read.
    pub fn verify(&self) -> bool {
        let check = || -> io::Result<bool> {
            let file = self.open()?;
            let mut crc = crc32fast::Hasher::new();
            let mut at = 0;
            while at < self.footer.body_len {
                let n = READ_CHUNK.min(self.footer.body_len - at);
                crc.update(&self.read_at(&file, at, n)?);
                at += n;
            }
            Ok(crc.finalize() == self.footer.body_crc)
        };
        let ok = match check() {
            Ok(ok) => ok,
            Err(e) => {
                self.disk.error("verify", &e);
                false
            }
        };
        if ok {
            self.verified.store(true, Ordering::Release);
        } else {
            tracing::warn!(file = %self.disk.object_path(self.number).display(), "torn object (checksum mismatch); deleted");
        }
        ok
    }

    /// Opens the file for reading (blocking).
    pub fn open(&self) -> io::Result<OpenFile> {
        let file = File::open(self.disk.object_path(self.number))?;
        self.io.add(FileIo::Open, 1);
        self.io.opened.fetch_add(1, Ordering::Relaxed);
        Ok(OpenFile {
            file,
            io: self.io.clone(),
        })
    }

    /// Reads `len` body bytes at `offset` of the file opened by [`DiskFile::open`] (blocking).
    pub fn read_at(&self, file: &OpenFile, offset: u64, len: u64) -> io::Result<Bytes> {
        let bytes = self.disk.read_at(&file.file, offset, len)?;
        self.io.add(FileIo::ReadCount, 1);
        self.io.add(FileIo::ReadSize, len);
        Ok(bytes)
    }

    /// Where its vhost's I/O is counted.
    pub fn io(&self) -> &Arc<VhostIo> {
        &self.io
    }

    /// Body bytes.
    pub fn body_len(&self) -> u64 {
        self.footer.body_len
    }

    /// Queues writing `head` over the file's head.
    pub fn rewrite_head(&self, key: &str, head: &Head) {
        self.disk
            .rewrite_head((self.number, self.footer), key, head, &self.io);
    }

    /// The index dropped the object: delete the file once nobody reads it.
    pub fn doom(&self) {
        self.doomed.store(true, Ordering::Release);
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        if self.doomed.load(Ordering::Acquire) {
            self.disk.remove(self.number, &self.io);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_quota_a_disk_keeps_5_percent_at_most_1_gib_free() {
        const GB: u64 = 1_000_000_000;
        // A small file system keeps 5 % of itself.
        assert_eq!(budget(10 * GB, 3 * GB, 0), 3 * GB - GB / 2);
        // What the cache holds counts as free for it.
        assert_eq!(budget(10 * GB, GB, 2 * GB), 3 * GB - GB / 2);
        // A large one keeps 1 GiB, even where 5 % of it is more than is free.
        assert_eq!(budget(252 * GB, 12 * GB, 0), 12 * GB - (1 << 30));
        // Less free than the reserve: nothing.
        assert_eq!(budget(10 * GB, GB / 4, 0), 0);
    }
}
