//! Per-`<Disk>` figures (guide chapter 10 `System.Storage.Disk`, chapter 11
//! `diskInfo` and `diskPerf`): the block-device counters of the device holding
//! each configured directory, from /proc/diskstats once a second into the same
//! rings as the system figures, and the directory's file-system usage (statvfs).
//!
//! Counters become per-second deltas, so a window's value is a per-second mean
//! (`MONITORING.md` 2); I/Os in progress is a gauge, sampled (6). A directory on a
//! device /proc/diskstats does not list (overlayfs, tmpfs) has zero counters.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::procfs::read;

use super::{Ring, Sample, Window};

/// The counters /proc/diskstats gives per device (its fields 4-14), in that order,
/// which is also the order of the `diskPerf` columns .2-.12 and of the JSON members
/// `Read` .. `IOWeightedTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskField {
    /// Reads completed.
    Reads,
    /// Adjacent reads merged into one.
    ReadsMerged,
    /// Sectors read (512 bytes each, whatever the device's sector size).
    SectorsRead,
    /// Milliseconds spent reading.
    ReadMillis,
    /// Writes completed.
    Writes,
    /// Adjacent writes merged into one.
    WritesMerged,
    /// Sectors written.
    SectorsWritten,
    /// Milliseconds spent writing.
    WriteMillis,
    /// I/Os in progress (a gauge, not a counter).
    IoInProgress,
    /// Milliseconds the device was busy.
    IoMillis,
    /// Milliseconds busy weighted by the I/Os in flight.
    IoWeightedMillis,
}

impl DiskField {
    /// Every field, in /proc/diskstats (and `diskPerf`, and JSON) order.
    pub const ALL: [DiskField; DISK_N] = [
        DiskField::Reads,
        DiskField::ReadsMerged,
        DiskField::SectorsRead,
        DiskField::ReadMillis,
        DiskField::Writes,
        DiskField::WritesMerged,
        DiskField::SectorsWritten,
        DiskField::WriteMillis,
        DiskField::IoInProgress,
        DiskField::IoMillis,
        DiskField::IoWeightedMillis,
    ];
}

/// Number of values kept per disk.
pub const DISK_N: usize = 11;

/// A device number, major and minor, as /proc/diskstats writes it.
type Dev = (u64, u64);

/// One device's cumulative values, in [`DiskField::ALL`] order.
type Counters = [u64; DISK_N];

/// Every device of a /proc/diskstats text. Lines too short to hold the eleven
/// values (there are none on kernels since 2.6) are skipped.
fn parse_diskstats(text: &str) -> HashMap<Dev, Counters> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dev = (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?);
            let values = f.get(3..3 + DISK_N)?;
            let mut c = [0u64; DISK_N];
            for (dst, v) in c.iter_mut().zip(values) {
                *dst = v.parse().ok()?;
            }
            Some((dev, c))
        })
        .collect()
}

/// The second's values from two cumulative readings: counter differences (0 when
/// a counter went backwards, as a 32-bit one wraps) and the gauge as read now.
fn delta(prev: &Counters, now: &Counters) -> Counters {
    let mut d = [0u64; DISK_N];
    for (f, dst) in DiskField::ALL.into_iter().zip(d.iter_mut()) {
        let i = f as usize;
        *dst = match f {
            DiskField::IoInProgress => now[i],
            _ => now[i].saturating_sub(prev[i]),
        };
    }
    d
}

/// A disk's space and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    /// The directory as configured.
    pub path: PathBuf,
    /// Size of the file system holding it, bytes (`df` Size).
    pub total_bytes: u64,
    /// Bytes in use on that file system (`df` Used).
    pub used_bytes: u64,
    /// Bytes an unprivileged writer may still use (`df` Avail); `used + free` falls
    /// short of `total` by the root reserve.
    pub free_bytes: u64,
    /// `Normal`; `Invalid` when the directory is missing or unreadable or the
    /// cache took the disk out after errors; `Unmounted` when the administrator
    /// did (`/command/unmount`).
    pub status: &'static str,
}

