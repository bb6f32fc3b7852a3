//! Whether a response may be stored, and for how long (guide chapter 4 with
//! RFC 9111 as a shared cache).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::config::{TtlPolicy, TtlSource};

/// The `Cache-Control` directives the cache acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`.
    pub must_revalidate: bool,
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage`.
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` header of a message.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        for v in headers.get_all(header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for d in split_directives(v) {
                let (name, arg) = match d.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (d.trim(), None),
                };
                let secs = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    // A malformed value makes the response stale (RFC 9111 4.2.1).
                    "max-age" => cc.max_age = Some(secs().unwrap_or(0)),
                    "s-maxage" => cc.s_maxage = Some(secs().unwrap_or(0)),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Splits on commas that are not inside a quoted string (`no-cache="a, b"`).
fn split_directives(v: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty())
}

/// How long a stored response stays fresh, and how old it already is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime from the moment it was received.
    pub lifetime: Duration,
    /// Age it already had when received (RFC 9111 4.2.3 corrected initial age).
    pub initial_age: Duration,
}

/// Why a response is not stored (shown in debug logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Only GET (and HEAD, fetched as GET) is cached.
    Method,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private`.
    Private,
    /// The request carried `Authorization` and the response did not allow sharing.
    Authorization,
    /// A status the cache does not store (206, 304, 1xx).
    Status,
    /// `Vary: *`.
    VaryStar,
    /// `Set-Cookie` is never shared between clients.
    SetCookie,
}

/// Decides whether a response to `method` may be stored, and its freshness.
pub fn storable(
    method: &Method,
    request_has_authorization: bool,
    status: StatusCode,
    headers: &HeaderMap,
    ttl: &TtlPolicy,
    now: SystemTime,
) -> Result<Freshness, NotStored> {
    if method != Method::GET && method != Method::HEAD {
        return Err(NotStored::Method);
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    if request_has_authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(NotStored::Authorization);
    }
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    if headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|f| f.trim() == "*"))
    }) {
        return Err(NotStored::VaryStar);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let initial_age = initial_age(headers, now);
    for source in &ttl.priority {
        let lifetime = match source {
            TtlSource::CcNoCache if cc.no_cache || cc.must_revalidate => {
                match cc.max_age.filter(|_| !ttl.no_cache_max_age.is_zero()) {
                    Some(ma) => Duration::from_secs(ma).min(ttl.no_cache_max_age),
                    None => ttl.no_cache,
                }
            }
            TtlSource::CcMaxAge => match explicit_lifetime(&cc, headers) {
                Some(l) => l,
                None => continue,
            },
            TtlSource::ResCode => {
                // Guide TTLs count from the moment the copy is stored.
                let lifetime = match status.as_u16() {
                    200..=299 => ttl.res2xx,
                    300..=399 => ttl.res3xx,
                    400..=499 => ttl.res4xx,
                    _ => ttl.res5xx,
                };
                return Ok(Freshness {
                    lifetime,
                    initial_age: Duration::ZERO,
                });
            }
            // ttl.txt rules are not implemented yet; see config's not-implemented report.
            TtlSource::Custom | TtlSource::CcNoCache => continue,
        };
        return Ok(Freshness {
            lifetime,
            initial_age,
        });
    }
    unreachable!("the TTL priority always ends with rescode")
}

/// `s-maxage`, else `max-age`, else `Expires - Date` (RFC 9111 4.2.1).
fn explicit_lifetime(cc: &CacheControl, headers: &HeaderMap) -> Option<Duration> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(s));
    }
    let expires = headers.get(header::EXPIRES)?;
    // An invalid Expires (e.g. "0") means already expired.
    let Some(expires) = expires
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return Some(Duration::ZERO);
    };
    let date = date_header(headers).unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

fn date_header(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// The larger of the origin's `Age` and the apparent age from `Date`.
fn initial_age(headers: &HeaderMap, now: SystemTime) -> Duration {
    let age_value = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    // Date has one-second resolution: count whole seconds, or a copy received
    // 0.9 s into the Date's second would look 0.9 s old on arrival.
    let apparent = date_header(headers)
        .and_then(|d| now.duration_since(d).ok())
        .map_or(Duration::ZERO, |a| Duration::from_secs(a.as_secs()));
    age_value.max(apparent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy() -> TtlPolicy {
        TtlPolicy {
            priority: vec![
                TtlSource::CcNoCache,
                TtlSource::Custom,
                TtlSource::CcMaxAge,
                TtlSource::ResCode,
            ],
            res2xx: Duration::from_secs(1800),
            no_cache: Duration::from_secs(5),
            no_cache_max_age: Duration::ZERO,
            res3xx: Duration::from_secs(300),
            res4xx: Duration::from_secs(30),
            res5xx: Duration::from_secs(30),
        }
    }

    fn decide(status: u16, pairs: &[(&'static str, &'static str)]) -> Result<Freshness, NotStored> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        storable(
            &Method::GET,
            false,
            StatusCode::from_u16(status).unwrap(),
            &h,
            &policy(),
            SystemTime::now(),
        )
    }

    #[test]
    fn s_maxage_beats_max_age() {
        let f = decide(200, &[("cache-control", "max-age=10, s-maxage=20")]).unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(20));
    }

    #[test]
    fn no_store_and_private_are_not_stored() {
        let cases: [(&'static str, &'static str, NotStored); 4] = [
            ("cache-control", "no-store", NotStored::NoStore),
            ("cache-control", "private, max-age=60", NotStored::Private),
            ("set-cookie", "a=b", NotStored::SetCookie),
            ("vary", "Accept, *", NotStored::VaryStar),
        ];
        for (name, value, why) in cases {
            assert_eq!(decide(200, &[(name, value)]), Err(why), "{name}: {value}");
        }
    }

    #[test]
    fn guide_defaults_apply_without_freshness_information() {
        assert_eq!(
            decide(200, &[]).unwrap().lifetime,
            Duration::from_secs(1800)
        );
        assert_eq!(decide(301, &[]).unwrap().lifetime, Duration::from_secs(300));
        assert_eq!(decide(404, &[]).unwrap().lifetime, Duration::from_secs(30));
        assert_eq!(decide(503, &[]).unwrap().lifetime, Duration::from_secs(30));
        assert_eq!(
            decide(200, &[("cache-control", "no-cache")])
                .unwrap()
                .lifetime,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn expires_counts_from_date() {
        let f = decide(
            200,
            &[
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
            ],
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(60));
        assert!(
            f.initial_age > Duration::from_secs(60),
            "a 1994 Date makes the copy old on arrival"
        );
        assert_eq!(
            decide(200, &[("expires", "0")]).unwrap().lifetime,
            Duration::ZERO
        );
    }

    #[test]
    fn a_fresh_response_is_not_aged_by_the_date_resolution() {
        // Received 0.9 s after its Date second began: apparent age is 0, not 0.9 s.
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = HeaderMap::new();
        h.insert(
            "date",
            HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap(),
        );
        h.insert("cache-control", HeaderValue::from_static("max-age=1"));
        let age_at = |ms| {
            let now = date + Duration::from_millis(ms);
            storable(&Method::GET, false, StatusCode::OK, &h, &policy(), now)
                .unwrap()
                .initial_age
        };
        assert_eq!(age_at(900), Duration::ZERO);
        assert_eq!(age_at(2500), Duration::from_secs(2));
    }

    #[test]
    fn quoted_commas_do_not_split_directives() {
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            HeaderValue::from_static("no-cache=\"a, max-age=9\", max-age=7"),
        );
        let cc = CacheControl::parse(&h);
        assert!(cc.no_cache);
        assert_eq!(cc.max_age, Some(7));
    }
}
