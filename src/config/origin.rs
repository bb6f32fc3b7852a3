//! Reads chapter 7's origin settings: `<Origin>` (addresses, standby addresses,
//! health checkers) and `<OriginOptions>` (timeouts, error detection and recovery,
//! balancing, the request headers kura sets).

use std::time::Duration;

use http::HeaderValue;

use super::node::Node;
use super::value::{self, OriginAddress};
use super::Cx;

/// `<BalanceMode>`: how a request picks among the usable addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceMode {
    /// Each request goes to the next address in turn.
    RoundRobin,
    /// An address with an idle connection first; otherwise the next in turn.
    Session,
    /// Rendezvous (consistent) hashing of the URL: an object keeps its origin while
    /// that origin is usable, and only the objects of a lost origin move.
    Hash,
}

/// A header kura sets on origin requests (`<Host>`, `<UserAgent>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSetting {
    /// Not written: kura's default for that header.
    Default,
    /// `*`: the client's value is passed on.
    Client,
    /// This value.
    Fixed(HeaderValue),
}

/// A periodic probe of every origin IP: `<Recovery>` for excluded ones, or a
/// `<HealthChecker>` for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Path requested (`Uri`, or the `<HealthChecker>` text).
    pub uri: String,
    /// `ResCode`: statuses that count as success; empty = any response.
    pub codes: Vec<u16>,
    /// `Cycle`: time between probes.
    pub cycle: Duration,
    /// Limit from connecting to the end of the probe.
    pub timeout: Duration,
    /// Consecutive failures that exclude the IP (`<Exclusion>` for `<Recovery>`).
    pub exclusion: u32,
    /// Consecutive successes that bring it back (0 = never).
    pub recovery: u32,
    /// `Log`: probes are written to the vhost's origin log.
    pub log: bool,
    /// A `<HealthChecker>` reads the whole response; `<Recovery>` stops at the status.
    pub whole_body: bool,
}

impl Probe {
    /// Whether a probe answered with `status` succeeded.
    pub fn accepts(&self, status: u16) -> bool {
        self.codes.is_empty() || self.codes.contains(&status)
    }
}

/// The smallest `<PartSize>`: smaller parts would cost a request and a file
/// per few kilobytes.
const MIN_PART_SIZE: u64 = 64 * 1024;

/// Origin-side settings of a vhost (chapter 7).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `<Origin><Address>`.
    pub addresses: Vec<OriginAddress>,
    /// `<Origin><Address2>`: standby addresses, used while no `<Address>` is usable.
    pub standby: Vec<OriginAddress>,
    /// `<ConnectTimeout>`.
    pub connect_timeout: Duration,
    /// `<ReceiveTimeout>`: wait for the origin's response head.
    pub receive_timeout: Duration,
    /// `<ReuseTimeout>`: idle origin connections are kept this long (0 = no reuse).
    pub reuse_timeout: Duration,
    /// `<BusySessionCount>`: active origin transactions at which the origin counts as busy.
    pub busy_sessions: u64,
    /// `<Exclusion>`: consecutive request failures that exclude an IP.
    pub exclusion: u32,
    /// `<Recovery>`: how an excluded IP is probed back.
    pub recovery: Probe,
    /// `<Origin><HealthChecker>`s, each with its own exclusions.
    pub health_checkers: Vec<Probe>,
    /// `<BalanceMode>`.
    pub balance: BalanceMode,
    /// `<DnsMaxTTL>`: how long a resolved IP of a domain address stays usable after
    /// it was last seen (the system resolver does not report record TTLs).
    pub dns_ttl: Duration,
    /// `<Host>`.
    pub host: HeaderSetting,
    /// `<UserAgent>`.
    pub user_agent: HeaderSetting,
    /// `<XFFClientIPOnly>`: send only the first `X-Forwarded-For` address.
    pub xff_client_ip_only: bool,
    /// `<WholeClientRequest>`: the client's URL goes to the origin; off, the caching
    /// key's (lower case without `<CaseSensitive>`, no query string where keys drop it).
    pub whole_client_request: bool,
    /// `<FullRangeInit>`: cache fetches ask for `Range: bytes=0-`.
    pub full_range_init: bool,
    /// `<PartSize>` in bytes (written in MB of 2^20 bytes); 0 keeps objects whole.
    /// Otherwise objects are fetched and stored in parts of this size.
    pub part_size: u64,
    /// `<RedirectionTrace>`: a redirect answering a cache fetch is followed once.
    pub redirection_trace: bool,
    /// `<OriginalETag>`: revalidation sends the stored ETag as `If-None-Match`
    /// (`If-Modified-Since` is sent either way). On unless written OFF.
    pub original_etag: bool,
}

