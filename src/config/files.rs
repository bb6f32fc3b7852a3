//! One configuration as the files it is made of: `server.xml`, `vhosts.xml`
//! and `svc/<vhost>/<file>.txt`. kurad reads every file once into this
//! snapshot, then validates it, puts it in force, archives it
//! (`DATE_TIME_HASH.tgz`), serves it on `/conf/...` and restores it, so the
//! hash, the archive and the running configuration are the same bytes even
//! when an operator edits a file while a reload runs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha1::Digest;

use super::error::{ConfigError, ConfigErrors};
use super::schema;

/// The global configuration file.
pub const SERVER_XML: &str = "server.xml";
/// The virtual host configuration file.
pub const VHOSTS_XML: &str = "vhosts.xml";
/// The largest archive accepted, uncompressed (a guard against gzip bombs; real
/// configurations are kilobytes).
pub const MAX_ARCHIVE_BYTES: u64 = 64 << 20;

/// Why an archive is not a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not gzip, not tar, or truncated.
    #[error("not a gzip-compressed tar archive: {0}")]
    Format(std::io::Error),
    /// An entry that is not a configuration file (or an unsafe path).
    #[error(
        "{0}: a configuration archive holds only server.xml, vhosts.xml and svc/<vhost>/<file>.txt"
    )]
    Unexpected(String),
    /// A file that is not UTF-8 text.
    #[error("{0}: not UTF-8 text")]
    NotText(String),
    /// `server.xml` or `vhosts.xml` is missing.
    #[error("the archive has no {0}")]
    Missing(&'static str),
    /// Over [`MAX_ARCHIVE_BYTES`].
    #[error("the archive holds more than {} MiB", MAX_ARCHIVE_BYTES >> 20)]
    TooLarge,
}

/// Size and SHA-1 of a configuration (the guide's `size` and `hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Bytes of all files.
    pub size: u64,
    /// SHA-1 over every file (path and text, in path order), upper-case hex
    /// as the guide prints it.
    pub sha1: String,
}

/// The files of one configuration, by path relative to the configuration directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfFiles {
    /// Relative path to text; sorted, so the hash does not depend on reading order.
    files: BTreeMap<String, String>,
}

impl ConfFiles {
    /// Just the two XML files (the embedded demo, tests).
    pub fn from_xml(server_xml: &str, vhosts_xml: &str) -> ConfFiles {
        let mut files = BTreeMap::new();
        files.insert(SERVER_XML.to_string(), server_xml.to_string());
        files.insert(VHOSTS_XML.to_string(), vhosts_xml.to_string());
        ConfFiles { files }
    }

