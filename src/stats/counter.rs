//! The raw counters recorded per vhost on the request path. Everything the
//! exports show (means, ratios, per-second rates) is derived from these
//! sums over a window.

use crate::cache::CacheResult;

/// Which side of the cache an exchange was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to kura.
    Client = 0,
    /// kura to origin.
    Origin = 1,
}

/// Response status classes the guide reports (`ResTotal`, `Res2xx` ... `Res5xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Every response.
    Total = 0,
    /// 2xx.
    C2xx = 1,
    /// 3xx.
    C3xx = 2,
    /// 4xx.
    C4xx = 3,
    /// 5xx.
    C5xx = 4,
}

impl Class {
    /// Every class, in the guide's order.
    pub const ALL: [Class; 5] = [
        Class::Total,
        Class::C2xx,
        Class::C3xx,
        Class::C4xx,
        Class::C5xx,
    ];

    /// The class of a status code (1xx counts only in `Total`).
    pub fn of(status: u16) -> Option<Class> {
        match status {
            200..=299 => Some(Class::C2xx),
            300..=399 => Some(Class::C3xx),
            400..=499 => Some(Class::C4xx),
            500..=599 => Some(Class::C5xx),
            _ => None,
        }
    }

    /// The guide's infix (`Total`, `2xx`, ...).
    pub fn as_str(self) -> &'static str {
        ["Total", "2xx", "3xx", "4xx", "5xx"][self as usize]
    }
}

/// Counters per side: requests, inbound and outbound bytes, then per class the
/// response count and the sums of response-head and completion times (µs).
const PER_SIDE: usize = 3 + 5 * 3;
const RESULTS: usize = 2 * PER_SIDE;
const RESULT_BYTES: usize = RESULTS + CacheResult::ALL.len();
const GAUGES: usize = RESULT_BYTES + CacheResult::ALL.len();

/// Number of raw values per vhost: counters, then the session gauges.
pub const N: usize = GAUGES + 4;

/// Gauges: values sampled once a second rather than summed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Open client connections whose latest request was for the vhost.
    ClientSessions = 0,
    /// Client requests in progress.
    ClientActive = 1,
    /// Open connections to the vhost's origins.
    OriginSessions = 2,
    /// Origin requests in progress.
    OriginActive = 3,
}

impl Gauge {
    /// Every gauge.
    pub const ALL: [Gauge; 4] = [
        Gauge::ClientSessions,
        Gauge::ClientActive,
        Gauge::OriginSessions,
        Gauge::OriginActive,
    ];
}

/// Where a gauge's per-second samples are summed in a window.
pub const fn gauge(g: Gauge) -> usize {
    GAUGES + g as usize
}

/// Requests sent on a side.
pub const fn requests(side: Side) -> usize {
    side as usize * PER_SIDE
}

/// Bytes received on a side (from the client, or from the origin).
pub const fn inbound(side: Side) -> usize {
    side as usize * PER_SIDE + 1
}

/// Bytes sent on a side (to the client, or to the origin).
pub const fn outbound(side: Side) -> usize {
    side as usize * PER_SIDE + 2
}

/// Responses of a class.
pub const fn responses(side: Side, class: Class) -> usize {
    side as usize * PER_SIDE + 3 + class as usize * 3
}

/// Sum of microseconds until the response head, for a class.
pub const fn time_res(side: Side, class: Class) -> usize {
    responses(side, class) + 1
}

/// Sum of microseconds until the response completed, for a class.
pub const fn time_complete(side: Side, class: Class) -> usize {
    responses(side, class) + 2
}

/// Client requests with a result code.
pub fn result(r: CacheResult) -> usize {
    RESULTS + r as usize
}

/// Bytes sent to clients for requests with a result code.
pub fn result_bytes(r: CacheResult) -> usize {
    RESULT_BYTES + r as usize
}

/// A stable name for each counter (`client_res_2xx_time_res_us`), for debugging and exports.
pub fn name(i: usize) -> String {
    let side_name = |s: usize| if s == 0 { "client" } else { "origin" };
    if i < RESULTS {
        let (side, off) = (i / PER_SIDE, i % PER_SIDE);
        return match off {
            0 => format!("{}_requests", side_name(side)),
            1 => format!("{}_inbound_bytes", side_name(side)),
            2 => format!("{}_outbound_bytes", side_name(side)),
            _ => {
                let class = Class::ALL[(off - 3) / 3].as_str().to_ascii_lowercase();
                let what = ["responses", "time_res_us", "time_complete_us"][(off - 3) % 3];
                format!("{}_res_{class}_{what}", side_name(side))
            }
        };
    }
    if i < RESULT_BYTES {
        format!("result_{}", CacheResult::ALL[i - RESULTS].as_str())
    } else if i < GAUGES {
        format!(
            "result_{}_bytes",
            CacheResult::ALL[i - RESULT_BYTES].as_str()
        )
    } else {
        [
            "client_sessions",
            "client_active_sessions",
            "origin_sessions",
            "origin_active_sessions",
        ][i - GAUGES]
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_distinct_and_named() {
        let mut names: Vec<String> = (0..N).map(name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), N);
        assert_eq!(
            name(time_res(Side::Origin, Class::C4xx)),
            "origin_res_4xx_time_res_us"
        );
        assert_eq!(name(result_bytes(CacheResult::Hit)), "result_TCP_HIT_bytes");
        assert_eq!(result(CacheResult::ALL[0]), RESULTS);
    }
}
