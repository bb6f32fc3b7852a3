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
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Exchange, HistoryKind, Sample, VhostStats, Window};
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
}

impl Dir {
    /// Records a finished client exchange here and, with accumulation, in every ancestor.
    pub fn record(&self, e: &Exchange, result: CacheResult, bytes: u64) {
        let mut dir = Some(self);
        while let Some(d) = dir {
            d.stats.record(e);
            d.stats.record_result(result, bytes);
            dir = d.parent.as_deref();
        }
    }
}

/// The directories of one vhost.
pub struct DirTable {
    /// The settings the table was built for.
    pub policy: DirPolicy,
    /// Tracked directories by path; `/` is always there.
    dirs: RwLock<HashMap<String, Arc<Dir>>>,
    /// Whether the [`MAX_DIRS`] warning was logged.
    warned: std::sync::atomic::AtomicBool,
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
        });
        DirTable {
            policy,
            dirs: RwLock::new(HashMap::from([("/".to_string(), root)])),
            warned: Default::default(),
        }
    }

    /// The directory a request for `path` counts in, created on first use.
    pub fn dir_for(&self, path: &str) -> Arc<Dir> {
        let key = dir_key(path, self.policy.depth);
        if let Some(d) = self.dirs.read().get(key) {
            return d.clone();
        }
        let mut dirs = self.dirs.write();
        self.get_or_create(&mut dirs, key)
    }

    fn get_or_create(&self, dirs: &mut HashMap<String, Arc<Dir>>, key: &str) -> Arc<Dir> {
        if let Some(d) = dirs.get(key) {
            return d.clone();
        }
        let parent_key = parent_key(key).unwrap_or("/");
        if dirs.len() >= MAX_DIRS {
            if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
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
        let root_name = &dirs["/"].stats.name;
        let vhost = root_name.strip_suffix('/').unwrap_or(root_name);
        let dir = Arc::new(Dir {
            stats: VhostStats::with_history(&format!("{vhost}{key}"), HistoryKind::Short),
            parent,
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
        let all: Vec<Arc<Dir>> = self.dirs.read().values().cloned().collect();
        for d in &all {
            d.stats.fold(now);
        }
        drop(all);
        let idle = |d: &Arc<Dir>| {
            // Held only by the table: no request and no child directory refers to it.
            Arc::strong_count(d) == 1 && d.stats.idle_since(now) >= IDLE_SECS
        };
        let mut dirs = self.dirs.write();
        dirs.retain(|k, d| k == "/" || !idle(d));
    }

    /// `/` and every directory with client requests in the window, by path.
    pub fn windows(&self, w: Window) -> Vec<(String, Sample)> {
        let all: Vec<(String, Arc<Dir>)> = self
            .dirs
            .read()
            .iter()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        let mut out: Vec<(String, Sample)> = all
            .into_iter()
            .map(|(k, d)| (k, d.stats.window(w)))
            .filter(|(k, s)| {
                k == "/" || s.counts[super::counter::requests(super::counter::Side::Client)] > 0
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Directories tracked now, `/` included (never empty).
    pub fn tracked(&self) -> usize {
        self.dirs.read().len()
    }

    /// Bytes of history the directories hold.
    pub fn history_bytes(&self) -> usize {
        self.dirs
            .read()
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
        t.fold(1_800_000_001 + IDLE_SECS);
        assert_eq!(t.tracked(), 1, "only / stays");
    }
}
