//! Origin and OriginError log lines (chapter 12), field by field as the guide lists them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::roll::Time;

/// The origin log's fields, in the guide's order.
pub const ORIGIN_FIELDS: &str = "date time cs-sid cs-tcount c-ip cs-method s-domain cs-uri s-ip sc-status cs-range sc-sock-error sc-http-error sc-content-length cs-requestsize sc-responsesize sc-bytes time-taken time-dns time-connect time-firstbyte time-complete cs-reqinfo cs-acceptencoding sc-cachecontrol s-port sc-contentencoding session-id session-type";

/// The originerror log's fields.
pub const ORIGIN_ERROR_FIELDS: &str =
    "date time vhostname level s-domain s-ip cs-method cs-uri time-taken sc-error sc-resinfo";

/// The guide's date and time fields.
pub fn stamp(t: Time) -> impl std::fmt::Display {
    t.format("%Y.%m.%d %H:%M:%S")
}

/// A value or `-`.
fn dash(v: Option<&str>) -> &str {
    v.filter(|s| !s.is_empty()).unwrap_or("-")
}

/// One origin exchange, as the origin log records it.
#[derive(Debug, Clone)]
pub struct OriginExchange {
    /// The origin connection's id (`cs-sid`).
    pub conn_id: u64,
    /// Exchanges on that connection so far, this one included (`cs-tcount`).
    pub conn_count: u64,
    /// kurad's address on the connection (`c-ip`).
    pub local: Option<SocketAddr>,
    /// Request method.
    pub method: String,
    /// The origin's name as configured (`s-domain`).
    pub domain: String,
    /// Path and query sent.
    pub uri: String,
    /// The origin's address (`s-ip`, `s-port`).
    pub remote: Option<SocketAddr>,
    /// Response status.
    pub status: u16,
    /// `Range` sent.
    pub range: Option<String>,
    /// Response `Content-Length`.
    pub content_length: Option<u64>,
    /// Bytes of the request head sent.
    pub request_head: u64,
    /// Bytes of the response head.
    pub response_head: u64,
    /// Time to connect when this exchange opened the connection.
    pub connect: Duration,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// `bypass` when the exchange was not for the cache (`cs-reqinfo`).
    pub bypass: bool,
    /// `Accept-Encoding` sent.
    pub accept_encoding: Option<String>,
    /// Response `Cache-Control`.
    pub cache_control: Option<String>,
    /// Response `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// The client connection that caused it (`session-id`).
    pub session: u64,
}

impl OriginExchange {
    /// The line, once the body ended after `complete` with `received` bytes.
    pub fn line(&self, at: Time, received: u64, complete: Duration, completed: bool) -> String {
        let ms = |d: Duration| d.as_millis();
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "{} {} {} {} {} {} {} {} {} {} ",
            stamp(at),
            self.conn_id,
            self.conn_count,
            self.local.map_or("-".into(), |a| a.ip().to_string()),
            self.method,
            dash(Some(&self.domain)),
            dash(Some(&self.uri)).replace(' ', "+"),
            self.remote.map_or("-".into(), |a| a.ip().to_string()),
            self.status,
            dash(self.range.as_deref()),
        );
        // sc-sock-error 3: the connection closed before the body's end.
        let sock_error = if completed { "-" } else { "3" };
        let http_error = if self.status >= 400 {
            self.status.to_string()
        } else {
            "-".into()
        };
        let _ = write!(
            s,
            "{sock_error} {http_error} {} {} {} {received} {} 0 {} {} {} ",
            self.content_length.map_or("-".into(), |n| n.to_string()),
            self.request_head,
            self.response_head,
            ms(self.connect + complete),
            ms(self.connect),
            ms(self.first_byte),
            ms(complete.saturating_sub(self.first_byte)),
        );
        let accept = self.accept_encoding.as_deref().map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join("+")
        });
        let _ = write!(
            s,
            "{} {} {} {} {} {} {}",
            if self.bypass { "Bypass" } else { "-" },
            dash(accept.as_deref()),
            dash(self.cache_control.as_deref()).replace(' ', ""),
            self.remote.map_or("-".into(), |a| a.port().to_string()),
            dash(self.content_encoding.as_deref()),
            self.session,
            if self.bypass { "bypass" } else { "cache" },
        );
        s
    }
}

/// One originerror line: `date time [vhost] [ERROR] s-domain s-ip method uri time-taken sc-error -`.
/// `origin` is (s-domain, s-ip), `request` (cs-method, cs-uri).
pub fn origin_error(
    at: Time,
    vhost: &str,
    (domain, ip): (&str, &str),
    (method, uri): (&str, &str),
    taken: Duration,
    error: &str,
) -> String {
    format!(
        "{} [{vhost}] [ERROR] {} {} {method} {} {} {error} -",
        stamp(at),
        dash(Some(domain)),
        dash(Some(ip)),
        dash(Some(uri)).replace(' ', "+"),
        taken.as_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn origin_lines_have_every_field() {
        let x = OriginExchange {
            conn_id: 357,
            conn_count: 899,
            local: Some("192.168.0.13:40000".parse().unwrap()),
            method: "GET".into(),
            domain: "i.example.com".into(),
            uri: "/t/2.gif".into(),
            remote: Some("115.71.9.136:80".parse().unwrap()),
            status: 200,
            range: None,
            content_length: Some(3874),
            request_head: 197,
            response_head: 271,
            connect: Duration::ZERO,
            first_byte: Duration::from_millis(17),
            bypass: false,
            accept_encoding: Some("gzip, deflate".into()),
            cache_control: None,
            content_encoding: Some("gzip".into()),
            session: 7,
        };
        let t = chrono::Local
            .with_ymd_and_hms(2012, 6, 27, 17, 40, 0)
            .unwrap();
        let line = x.line(t, 3874, Duration::from_millis(20), true);
        assert_eq!(
            line,
            "2012.06.27 17:40:00 357 899 192.168.0.13 GET i.example.com /t/2.gif 115.71.9.136 200 - - - 3874 197 271 3874 20 0 0 17 3 - gzip+deflate - 80 gzip 7 cache"
        );
        assert_eq!(line.split(' ').count(), ORIGIN_FIELDS.split(' ').count());
        let e = origin_error(
            t,
            "example.com",
            ("192.168.0.13", "192.168.0.13"),
            ("GET", "/a.jpg"),
            Duration::from_millis(20110),
            "Connect-Timeout",
        );
        assert_eq!(
            e,
            "2012.06.27 17:40:00 [example.com] [ERROR] 192.168.0.13 192.168.0.13 GET /a.jpg 20110 Connect-Timeout -"
        );
        assert_eq!(e.split(' ').count(), ORIGIN_ERROR_FIELDS.split(' ').count());
    }
}
