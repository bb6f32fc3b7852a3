//! Deny and OriginError log lines (chapter 12), field by field as the guide lists them.

use std::time::Duration;

use super::roll::Time;

/// The deny log's fields.
pub const DENY_FIELDS: &str = "date time c-ip deny";

/// One deny line: `date time c-ip condition` (IPv4-mapped IPv6 clients as IPv4).
pub fn deny(at: Time, ip: std::net::IpAddr, condition: &str) -> String {
    format!(
        "{} {} {condition}",
        at.format("%Y.%m.%d %H:%M:%S"),
        ip.to_canonical()
    )
}

/// The originerror log's fields.
pub const ORIGIN_ERROR_FIELDS: &str =
    "date time vhostname level s-domain s-ip cs-method cs-uri time-taken sc-error sc-resinfo";

/// A value or `-`.
fn dash(v: &str) -> &str {
    if v.is_empty() {
        "-"
    } else {
        v
    }
}

/// One originerror line: `date time [vhost] [ERROR|WARNING] s-domain s-ip method uri
/// time-taken sc-error sc-resinfo`; `origin` is (s-domain, s-ip), `request` (cs-method,
/// cs-uri), `what` (a warning, sc-error, sc-resinfo).
pub fn origin_error(
    at: Time,
    vhost: &str,
    (domain, ip): (&str, &str),
    (method, uri): (&str, &str),
    taken: Duration,
    (warning, error, resinfo): (bool, &str, &str),
) -> String {
    format!(
        "{} [{vhost}] [{}] {} {} {method} {} {} {error} {}",
        at.format("%Y.%m.%d %H:%M:%S"),
        if warning { "WARNING" } else { "ERROR" },
        dash(domain),
        dash(ip),
        dash(uri).replace(' ', "+"),
        taken.as_millis(),
        dash(resinfo),
    )
}

/// An origin IP as the originerror log's service lines name it: the bare IP on
/// port 80 (the guide's example), `IP:port` otherwise (its syslog example).
fn service_addr(a: std::net::SocketAddr) -> String {
    if a.port() == 80 {
        a.ip().to_string()
    } else {
        a.to_string()
    }
}

/// The two originerror lines of an origin IP leaving or coming back into service:
/// `#date time [vhost] IP excluded from service` (or `recovered back in service`),
/// then `#date time [vhost] Origin server list: IP IP ...`, the IPs requests go to now.
pub fn origin_service(
    at: Time,
    vhost: &str,
    ip: std::net::SocketAddr,
    back: bool,
    in_service: &[std::net::SocketAddr],
) -> [String; 2] {
    let stamp = at.format("%Y.%m.%d %H:%M:%S");
    let change = if back {
        "recovered back in service"
    } else {
        "excluded from service"
    };
    let list: Vec<String> = in_service.iter().copied().map(service_addr).collect();
    [
        format!("#{stamp} [{vhost}] {} {change}", service_addr(ip)),
        format!("#{stamp} [{vhost}] Origin server list: {}", list.join(" ")),
    ]
}

/// The origin log's fields (chapter 12, "Origin Log").
pub const ORIGIN_FIELDS: &str = "date time cs-sid cs-tcount c-ip cs-method s-domain cs-uri s-ip sc-status cs-range sc-sock-error sc-http-error sc-content-length cs-requestsize sc-responsesize sc-bytes time-taken time-dns time-connect time-firstbyte time-complete cs-reqinfo cs-acceptencoding sc-cachecontrol s-port sc-contentencoding session-id session-type";

/// One origin transaction as the origin log writes it.
#[derive(Debug, Clone, Default)]
pub struct OriginTransaction {
    /// The origin connection's id and this transaction's number on it (`cs-sid`,
    /// `cs-tcount`); 0 when unknown.
    pub connection: (u64, u64),
    /// kura's address on the connection (`c-ip`).
    pub local: Option<std::net::IpAddr>,
    /// Method sent.
    pub method: String,
    /// `Host` sent (`s-domain`).
    pub domain: String,
    /// URI sent.
    pub uri: String,
    /// The origin's address (`s-ip`, `s-port`).
    pub origin: Option<std::net::SocketAddr>,
    /// Response status.
    pub status: u16,
    /// `Range` sent.
    pub range: Option<String>,
    /// The body did not arrive whole (`sc-sock-error` 3: the connection closed).
    pub broken: bool,
    /// `Content-Length` received.
    pub content_length: Option<u64>,
    /// Bytes of the request head and of the response head.
    pub heads: (u64, u64),
    /// Body bytes received.
    pub bytes: u64,
    /// Whole transaction.
    pub taken: Duration,
    /// Connecting (0 on a reused connection).
    pub connect: Duration,
    /// Request sent to response head.
    pub first_byte: Duration,
    /// Response head to the body's end.
    pub complete: Duration,
    /// `Bypass` or `PrivateBypass`, else empty.
    pub reqinfo: &'static str,
    /// `gzip+deflate` when compressed content was accepted.
    pub accept_encoding: bool,
    /// `Cache-Control` received.
    pub cache_control: Option<String>,
    /// `Content-Encoding` received.
    pub content_encoding: Option<String>,
    /// The client connection that caused it (`session-id`).
    pub session: u64,
}

