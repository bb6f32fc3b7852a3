//! `stats`, `top` and `status`: the monitoring JSON (`/monitoring/realtime`,
//! `/monitoring/average`) read as a table. Every number is one the API wrote,
//! or a sum of them; nothing is counted here (`../shared/spec/MONITORING.md`
//! says which members are per-second means, window totals, ratios and gauges).

use std::fmt::Write as _;

use serde_json::Value;

use crate::cli::Window;
use crate::client::Failure;

/// One line of the table: a vhost, or the whole server.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Vhost name, or `TOTAL` for the host.
    pub name: String,
    /// Client requests in the window (a window total).
    pub requests: u64,
    /// Client requests per second: the API's per-second mean, rounded by kurad.
    pub req_per_sec: i64,
    /// Request hit ratio in 0.01 %, from the window's totals.
    pub hit_ratio: i64,
    /// Byte hit ratio in 0.01 % (negative when the origin sent more than clients got).
    pub byte_hit_ratio: i64,
    /// Bytes received from clients per second.
    pub in_per_sec: i64,
    /// Bytes sent to clients per second.
    pub out_per_sec: i64,
    /// Client response time, median, in 0.01 ms.
    pub p50: i64,
    /// Client response time, 99th percentile, in 0.01 ms.
    pub p99: i64,
    /// Requests sent to origins in the window (a window total).
    pub origin_requests: u64,
    /// Origin failures in the window: 5xx answers, connect failures, receive
    /// timeouts and connections closed mid-transfer.
    pub origin_errors: u64,
    /// Origin response time, 99th percentile, in 0.01 ms.
    pub origin_p99: i64,
}

/// What the title line says about the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// kura version.
    pub version: String,
    /// `<Host><Name>`.
    pub name: String,
    /// `Healthy` or `Emergency`.
    pub state: String,
    /// Seconds since kurad started.
    pub uptime: u64,
    /// Open client sessions (a gauge).
    pub client_sessions: i64,
    /// Open origin sessions (a gauge).
    pub origin_sessions: i64,
}

/// The monitoring JSON read once: the server, every vhost, and the total.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The title line's facts.
    pub summary: Summary,
    /// One row per vhost, in configuration order.
    pub vhosts: Vec<Row>,
    /// The host's row.
    pub total: Row,
    /// Set by [`Table::only`]: the total row is left out, as it would repeat the one vhost.
    pub narrowed: bool,
}

/// Reads a member path as an integer; a reply without it is not one kuractl understands.
fn int(v: &Value, path: &[&str]) -> Result<i64, Failure> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_i64)
        .ok_or_else(|| Failure::BadReply(format!("monitoring reply without {}", path.join("."))))
}

/// A window total (never negative).
fn total(v: &Value, path: &[&str]) -> Result<u64, Failure> {
    int(v, path).map(|n| n.max(0).unsigned_abs())
}

fn text(v: &Value, key: &str) -> Result<String, Failure> {
    v[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Failure::BadReply(format!("monitoring reply without Host.{key}")))
}

/// The columns a vhost and the host share: the guide's traffic block and our `ResponseTime`.
fn row(
    name: String,
    b: &Value,
    requests: u64,
    origin_requests: u64,
    origin_errors: u64,
) -> Result<Row, Failure> {
    Ok(Row {
        name,
        requests,
        req_per_sec: int(b, &["ClientReqCount"])?,
        hit_ratio: int(b, &["RequestHitRatio"])?,
        byte_hit_ratio: int(b, &["ByteHitRatio"])?,
        in_per_sec: int(b, &["ClientInbound"])?,
        out_per_sec: int(b, &["ClientOutbound"])?,
        p50: int(b, &["ResponseTime", "Client", "P50"])?,
        p99: int(b, &["ResponseTime", "Client", "P99"])?,
        origin_requests,
        origin_errors,
        origin_p99: int(b, &["ResponseTime", "Origin", "P99"])?,
    })
}

/// A vhost's client requests in the window. The vhost block has only the
/// per-second mean; the totals are in `ClientTraffic.Traffic[]`, one entry per
/// directory. With `DirDepthAccum` ON a request counts in every ancestor, so
/// `/` alone is the whole vhost; otherwise each request is in exactly one
/// directory and the entries add up to it.
fn vhost_requests(v: &Value) -> Result<u64, Failure> {
    let traffic = &v["ClientTraffic"];
    let dirs = traffic["Traffic"].as_array().ok_or_else(|| {
        Failure::BadReply("monitoring reply without ClientTraffic.Traffic".into())
    })?;
    if traffic["Accum"] == "ON" {
        let root = dirs.iter().find(|d| d["Path"] == "/");
        return root.map_or(Ok(0), |d| total(d, &["HttpReqCountSum"]));
    }
    dirs.iter().map(|d| total(d, &["HttpReqCountSum"])).sum()
}

