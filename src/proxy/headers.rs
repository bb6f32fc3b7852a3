//! Chapter 6 header rewriting: `headers.txt` rules (`<ModifyHeader>`),
//! `expires.txt` (`<RefreshExpiresHeader>`) and `<OriginalHeader>OFF`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::headers::{
    Action, ExpiresBase, ExpiresMatch, ExpiresRule, HeaderRule, Match, ModifyHeader, Side,
};

/// Response fields kept with `<OriginalHeader>OFF` (the RFC 9110/9111 fields
/// and the common registered ones; everything else is "nonstandard").
const STANDARD: [&str; 36] = [
    "accept-ranges",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "access-control-max-age",
    "age",
    "allow",
    "cache-control",
    "cdn-cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-security-policy",
    "content-type",
    "date",
    "etag",
    "expires",
    "last-modified",
    "link",
    "location",
    "pragma",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "surrogate-control",
    "timing-allow-origin",
    "vary",
    "via",
    "warning",
    "www-authenticate",
];

/// `<OriginalHeader>OFF`: drops the origin's nonstandard fields.
pub fn keep_standard(headers: &mut HeaderMap) {
    let odd: Vec<HeaderName> = headers
        .keys()
        .filter(|n| !STANDARD.contains(&n.as_str()))
        .cloned()
        .collect();
    for n in odd {
        headers.remove(n);
    }
}

/// Who asked for what: what a `headers.txt` match looks at.
pub struct Asker<'a> {
    /// The client address.
    pub ip: IpAddr,
    /// The request headers (after request rules).
    pub request: &'a HeaderMap,
    /// The request path.
    pub path: &'a str,
}

/// Whether a `headers.txt`/`bypass.txt` condition holds for a request.
pub fn matches(m: &Match, who: &Asker<'_>) -> bool {
    match m {
        Match::Ip(rule) => rule.matches(who.ip),
        Match::Url(p) => p.matches(who.path),
        Match::Header(name, pattern) => who.request.get_all(name.as_str()).iter().any(|v| {
            pattern
                .as_ref()
                .is_none_or(|p| v.to_str().is_ok_and(|v| p.matches(v)))
        }),
    }
}

fn apply(rule: &HeaderRule, headers: &mut HeaderMap) {
    let Ok(name) = HeaderName::from_bytes(rule.name.as_bytes()) else {
        return;
    };
    // The guide: Host (request) and Content-Length (response) are never changed.
    if name == header::HOST || name == header::CONTENT_LENGTH {
        return;
    }
    let Ok(value) = HeaderValue::from_str(&rule.value) else {
        return;
    };
    match rule.action {
        Action::Set => {
            headers.insert(name, value);
        }
        Action::Put => {
            headers.append(name, value);
        }
        Action::Append => {
            let joined = headers
                .get(&name)
                .and_then(|old| old.to_str().ok())
                .map(|old| format!("{old}, {}", rule.value));
            match joined.and_then(|j| HeaderValue::from_str(&j).ok()) {
                Some(j) => headers.insert(name, j),
                None => headers.insert(name, value),
            };
        }
        Action::Unset => {
            headers.remove(name);
        }
    }
}

/// Applies the rules of `side` to `headers`; `status` is the response status
/// (`None` for the request).
pub fn modify(
    policy: &ModifyHeader,
    side: Side,
    who: &Asker<'_>,
    status: Option<u16>,
    headers: &mut HeaderMap,
) {
    let applicable = policy.rules.iter().filter(|r| {
        r.side == side
            && matches(&r.when, who)
            && r.status.is_none_or(|c| status.is_some_and(|s| c.holds(s)))
    });
    let rules: Vec<&HeaderRule> = if policy.first_only {
        applicable.take(1).collect()
    } else {
        applicable.collect()
    };
    for r in rules {
        apply(r, headers);
    }
}

/// `<RefreshExpiresHeader>`: the first `expires.txt` rule matching the path or
/// the media type sets `Expires` and `Cache-Control: max-age` (mod_expires).
pub fn refresh_expires(
    rules: &[ExpiresRule],
    path: &str,
    headers: &mut HeaderMap,
    now: SystemTime,
) {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let Some(rule) = rules.iter().find(|r| match &r.when {
        ExpiresMatch::Url(p) => p.matches(path),
        ExpiresMatch::Mime(p) => p.matches(&media),
    }) else {
        return;
    };
    let base = match rule.base {
        ExpiresBase::Access => now,
        ExpiresBase::Modification => {
            let Some(modified) = headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
            else {
                // The guide: no Last-Modified, no Expires.
                return;
            };
            modified
        }
    };
    // A past time becomes now (the guide, for Modification).
    let expires = (base + rule.after).max(now);
    let max_age = expires
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_str(&httpdate::fmt_http_date(expires)).expect("HTTP date"),
    );
    let mut directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty() && !d.to_ascii_lowercase().starts_with("max-age"))
        .collect();
    directives.push(format!("max-age={max_age}"));
    if let Ok(v) = HeaderValue::from_str(&directives.join(", ")) {
        headers.insert(header::CACHE_CONTROL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pattern::UrlPattern;

    #[test]
    fn expires_from_access_and_modification() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let rules = [
            ExpiresRule {
                when: ExpiresMatch::Mime(UrlPattern::new("image/gif")),
                after: Duration::from_secs(3600),
                base: ExpiresBase::Modification,
            },
            ExpiresRule {
                when: ExpiresMatch::Url(UrlPattern::new("*")),
                after: Duration::from_secs(60),
                base: ExpiresBase::Access,
            },
        ];
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=5"),
        );
        refresh_expires(&rules, "/a.html", &mut h, now);
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=60");
        assert_eq!(
            h[header::EXPIRES].to_str().unwrap(),
            httpdate::fmt_http_date(now + Duration::from_secs(60))
        );
        let mut gif = HeaderMap::new();
        gif.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
        refresh_expires(&rules, "/a.gif", &mut gif, now);
        assert!(
            !gif.contains_key(header::EXPIRES),
            "no Last-Modified, no Expires"
        );
        let modified = now - Duration::from_secs(600);
        gif.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(modified)).unwrap(),
        );
        refresh_expires(&rules, "/a.gif", &mut gif, now);
        assert_eq!(gif[header::CACHE_CONTROL], "max-age=3000");
    }
}