/// One origin log line.
pub fn origin(at: Time, t: &OriginTransaction) -> String {
    let opt = |v: &Option<String>| match v {
        Some(v) if !v.is_empty() => v.replace(' ', ""),
        _ => "-".to_string(),
    };
    let ms = |d: Duration| d.as_millis();
    let (sid, tcount) = t.connection;
    format!(
        "{} {sid} {tcount} {} {} {} {} {} {} {} {} {} {} {} {} {} {} 0 {} {} {} {} {} {} {} {} {} cache",
        at.format("%Y.%m.%d %H:%M:%S"),
        t.local.map_or("-".to_string(), |ip| ip.to_string()),
        dash(&t.method),
        dash(&t.domain),
        dash(&t.uri).replace(' ', "+"),
        t.origin.map_or("-".to_string(), |a| a.ip().to_string()),
        t.status,
        opt(&t.range),
        if t.broken { "3" } else { "-" },
        if t.status >= 400 { t.status.to_string() } else { "-".into() },
        t.content_length.map_or("-".to_string(), |n| n.to_string()),
        t.heads.0,
        t.heads.1,
        t.bytes,
        ms(t.taken),
        ms(t.connect),
        ms(t.first_byte),
        ms(t.complete),
        dash(t.reqinfo),
        if t.accept_encoding { "gzip+deflate" } else { "-" },
        opt(&t.cache_control),
        t.origin.map_or("-".to_string(), |a| a.port().to_string()),
        opt(&t.content_encoding),
        t.session,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    #[test]
    fn origin_lines_have_every_field_in_order() {
        let t = chrono::Local
            .with_ymd_and_hms(2012, 6, 27, 17, 40, 0)
            .unwrap();
        let line = origin(
            t,
            &OriginTransaction {
                connection: (357, 899),
                local: Some("192.168.0.13".parse().unwrap()),
                method: "GET".into(),
                domain: "i.example.com".into(),
                uri: "/t/2.gif".into(),
                origin: Some("115.71.9.136:80".parse().unwrap()),
                status: 200,
                content_length: Some(3874),
                heads: (197, 271),
                bytes: 3874,
                taken: Duration::from_millis(20),
                first_byte: Duration::from_millis(17),
                complete: Duration::from_millis(3),
                accept_encoding: true,
                content_encoding: Some("gzip".into()),
                session: 7,
                ..OriginTransaction::default()
            },
        );
        // The guide's first example line.
        assert_eq!(
            line,
            "2012.06.27 17:40:00 357 899 192.168.0.13 GET i.example.com /t/2.gif 115.71.9.136 200 - - - 3874 197 271 3874 20 0 0 17 3 - gzip+deflate - 80 gzip 7 cache"
        );
        assert_eq!(line.split(' ').count(), ORIGIN_FIELDS.split(' ').count());
    }

    #[test]
    fn origin_error_lines_have_every_field() {
        let t = chrono::Local
            .with_ymd_and_hms(2012, 11, 15, 7, 6, 10)
            .unwrap();
        let e = origin_error(
            t,
            "example.com",
            ("192.168.0.13", "192.168.0.13"),
            ("GET", "/Upload/ProductImage/stock/1716439_SM.jpg"),
            Duration::from_millis(20110),
            (false, "Connect-Timeout", "-"),
        );
        // The guide's example lines.
        assert_eq!(
            e,
            "2012.11.15 07:06:10 [example.com] [ERROR] 192.168.0.13 192.168.0.13 GET /Upload/ProductImage/stock/1716439_SM.jpg 20110 Connect-Timeout -"
        );
        assert_eq!(e.split(' ').count(), ORIGIN_ERROR_FIELDS.split(' ').count());
        let w = origin_error(
            t.with_minute(9).and_then(|t| t.with_second(3)).unwrap(),
            "example.com",
            ("10.10.10.10", "121.189.63.219"),
            ("GET", "/716439_SM.jpg"),
            Duration::from_millis(20110),
            (true, "PartialResponseOnNormalRequest", "Res=206,Len=2635"),
        );
        assert_eq!(
            w,
            "2012.11.15 07:09:03 [example.com] [WARNING] 10.10.10.10 121.189.63.219 GET /716439_SM.jpg 20110 PartialResponseOnNormalRequest Res=206,Len=2635"
        );
    }

    #[test]
    fn service_lines_follow_the_guides_example() {
        let t = chrono::Local
            .with_ymd_and_hms(2012, 11, 15, 7, 6, 30)
            .unwrap();
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            origin_service(
                t,
                "example.com",
                a("192.168.0.13:80"),
                false,
                &[a("192.168.0.14:80")]
            ),
            [
                "#2012.11.15 07:06:30 [example.com] 192.168.0.13 excluded from service",
                "#2012.11.15 07:06:30 [example.com] Origin server list: 192.168.0.14",
            ]
        );
        assert_eq!(
            origin_service(
                t,
                "example.com",
                a("192.168.0.14:102"),
                true,
                &[a("192.168.0.14:102"), a("[::1]:8080")]
            ),
            [
                "#2012.11.15 07:06:30 [example.com] 192.168.0.14:102 recovered back in service",
                "#2012.11.15 07:06:30 [example.com] Origin server list: 192.168.0.14:102 [::1]:8080",
            ]
        );
    }
}
