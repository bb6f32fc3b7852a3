//! `[vhostIndex]` and `[viewIndex]` assignment (SNMP.md 11): indexes start at 1
//! in load order, are remembered across reloads and restarts (a file in the
//! state directory), can be pinned with `StaticIndex`, are freed when a name is
//! deleted, and a new name takes the lowest free index. Deletion happens before
//! addition within one reload.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// The remembered indexes of one table.
#[derive(Debug)]
pub struct IndexMap {
    /// Where they are kept; `None`: in memory only.
    file: Option<PathBuf>,
    /// Name to index.
    by_name: HashMap<String, u32>,
}

impl IndexMap {
    /// Reads the remembered indexes from `file` (none when it does not exist yet).
    pub fn load(file: Option<PathBuf>) -> IndexMap {
        let mut by_name = HashMap::new();
        if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
            for line in text.lines() {
                if let Some((name, i)) = line.split_once('\t') {
                    if let Ok(i) = i.trim().parse::<u32>() {
                        by_name.insert(name.to_string(), i);
                    }
                }
            }
        }
        IndexMap { file, by_name }
    }

    /// Assigns an index to each of `names` (in load order, with their pins) and
    /// remembers the result. Returns index to name.
    pub fn assign(&mut self, names: &[(String, Option<u32>)]) -> BTreeMap<u32, String> {
        let wanted: HashSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        self.by_name.retain(|n, _| wanted.contains(n.as_str()));
        let mut rows: BTreeMap<u32, String> = BTreeMap::new();
        for (name, pin) in names {
            if let Some(p) = pin {
                rows.insert(*p, name.clone());
            }
        }
        let mut fresh = Vec::new();
        for (name, _) in names.iter().filter(|(_, p)| p.is_none()) {
            match self.by_name.get(name) {
                Some(i) if !rows.contains_key(i) => {
                    rows.insert(*i, name.clone());
                }
                _ => fresh.push(name),
            }
        }
        let mut next = 1;
        for name in fresh {
            while rows.contains_key(&next) {
                next += 1;
            }
            rows.insert(next, name.clone());
        }
        self.by_name = rows.iter().map(|(i, n)| (n.clone(), *i)).collect();
        self.save(&rows);
        rows
    }

    fn save(&self, rows: &BTreeMap<u32, String>) {
        let Some(file) = &self.file else { return };
        let text: String = rows.iter().map(|(i, n)| format!("{n}\t{i}\n")).collect();
        let tmp = file.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "cannot remember SNMP indexes; they last until restart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(&str, Option<u32>)]) -> Vec<(String, Option<u32>)> {
        list.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    fn rows(m: &BTreeMap<u32, String>) -> Vec<(u32, &str)> {
        m.iter().map(|(i, n)| (*i, n.as_str())).collect()
    }

    #[test]
    fn indexes_are_kept_freed_reused_and_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vhost-index");
        let mut m = IndexMap::load(Some(file.clone()));
        let r = m.assign(&names(&[("a", None), ("b", None), ("c", None)]));
        assert_eq!(rows(&r), [(1, "a"), (2, "b"), (3, "c")]);
        // b deleted and d added in one reload: deletion first, so d takes 2.
        let r = m.assign(&names(&[("a", None), ("c", None), ("d", None)]));
        assert_eq!(rows(&r), [(1, "a"), (2, "d"), (3, "c")]);
        // A restart remembers them, whatever the load order.
        let mut m = IndexMap::load(Some(file));
        let r = m.assign(&names(&[
            ("d", None),
            ("c", None),
            ("a", None),
            ("e", None),
        ]));
        assert_eq!(rows(&r), [(1, "a"), (2, "d"), (3, "c"), (4, "e")]);
        // A pin wins over a remembered index; the displaced vhost takes the lowest free one.
        let r = m.assign(&names(&[
            ("a", None),
            ("c", None),
            ("d", None),
            ("e", Some(1)),
        ]));
        assert_eq!(rows(&r), [(1, "e"), (2, "d"), (3, "c"), (4, "a")]);
    }
}
