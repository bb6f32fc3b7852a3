//! Per-directory client statistics of a vhost (`<Stats><DirDepth>` and
//! `<DirDepthAccum>`, guide chapter 10 "Client Statistics").
//!
//! A request counts in the directory its path falls in, cut at `DirDepth`
//! levels: with depth 1, `/img/a/b.jpg` counts in `/img/`, and `/x.html` in
//! `/`. With `DirDepthAccum` ON it counts in every ancestor up to `/` as well,
//! so `/` is the whole vhost. Each directory is a [`VhostStats`] with the short
//! rings only (the last second and 60 minutes), so every window and every
//! field reads as it does for a vhost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::{Counting, Exchange, HistoryKind, Sample, VhostStats, Window};
use crate::cache::CacheResult;
pub use crate::config::DirPolicy;

/// Directories tracked per vhost at most. The guide warns that deep settings
/// exhaust memory; past this, a new directory's traffic counts in its nearest
/// tracked ancestor (at worst `/`), and a warning is logged once.
pub const MAX_DIRS: usize = 1024;

/// A directory unused this long (every window already reads zero for it) is forgotten.
const IDLE_SECS: u64 = 61 * 60;

/// One tracked directory.
pub struct Dir {
    /// Its counters and windows (`name` is the path, ending in `/`).
    pub stats: VhostStats,
    /// The parent directory, when traffic accumulates upwards.
    parent: Option<Arc<Dir>>,
    /// Set while the fold considers forgetting it, and for good once forgotten:
    /// a request that finds it set takes the locked path (see [`DirTable::fold`]).
    retired: AtomicBool,
}

impl Dir {
    /// Records a finished client exchange here and, with accumulation, in every ancestor.
    pub fn record(&self, e: &Exchange, result: CacheResult, bytes: u64, counting: Counting) {
        let mut dir = Some(self);
        while let Some(d) = dir {
            d.stats.record_client(e, result, bytes, counting);
            dir = d.parent.as_deref();
        }
    }
}

/// The directories of one vhost.
pub struct DirTable {
    /// The settings the table was built for.
    pub policy: DirPolicy,
    /// The vhost's name (directory statistics are named `vhost` + path).
    vhost: String,
    /// Tracked directories by path; `/` is always there. Requests read it
    /// without a lock; a new directory or the fold's cleanup replaces it whole.
    dirs: ArcSwap<HashMap<String, Arc<Dir>>>,
    /// Serialises the writers of `dirs`.
    write: Mutex<()>,
    /// Whether the [`MAX_DIRS`] warning was logged.
    warned: AtomicBool,
}

/// The directory `path` (no query) counts in: its first `depth` directory levels.
pub fn dir_key(path: &str, depth: u32) -> &str {
    let mut end = 1; // just past the leading '/'
    for (level, (i, _)) in path.match_indices('/').skip(1).enumerate() {
        if level as u32 == depth {
            break;
        }
        end = i + 1;
    }
    if path.starts_with('/') {
        &path[..end]
    } else {
        "/"
    }
}

/// The parent of directory `key` (`/a/b/` → `/a/`); `None` for `/`.
fn parent_key(key: &str) -> Option<&str> {
    let trimmed = key.strip_suffix('/')?;
    trimmed.rfind('/').map(|i| &key[..=i])
}

impl DirTable {
    /// A table holding only `/`.
    pub fn new(vhost: &str, policy: DirPolicy) -> DirTable {
        let root = Arc::new(Dir {
            stats: VhostStats::with_history(&format!("{vhost}/"), HistoryKind::Short),
            parent: None,
            retired: AtomicBool::new(false),
        });
        DirTable {
            policy,
            vhost: vhost.to_string(),
            dirs: ArcSwap::from_pointee(HashMap::from([("/".to_string(), root)])),
            write: Mutex::new(()),
            warned: Default::default(),
        }
    }

