//! OriginError log lines (chapter 12), field by field as the guide lists them.

use std::time::Duration;

use super::roll::Time;

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

/// One originerror line: `date time [vhost] [ERROR] s-domain s-ip method uri time-taken sc-error -`;
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
        at.format("%Y.%m.%d %H:%M:%S"),
        dash(domain),
        dash(ip),
        dash(uri).replace(' ', "+"),
        taken.as_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
            "Connect-Timeout",
        );
        // The guide's example line.
        assert_eq!(
            e,
            "2012.11.15 07:06:10 [example.com] [ERROR] 192.168.0.13 192.168.0.13 GET /Upload/ProductImage/stock/1716439_SM.jpg 20110 Connect-Timeout -"
        );
        assert_eq!(e.split(' ').count(), ORIGIN_ERROR_FIELDS.split(' ').count());
    }
}
