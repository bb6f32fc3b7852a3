//! Finding the vhost of a request (chapter 3, "Discovering a Virtual Host"):
//! the vhost Name, then an exact `<Alias>`, then a `*.` pattern `<Alias>`
//! (longest suffix first), then `<Vhosts><Default>`.

use std::collections::HashMap;
use std::sync::Arc;

use super::VhostRt;

/// The vhosts reachable through one listening address.
#[derive(Default)]
pub struct Router {
    /// Names first, then exact aliases (a name always wins).
    exact: HashMap<String, Arc<VhostRt>>,
    /// `(".suffix", vhost)`, longest suffix first.
    patterns: Vec<(String, Arc<VhostRt>)>,
    /// `<Default>`, when set.
    default: Option<Arc<VhostRt>>,
}

impl Router {
    /// Builds a router over `vhosts` (active ones only, names before aliases).
    pub fn new(vhosts: &[Arc<VhostRt>], default: Option<Arc<VhostRt>>) -> Self {
        let mut r = Router {
            default,
            ..Router::default()
        };
        for v in vhosts {
            r.exact.insert(v.cfg.name.clone(), v.clone());
        }
        for v in vhosts {
            for a in &v.cfg.aliases {
                match a.strip_prefix('*') {
                    Some(suffix) => r.patterns.push((suffix.to_string(), v.clone())),
                    None => {
                        r.exact.entry(a.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        r.patterns.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        r
    }

    /// The vhost for a `Host` header value (any case, with or without port).
    pub fn route(&self, host: &str) -> Option<&Arc<VhostRt>> {
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            &lower
        } else {
            host
        };
        let bare = strip_port(host);
        self.exact
            .get(host)
            .or_else(|| self.exact.get(bare))
            .or_else(|| {
                self.patterns
                    .iter()
                    .find(|(suffix, _)| {
                        bare.len() > suffix.len() && bare.ends_with(suffix.as_str())
                    })
                    .map(|(_, v)| v)
            })
            .or(self.default.as_ref())
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_only_when_numeric() {
        assert_eq!(strip_port("a.com:8080"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