/// Reads `<Origin>` of a vhost (`origin`, its own) and `<OriginOptions>`
/// (`options`, inherited from `<VHostDefault>`).
pub(super) fn read(cx: &mut Cx, origin: &Node<'_>, options: &Node<'_>) -> OriginPolicy {
    let secs = |cx: &mut Cx, v: Option<super::node::Value<'_>>, fallback: u64| {
        cx.get(v, value::duration, Duration::from_secs(fallback))
    };
    let count = |cx: &mut Cx, v: Option<super::node::Value<'_>>, fallback: u32| {
        cx.get(v, value::int_in(0u32, 1_000_000), fallback)
    };
    let on = |cx: &mut Cx, v: Option<super::node::Value<'_>>, fallback: bool| {
        cx.get(v, value::on_off, fallback)
    };
    let mut addresses = |tag: &str| -> Vec<OriginAddress> {
        origin
            .list(tag)
            .into_iter()
            .filter_map(|el| {
                Node::new(Some(el), None, &format!("Vhosts/Vhost/Origin/{tag}")).value()
            })
            .filter_map(|v| {
                v.parse(value::origin_address)
                    .map_err(|e| cx.errors.push(e))
                    .ok()
            })
            .collect()
    };
    let (addresses, standby) = (addresses("Address"), addresses("Address2"));

    let connect_timeout = secs(cx, options.child("ConnectTimeout").value(), 3);
    let receive_timeout = secs(cx, options.child("ReceiveTimeout").value(), 10);
    let exclusion = count(cx, options.child("Exclusion").value(), 3);
    let rec = options.child("Recovery");
    let recovery = Probe {
        uri: probe_uri(cx, rec.attr("Uri")),
        codes: cx.get(rec.attr("ResCode"), res_codes, Vec::new()),
        cycle: secs(cx, rec.attr("Cycle"), 10),
        timeout: connect_timeout + receive_timeout,
        exclusion,
        recovery: count(cx, rec.value(), 5),
        log: on(cx, rec.attr("Log"), true),
        whole_body: false,
    };
    let health_checkers = origin
        .list("HealthChecker")
        .into_iter()
        .map(|el| {
            let hc = Node::new(Some(el), None, "Vhosts/Vhost/Origin/HealthChecker");
            Probe {
                uri: probe_uri(cx, hc.value()),
                codes: cx.get(hc.attr("ResCode"), res_codes, Vec::new()),
                cycle: secs(cx, hc.attr("Cycle"), 10),
                timeout: secs(cx, hc.attr("Timeout"), 10),
                exclusion: count(cx, hc.attr("Exclusion"), 3).max(1),
                recovery: count(cx, hc.attr("Recovery"), 5),
                log: on(cx, hc.attr("Log"), true),
                whole_body: true,
            }
        })
        .collect();
    // Only a written value counts: the table's `STON` default for `<UserAgent>` is
    // not sent (kura passes the client's, see `HeaderSetting::Default`).
    let header = |cx: &mut Cx, n: Node<'_>| {
        cx.get(
            n.value().filter(|v| v.loc.is_some()),
            |s| match s.trim() {
                "" => Ok(HeaderSetting::Default),
                "*" => Ok(HeaderSetting::Client),
                v => HeaderValue::from_str(v)
                    .map(HeaderSetting::Fixed)
                    .map_err(|_| format!("\"{v}\" is not a valid header value")),
            },
            HeaderSetting::Default,
        )
    };
    OriginPolicy {
        addresses,
        standby,
        connect_timeout,
        receive_timeout,
        reuse_timeout: secs(cx, options.child("ReuseTimeout").value(), 60),
        busy_sessions: cx.get(
            options.child("BusySessionCount").value(),
            value::int_in(1u64, u64::MAX),
            100,
        ),
        exclusion,
        recovery,
        health_checkers,
        balance: cx.get(
            options.child("BalanceMode").value(),
            |s| match s.to_ascii_lowercase().as_str() {
                "roundrobin" => Ok(BalanceMode::RoundRobin),
                "session" => Ok(BalanceMode::Session),
                "hash" => Ok(BalanceMode::Hash),
                _ => Err(format!(
                    "unknown value \"{s}\" (RoundRobin, Session or Hash)"
                )),
            },
            BalanceMode::RoundRobin,
        ),
        dns_ttl: secs(cx, options.child("DnsMaxTTL").value(), 60),
        host: header(cx, options.child("Host")),
        user_agent: header(cx, options.child("UserAgent")),
        xff_client_ip_only: on(cx, options.child("XFFClientIPOnly").value(), false),
        whole_client_request: on(cx, options.child("WholeClientRequest").value(), false),
        redirection_trace: on(cx, options.child("RedirectionTrace").value(), false),
        full_range_init: on(cx, options.child("FullRangeInit").value(), false),
        part_size: cx.get(
            options.child("PartSize").value(),
            |s| match s.trim() {
                "0" => Ok(0),
                mb => match value::megabytes(mb)? {
                    n if n < MIN_PART_SIZE => Err(format!(
                        "\"{mb}\" MB is below the smallest part, 0.0625 MB (64 KiB)"
                    )),
                    n => Ok(n),
                },
            },
            0,
        ),
        // RFC 9111 4.3.1: a cache sends the validators it has. The guide's default
        // ignores ETags; kura uses them unless the configuration says OFF.
        original_etag: {
            let n = options.child("OriginalETag");
            let written = n.value().filter(|v| v.loc.is_some());
            on(cx, written, true)
        },
    }
}

