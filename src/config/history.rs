//! The configuration history (guide chapter 3, `<ConfigHistory>`; SNMP
//! `meta.conf`, SNMP.md 14): one record per configuration put in force, with
//! its files archived as `DATE_TIME_HASH.tgz`, remembered across restarts in
//! the state directory (`<state>/conf/`).
//!
//! A start or reload that puts in force the configuration already newest in
//! the history records nothing (the guide backs up "when changes are made");
//! an upload or restore always records, even of an identical configuration
//! (the guide: "it will be saved as a new configuration").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::{ConfFiles, Fingerprint};

/// Records kept when there is no state directory (archives then live in memory).
const KEPT_IN_MEMORY: usize = 100;

/// How a configuration came into force (`meta.conf.Type`, `/conf/history` `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfKind {
    /// Read when kurad started (1, `loaded`).
    Start = 1,
    /// Applied by `/conf/reload`, `kuractl reload` or SIGHUP (2, `modified`).
    Reload = 2,
    /// Uploaded through `/conf/upload` (3, `uploaded`).
    Upload = 3,
    /// Restored through `/conf/restore` (4, `restored`).
    Restore = 4,
}

impl ConfKind {
    /// The `type` word of `/conf/history`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfKind::Start => "loaded",
            ConfKind::Reload => "modified",
            ConfKind::Upload => "uploaded",
            ConfKind::Restore => "restored",
        }
    }

    fn from_number(n: u32) -> Option<ConfKind> {
        [
            ConfKind::Start,
            ConfKind::Reload,
            ConfKind::Upload,
            ConfKind::Restore,
        ]
        .into_iter()
        .find(|k| *k as u32 == n)
    }
}

/// One configuration that was in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfRecord {
    /// Sequence number, from 1, +1 per record.
    pub id: u32,
    /// When it came into force, unix seconds.
    pub time: u64,
    /// How it came into force.
    pub kind: ConfKind,
    /// Its files' size and hash.
    pub fingerprint: Fingerprint,
    /// Its archive (`meta.conf.Path`); `(memory)/NAME` without a state directory.
    pub path: String,
    /// kura version that applied it.
    pub version: String,
}

impl ConfRecord {
    /// The archive's file name, `DATE_TIME_HASH.tgz` in local time.
    pub fn archive_name(&self) -> String {
        format!(
            "{}_{}.tgz",
            local_time(self.time).format("%Y%m%d_%H%M%S"),
            self.fingerprint.sha1
        )
    }

    /// `conf-date` and `conf-time` as `/conf/history` shows them (local time).
    pub fn date_and_time(&self) -> (String, String) {
        let t = local_time(self.time);
        (
            t.format("%Y-%m-%d").to_string(),
            t.format("%H:%M:%S").to_string(),
        )
    }
}

fn local_time(unix: u64) -> chrono::DateTime<chrono::Local> {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .unwrap_or_default()
        .with_timezone(&chrono::Local)
}

/// Records and their archives, newest first.
#[derive(Debug)]
pub struct ConfHistory {
    /// Where the archives and the index are; `None`: in memory only.
    dir: Option<PathBuf>,
    /// Newest first.
    records: Vec<ConfRecord>,
    /// Archives by record id, when there is no directory.
    memory: HashMap<u32, Arc<Vec<u8>>>,
}

