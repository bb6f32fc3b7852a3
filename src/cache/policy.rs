//! Whether a response may be stored, for how long, and whether an expired copy
//! may still be served (guide chapter 4 with RFC 9111 as a shared cache, RFC 9213
//! targeted fields and RFC 5861 stale extensions).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

use crate::config::{TtlPolicy, TtlSource};

/// `CDN-Cache-Control` (RFC 9213): directives for CDN caches only.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Control` (W3C Edge Architecture): directives for surrogates only.
pub static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// The cache directives the cache acts on, from one field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` without field names: every use needs revalidation.
    pub no_cache: bool,
    /// `no-cache="a, b"`: these fields are not reused without revalidation (lower case).
    pub no_cache_fields: Vec<String>,
    /// `private` without field names.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage`.
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` header of a message.
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &header::CACHE_CONTROL)
    }

    /// Parses every value of the field `name`.
    pub fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Self {
        let mut cc = CacheControl::default();
        for v in headers.get_all(name) {
            let Ok(v) = v.to_str() else { continue };
            for d in split_directives(v) {
                let (name, arg) = match d.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (d.trim(), None),
                };
                let secs = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    // A qualified `private="f"` only hides fields; a shared cache
                    // treats it like `no-cache="f"` (RFC 9111 5.2.2.7).
                    n @ ("no-cache" | "private") => {
                        let fields: Vec<String> = arg
                            .unwrap_or("")
                            .split(',')
                            .map(|f| f.trim().to_ascii_lowercase())
                            .filter(|f| !f.is_empty())
                            .collect();
                        match (fields.is_empty(), n) {
                            (false, _) => cc.no_cache_fields.extend(fields),
                            (true, "no-cache") => cc.no_cache = true,
                            (true, _) => cc.private = true,
                        }
                    }
                    "public" => cc.public = true,
                    "must-revalidate" => cc.must_revalidate = true,
                    "proxy-revalidate" => cc.proxy_revalidate = true,
                    // A malformed value makes the response stale (RFC 9111 4.2.1).
                    "max-age" => cc.max_age = Some(secs().unwrap_or(0)),
                    "s-maxage" => cc.s_maxage = Some(secs().unwrap_or(0)),
                    "stale-while-revalidate" => cc.stale_while_revalidate = secs(),
                    "stale-if-error" => cc.stale_if_error = secs(),
                    _ => {}
                }
            }
        }
        cc
    }

    /// The directives that govern this cache: `CDN-Cache-Control`, else
    /// `Surrogate-Control`, else `Cache-Control` (RFC 9213 2.1: a targeted field
    /// replaces Cache-Control for the caches it targets).
    pub fn for_cache(headers: &HeaderMap) -> Self {
        for targeted in [&CDN_CACHE_CONTROL, &SURROGATE_CONTROL] {
            if headers.contains_key(targeted) {
                return Self::parse_field(headers, targeted);
            }
        }
        Self::parse(headers)
    }

    /// Whether an expired copy must never be served without revalidation
    /// (RFC 9111 4.2.4: no-cache, must-revalidate, proxy-revalidate, s-maxage).
    pub fn forbids_stale(&self) -> bool {
        self.no_cache || self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
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

/// How long a stored response stays fresh, how old it already is, and what may
/// happen once it is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime from the moment it was received.
    pub lifetime: Duration,
    /// Age it already had when received (RFC 9111 4.2.3 corrected initial age).
    pub initial_age: Duration,
    /// Where the lifetime came from: guide TTLs grow on each 304 by their `Ratio`.
    pub source: TtlSource,
    /// Never served stale, not even when the origin fails (RFC 9111 4.2.4).
    pub no_stale: bool,
    /// `stale-while-revalidate`: served stale this long while refreshing in the background.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error`: served stale at most this long when the origin fails.
    pub stale_if_error: Option<Duration>,
}

/// Why a response is not stored (shown in debug logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Only GET (and HEAD, fetched as GET), and POST where configured, are cached.
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

/// What the cache knows about the request a response answers.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The client's method.
    pub method: &'a Method,
    /// The request path (for `ttl.txt` rules).
    pub path: &'a str,
    /// Whether the request carried `Authorization`.
    pub authorization: bool,
    /// Whether `Vary: *` prevents storing (not when `<VaryHeader/>` ignores Vary).
    pub vary_star_matters: bool,
}

