//! `/monitoring/fileinfo?url=<vhost>/<path>` (guide chapter 10, "Caching
//! Information"): the state of a cached object, with the guide's keys,
//! including the four it writes with a trailing space.
//!
//! `Disk-Index`, `LocalPath` and `LocalFileExist` come from the object's file
//! (-1, "-" and "N" in Memory-Only mode); `File-Opened` is "N" (open files are
//! counted per vhost, `FileOpened`, not per object). The result has at most one
//! entry: the URL's variant, else another variant or, for an object stored in
//! parts (`<PartSize>`), one of its parts.

use std::time::{Instant, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use serde_json::{json, Value};

use crate::cache::policy::CacheControl;
use crate::cache::store::Object;
use crate::config::Config;

/// `YYYY.MM.DD HH:MM:SS` (UTC) of a unix second.
fn date(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}.{month:02}.{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The guide's `[ date, offset from now ]`; `[ 0, 0 ]` when there is no time.
fn stamp(t: Option<i64>, now: i64) -> String {
    match t {
        Some(t) => format!("[ {}, {} ]", date(t), t - now),
        None => "[ 0, 0 ]".to_string(),
    }
}

fn header_time(h: &HeaderMap, name: header::HeaderName) -> Option<i64> {
    let t = httpdate::parse_http_date(h.get(name)?.to_str().ok()?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

fn header_or_dash(h: &HeaderMap, name: header::HeaderName) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

fn yn(b: bool) -> &'static str {
    if b {
        "Y"
    } else {
        "N"
    }
}

/// Bodies up to this size count as the guide's small files (kept in one piece).
const SMALL_FILE: u64 = 1 << 20;

/// The record of one stored object.
fn record(path: &str, obj: &Object, refs: usize, filling: bool) -> Value {
    let now = crate::procfs::unix_now() as i64;
    let head = &obj.head;
    let h = &head.headers.to_map();
    let file = obj.disk_file();
    let updated = now
        - Instant::now()
            .saturating_duration_since(head.received_at)
            .as_secs() as i64;
    let expires = updated + head.freshness.lifetime.as_secs() as i64
        - head.freshness.initial_age.as_secs() as i64;
    let cc = CacheControl::parse(h);
    let cache_control = if cc.no_cache {
        "no-cache".to_string()
    } else {
        cc.s_maxage
            .or(cc.max_age)
            .map_or("not-specified".to_string(), |s| s.to_string())
    };
    json!({
        "URI": path,
        "Accept-Encoding": yn(h.contains_key(header::CONTENT_ENCODING)),
        "RefCount": refs,
        "Disk-Index": file.map_or(-1, |f| f.disk.index as i64 + 1),
        "Size": obj.len,
        "FID": obj.id,
        "LocalPath": file.map_or("-".to_string(), |f| f.disk.object_path(f.number).display().to_string()),
        "File-Opened ": "N",
        "File-Updating": if filling { "Y" } else { "-" },
        "Downloader-Count": u8::from(filling).to_string(),
        "LastAccess": stamp(Some(obj.last_access() as i64), now),
        "UpdateTime": stamp(Some(updated), now),
        "TTL-Left": stamp(Some(expires), now),
        "ResponseCode": head.status.as_u16(),
        "ContentType": header_or_dash(h, header::CONTENT_TYPE),
        "LastModifiedTime": stamp(header_time(h, header::LAST_MODIFIED), now),
        "ExpireTime": stamp(header_time(h, header::EXPIRES), now),
        "CacheControl": cache_control,
        "ETag": h.get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or("").trim_matches('"'),
        "CustomTTL": 0,
        "NoMoreExist": "N",
        "LocalFileExist": yn(file.is_some()),
        "SmallFile": yn(obj.len <= SMALL_FILE),
        "State": "Cached",
        "Deleted": "N",
        "AddedSize": "Y",
        "TransferEncoding": "N",
        "Compression": "-",
        "Purge": "N",
        "Ignore-IMS ": "N",
        "Redirect-Location ": header_or_dash(h, header::LOCATION),
        "Content-Disposition ": header_or_dash(h, header::CONTENT_DISPOSITION),
        "NoCache": yn(cc.no_cache),
    })
}

/// Splits `example.com/sample.dat` (scheme optional) into the vhost's cache name and
/// the path as its cache key holds it; `None` when no vhost has that name or alias.
pub fn locate(config: &Config, url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let vhost = config.vhost_by_host(host)?;
    let cache_name = vhost.cache_name().to_string();
    Some((
        cache_name,
        crate::cache::key::url(&vhost.caching.key, path).into_owned(),
    ))
}

/// The `fileinfo` reply for a located URL: status `OK` with the object's record,
/// or `NOT_CACHED` with an empty result.
pub fn reply(path: &str, found: (Option<std::sync::Arc<Object>>, bool)) -> Value {
    let (obj, filling) = found;
    let (status, result) = match obj {
        // One reference is this lookup's own.
        Some(o) => (
            "OK",
            vec![record(
                path,
                &o,
                std::sync::Arc::strong_count(&o).saturating_sub(2),
                filling,
            )],
        ),
        None => ("NOT_CACHED", Vec::new()),
    };
    json!({"version": crate::VERSION, "method": "fileinfo", "status": status, "result": result})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(date(0), "1970.01.01 00:00:00");
        assert_eq!(date(1_346_682_590), "2012.09.03 14:29:50");
        assert_eq!(date(951_782_400), "2000.02.29 00:00:00");
        assert_eq!(stamp(Some(100), 102), "[ 1970.01.01 00:01:40, -2 ]");
    }
}