/// A vhost's origin failures in the window (see [`Row::origin_errors`]).
fn vhost_origin_errors(v: &Value) -> Result<u64, Failure> {
    let r = ["OriginTraffic", "Response"];
    [
        &[r[0], r[1], "Res5xx", "CountSum"][..],
        &[r[0], r[1], "ConnectTimeoutSum"],
        &[r[0], r[1], "ReceiveTimeoutSum"],
        &[r[0], r[1], "CloseSum"],
    ]
    .iter()
    .map(|p| total(v, p))
    .sum()
}

impl Table {
    /// Reads `/monitoring/realtime` or `/monitoring/average` JSON.
    pub fn from_json(doc: &Value) -> Result<Table, Failure> {
        let host = &doc["Host"];
        let list = host["VirtualHost"]
            .as_array()
            .ok_or_else(|| Failure::BadReply("monitoring reply without Host.VirtualHost".into()))?;
        let mut vhosts = Vec::with_capacity(list.len());
        // The host block has no origin failure members: they add up from the vhosts.
        let mut origin_errors = 0;
        for v in list {
            let errors = vhost_origin_errors(v)?;
            origin_errors += errors;
            vhosts.push(row(
                text(v, "Name")?,
                v,
                vhost_requests(v)?,
                total(v, &["OriginTraffic", "HttpReqCountSum"])?,
                errors,
            )?);
        }
        let total_row = row(
            "TOTAL".into(),
            host,
            total(host, &["HttpCountSum", "ClientReqCount"])?,
            total(host, &["HttpCountSum", "OriginReqCount"])?,
            origin_errors,
        )?;
        Ok(Table {
            summary: Summary {
                version: text(host, "Version")?,
                name: text(host, "Name")?,
                state: text(host, "State")?,
                uptime: total(host, &["Uptime"])?,
                client_sessions: int(host, &["ClientSession"])?,
                origin_sessions: int(host, &["OriginSession"])?,
            },
            vhosts,
            total: total_row,
            narrowed: false,
        })
    }

    /// Keeps only `vhost` (any case) and drops the total, which would repeat it.
    pub fn only(mut self, vhost: &str) -> Result<Table, Failure> {
        let names: Vec<String> = self.vhosts.iter().map(|r| r.name.clone()).collect();
        self.vhosts.retain(|r| r.name.eq_ignore_ascii_case(vhost));
        if self.vhosts.is_empty() {
            return Err(Failure::Local(format!(
                "kurad has no vhost {vhost} (it has: {})",
                names.join(", ")
            )));
        }
        self.narrowed = true;
        Ok(self)
    }

