//! What the cache holds (SNMP `cache.host.contents`, `cache.vhost.contents`,
//! `cache.view.contents`): objects, their bytes and memory, and how many fall
//! in each size class. The store keeps the counts as objects come and go; the
//! daemon publishes them here once a second, so the agent reads one snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// Size classes: smaller than 1 KB, 2 KB, ... 16 GB (25), then 16 GB and more.
pub const SIZE_CLASSES: usize = 26;

/// One entity's contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// Objects (`filesTotalCount`).
    pub files: u64,
    /// Body bytes of those objects (`filesTotalSize`).
    pub bytes: u64,
    /// Body bytes held in memory (`memory`).
    pub memory: u64,
    /// Objects per size class: class `i` holds sizes in `[2^(i-1), 2^i)` KB, class 0
    /// those under 1 KB, the last those of 16 GB and more. Each object is in one class.
    pub by_size: [u64; SIZE_CLASSES],
    /// Objects being fetched for the cache now (fills in progress).
    pub fills: u64,
    /// Object files open for reading now.
    pub opened: u64,
}

impl Contents {
    /// The size class of a body of `len` bytes.
    pub fn class_of(len: u64) -> usize {
        let kib = len / 1024;
        if kib == 0 {
            0
        } else {
            (kib.ilog2() as usize + 1).min(SIZE_CLASSES - 1)
        }
    }

    /// The guide's name of size class `i` (`Disk.Distribution`): `U1K` .. `U16G`, `O16G`.
    pub fn class_name(i: usize) -> String {
        let kib = 1u64 << i;
        match i {
            _ if i + 1 >= SIZE_CLASSES => "O16G".to_string(),
            0..10 => format!("U{kib}K"),
            10..20 => format!("U{}M", kib >> 10),
            _ => format!("U{}G", kib >> 20),
        }
    }

    /// Counts an object of `len` bytes in (`add`) or out, with `in_memory` of
    /// them held in memory.
    pub fn count(&mut self, len: u64, in_memory: u64, add: bool) {
        let class = &mut self.by_size[Self::class_of(len)];
        if add {
            self.files += 1;
            self.bytes += len;
            self.memory += in_memory;
            *class += 1;
        } else {
            self.files = self.files.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(len);
            self.memory = self.memory.saturating_sub(in_memory);
            *class = class.saturating_sub(1);
        }
    }

    /// Adds another entity's contents (views, the host).
    pub fn merge(&mut self, other: &Contents) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.memory += other.memory;
        self.fills += other.fills;
        self.opened += other.opened;
        for (a, b) in self.by_size.iter_mut().zip(other.by_size) {
            *a += b;
        }
    }
}

/// The latest published contents.
#[derive(Debug, Default)]
pub struct ContentsSnapshot {
    /// Everything the cache holds.
    pub host: Contents,
    /// By vhost name (a facade shows its target's objects).
    pub vhosts: HashMap<String, Contents>,
}

/// Where the agent reads the contents.
#[derive(Debug, Default)]
pub struct ContentsBoard {
    snapshot: ArcSwap<ContentsSnapshot>,
}

impl ContentsBoard {
    /// Replaces the snapshot.
    pub fn publish(&self, snapshot: ContentsSnapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The latest snapshot.
    pub fn get(&self) -> Arc<ContentsSnapshot> {
        self.snapshot.load_full()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn class_names_are_the_guides() {
        let names: Vec<String> = (0..super::SIZE_CLASSES)
            .map(super::Contents::class_name)
            .collect();
        assert_eq!(names[..3], ["U1K", "U2K", "U4K"]);
        assert_eq!(names[10], "U1M");
        assert_eq!(names[20], "U1G");
        assert_eq!(names[24..], ["U16G", "O16G"]);
    }

    use super::*;

    #[test]
    fn sizes_fall_in_the_guides_classes() {
        assert_eq!(Contents::class_of(0), 0);
        assert_eq!(Contents::class_of(1023), 0, "smaller than 1 KB");
        assert_eq!(Contents::class_of(1024), 1, "smaller than 2 KB");
        assert_eq!(Contents::class_of(2047), 1);
        assert_eq!(Contents::class_of(2048), 2, "smaller than 4 KB");
        assert_eq!(Contents::class_of((1 << 20) - 1), 10, "smaller than 1 MB");
        assert_eq!(Contents::class_of((16 << 30) - 1), 24, "smaller than 16 GB");
        assert_eq!(Contents::class_of(16 << 30), 25, "16 GB and more");
        assert_eq!(Contents::class_of(u64::MAX), 25);
        let mut c = Contents::default();
        c.count(5000, 5000, true);
        c.count(10, 0, true);
        c.count(10, 0, false);
        assert_eq!((c.files, c.bytes, c.memory), (1, 5000, 5000));
        assert_eq!(c.by_size[3], 1);
        assert_eq!(c.by_size.iter().sum::<u64>(), 1);
    }
}
