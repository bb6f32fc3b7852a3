//! Answers from a stored object: the client's conditionals (RFC 9110 13) and
//! ranges (RFC 9110 14), so a revalidating browser gets a 304 and a video
//! player its byte ranges without the origin.

use std::time::SystemTime;

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::cache::fields::Fields;
use crate::cache::store::Head;

/// Most ranges served as one multipart reply; more is answered with the whole body
/// (RFC 9110 14.2 lets a server ignore a Range it finds abusive).
const MAX_RANGES: usize = 16;

/// What the client gets from a stored object.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The whole object.
    Full,
    /// `304 Not Modified`.
    NotModified,
    /// `206` with these inclusive byte ranges.
    Partial(Vec<(u64, u64)>),
    /// `416`: no range overlaps the body.
    Unsatisfiable,
}

/// Decides the answer to `method` with `request` headers for a stored response
/// with `head` and a body of `len` bytes.
pub fn decide(method: &Method, request: &HeaderMap, head: &Head, len: u64) -> Answer {
    if head.status != StatusCode::OK || (method != Method::GET && method != Method::HEAD) {
        return Answer::Full;
    }
    if not_modified(request, &head.headers) {
        return Answer::NotModified;
    }
    if method != Method::GET {
        return Answer::Full;
    }
    let Some(range) = request.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Answer::Full;
    };
    if !if_range_holds(request, &head.headers) {
        return Answer::Full;
    }
    match parse_ranges(range, len) {
        Some(r) if r.is_empty() => Answer::Unsatisfiable,
        Some(r) if r.len() <= MAX_RANGES => Answer::Partial(r),
        _ => Answer::Full,
    }
}

/// `If-None-Match` (weak comparison), else `If-Modified-Since` against `Last-Modified`.
fn not_modified(request: &HeaderMap, stored: &Fields) -> bool {
    if request.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get_str(&header::ETAG) else {
            return false;
        };
        return request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                let t = t.trim();
                t == "*" || weak(t) == weak(etag)
            });
    }
    let date = |v: Option<&str>| v.and_then(|v| httpdate::parse_http_date(v).ok());
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok());
    match (date(since), date(stored.get_str(&header::LAST_MODIFIED))) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

fn weak(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// `If-Range`: a strong ETag equal to the stored one, or the exact `Last-Modified`.
fn if_range_holds(request: &HeaderMap, stored: &Fields) -> bool {
    let Some(cond) = request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let cond = cond.trim();
    if cond.starts_with('"') {
        return stored
            .get_str(&header::ETAG)
            .is_some_and(|e| !e.starts_with("W/") && e == cond);
    }
    let parse = |s: &str| httpdate::parse_http_date(s).ok();
    let modified: Option<SystemTime> = stored.get_str(&header::LAST_MODIFIED).and_then(parse);
    modified.is_some() && modified == parse(cond)
}

/// Parses `bytes=a-b, c-, -n` against a body of `len` bytes. `None` for a
/// malformed header (ignored: the whole body is sent); an empty list when no
/// range is satisfiable.
pub(super) fn parse_ranges(value: &str, len: u64) -> Option<Vec<(u64, u64)>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let range = if a.is_empty() {
            let n: u64 = b.parse().ok()?;
            (n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1))
        } else {
            let first: u64 = a.parse().ok()?;
            let last = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().ok()?
            };
            if last < first {
                return None;
            }
            (first < len).then(|| (first, last.min(len - 1)))
        };
        out.extend(range);
    }
    Some(out)
}

/// Fields a 304 carries from the stored response (RFC 9110 15.4.5).
pub const NOT_MODIFIED_FIELDS: [header::HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_ranges("bytes=0-4", 10), Some(vec![(0, 4)]));
        assert_eq!(parse_ranges("bytes=5-", 10), Some(vec![(5, 9)]));
        assert_eq!(parse_ranges("bytes=-3", 10), Some(vec![(7, 9)]));
        assert_eq!(parse_ranges("bytes=-30", 10), Some(vec![(0, 9)]));
        assert_eq!(parse_ranges("bytes=8-20", 10), Some(vec![(8, 9)]));
        assert_eq!(parse_ranges("bytes=10-", 10), Some(vec![]));
        assert_eq!(
            parse_ranges("bytes=0-1, 4-5", 10),
            Some(vec![(0, 1), (4, 5)])
        );
        assert_eq!(parse_ranges("bytes=5-1", 10), None);
        assert_eq!(parse_ranges("items=0-1", 10), None);
        assert_eq!(parse_ranges("bytes=a-b", 10), None);
    }
}