    /// The table as printed: a title line, a header, one line per row.
    /// Every cell is one word, so `awk` and tests can split lines on blanks.
    pub fn render(&self, window: Window) -> String {
        let s = &self.summary;
        let mut out = format!(
            "kurad {} on {}: {}, up {}; window: {}\n",
            s.version,
            s.name,
            s.state,
            duration(s.uptime),
            window.describe()
        );
        let mut lines = vec![HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        let rows = self
            .vhosts
            .iter()
            .chain((!self.narrowed).then_some(&self.total));
        lines.extend(rows.map(cells));
        let widths: Vec<usize> = (0..HEADER.len())
            .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
            .collect();
        for line in &lines {
            for (c, (cell, w)) in line.iter().zip(&widths).enumerate() {
                match c {
                    0 => write!(out, "{cell:<w$}"),
                    _ => write!(out, "  {cell:>w$}"),
                }
                .expect("writing to a String");
            }
            out.push('\n');
        }
        out
    }
}

/// Column titles, in [`cells`] order.
const HEADER: [&str; 12] = [
    "VHOST",
    "REQS",
    "REQ/S",
    "HIT%",
    "BYTEHIT%",
    "IN/S",
    "OUT/S",
    "P50ms",
    "P99ms",
    "ORIG-REQS",
    "ORIG-ERRS",
    "ORIG-P99ms",
];

/// A row's cells. Ratios and times of a window without requests are `-`: the
/// API writes 0 there, which would read as "never hits" or "instant".
fn cells(r: &Row) -> Vec<String> {
    let busy = r.requests > 0;
    let or_dash = |ok: bool, s: String| if ok { s } else { "-".into() };
    vec![
        r.name.clone(),
        r.requests.to_string(),
        r.req_per_sec.to_string(),
        or_dash(busy, hundredths(r.hit_ratio)),
        or_dash(busy, hundredths(r.byte_hit_ratio)),
        bytes(r.in_per_sec),
        bytes(r.out_per_sec),
        or_dash(busy, hundredths(r.p50)),
        or_dash(busy, hundredths(r.p99)),
        r.origin_requests.to_string(),
        r.origin_errors.to_string(),
        or_dash(r.origin_requests > 0, hundredths(r.origin_p99)),
    ]
}

/// A value in hundredths (0.01 %, 0.01 ms) written with two decimals, exactly.
pub fn hundredths(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Bytes scaled by 1024 to three significant digits: `812B`, `1.21KB`, `12.1KB`, `121KB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if n.abs() < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let decimals = match v.abs() {
        a if a < 10.0 => 2,
        a if a < 100.0 => 1,
        _ => 0,
    };
    format!("{v:.decimals$}{}", UNITS[unit])
}

/// Seconds as `3d04h05m06s`, leading zero units left out.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m{s:02}s"),
    }
}

/// `status`: who and how kurad is, in four lines, from a last-second table
/// (so the window totals it shows are per-second figures).
pub fn status(server: &str, t: &Table) -> String {
    let s = &t.summary;
    let names: Vec<&str> = t.vhosts.iter().map(|r| r.name.as_str()).collect();
    let r = &t.total;
    format!(
        "kurad {} on {} at {server}: {}, up {}\n\
         vhosts: {} ({})\n\
         sessions: {} client, {} origin\n\
         last second: {} req/s, {}% hits, in {}/s, out {}/s, {} origin req/s\n",
        s.version,
        s.name,
        s.state,
        duration(s.uptime),
        names.len(),
        names.join(", "),
        s.client_sessions,
        s.origin_sessions,
        r.req_per_sec,
        hundredths(r.hit_ratio),
        bytes(r.in_per_sec),
        bytes(r.out_per_sec),
        r.origin_requests,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_exactly_enough_to_check() {
        assert_eq!(hundredths(6933), "69.33");
        assert_eq!(hundredths(-5), "-0.05");
        assert_eq!(hundredths(0), "0.00");
        assert_eq!(bytes(812), "812B");
        assert_eq!(bytes(1239), "1.21KB");
        assert_eq!(bytes(12_390), "12.1KB");
        assert_eq!(bytes(123_900), "121KB");
        assert_eq!(bytes(3 << 20), "3.00MB");
        assert_eq!(bytes(-2048), "-2.00KB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3661), "1h01m01s");
        assert_eq!(duration(2 * 86400 + 5), "2d00h00m05s");
    }

    #[test]
    fn a_vhost_total_counts_each_request_once_whatever_the_directory_settings() {
        let dirs = |accum: &str| {
            serde_json::json!({"ClientTraffic": {"Accum": accum, "Traffic": [
                {"Path": "/", "HttpReqCountSum": 7},
                {"Path": "/img/", "HttpReqCountSum": 5},
                {"Path": "/css/", "HttpReqCountSum": 2}]}})
        };
        assert_eq!(
            vhost_requests(&dirs("OFF")).unwrap(),
            14,
            "each request in one directory"
        );
        assert_eq!(
            vhost_requests(&dirs("ON")).unwrap(),
            7,
            "/ holds every request"
        );
    }

    /// The golden reply of tests/monitoring.rs read as a table: the totals, the
    /// per-second means and the failure sum come from the members MONITORING.md names.
    #[test]
    fn the_golden_reply_reads_as_a_table() {
        let doc: Value = serde_json::from_str(include_str!(
            "../../../tests/golden/monitoring-average.json"
        ))
        .unwrap();
        let t = Table::from_json(&doc).unwrap();
        let v = &t.vhosts[0];
        assert_eq!(v.name, "www.example.com");
        assert_eq!(v.requests, 3000, "ClientTraffic.Traffic[/].HttpReqCountSum");
        assert_eq!(v.req_per_sec, 10);
        assert_eq!((v.hit_ratio, v.byte_hit_ratio), (6933, 6833));
        assert_eq!((v.p50, v.p99, v.origin_p99), (20, 3997, 8813));
        assert_eq!(v.origin_requests, 970);
        assert_eq!(
            v.origin_errors,
            20 + 3 + 2 + 1,
            "5xx, connect, receive, close"
        );
        let total = &t.total;
        assert_eq!(total.requests, 3000, "HttpCountSum.ClientReqCount");
        assert_eq!(total.origin_errors, v.origin_errors);
        let text = t.render(Window::Minutes(5));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("window: the last 5 completed minutes"),
            "{text}"
        );
        assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), HEADER);
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "www.example.com",
                "3000",
                "10",
                "69.33",
                "68.33",
                "3.91KB",
                "97.7KB",
                "0.20",
                "39.97",
                "970",
                "26",
                "88.13"
            ]
        );
        assert!(lines[3].starts_with("TOTAL"));
        let widths: Vec<usize> = lines[1..].iter().map(|l| l.len()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "aligned: {text}");
    }
}