impl ConfHistory {
    /// The history kept in `state_dir/conf` (in memory when `None` or unusable).
    pub fn load(state_dir: Option<&Path>) -> ConfHistory {
        let dir = state_dir.map(|d| d.join("conf")).filter(|d| {
            std::fs::create_dir_all(d)
                .map_err(|e| tracing::warn!(dir = %d.display(), error = %e, "configuration archives kept in memory only"))
                .is_ok()
        });
        let text = dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("history")).ok())
            .unwrap_or_default();
        let records = text
            .lines()
            .filter_map(parse_line)
            .filter(|r| Path::new(&r.path).is_file())
            .collect();
        ConfHistory {
            dir,
            records,
            memory: HashMap::new(),
        }
    }

    /// Records `files` as put in force now (see the module comment for when a
    /// record is skipped), then drops what is older than `retention_days`.
    pub fn record(&mut self, kind: ConfKind, files: &ConfFiles, retention_days: u32) {
        let fingerprint = files.fingerprint();
        let unchanged = self
            .records
            .first()
            .is_some_and(|r| r.fingerprint == fingerprint);
        if unchanged && matches!(kind, ConfKind::Start | ConfKind::Reload) {
            return;
        }
        let mut record = ConfRecord {
            id: self
                .records
                .first()
                .map_or(1, |r| r.id.wrapping_add(1).max(1)),
            time: crate::procfs::unix_now(),
            kind,
            fingerprint,
            path: String::new(),
            version: crate::VERSION.to_string(),
        };
        let tgz = files.to_tgz(record.time);
        let on_disk = self.dir.as_ref().and_then(|dir| {
            let path = dir.join(record.archive_name());
            std::fs::write(&path, &tgz)
                .map_err(|e| tracing::warn!(file = %path.display(), error = %e, "cannot archive the configuration; it is kept in memory"))
                .ok()
                .map(|()| path.display().to_string())
        });
        record.path = on_disk.unwrap_or_else(|| {
            self.memory.insert(record.id, Arc::new(tgz));
            format!("(memory)/{}", record.archive_name())
        });
        tracing::info!(id = record.id, kind = kind.as_str(), hash = %record.fingerprint.sha1, archive = %record.path, "configuration archived");
        self.records.insert(0, record);
        self.prune(retention_days);
    }

    /// Drops records older than `retention_days`, their archives with them;
    /// the configuration in force is always kept.
    pub fn prune(&mut self, retention_days: u32) {
        let oldest = crate::procfs::unix_now().saturating_sub(u64::from(retention_days) * 86_400);
        let mut kept = 0;
        let mut drop = Vec::new();
        for (i, r) in std::mem::take(&mut self.records).into_iter().enumerate() {
            let in_memory = self.dir.is_none() || r.path.starts_with("(memory)");
            if i == 0 || (r.time >= oldest && (!in_memory || kept < KEPT_IN_MEMORY)) {
                kept += 1;
                self.records.push(r);
            } else {
                drop.push(r);
            }
        }
        for r in drop {
            self.memory.remove(&r.id);
            // Two records of one second and one hash share a file.
            if !r.path.starts_with("(memory)") && !self.records.iter().any(|k| k.path == r.path) {
                if let Err(e) = std::fs::remove_file(&r.path) {
                    tracing::warn!(file = %r.path, error = %e, "cannot remove an old configuration archive");
                }
            }
        }
        self.save();
    }

    /// The newest `n` records.
    pub fn recent(&self, n: usize) -> &[ConfRecord] {
        &self.records[..n.min(self.records.len())]
    }

    /// Every record, newest first.
    pub fn all(&self) -> &[ConfRecord] {
        &self.records
    }

    /// The record with `hash` (newest of them) or else with `id`; the guide
    /// gives the hash precedence when both are given.
    pub fn find(&self, hash: Option<&str>, id: Option<u32>) -> Option<&ConfRecord> {
        match hash {
            Some(h) => self
                .records
                .iter()
                .find(|r| r.fingerprint.sha1.eq_ignore_ascii_case(h)),
            None => self.records.iter().find(|r| Some(r.id) == id),
        }
    }

    /// The archive bytes of `record`.
    pub fn archive(&self, record: &ConfRecord) -> std::io::Result<Arc<Vec<u8>>> {
        match self.memory.get(&record.id) {
            Some(bytes) => Ok(bytes.clone()),
            None => std::fs::read(&record.path).map(Arc::new),
        }
    }

    fn save(&self) {
        let Some(dir) = &self.dir else { return };
        let text: String = self
            .records
            .iter()
            .filter(|r| !r.path.starts_with("(memory)"))
            .map(|r| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    r.id,
                    r.time,
                    r.kind as u32,
                    r.fingerprint.size,
                    r.fingerprint.sha1,
                    r.path,
                    r.version
                )
            })
            .collect();
        let file = dir.join("history");
        let tmp = file.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &file)) {
            tracing::warn!(file = %file.display(), error = %e, "cannot remember the configuration history");
        }
    }
}