/// A probe path: absolute, no spaces (`/` when empty).
fn probe_uri(cx: &mut Cx, v: Option<super::node::Value<'_>>) -> String {
    cx.get(
        v,
        |s| match s.trim() {
            "" => Ok("/".to_string()),
            p if p.starts_with('/') && p.parse::<http::uri::PathAndQuery>().is_ok() => {
                Ok(p.to_string())
            }
            p => Err(format!(
                "\"{p}\" is not an absolute path such as /alive.html"
            )),
        },
        "/".to_string(),
    )
}

/// `ResCode`: `0` (any response) or a comma list such as `200, 206, 404`.
fn res_codes(s: &str) -> Result<Vec<u16>, String> {
    let mut codes = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part.parse::<u16>() {
            Ok(0) => {}
            Ok(c) if (100..=599).contains(&c) => codes.push(c),
            _ => {
                return Err(format!(
                    "\"{part}\" is not an HTTP status code (0 or a list such as 200, 404)"
                ))
            }
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::res_codes;

    #[test]
    fn res_codes_reads_the_guides_forms() {
        assert_eq!(res_codes("0"), Ok(vec![]));
        assert_eq!(res_codes("200, 206, 404"), Ok(vec![200, 206, 404]));
        assert!(res_codes("20x").unwrap_err().contains("20x"));
        assert!(res_codes("999").is_err());
    }
}
