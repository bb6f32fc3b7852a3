//! The configuration history SNMP `meta.conf` shows (SNMP.md 14): one record per
//! configuration put in force, newest first, remembered across restarts in the
//! state directory.

use std::path::PathBuf;

use super::Fingerprint;

/// How many records are kept (the largest `ConfCount`).
pub const KEPT: usize = 100;

/// How a configuration came into force (`meta.conf.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfKind {
    /// Read when kurad started (1).
    Start = 1,
    /// Applied by `/conf/reload`, `kuractl reload` or SIGHUP (2).
    Reload = 2,
}

/// One configuration that was in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfRecord {
    /// Sequence number, from 1.
    pub id: u32,
    /// When it came into force, unix seconds.
    pub time: u64,
    /// `Type`: 1 start, 2 reload (the numbers the guide gives).
    pub kind: u32,
    /// Its files' size and hash.
    pub fingerprint: Fingerprint,
    /// Where its files are.
    pub path: String,
    /// kura version that applied it.
    pub version: String,
}

/// Records, newest first.
#[derive(Debug)]
pub struct ConfHistory {
    /// Where they are kept; `None`: in memory only.
    file: Option<PathBuf>,
    /// Newest first, at most [`KEPT`].
    records: Vec<ConfRecord>,
}

impl ConfHistory {
    /// Reads the history from `file` (empty when it does not exist yet).
    pub fn load(file: Option<PathBuf>) -> ConfHistory {
        let text = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default();
        let records = text.lines().filter_map(parse_line).take(KEPT).collect();
        ConfHistory { file, records }
    }

    /// Adds a record for a configuration put in force now.
    pub fn record(&mut self, kind: ConfKind, fingerprint: &Fingerprint, path: &str) {
        let id = self
            .records
            .first()
            .map_or(1, |r| r.id.wrapping_add(1).max(1));
        self.records.insert(
            0,
            ConfRecord {
                id,
                time: crate::procfs::unix_now(),
                kind: kind as u32,
                fingerprint: fingerprint.clone(),
                path: path.to_string(),
                version: crate::VERSION.to_string(),
            },
        );
        self.records.truncate(KEPT);
        self.save();
    }

    /// The newest `n` records.
    pub fn recent(&self, n: usize) -> &[ConfRecord] {
        &self.records[..n.min(self.records.len())]
    }

    fn save(&self) {
        let Some(file) = &self.file else { return };
        let text: String = self
            .records
            .iter()
            .map(|r| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    r.id,
                    r.time,
                    r.kind,
                    r.fingerprint.size,
                    r.fingerprint.sha256,
                    r.path,
                    r.version
                )
            })
            .collect();
        let tmp = file.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file)) {
            tracing::warn!(file = %file.display(), error = %e, "cannot remember the configuration history");
        }
    }
}

fn parse_line(line: &str) -> Option<ConfRecord> {
    let f: Vec<&str> = line.split('\t').collect();
    let [id, time, kind, size, sha256, path, version] = f[..] else {
        return None;
    };
    Some(ConfRecord {
        id: id.parse().ok()?,
        time: time.parse().ok()?,
        kind: kind.parse().ok()?,
        fingerprint: Fingerprint {
            size: size.parse().ok()?,
            sha256: sha256.to_string(),
        },
        path: path.to_string(),
        version: version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("conf-history");
        let fp = Fingerprint::of(&["<Server/>", "<Vhosts/>"]);
        let mut h = ConfHistory::load(Some(file.clone()));
        h.record(ConfKind::Start, &fp, "/etc/kura");
        h.record(ConfKind::Reload, &fp, "/etc/kura");
        let h = ConfHistory::load(Some(file));
        let r = h.recent(10);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].id, r[0].kind), (2, 2));
        assert_eq!((r[1].id, r[1].kind), (1, 1));
        assert_eq!(r[0].fingerprint.size, 18);
        assert_eq!(r[0].fingerprint.sha256.len(), 64);
        assert_eq!(h.recent(1).len(), 1);
    }
}