/// Decides whether a response may be stored, and its freshness. Fields named by
/// `no-cache="..."` are removed from `headers`, so the stored copy never reuses them.
pub fn storable(
    request: RequestFacts<'_>,
    status: StatusCode,
    headers: &mut HeaderMap,
    ttl: &TtlPolicy,
    now: SystemTime,
) -> Result<Freshness, NotStored> {
    // POST reaches here only when the vhost caches POSTs (`<PostRequest>`).
    if ![Method::GET, Method::HEAD, Method::POST].contains(request.method) {
        return Err(NotStored::Method);
    }
    let cc = CacheControl::for_cache(headers);
    if cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    if request.authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(NotStored::Authorization);
    }
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    if request.vary_star_matters
        && headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|f| f.trim() == "*"))
        })
    {
        return Err(NotStored::VaryStar);
    }
    for field in &cc.no_cache_fields {
        headers.remove(field.as_str());
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let (lifetime, source) = lifetime(&cc, request.path, status, headers, ttl, now);
    let initial_age = if matches!(source, TtlSource::CcMaxAge) {
        initial_age(headers, now)
    } else {
        // Guide TTLs count from the moment the copy is stored.
        Duration::ZERO
    };
    Ok(Freshness {
        lifetime,
        initial_age,
        source,
        no_stale: cc.forbids_stale(),
        stale_while_revalidate: cc.stale_while_revalidate.map(Duration::from_secs),
        stale_if_error: cc.stale_if_error.map(Duration::from_secs),
    })
}

/// The lifetime by the first `<TTL Priority>` source that applies.
fn lifetime(
    cc: &CacheControl,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    ttl: &TtlPolicy,
    now: SystemTime,
) -> (Duration, TtlSource) {
    for source in &ttl.priority {
        let lifetime = match source {
            TtlSource::CcNoCache if cc.no_cache => match ttl.no_cache {
                // Not written: RFC 9111 5.2.2.4, revalidate on every use.
                None => Duration::ZERO,
                Some(no_cache) => match cc.max_age.filter(|_| !ttl.no_cache_max_age.is_zero()) {
                    Some(ma) => Duration::from_secs(ma).min(ttl.no_cache_max_age),
                    None => no_cache,
                },
            },
            TtlSource::Custom => match ttl.custom.iter().find(|(p, _)| p.matches(path)) {
                Some((_, t)) => *t,
                None => continue,
            },
            TtlSource::CcMaxAge => match explicit_lifetime(cc, headers) {
                Some(l) => l,
                None => continue,
            },
            TtlSource::ResCode => {
                let class = usize::from(status.as_u16() / 100).clamp(2, 5) - 2;
                let configured = [ttl.res2xx, ttl.res3xx, ttl.res4xx, ttl.res5xx][class];
                if ttl.rescode_written[class] {
                    configured
                } else {
                    heuristic(status, headers, now).map_or(Duration::ZERO, |h| h.min(configured))
                }
            }
            TtlSource::CcNoCache => continue,
        };
        return (lifetime, *source);
    }
    unreachable!("the TTL priority always ends with rescode")
}

/// Statuses RFC 9110 15.1 defines as heuristically cacheable.
const HEURISTIC_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// RFC 9111 4.2.2: a tenth of the time since `Last-Modified`, for a heuristically
/// cacheable status; `None` without `Last-Modified`.
fn heuristic(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if !HEURISTIC_STATUSES.contains(&status.as_u16()) {
        return None;
    }
    let modified = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())?;
    let date = date_header(headers).unwrap_or(now);
    Some(date.duration_since(modified).unwrap_or(Duration::ZERO) / 10)
}

