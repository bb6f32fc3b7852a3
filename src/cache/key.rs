//! Cache keys (chapter 4 "Caching Key"): `vhost \0 url [\0 encodings]`.
//!
//! The URL part follows `<CaseSensitive>` and `<ApplyQueryString>` with
//! `querystring.txt`; the encodings part is the client's acceptable content
//! codings when `<AcceptEncoding>` is ON, so a gzip body never reaches a client
//! that did not ask for one, even from an origin that forgets `Vary`.

use std::borrow::Cow;

use http::header::{self, HeaderMap};

use crate::config::KeyPolicy;

/// Codings that make a different body; anything else is treated as identity.
const CODINGS: [&str; 5] = ["br", "compress", "deflate", "gzip", "zstd"];

/// The URL part of a key: the request target as the vhost's key options shape it
/// (borrowed when they leave it as it is, the common case on the hit path).
pub fn url<'a>(policy: &KeyPolicy, path_and_query: &'a str) -> Cow<'a, str> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let excepted = policy
        .query_exceptions
        .iter()
        .any(|p| p.matches(path_and_query) || p.matches(path));
    let keep_query = policy.apply_query_string != excepted;
    let url = match query {
        Some(_) if !keep_query => path,
        _ => path_and_query,
    };
    if policy.case_sensitive {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(url.to_lowercase())
    }
}

/// The key of a request to vhost `cache_name`.
pub fn key(cache_name: &str, policy: &KeyPolicy, path_and_query: &str, req: &HeaderMap) -> String {
    let mut k = primary_key(cache_name, &url(policy, path_and_query));
    if policy.accept_encoding {
        let codings = accepted_codings(req);
        if !codings.is_empty() {
            k.push('\0');
            k.push_str(&codings);
        }
    }
    k
}

/// `vhost \0 url`: what every variant of one URL shares.
pub fn primary_key(cache_name: &str, url: &str) -> String {
    let mut k = String::with_capacity(cache_name.len() + 1 + url.len());
    k.push_str(cache_name);
    k.push('\0');
    k.push_str(url);
    k
}

/// The `vhost \0 url` prefix of a key.
pub fn primary(key: &str) -> &str {
    match key.match_indices('\0').nth(1) {
        Some((i, _)) => &key[..i],
        None => key,
    }
}

/// The vhost and URL of a key.
pub fn split(key: &str) -> (&str, &str) {
    let primary = primary(key);
    primary.split_once('\0').unwrap_or((primary, ""))
}

/// The key of a cached POST: `key` marked as a POST, with the body's SHA-1 when
/// the body is part of the key (`BodySensitive`).
pub fn post(mut key: String, body: Option<&[u8]>) -> String {
    use sha1::Digest;
    key.push_str("\0\u{3}POST");
    if let Some(body) = body {
        key.push('\u{3}');
        for b in sha1::Sha1::digest(body) {
            key.push_str(&format!("{b:02x}"));
        }
    }
    key
}

/// The key of one variant of `base`: the values of its `Vary` fields, in order
/// (`None` when the request lacks the field), after a `\0\x01` marker that a
/// codings part never starts with.
pub fn variant<'a>(
    base: &str,
    values: impl Iterator<Item = Option<&'a http::HeaderValue>>,
) -> String {
    let mut k = String::with_capacity(base.len() + 16);
    k.push_str(base);
    k.push_str("\0\u{1}");
    for v in values {
        match v {
            Some(v) => k.push_str(&String::from_utf8_lossy(v.as_bytes())),
            None => k.push('\u{2}'),
        }
        k.push('\u{1}');
    }
    k
}

/// The key of part `index` of the object of `base` stored in parts of `size`
/// bytes (`<PartSize>`), after a `\0\x04` marker: parts share their URL's shard
/// and its purges, and parts of another size are never mistaken for them.
pub fn part(base: &str, size: u64, index: u64) -> String {
    format!("{}{index}", parts_prefix(base, size))
}

/// What the keys of every part of `base` in parts of `size` bytes start with.
pub fn parts_prefix(base: &str, size: u64) -> String {
    format!("{base}\0\u{4}{size}:")
}

/// The base key a [`variant`] key was made from (the key itself when it is not one).
pub fn variant_base(key: &str) -> &str {
    key.find("\0\u{1}").map_or(key, |i| &key[..i])
}

/// The acceptable codings of `Accept-Encoding`, sorted and comma-joined
/// (`q=0` excluded), so equivalent headers share a key.
fn accepted_codings(req: &HeaderMap) -> String {
    let mut out: Vec<&str> = Vec::new();
    for v in req.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            let wanted: Vec<&str> = if coding == "*" {
                CODINGS.to_vec()
            } else {
                CODINGS.iter().copied().filter(|c| *c == coding).collect()
            };
            for c in wanted {
                if refused {
                    out.retain(|o| *o != c);
                } else if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out.sort_unstable();
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pattern::UrlPattern;
    use http::HeaderValue;

    fn policy() -> KeyPolicy {
        KeyPolicy {
            case_sensitive: true,
            apply_query_string: true,
            query_exceptions: vec![UrlPattern::new("/image/ad.jpg")],
            collective: false,
            accept_encoding: true,
        }
    }

    #[test]
    fn query_string_exceptions_invert_the_setting() {
        let mut p = policy();
        assert_eq!(url(&p, "/a.jsp?x=1"), "/a.jsp?x=1");
        assert_eq!(url(&p, "/image/ad.jpg?r=99"), "/image/ad.jpg");
        p.apply_query_string = false;
        assert_eq!(url(&p, "/a.jsp?x=1"), "/a.jsp");
        assert_eq!(url(&p, "/image/ad.jpg?r=99"), "/image/ad.jpg?r=99");
        p.case_sensitive = false;
        assert_eq!(url(&p, "/A/B.JPG"), "/a/b.jpg");
    }

    #[test]
    fn equivalent_accept_encodings_share_a_key() {
        let k = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            key("v", &policy(), "/x", &h)
        };
        assert_eq!(k("gzip, deflate"), k("deflate;q=0.5, gzip"));
        assert_ne!(k("gzip"), k("br"));
        assert_eq!(k("identity"), key("v", &policy(), "/x", &HeaderMap::new()));
        assert_eq!(k("*, gzip;q=0"), k("br, compress, deflate, zstd"));
        assert_eq!(split(&k("gzip")), ("v", "/x"));
        assert_eq!(primary(&k("gzip")), "v\0/x");
    }
}
