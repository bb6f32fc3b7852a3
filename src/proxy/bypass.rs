//! Whether a request is bypassed to the origin without the cache (guide chapter 8).

use http::{header, HeaderMap, Method};

use super::headers::{matches, Asker};
use super::origin::Leg;
use crate::config::bypass::BypassPolicy;

/// A client request that asks not to be served from a cache (`Cache-Control:
/// no-cache` or `max-age=0`, `Pragma: no-cache`; the guide's Ctrl+F5).
fn is_no_cache(headers: &HeaderMap) -> bool {
    let has = |name, want: &dyn Fn(&str) -> bool| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| want(&d.trim().to_ascii_lowercase()))
    };
    has(header::CACHE_CONTROL, &|d| {
        d == "no-cache" || d.replace(' ', "") == "max-age=0"
    }) || has(header::PRAGMA, &|d| d == "no-cache")
}

/// The leg a bypassed request takes, `None` when the cache serves it. Only GET,
/// HEAD and POST have a choice: other methods always go to the origin.
pub fn route(policy: &BypassPolicy, method: &Method, who: &Asker<'_>) -> Option<Leg> {
    let default = match *method {
        Method::GET | Method::HEAD => policy.get,
        Method::POST => policy.post,
        _ => {
            return Some(Leg::Bypass {
                affinity: None,
                private: false,
            })
        }
    };
    // The guide's priority: a no-cache request, then a line that names its action,
    // then a line that means the opposite of the default, then the default.
    let matching = || {
        policy
            .rules
            .iter()
            .filter(|r| r.all.iter().all(|(negated, m)| matches(m, who) != *negated))
    };
    let bypass = (policy.no_cache && is_no_cache(who.request))
        || matching()
            .find_map(|r| r.action)
            .or_else(|| matching().next().map(|_| !default.on))
            .unwrap_or(default.on);
    bypass.then_some(Leg::Bypass {
        affinity: (default.affinity || default.private).then_some(who.ip),
        private: default.private,
    })
}