/// Looks at a directory now: its usage, and the device holding it when it is usable.
fn probe(path: &Path) -> (Option<Dev>, DiskUsage) {
    let invalid = DiskUsage {
        path: path.to_path_buf(),
        total_bytes: 0,
        used_bytes: 0,
        free_bytes: 0,
        status: "Invalid",
    };
    let dev = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => (
            nix::sys::stat::major(m.dev()),
            nix::sys::stat::minor(m.dev()),
        ),
        _ => return (None, invalid),
    };
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => (
            Some(dev),
            DiskUsage {
                total_bytes: s.blocks() * s.fragment_size(),
                used_bytes: (s.blocks() - s.blocks_free()) * s.fragment_size(),
                free_bytes: s.blocks_available() * s.fragment_size(),
                status: "Normal",
                ..invalid
            },
        ),
        Err(_) => (None, invalid),
    }
}

/// One configured disk's history.
#[derive(Debug)]
struct Disk {
    /// The directory as configured (the key that survives a reload).
    path: PathBuf,
    /// The latest usage.
    usage: DiskUsage,
    /// The cache's word on the disk (`None` while it has none: Memory-Only
    /// monitoring, or before the first report).
    cache_state: Option<&'static str>,
    /// The device and its cumulative counters at the last sample; `None` before
    /// the first, which only sets this baseline.
    last: Option<(Option<Dev>, Counters)>,
    /// Last sampled second (unix), to ignore a second sampled twice.
    last_sec: Option<u64>,
    /// The last 60 seconds.
    seconds: Ring<DISK_N>,
    /// The last 60 completed minutes.
    minutes: Ring<DISK_N>,
}

impl Disk {
    fn new(path: &Path, usage: DiskUsage) -> Disk {
        Disk {
            path: path.to_path_buf(),
            usage,
            cache_state: None,
            last: None,
            last_sec: None,
            seconds: Ring::new(1, 60, false),
            minutes: Ring::new(60, 60, false),
        }
    }

    /// Adds second `sec` from the device's cumulative counters (zeros when it has none).
    fn record(&mut self, sec: u64, dev: Option<Dev>, now: Counters) {
        if self.last_sec.is_some_and(|l| sec <= l) {
            return;
        }
        self.last_sec = Some(sec);
        let Some((prev_dev, prev)) = self.last.replace((dev, now)) else {
            return;
        };
        let mut s = Sample::<DISK_N>::empty(sec);
        s.seconds = 1;
        // Another device now holds the directory (a mount came or went): its
        // counters say nothing about this second, so only the gauge is kept.
        s.counts = delta(if prev_dev == dev { &prev } else { &now }, &now);
        self.seconds.push_second(sec, &s);
        self.minutes.push_second(sec, &s);
    }
}

/// Every configured disk, in `<Disk>` order.
#[derive(Debug, Default)]
pub struct DiskStats {
    /// Position `i` is SNMP `diskIndex` `i + 1`.
    disks: Mutex<Vec<Disk>>,
}