/// The lifetime after a 304 (or a response treated as one): guide TTLs grow
/// by their `Ratio` up to `Max`; origin-given lifetimes are as the new headers say.
pub fn grown(previous: Duration, now: Freshness, status: StatusCode, ttl: &TtlPolicy) -> Duration {
    let (ratio, max) = match now.source {
        TtlSource::ResCode if status.is_success() => (ttl.res2xx_ratio, ttl.res2xx_max),
        TtlSource::CcNoCache if ttl.no_cache.is_some() => (ttl.no_cache_ratio, ttl.no_cache_max),
        _ => return now.lifetime,
    };
    let grown = previous + previous * ratio / 100;
    grown.min(max).max(now.lifetime)
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

/// Whether a client request asks the cache not to use a stored copy
/// (`Cache-Control: no-cache`, `max-age=0`, or `Pragma: no-cache`).
pub fn client_no_cache(request: &HeaderMap) -> bool {
    let cc = CacheControl::parse(request);
    cc.no_cache
        || cc.max_age == Some(0)
        || request.get_all(header::PRAGMA).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("no-cache"))
        })
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
            res2xx_ratio: 20,
            res2xx_max: Duration::from_secs(86_400),
            no_cache: Some(Duration::from_secs(5)),
            no_cache_ratio: 0,
            no_cache_max: Duration::from_secs(5),
            no_cache_max_age: Duration::ZERO,
            res3xx: Duration::from_secs(300),
            res4xx: Duration::from_secs(30),
            res5xx: Duration::from_secs(30),
            rescode_written: [true; 4],
            connect_timeout: Duration::from_secs(3),
            receive_timeout: Duration::from_secs(3),
            origin_busy: Duration::from_secs(3),
            custom: vec![(
                crate::config::pattern::UrlPattern::new("*.jsp"),
                Duration::from_secs(10),
            )],
        }
    }

    fn facts() -> RequestFacts<'static> {
        RequestFacts {
            method: &Method::GET,
            path: "/a.html",
            authorization: false,
            vary_star_matters: true,
        }
    }

    fn decide(status: u16, pairs: &[(&'static str, &'static str)]) -> Result<Freshness, NotStored> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        storable(
            facts(),
            StatusCode::from_u16(status).unwrap(),
            &mut h,
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
            storable(facts(), StatusCode::OK, &mut h.clone(), &policy(), now)
                .unwrap()
                .initial_age
        };
        assert_eq!(age_at(900), Duration::ZERO);
        assert_eq!(age_at(2500), Duration::from_secs(2));
    }

    #[test]
    fn without_written_ttls_only_the_rfc_heuristic_applies() {
        let mut ttl = policy();
        ttl.rescode_written = [false; 4];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |status: u16, pairs: &[(&'static str, String)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_str(v).unwrap());
            }
            let s = StatusCode::from_u16(status).unwrap();
            storable(facts(), s, &mut h, &ttl, now).unwrap().lifetime
        };
        let lm = |ago: u64| httpdate::fmt_http_date(now - Duration::from_secs(ago));
        assert_eq!(at(200, &[]), Duration::ZERO, "no validator: not fresh");
        assert_eq!(
            at(200, &[("last-modified", lm(6000))]),
            Duration::from_secs(600)
        );
        assert_eq!(
            at(200, &[("last-modified", lm(86_400))]),
            Duration::from_secs(1800),
            "capped by the documented Res2xx"
        );
        assert_eq!(
            at(302, &[("last-modified", lm(6000))]),
            Duration::ZERO,
            "302 is not heuristic"
        );
        assert_eq!(
            at(404, &[("last-modified", lm(100))]),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn targeted_fields_replace_cache_control_for_the_cache() {
        let f = decide(
            200,
            &[
                ("cache-control", "private, max-age=5"),
                ("cdn-cache-control", "max-age=600"),
            ],
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(600));
        let f = decide(
            200,
            &[
                ("cache-control", "max-age=5"),
                ("surrogate-control", "max-age=300"),
            ],
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(300));
        assert_eq!(
            decide(200, &[("cdn-cache-control", "no-store")]),
            Err(NotStored::NoStore)
        );
    }

    #[test]
    fn custom_ttl_rules_apply_before_max_age_by_default_priority() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("max-age=99"));
        let jsp = RequestFacts {
            path: "/x/page.jsp",
            ..facts()
        };
        let f = storable(jsp, StatusCode::OK, &mut h, &policy(), SystemTime::now()).unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(10));
        assert_eq!(f.source, TtlSource::Custom);
    }

    #[test]
    fn guide_ttls_grow_by_ratio_up_to_max() {
        let f = decide(200, &[]).unwrap();
        let mut lifetime = f.lifetime;
        lifetime = grown(lifetime, f, StatusCode::OK, &policy());
        assert_eq!(lifetime, Duration::from_secs(2160));
        for _ in 0..40 {
            lifetime = grown(lifetime, f, StatusCode::OK, &policy());
        }
        assert_eq!(lifetime, Duration::from_secs(86_400));
        let ma = decide(200, &[("cache-control", "max-age=60")]).unwrap();
        assert_eq!(
            grown(ma.lifetime, ma, StatusCode::OK, &policy()),
            ma.lifetime
        );
    }

    #[test]
    fn revalidation_directives_forbid_stale() {
        for cc in [
            "must-revalidate",
            "proxy-revalidate",
            "s-maxage=5",
            "no-cache",
        ] {
            let mut h = HeaderMap::new();
            h.insert("cache-control", HeaderValue::from_str(cc).unwrap());
            assert!(CacheControl::for_cache(&h).forbids_stale(), "{cc}");
        }
        let f = decide(
            200,
            &[(
                "cache-control",
                "max-age=1, stale-while-revalidate=30, stale-if-error=60",
            )],
        )
        .unwrap();
        assert!(!f.no_stale);
        assert_eq!(f.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(f.stale_if_error, Some(Duration::from_secs(60)));
    }

    #[test]
    fn qualified_no_cache_strips_the_fields_and_stores() {
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            HeaderValue::from_static("no-cache=\"Set-Cookie\", max-age=60"),
        );
        h.insert("set-cookie", HeaderValue::from_static("s=1"));
        let f = storable(
            facts(),
            StatusCode::OK,
            &mut h,
            &policy(),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(60));
        assert!(!h.contains_key("set-cookie"));
    }

    #[test]
    fn quoted_commas_do_not_split_directives() {
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            HeaderValue::from_static("no-cache=\"a, max-age=9\", max-age=7"),
        );
        let cc = CacheControl::parse(&h);
        assert!(!cc.no_cache, "a qualified no-cache only names fields");
        assert_eq!(cc.no_cache_fields, ["a", "max-age=9"]);
        assert_eq!(cc.max_age, Some(7));
    }
}