fn parse_line(line: &str) -> Option<ConfRecord> {
    let f: Vec<&str> = line.split('\t').collect();
    let [id, time, kind, size, sha1, path, version] = f[..] else {
        return None;
    };
    Some(ConfRecord {
        id: id.parse().ok()?,
        time: time.parse().ok()?,
        kind: ConfKind::from_number(kind.parse().ok()?)?,
        fingerprint: Fingerprint {
            size: size.parse().ok()?,
            sha1: sha1.to_string(),
        },
        path: path.to_string(),
        version: version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(vhosts: &str) -> ConfFiles {
        ConfFiles::from_xml("<Server/>", vhosts)
    }

    #[test]
    fn records_and_archives_survive_a_restart_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = ConfHistory::load(Some(dir.path()));
        h.record(ConfKind::Start, &conf("<Vhosts/>"), 30);
        h.record(ConfKind::Reload, &conf("<Vhosts></Vhosts>"), 30);
        let h = ConfHistory::load(Some(dir.path()));
        let r = h.recent(10);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].id, r[0].kind), (2, ConfKind::Reload));
        assert_eq!((r[1].id, r[1].kind), (1, ConfKind::Start));
        assert_eq!(r[0].fingerprint, conf("<Vhosts></Vhosts>").fingerprint());
        let name = r[0].archive_name();
        assert!(r[0].path.ends_with(&name), "{}", r[0].path);
        assert!(name.ends_with(&format!("_{}.tgz", r[0].fingerprint.sha1)));
        let tgz = h.archive(&r[1]).unwrap();
        assert_eq!(ConfFiles::from_tgz(&tgz).unwrap(), conf("<Vhosts/>"));
        assert_eq!(h.recent(1).len(), 1);
    }

    #[test]
    fn an_unchanged_reload_records_nothing_but_a_restore_does() {
        let mut h = ConfHistory::load(None);
        h.record(ConfKind::Start, &conf("<Vhosts/>"), 30);
        h.record(ConfKind::Reload, &conf("<Vhosts/>"), 30);
        h.record(ConfKind::Start, &conf("<Vhosts/>"), 30);
        assert_eq!(h.all().len(), 1);
        h.record(ConfKind::Restore, &conf("<Vhosts/>"), 30);
        assert_eq!(h.all().len(), 2);
        assert_eq!(h.all()[0].kind, ConfKind::Restore);
        let hash = h.all()[0].fingerprint.sha1.to_lowercase();
        assert_eq!(h.find(Some(&hash), Some(1)).unwrap().id, 2);
        assert_eq!(h.find(None, Some(1)).unwrap().id, 1);
        assert!(h.find(None, Some(9)).is_none());
    }

    #[test]
    fn retention_drops_old_archives_but_keeps_the_one_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = ConfHistory::load(Some(dir.path()));
        h.record(ConfKind::Start, &conf("<Vhosts/>"), 30);
        h.record(ConfKind::Reload, &conf("<Vhosts></Vhosts>"), 30);
        let old = h.all()[1].path.clone();
        // Age the first record past the retention.
        h.records[1].time -= 31 * 86_400;
        h.prune(30);
        assert_eq!(h.all().len(), 1);
        assert!(!Path::new(&old).exists());
        h.records[0].time -= 31 * 86_400;
        h.prune(30);
        assert_eq!(h.all().len(), 1, "the configuration in force stays");
        assert!(Path::new(&h.all()[0].path).is_file());
    }
}