impl DiskStats {
    /// Makes `paths` the disks, in order. A path that was configured before keeps
    /// its history; the others start afresh, and dropped ones are forgotten.
    pub fn install<'a>(&self, paths: impl IntoIterator<Item = &'a Path>) {
        // Probed before locking, so readers never wait on the file system; a new disk
        // has its usage at once, its counters from the second sample on.
        let probed: Vec<(&Path, DiskUsage)> = paths.into_iter().map(|p| (p, probe(p).1)).collect();
        let mut disks = self.disks.lock();
        let mut old = std::mem::take(&mut *disks);
        *disks = probed
            .into_iter()
            .map(|(p, usage)| match old.iter().position(|d| d.path == p) {
                Some(i) => old.swap_remove(i),
                None => Disk::new(p, usage),
            })
            .collect();
    }

    /// Samples every disk for the second ending at `now` (unix seconds): one read of
    /// /proc/diskstats, and a stat and statvfs per directory.
    pub fn sample(&self, now: u64) {
        let paths: Vec<PathBuf> = self.disks.lock().iter().map(|d| d.path.clone()).collect();
        if paths.is_empty() {
            return;
        }
        let devices = parse_diskstats(&read("/proc/diskstats"));
        // The file-system calls happen outside the lock, so readers never wait on them.
        let probed: Vec<(Option<Dev>, DiskUsage)> = paths.iter().map(|p| probe(p)).collect();
        let sec = now.saturating_sub(1);
        let mut disks = self.disks.lock();
        for (path, (dev, usage)) in paths.iter().zip(probed) {
            // A reload may have changed the list meanwhile: match by path.
            if let Some(d) = disks.iter_mut().find(|d| &d.path == path) {
                let counters = dev
                    .and_then(|dev| devices.get(&dev))
                    .copied()
                    .unwrap_or_default();
                d.record(sec, dev, counters);
                d.usage = usage;
            }
        }
    }

    /// Number of configured disks (SNMP `diskCount`).
    pub fn count(&self) -> usize {
        self.disks.lock().len()
    }

    /// Disk `index0`'s per-second values summed over a window (divide by
    /// `seconds` for the mean); `None` when there is no such disk.
    pub fn window(&self, index0: usize, w: Window) -> Option<Sample<DISK_N>> {
        let disks = self.disks.lock();
        let d = disks.get(index0)?;
        Some(match w {
            Window::LastSecond => d.seconds.window(1, false),
            Window::Minutes(m) => d.minutes.window(usize::from(m), false),
        })
    }

    /// Disk `index0`'s latest usage and state; `None` when there is no such disk.
    /// A directory that cannot be read is Invalid whatever the cache says.
    pub fn usage(&self, index0: usize) -> Option<DiskUsage> {
        self.disks.lock().get(index0).map(|d| {
            let mut usage = d.usage.clone();
            if let (Some(state), "Normal") = (d.cache_state, usage.status) {
                usage.status = state;
            }
            usage
        })
    }

    /// Records the cache's state of the disk configured as `path` (its
    /// `Normal`, `Invalid` or `Unmounted`).
    pub fn set_cache_state(&self, path: &Path, state: &'static str) {
        if let Some(d) = self.disks.lock().iter_mut().find(|d| d.path == path) {
            d.cache_state = Some(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two readings a second apart, as a 6.x kernel writes them (with the discard
    /// and flush fields after the eleven kept ones).
    const BEFORE: &str = "\
 254       0 vda 952832 33770 37875186 1000254 71867 91133 70536672 480302 0 121640 1521918 53293 65 44838552 39971 2224 1389
 254       1 vda1 952000 33000 37800000 1000000 71000 91000 70500000 480000 0 121000 1521000 0 0 0 0 0 0
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8       0 short 1 2 3
";
    const AFTER: &str = "\
 254       0 vda 952855 33770 37875530 1000371 71891 91226 70537608 480558 2 121813 1522291 53293 65 44838552 39971 2224 1389
 254       1 vda1 952010 33001 37800100 1000010 71000 91000 70500000 480000 1 121000 1521000 0 0 0 0 0 0
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn diskstats_lines_give_eleven_counters_per_device() {
        let t = parse_diskstats(BEFORE);
        assert_eq!(t.len(), 3, "the short line is skipped");
        assert_eq!(
            t[&(254, 0)],
            [
                952832, 33770, 37875186, 1000254, 71867, 91133, 70536672, 480302, 0, 121640,
                1521918
            ]
        );
        assert_eq!(t[&(7, 0)], [0; DISK_N]);
        assert!(parse_diskstats("").is_empty());
    }

    #[test]
    fn deltas_are_per_second_and_in_progress_is_sampled() {
        let (b, a) = (parse_diskstats(BEFORE), parse_diskstats(AFTER));
        // The guide's /cache1 example is exactly this second.
        assert_eq!(
            delta(&b[&(254, 0)], &a[&(254, 0)]),
            [23, 0, 344, 117, 24, 93, 936, 256, 2, 173, 373]
        );
        // A counter that went backwards counts nothing rather than wrapping around.
        assert_eq!(
            delta(&a[&(254, 0)], &b[&(254, 0)]),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn windows_are_sums_of_seconds_after_a_baseline() {
        let t0 = 30_000_000 * 60; // a minute boundary
        let path = Path::new("/nonexistent/kura-disk");
        let mut d = Disk::new(path, probe(path).1);
        let vda = Some((254, 0));
        let (b, a) = (parse_diskstats(BEFORE), parse_diskstats(AFTER));
        d.record(t0 - 1, vda, b[&(254, 0)]);
        assert_eq!(
            d.seconds.window(1, false).seconds,
            0,
            "the first reading is a baseline"
        );
        d.record(t0, vda, a[&(254, 0)]);
        d.record(t0, vda, a[&(254, 0)]); // the same second twice counts once
        let last = d.seconds.window(1, false);
        assert_eq!((last.start, last.seconds), (t0, 1));
        assert_eq!(last.counts[DiskField::Reads as usize], 23);
        // Then 59 idle seconds with one I/O in flight complete the minute.
        let mut idle = a[&(254, 0)];
        idle[DiskField::IoInProgress as usize] = 1;
        for s in 1..60 {
            d.record(t0 + s, vda, idle);
        }
        let m = d.minutes.window(1, false);
        assert_eq!(m.seconds, 60);
        assert_eq!(m.counts[DiskField::SectorsWritten as usize], 936);
        assert_eq!(m.counts[DiskField::IoInProgress as usize], 2 + 59);
        // The directory moves to another device: no counter jump, the gauge stays.
        d.record(t0 + 60, Some((254, 1)), b[&(254, 1)]);
        let moved = d.seconds.window(1, false);
        assert_eq!(moved.counts[DiskField::Reads as usize], 0);
        assert_eq!(moved.counts[DiskField::IoInProgress as usize], 0);
    }

    #[test]
    fn usage_is_what_df_reports_and_a_missing_path_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let stats = DiskStats::default();
        stats.install([dir.path(), missing.as_path()]);
        assert_eq!(stats.count(), 2);
        let u = stats.usage(0).unwrap();
        assert_eq!((u.path.as_path(), u.status), (dir.path(), "Normal"));
        let df = std::process::Command::new("df")
            .args(["-B1", "--output=size,used,avail"])
            .arg(dir.path())
            .output()
            .expect("df (coreutils)");
        let out = String::from_utf8_lossy(&df.stdout);
        let v: Vec<u64> = out
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(u.total_bytes, v[0], "df: {out}");
        // Other processes write meanwhile: allow 64 MiB of drift.
        assert!(u.used_bytes.abs_diff(v[1]) < 64 << 20, "{u:?} df: {out}");
        assert!(u.free_bytes.abs_diff(v[2]) < 64 << 20, "{u:?} df: {out}");
        assert!(u.used_bytes + u.free_bytes <= u.total_bytes);

        let m = stats.usage(1).unwrap();
        assert_eq!(
            (m.status, m.total_bytes, m.used_bytes, m.free_bytes),
            ("Invalid", 0, 0, 0)
        );
        assert_eq!(stats.usage(2), None);
        assert_eq!(stats.window(2, Window::LastSecond), None);
        // A missing directory is sampled like any other, with zero counters.
        stats.sample(1_000);
        stats.sample(1_001);
        let w = stats.window(1, Window::LastSecond).unwrap();
        assert_eq!((w.seconds, w.counts), (1, [0; DISK_N]));
    }

    #[test]
    fn a_reload_keeps_the_history_of_disks_that_stay() {
        let stats = DiskStats::default();
        let (a, b, c) = (
            Path::new("/kura/a"),
            Path::new("/kura/b"),
            Path::new("/kura/c"),
        );
        stats.install([a, b]);
        stats.sample(1_000);
        stats.sample(1_001);
        assert_eq!(stats.window(1, Window::LastSecond).unwrap().seconds, 1);
        stats.install([c, b]);
        assert_eq!(stats.count(), 2);
        assert_eq!(stats.usage(0).unwrap().path, c);
        assert_eq!(stats.window(0, Window::LastSecond).unwrap().seconds, 0);
        assert_eq!(
            stats.window(1, Window::LastSecond).unwrap().seconds,
            1,
            "b kept its history"
        );
    }
}