    /// The directory a request for `path` counts in, created on first use.
    pub fn dir_for(&self, path: &str) -> Arc<Dir> {
        let key = dir_key(path, self.policy.depth);
        if let Some(d) = self.dirs.load().get(key).cloned() {
            // Cloned before the flag is read, so the fold either sees this reference
            // or this request sees the flag (both sides use SeqCst).
            if !d.retired.load(Ordering::SeqCst) {
                return d;
            }
        }
        let _writer = self.write.lock();
        let mut dirs = HashMap::clone(&self.dirs.load());
        let dir = self.get_or_create(&mut dirs, key);
        self.dirs.store(Arc::new(dirs));
        dir
    }

    fn get_or_create(&self, dirs: &mut HashMap<String, Arc<Dir>>, key: &str) -> Arc<Dir> {
        if let Some(d) = dirs.get(key) {
            return d.clone();
        }
        let parent_key = parent_key(key).unwrap_or("/");
        if dirs.len() >= MAX_DIRS {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limit = MAX_DIRS,
                    "directory statistics: too many directories; new ones count in their parent"
                );
            }
            return self.nearest_tracked(dirs, parent_key);
        }
        let parent = self
            .policy
            .accum
            .then(|| self.get_or_create(dirs, parent_key));
        let dir = Arc::new(Dir {
            stats: VhostStats::with_history(&format!("{}{key}", self.vhost), HistoryKind::Short),
            parent,
            retired: AtomicBool::new(false),
        });
        dirs.insert(key.to_string(), dir.clone());
        dir
    }

    fn nearest_tracked(&self, dirs: &HashMap<String, Arc<Dir>>, mut key: &str) -> Arc<Dir> {
        loop {
            if let Some(d) = dirs.get(key) {
                return d.clone();
            }
            key = parent_key(key).unwrap_or("/");
        }
    }

    /// Folds every directory, then forgets those idle for an hour that nothing refers to.
    pub fn fold(&self, now: u64) {
        let current = self.dirs.load_full();
        let mut any_idle = false;
        for (k, d) in current.iter() {
            d.stats.fold(now);
            any_idle |= k != "/" && d.stats.idle_since(now) >= IDLE_SECS;
        }
        drop(current);
        if !any_idle {
            return;
        }
        let _writer = self.write.lock();
        let mut dirs = HashMap::clone(&self.dirs.load());
        dirs.retain(|k, d| k == "/" || !Self::retire(d, now));
        self.dirs.store(Arc::new(dirs));
    }

    /// Marks an idle directory retired if nothing but the table refers to it
    /// (no request in flight, no child directory); the caller then drops it.
    fn retire(d: &Arc<Dir>, now: u64) -> bool {
        if d.stats.idle_since(now) < IDLE_SECS {
            return false;
        }
        // Flag first, count second: a request that cloned it before this is seen
        // in the count; one that clones it after sees the flag.
        d.retired.store(true, Ordering::SeqCst);
        // Two references: the published table and the copy being pruned.
        if Arc::strong_count(d) == 2 {
            return true;
        }
        d.retired.store(false, Ordering::SeqCst);
        false
    }

    /// `/` and every directory with client requests in the window, by path.
    pub fn windows(&self, w: Window) -> Vec<(String, Sample)> {
        let mut out: Vec<(String, Sample)> = self
            .dirs
            .load()
            .iter()
            .map(|(k, d)| (k.clone(), d.stats.window(w)))
            .filter(|(k, s)| {
                k == "/" || s.counts[super::counter::requests(super::counter::Side::Client)] > 0
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Directories tracked now, `/` included (never empty).
    pub fn tracked(&self) -> usize {
        self.dirs.load().len()
    }

    /// Bytes of history the directories hold.
    pub fn history_bytes(&self) -> usize {
        self.dirs
            .load()
            .values()
            .map(|d| d.stats.history_bytes())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::counter::{self, Side};
    use std::time::Duration;

    #[test]
    fn keys_cut_the_path_at_depth() {
        assert_eq!(dir_key("/img/a/b.jpg", 0), "/");
        assert_eq!(dir_key("/img/a/b.jpg", 1), "/img/");
        assert_eq!(dir_key("/img/a/b.jpg", 2), "/img/a/");
        assert_eq!(dir_key("/img/a/b.jpg", 9), "/img/a/");
        assert_eq!(dir_key("/img/a/", 9), "/img/a/");
        assert_eq!(dir_key("/x.html", 3), "/");
        assert_eq!(dir_key("/", 3), "/");
        assert_eq!(dir_key("*", 3), "/");
        assert_eq!(parent_key("/img/a/"), Some("/img/"));
        assert_eq!(parent_key("/img/"), Some("/"));
        assert_eq!(parent_key("/"), None);
    }

    fn get(t: &DirTable, path: &str) {
        t.dir_for(path).record(
            &Exchange {
                side: Side::Client,
                status: 200,
                parts: [10, 0, 5, 100],
                completed: true,
                time_res: Duration::from_micros(50),
                time_complete: Duration::from_micros(90),
            },
            CacheResult::Hit,
            100,
            Counting::Http,
        );
    }

    fn requests(t: &DirTable) -> Vec<(String, u64)> {
        t.windows(Window::LastSecond)
            .into_iter()
            .map(|(k, s)| (k, s.counts[counter::requests(Side::Client)]))
            .collect()
    }

    fn sample_traffic(accum: bool) -> DirTable {
        let t = DirTable::new("v", DirPolicy { depth: 2, accum });
        // The guide's picture: ten requests in each directory.
        for p in ["/img/", "/img/a/", "/img/b/", "/css/"] {
            for i in 0..10 {
                get(&t, &format!("{p}{i}.jpg"));
            }
        }
        get(&t, "/img/a/deeper/still.jpg");
        t.fold(1_800_000_001);
        t
    }

    #[test]
    fn without_accumulation_each_request_counts_once() {
        let t = sample_traffic(false);
        assert_eq!(
            requests(&t),
            [
                ("/".into(), 0),
                ("/css/".into(), 10),
                ("/img/".into(), 10),
                ("/img/a/".into(), 11),
                ("/img/b/".into(), 10)
            ]
        );
    }

    #[test]
    fn with_accumulation_parents_hold_their_subtrees() {
        let t = sample_traffic(true);
        assert_eq!(
            requests(&t),
            [
                ("/".into(), 41),
                ("/css/".into(), 10),
                ("/img/".into(), 31),
                ("/img/a/".into(), 11),
                ("/img/b/".into(), 10)
            ]
        );
    }

    #[test]
    fn idle_directories_are_forgotten_and_the_count_is_bounded() {
        let t = DirTable::new(
            "v",
            DirPolicy {
                depth: 1,
                accum: true,
            },
        );
        for i in 0..MAX_DIRS + 10 {
            get(&t, &format!("/d{i}/x"));
        }
        assert_eq!(t.tracked(), MAX_DIRS);
        t.fold(1_800_000_001);
        // Past the limit, traffic went to `/` (it accumulates there anyway).
        let all = t.windows(Window::LastSecond);
        assert_eq!(
            all[0].1.counts[counter::requests(Side::Client)],
            (MAX_DIRS + 10) as u64
        );
        // A request still holding its directory keeps it (and, accumulated, its parent).
        let held = t.dir_for("/d7/x");
        t.fold(1_800_000_001 + IDLE_SECS);
        assert_eq!(t.tracked(), 2, "/ and the held /d7/");
        assert!(Arc::ptr_eq(&held, &t.dir_for("/d7/y")));
        drop(held);
        t.fold(1_800_000_002 + IDLE_SECS);
        assert_eq!(t.tracked(), 1, "only / stays");
        // A forgotten directory comes back on its next request, empty.
        t.dir_for("/d7/x");
        assert_eq!(t.tracked(), 2);
    }
}
