//! The guide's cache result codes (`TCP_*`), one enum for the response
//! header, the access log and the statistics.

/// What happened to one client request (chapter 10 `HttpRequestHitSum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheResult {
    /// No result (the request never got that far).
    None,
    /// A fresh cached copy was served.
    Hit,
    /// A conditional request was answered 304 from the cache.
    ImsHit,
    /// The copy had expired; the origin said 304 and the TTL was extended.
    RefreshHit,
    /// Revalidation failed; the expired copy was served.
    RefFailHit,
    /// A cached error response (4xx/5xx) was served.
    NegativeHit,
    /// A redirect from an access-control rule.
    RedirectHit,
    /// Not cached; fetched from the origin.
    Miss,
    /// The copy had expired and changed at the origin; fetched again.
    RefreshMiss,
    /// The request was passed to the origin without the cache.
    ClientRefreshMiss,
    /// The request was denied.
    Denied,
    /// Not cached and the origin failed; an error was sent.
    Error,
}

impl CacheResult {
    /// The result of serving a fresh stored response with `status`: a cached
    /// error response is the guide's negative hit.
    pub fn of_fresh(status: http::StatusCode) -> CacheResult {
        if status.as_u16() >= 400 {
            CacheResult::NegativeHit
        } else {
            CacheResult::Hit
        }
    }

    /// Every code, in the guide's order.
    pub const ALL: [CacheResult; 12] = [
        CacheResult::None,
        CacheResult::Hit,
        CacheResult::ImsHit,
        CacheResult::RefreshHit,
        CacheResult::RefFailHit,
        CacheResult::NegativeHit,
        CacheResult::RedirectHit,
        CacheResult::Miss,
        CacheResult::RefreshMiss,
        CacheResult::ClientRefreshMiss,
        CacheResult::Denied,
        CacheResult::Error,
    ];

    /// The guide's name, as in logs, JSON and XML.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::None => "TCP_NONE",
            CacheResult::Hit => "TCP_HIT",
            CacheResult::ImsHit => "TCP_IMS_HIT",
            CacheResult::RefreshHit => "TCP_REFRESH_HIT",
            CacheResult::RefFailHit => "TCP_REF_FAIL_HIT",
            CacheResult::NegativeHit => "TCP_NEGATIVE_HIT",
            CacheResult::RedirectHit => "TCP_REDIRECT_HIT",
            CacheResult::Miss => "TCP_MISS",
            CacheResult::RefreshMiss => "TCP_REFRESH_MISS",
            CacheResult::ClientRefreshMiss => "TCP_CLIENT_REFRESH_MISS",
            CacheResult::Denied => "TCP_DENIED",
            CacheResult::Error => "TCP_ERROR",
        }
    }

    /// Whether the response body came from the cache.
    pub fn is_hit(self) -> bool {
        matches!(
            self,
            CacheResult::Hit
                | CacheResult::ImsHit
                | CacheResult::RefreshHit
                | CacheResult::RefFailHit
                | CacheResult::NegativeHit
                | CacheResult::RedirectHit
        )
    }

    /// The `X-Cache` header value.
    pub fn x_cache(self) -> &'static str {
        if self.is_hit() {
            "HIT"
        } else {
            "MISS"
        }
    }

    /// The RFC 9211 `Cache-Status` entry for this cache.
    pub fn cache_status(self) -> &'static str {
        match self {
            CacheResult::Hit | CacheResult::ImsHit | CacheResult::NegativeHit => "kura; hit",
            CacheResult::RefreshHit => "kura; hit; fwd=stale; fwd-status=304",
            CacheResult::RefFailHit => "kura; hit; detail=stale-on-error",
            CacheResult::RedirectHit => "kura; detail=redirect",
            CacheResult::Miss => "kura; fwd=uri-miss",
            CacheResult::RefreshMiss => "kura; fwd=stale",
            CacheResult::ClientRefreshMiss => "kura; fwd=bypass",
            CacheResult::Denied => "kura; detail=denied",
            CacheResult::Error => "kura; fwd=uri-miss; detail=origin-error",
            CacheResult::None => "kura",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_guide_and_are_unique() {
        let names: Vec<&str> = CacheResult::ALL.iter().map(|r| r.as_str()).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 12);
        assert!(names.iter().all(|n| n.starts_with("TCP_")));
        assert_eq!(CacheResult::Hit.x_cache(), "HIT");
        assert_eq!(CacheResult::RefreshMiss.x_cache(), "MISS");
    }
}
