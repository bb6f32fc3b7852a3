//! `conf history|restore|download|upload`: the configuration history API
//! (guide chapter 3): `/conf/history`, `/conf/latest`, `/conf/restore`,
//! `/conf/download`, `/conf/upload`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::Backup;
use crate::client::{Client, Failure, Reply};

/// The history entries of a `/conf/history` or `/conf/latest` reply, oldest first.
fn entries(reply: &Reply) -> Result<Vec<Value>, Failure> {
    match reply.json()?.get_mut("history").map(Value::take) {
        Some(Value::Array(list)) => Ok(list),
        _ => Err(Failure::BadReply(format!(
            "{}: the reply has no history array",
            reply.path
        ))),
    }
}

/// The history as a table: one line per backup, every cell one word.
pub fn history_table(list: &[Value]) -> String {
    const HEADER: [&str; 7] = ["ID", "DATE", "TIME", "TYPE", "SIZE", "HASH", "VER"];
    // The guide writes every member as a string; a number is shown as it is.
    let cell = |e: &Value, k: &str| match &e[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let mut lines = vec![HEADER.map(str::to_string).to_vec()];
    lines.extend(list.iter().map(|e| {
        vec![
            cell(e, "id"),
            cell(e, "conf-date"),
            cell(e, "conf-time"),
            cell(e, "type"),
            cell(e, "size"),
            cell(e, "hash"),
            cell(e, "ver"),
        ]
    }));
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in &lines {
        // Id and size are numbers: right-aligned; the rest reads left to right.
        for (c, (cell, w)) in line.iter().zip(&widths).enumerate() {
            let sep = if c == 0 { "" } else { "  " };
            match c {
                0 | 4 => write!(out, "{sep}{cell:>w$}"),
                _ => write!(out, "{sep}{cell:<w$}"),
            }
            .expect("writing to a String");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// `conf history [--latest] [--json]`.
pub fn history(client: &Client, latest: bool, json: bool) -> Result<(), Failure> {
    let reply = client.get(if latest {
        "/conf/latest"
    } else {
        "/conf/history"
    })?;
    if json {
        print!("{}", reply.text());
    } else {
        print!("{}", history_table(&entries(&reply)?));
    }
    Ok(())
}

/// `conf restore <ID|HASH>`.
pub fn restore(client: &Client, backup: &Backup) -> Result<(), Failure> {
    let reply = client.get(&format!("/conf/restore?{}", backup.query()))?;
    println!("restored the configuration of backup {}", backup.query());
    print_result(&reply)
}

/// `conf download <ID|HASH> [-o FILE]`.
pub fn download(client: &Client, backup: &Backup, output: Option<&Path>) -> Result<(), Failure> {
    let reply = client.get(&format!("/conf/download?{}", backup.query()))?;
    if output == Some(Path::new("-")) {
        return std::io::stdout()
            .write_all(&reply.body)
            .map_err(|e| Failure::Local(format!("stdout: {e}")));
    }
    let (path, overwrite) = match output {
        Some(p) => (p.to_path_buf(), true),
        None => (default_name(client, backup, &reply)?, false),
    };
    // A name kuractl chose never replaces a file; one the user gave does.
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options
        .open(&path)
        .and_then(|mut f| f.write_all(&reply.body))
        .map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
    println!("{}: {} bytes", path.display(), reply.body.len());
    Ok(())
}

/// Where a download goes without `-o`: the file name kurad gives in
/// `Content-Disposition`, else `<HASH>.tgz` (an id is looked up in the history).
fn default_name(client: &Client, backup: &Backup, reply: &Reply) -> Result<PathBuf, Failure> {
    if let Some(name) = reply.disposition.as_deref().and_then(disposition_file_name) {
        return Ok(PathBuf::from(name));
    }
    let hash = match backup {
        Backup::Hash(h) => h.clone(),
        Backup::Id(id) => {
            let list = entries(&client.get("/conf/history")?)?;
            // The guide writes ids as strings; a number is taken too.
            list.iter()
                .find(|e| e["id"] == id.to_string().as_str() || e["id"] == *id)
                .and_then(|e| e["hash"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("id-{id}"))
        }
    };
    Ok(PathBuf::from(format!("{hash}.tgz")))
}

/// The `filename` of a `Content-Disposition` value, reduced to a plain file
/// name: a server must not make kuractl write outside the current directory.
pub fn disposition_file_name(value: &str) -> Option<String> {
    let name = value.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| v.trim().trim_matches('"').to_string())
    })?;
    let base = name.rsplit(['/', '\\']).next()?;
    (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
}

/// `conf upload FILE [--field NAME]`.
pub fn upload(client: &Client, file: &Path, field: &str) -> Result<(), Failure> {
    // A directory is packed the way kurad archives a configuration.
    let (data, name) = if file.is_dir() {
        let files =
            kura::config::ConfFiles::read_dir(file).map_err(|e| Failure::Local(e.to_string()))?;
        (
            files.to_tgz(kura::procfs::unix_now()),
            "conf.tgz".to_string(),
        )
    } else {
        let data =
            std::fs::read(file).map_err(|e| Failure::Local(format!("{}: {e}", file.display())))?;
        let name = file
            .file_name()
            .map_or_else(|| "conf.tgz".into(), |n| n.to_string_lossy().into_owned());
        (data, name)
    };
    let (content_type, body) = multipart(field, &name, &data);
    let reply = client.post("/conf/upload", &content_type, &body)?;
    println!(
        "uploaded {} ({} bytes) and applied it",
        file.display(),
        data.len()
    );
    print_result(&reply)
}

/// A `multipart/form-data` body with one file part: (Content-Type, body).
/// The boundary is chosen so that it does not occur in the file.
pub fn multipart(field: &str, file_name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = (0u64..)
        .map(|n| format!("kuractl-boundary-{n:016x}"))
        .find(|b| !data.windows(b.len()).any(|w| w == b.as_bytes()))
        .expect("some boundary is not in the file");
    // Quotes and line breaks would end the header value early.
    let quoted = |s: &str| s.replace(['"', '\r', '\n'], "_");
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
         Content-Type: application/x-compressed\r\n\r\n",
        quoted(field),
        quoted(file_name)
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Prints an OK reply's `result`, when it says more than "OK".
fn print_result(reply: &Reply) -> Result<(), Failure> {
    match reply.json()?.get("result") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => println!("{s}"),
        Some(v) => println!("{v:#}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_a_table_of_words() {
        let doc: Value = serde_json::from_str(
            r#"{"history":[{"id":"5","conf-date":"2013-11-06","conf-time":"15:26:37","type":"loaded","size":"16368","hash":"D62CA26F16FE7C66F81D215D8C52266AB70AA5C8","ver":"1.2.8"},
                           {"id":"12","conf-date":"2013-11-07","conf-time":"07:02:21","type":"modified","size":"7544","hash":"F81D215D8C52266AB70AA5C8D62CA26F16FE7C66","ver":"1.2.8"}]}"#,
        )
        .unwrap();
        let table = history_table(doc["history"].as_array().unwrap());
        assert_eq!(
            table,
            "ID  DATE        TIME      TYPE       SIZE  HASH                                      VER\n\
             \x205  2013-11-06  15:26:37  loaded    16368  D62CA26F16FE7C66F81D215D8C52266AB70AA5C8  1.2.8\n\
             12  2013-11-07  07:02:21  modified   7544  F81D215D8C52266AB70AA5C8D62CA26F16FE7C66  1.2.8\n"
        );
    }

    #[test]
    fn a_disposition_names_a_file_here_and_nowhere_else() {
        let f = disposition_file_name;
        assert_eq!(
            f("attachment; filename=\"20131106_152637_D62C.tgz\"").as_deref(),
            Some("20131106_152637_D62C.tgz")
        );
        assert_eq!(f("attachment; FileName=a.tgz").as_deref(), Some("a.tgz"));
        assert_eq!(
            f("attachment; filename=\"../../etc/x.tgz\"").as_deref(),
            Some("x.tgz")
        );
        assert_eq!(f("attachment; filename=\"..\"").as_deref(), None);
        assert_eq!(f("attachment").as_deref(), None);
    }

    #[test]
    fn the_multipart_boundary_is_not_in_the_file() {
        let data = b"--kuractl-boundary-0000000000000000 inside".to_vec();
        let (ct, body) = multipart("confile", "a.tgz", &data);
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert_eq!(boundary, "kuractl-boundary-0000000000000001");
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"confile\"; filename=\"a.tgz\"\r\n")));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        assert!(text.contains("\r\n\r\n--kuractl-boundary-0000000000000000 inside\r\n"));
    }
}