    /// Reads the configuration files of `dir`; the error names each file that cannot be read.
    pub fn read_dir(dir: &Path) -> Result<ConfFiles, ConfigErrors> {
        let mut files = BTreeMap::new();
        let mut errors = Vec::new();
        let mut read = |rel: String| match std::fs::read_to_string(dir.join(&rel)) {
            Ok(text) => {
                files.insert(rel, text);
            }
            Err(e) => errors.push(ConfigError::file(
                dir.join(&rel).display().to_string(),
                format!("cannot read: {e}"),
            )),
        };
        read(SERVER_XML.to_string());
        read(VHOSTS_XML.to_string());
        for vhost in svc_dirs(dir) {
            for file in &schema::schema().text_files {
                let rel = format!("svc/{vhost}/{file}");
                if dir.join(&rel).is_file() {
                    read(rel);
                }
            }
        }
        if errors.is_empty() {
            Ok(ConfFiles { files })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The text of `rel` (`server.xml`, `svc/<vhost>/ttl.txt`...).
    pub fn get(&self, rel: &str) -> Option<&str> {
        self.files.get(rel).map(String::as_str)
    }

    /// server.xml (empty when absent; [`ConfFiles::from_tgz`] and
    /// [`ConfFiles::read_dir`] never produce a snapshot without it).
    pub fn server_xml(&self) -> &str {
        self.get(SERVER_XML).unwrap_or_default()
    }

    /// vhosts.xml, as [`ConfFiles::server_xml`].
    pub fn vhosts_xml(&self) -> &str {
        self.get(VHOSTS_XML).unwrap_or_default()
    }

    /// Every relative path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// A copy with `rel` replaced by `text` (the single-file upload).
    pub fn with(&self, rel: &str, text: String) -> ConfFiles {
        let mut files = self.files.clone();
        files.insert(rel.to_string(), text);
        ConfFiles { files }
    }

    /// Size and hash.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = sha1::Sha1::new();
        for (path, text) in &self.files {
            // Lengths delimit the fields, so no two file sets hash the same bytes.
            h.update((path.len() as u64).to_be_bytes());
            h.update(path.as_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        Fingerprint {
            size: self.files.values().map(|t| t.len() as u64).sum(),
            sha1: h.finalize().iter().map(|b| format!("{b:02X}")).collect(),
        }
    }

    /// The files as a gzip-compressed tar, every entry dated `mtime` (unix seconds).
    pub fn to_tgz(&self, mtime: u64) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (path, text) in &self.files {
            let mut header = tar::Header::new_ustar();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            // Writing to a Vec cannot fail, and paths were checked when read.
            tar.append_data(&mut header, path, text.as_bytes())
                .expect("in-memory tar");
        }
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .expect("in-memory gzip")
    }

    /// Reads an archive made by [`ConfFiles::to_tgz`] or by hand
    /// (`tar czf conf.tgz -C /etc/kura .`, or with one top directory).
    pub fn from_tgz(bytes: &[u8]) -> Result<ConfFiles, ArchiveError> {
        let gz = flate2::read::GzDecoder::new(bytes).take(MAX_ARCHIVE_BYTES + 1);
        let mut archive = tar::Archive::new(gz);
        let mut entries = Vec::new();
        let mut total = 0u64;
        for entry in archive.entries().map_err(ArchiveError::Format)? {
            let mut entry = entry.map_err(ArchiveError::Format)?;
            let kind = entry.header().entry_type();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() {
                return Err(ArchiveError::Unexpected(name));
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(ArchiveError::Format)?;
            total += data.len() as u64;
            if total > MAX_ARCHIVE_BYTES {
                return Err(ArchiveError::TooLarge);
            }
            let name = name.trim_start_matches("./").to_string();
            let text = String::from_utf8(data).map_err(|_| ArchiveError::NotText(name.clone()))?;
            entries.push((name, text));
        }
        // An archive of the directory itself (`tar czf x.tgz kura/`) has one top level.
        let top = if entries.iter().any(|(n, _)| n == SERVER_XML) {
            String::new()
        } else {
            entries
                .iter()
                .find_map(|(n, _)| {
                    n.strip_suffix(SERVER_XML)
                        .filter(|p| p.matches('/').count() == 1)
                })
                .unwrap_or_default()
                .to_string()
        };
        let mut files = BTreeMap::new();
        for (name, text) in entries {
            let rel = name
                .strip_prefix(top.as_str())
                .filter(|rel| is_conf_path(rel))
                .ok_or_else(|| ArchiveError::Unexpected(name.clone()))?;
            files.insert(rel.to_string(), text);
        }
        for required in [SERVER_XML, VHOSTS_XML] {
            if !files.contains_key(required) {
                return Err(ArchiveError::Missing(required));
            }
        }
        Ok(ConfFiles { files })
    }

    /// Writes the files into `dir` and removes configuration files the snapshot
    /// does not have, so `dir` then reads back as exactly this configuration.
    /// Each file is replaced by rename, so a reader never sees half a file.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        for (rel, text) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension("kura-tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)?;
        }
        let stale = ConfFiles::read_dir(dir)
            .map(|on_disk| on_disk.files)
            .unwrap_or_default();
        for rel in stale.keys().filter(|rel| !self.files.contains_key(*rel)) {
            std::fs::remove_file(dir.join(rel))?;
        }
        Ok(())
    }
}

/// Vhost directories under `dir/svc`.
fn svc_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("svc")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Whether `rel` names a configuration file: the two XML files or a documented
/// `svc/<vhost>/<file>.txt` (never a path that leaves the directory).
fn is_conf_path(rel: &str) -> bool {
    if rel == SERVER_XML || rel == VHOSTS_XML {
        return true;
    }
    let parts: Vec<&str> = rel.split('/').collect();
    matches!(parts[..], ["svc", vhost, file]
        if !vhost.is_empty() && vhost != "." && vhost != ".."
            && schema::schema().text_files.contains(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConfFiles {
        ConfFiles::from_xml("<Server/>", "<Vhosts/>").with("svc/a.com/ttl.txt", "x\n".into())
    }

    #[test]
    fn archive_round_trips_and_the_hash_ignores_the_date() {
        let files = sample();
        let tgz = files.to_tgz(1_700_000_000);
        assert_eq!(ConfFiles::from_tgz(&tgz).unwrap(), files);
        assert_ne!(tgz, files.to_tgz(1_800_000_000));
        let fp = files.fingerprint();
        assert_eq!(fp.size, 9 + 9 + 2);
        assert_eq!(fp.sha1.len(), 40);
        assert!(fp
            .sha1
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_ne!(
            fp,
            ConfFiles::from_xml("<Server/>", "<Vhosts/>").fingerprint()
        );
    }

    /// A tgz written entry by entry with the names as given (even unsafe ones,
    /// which `tar::Builder::append_data` would refuse to write).
    fn raw_tgz(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, text) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append(&h, text.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_hand_made_archive_with_a_top_directory_is_read() {
        let tgz = raw_tgz(&[
            ("kura/server.xml", "<Server/>"),
            ("kura/vhosts.xml", "<Vhosts/>"),
        ]);
        let files = ConfFiles::from_tgz(&tgz).unwrap();
        assert_eq!(files.server_xml(), "<Server/>");
        assert_eq!(files.paths().count(), 2);
    }

    #[test]
    fn archives_that_are_not_configurations_are_refused() {
        assert!(matches!(
            ConfFiles::from_tgz(b"not gzip"),
            Err(ArchiveError::Format(_))
        ));
        let only_server = ConfFiles {
            files: [(SERVER_XML.to_string(), String::new())].into(),
        };
        assert!(matches!(
            ConfFiles::from_tgz(&only_server.to_tgz(0)),
            Err(ArchiveError::Missing(VHOSTS_XML))
        ));
        for bad in [
            "svc/a.com/evil.sh",
            "svc/../ttl.txt",
            "../etc/passwd",
            "/etc/passwd",
        ] {
            let tgz = raw_tgz(&[("server.xml", ""), ("vhosts.xml", ""), (bad, "")]);
            let err = ConfFiles::from_tgz(&tgz).unwrap_err();
            assert!(
                matches!(&err, ArchiveError::Unexpected(n) if n == bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn write_dir_makes_the_directory_read_back_as_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let old = sample().with("svc/b.com/bypass.txt", "y\n".into());
        old.write_dir(dir.path()).unwrap();
        assert_eq!(ConfFiles::read_dir(dir.path()).unwrap(), old);
        let new = sample();
        new.write_dir(dir.path()).unwrap();
        assert_eq!(ConfFiles::read_dir(dir.path()).unwrap(), new);
        assert!(!dir.path().join("svc/b.com/bypass.txt").exists());
    }
}
