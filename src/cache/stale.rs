//! `<SyncStale>` (chapter 18): every purge, expire, hard purge and cache clear
//! is written to `stale.log` in the state directory before it is answered, and
//! applied again at the next start when kurad did not stop cleanly. The disk
//! threads rewrite the heads of purged objects and delete dropped files after
//! the answer, so a `kill -9` in between would otherwise bring old copies back.
//! The log is emptied once what it holds is on the disks: at a clean stop, and
//! at start once its entries were applied again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;

use super::store::Invalidate;

/// The log's name in the state directory (the guide's `./stale.log`).
pub const FILE: &str = "stale.log";

/// Which objects an entry is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every object (`/command/cacheclear`).
    All,
    /// A purge target: the keys of vhost cache `cache_name` whose URL matches `url`.
    Target {
        /// The vhost's cache name (a facade's target vhost).
        cache_name: String,
        /// The URL or `*` pattern, shaped like a key's URL part.
        url: String,
        /// `<Collective>`: the pattern also matches URLs with a query string.
        collective: bool,
    },
}

/// One invalidation as it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix second it was made.
    pub at: u64,
    /// What it did (after the vhost's purge rules).
    pub action: Invalidate,
    /// What it did it to.
    pub scope: Scope,
}

impl Entry {
    /// The entry as a line of the log (tab-separated, without the newline).
    fn line(&self) -> String {
        let action = match self.action {
            Invalidate::Purge => "purge".to_string(),
            Invalidate::Expire => "expire".to_string(),
            Invalidate::ExpireAfter(d) => format!("expireafter={}", d.as_secs()),
            Invalidate::HardPurge => "hardpurge".to_string(),
        };
        match &self.scope {
            Scope::All => format!("{}\t{action}\tall", self.at),
            Scope::Target {
                cache_name,
                url,
                collective,
            } => format!(
                "{}\t{action}\ttarget\t{}\t{cache_name}\t{url}",
                self.at,
                u8::from(*collective)
            ),
        }
    }

    /// Reads a line of the log; `None` when it is not one.
    fn parse(line: &str) -> Option<Entry> {
        let mut f = line.split('\t');
        let at = f.next()?.parse().ok()?;
        let action = match f.next()? {
            "purge" => Invalidate::Purge,
            "expire" => Invalidate::Expire,
            "hardpurge" => Invalidate::HardPurge,
            a => Invalidate::ExpireAfter(Duration::from_secs(
                a.strip_prefix("expireafter=")?.parse().ok()?,
            )),
        };
        let scope = match f.next()? {
            "all" => Scope::All,
            "target" => {
                let collective = f.next()? == "1";
                let cache_name = f.next()?.to_string();
                let url = f.next()?.to_string();
                Scope::Target {
                    cache_name,
                    url,
                    collective,
                }
            }
            _ => return None,
        };
        f.next().is_none().then_some(Entry { at, action, scope })
    }

    /// The action to apply again at unix second `now`: an `expireafter` counts
    /// from when it was made.
    pub fn action_at(&self, now: u64) -> Invalidate {
        match self.action {
            Invalidate::ExpireAfter(d) => {
                match (self.at + d.as_secs()).checked_sub(now).filter(|s| *s > 0) {
                    Some(left) => Invalidate::ExpireAfter(Duration::from_secs(left)),
                    None => Invalidate::Expire,
                }
            }
            action => action,
        }
    }
}

/// The open log.
#[derive(Debug)]
pub struct StaleLog {
    /// Where it is.
    path: PathBuf,
    /// Opened for appending.
    file: Mutex<File>,
}

impl StaleLog {
    /// Opens (or creates) the log at `path`; returns it with the entries a
    /// previous run left (lines that are not entries are reported and skipped).
    pub fn open(path: &Path) -> io::Result<(StaleLog, Vec<Entry>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            match Entry::parse(line) {
                Some(e) => entries.push(e),
                // A line cut by the crash itself, or not ours.
                None => {
                    tracing::warn!(file = %path.display(), line = n + 1, "not a stale.log entry; skipped")
                }
            }
        }
        let log = StaleLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        };
        Ok((log, entries))
    }

    /// Adds an entry (one write, so a crash leaves whole lines and at most a cut
    /// last one). A failure is reported: that purge would not survive a crash.
    pub fn append(&self, entry: &Entry) {
        let mut line = entry.line();
        line.push('\n');
        if let Err(e) = self.file.lock().write_all(line.as_bytes()) {
            tracing::warn!(file = %self.path.display(), error = %e, "stale.log not written; this purge may not survive a crash");
        }
    }

    /// Empties the log: what it held is on the disks.
    pub fn clear(&self) {
        if let Err(e) = self.file.lock().set_len(0) {
            tracing::warn!(file = %self.path.display(), error = %e, "stale.log not emptied; its purges will be applied again at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_as_written_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let entries = [
            Entry {
                at: 1_764_000_000,
                action: Invalidate::ExpireAfter(Duration::from_secs(600)),
                scope: Scope::Target {
                    cache_name: "www.test".into(),
                    url: "/img/*".into(),
                    collective: true,
                },
            },
            Entry {
                at: 1_764_000_001,
                action: Invalidate::HardPurge,
                scope: Scope::All,
            },
        ];
        let (log, old) = StaleLog::open(&path).unwrap();
        assert!(old.is_empty());
        for e in &entries {
            log.append(e);
        }
        drop(log);
        // A crash in the middle of a write leaves a cut last line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1764000002\tpurge\ttar").unwrap();
        let (log, back) = StaleLog::open(&path).unwrap();
        assert_eq!(back, entries);
        log.clear();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        log.append(&entries[1]);
        assert_eq!(StaleLog::open(&path).unwrap().1, [entries[1].clone()]);
    }

    #[test]
    fn expireafter_counts_from_when_it_was_made() {
        let e = Entry {
            at: 1000,
            action: Invalidate::ExpireAfter(Duration::from_secs(60)),
            scope: Scope::All,
        };
        assert_eq!(
            e.action_at(1010),
            Invalidate::ExpireAfter(Duration::from_secs(50))
        );
        assert_eq!(e.action_at(1060), Invalidate::Expire);
        assert_eq!(e.action_at(2000), Invalidate::Expire);
    }
}
