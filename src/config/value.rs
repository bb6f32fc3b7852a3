//! Parsers for the value forms the guide uses: ON/OFF, times with units,
//! listen addresses, origin addresses and address ACLs. Each returns a plain
//! message; [`super::node::Value::parse`] places it at its file and line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// `ON` / `OFF`, any case.
pub fn on_off(s: &str) -> Result<bool, String> {
    if s.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if s.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!("expected ON or OFF, got \"{s}\""))
    }
}

/// An integer in `lo..=hi`.
pub fn int_in<T>(lo: T, hi: T) -> impl Fn(&str) -> Result<T, String>
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display,
{
    move |s| match s.parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        Ok(_) => Err(format!("{s} out of range ({lo}-{hi})")),
        Err(_) => Err(format!("\"{s}\" is not a whole number")),
    }
}

/// A size in GB (decimals allowed: `0.5` is 500 MB), as bytes; more than zero.
pub fn gigabytes(s: &str) -> Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(gb) if gb > 0.0 && gb < 1e9 => Ok((gb * 1e9) as u64),
        _ => Err(format!("\"{}\" is not a size in GB above zero", s.trim())),
    }
}

/// A size in MB of 1,048,576 bytes (decimals allowed: `0.5` is 512 KiB), as
/// bytes; at least one byte.
pub fn megabytes(s: &str) -> Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(mb) if mb.is_finite() && mb * 1_048_576.0 >= 1.0 => {
            Ok((mb * 1_048_576.0).round() as u64)
        }
        _ => Err(format!("\"{}\" is not a positive size in MB", s.trim())),
    }
}

/// `HH:MM` on a 24-hour clock, as minutes after midnight.
pub fn time_of_day(s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "\"{}\" is not a time of day (HH:MM, 24-hour clock)",
            s.trim()
        )
    };
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    match (h.parse::<u32>(), m.parse::<u32>()) {
        (Ok(hh), Ok(mm)) if hh < 24 && mm < 60 && m.len() == 2 => Ok(hh * 60 + mm),
        _ => Err(bad()),
    }
}

/// A time: seconds, or numbers with units as the guide writes them
/// (`1800`, `30 min`, `1 day 12 hours`, `7 weeks`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut tokens = s.split_whitespace().peekable();
    if tokens.peek().is_none() {
        return Err("empty time".into());
    }
    while let Some(tok) = tokens.next() {
        let digits = tok.find(|c: char| !c.is_ascii_digit()).unwrap_or(tok.len());
        if digits == 0 {
            return Err(format!(
                "\"{s}\" is not a time (expected e.g. 30, 30 sec, 5 min)"
            ));
        }
        let n: u64 = tok[..digits]
            .parse()
            .map_err(|_| format!("\"{s}\" is too large"))?;
        let mut unit = &tok[digits..];
        if unit.is_empty() {
            if let Some(next) = tokens
                .peek()
                .filter(|t| t.starts_with(|c: char| c.is_alphabetic()))
            {
                unit = next;
                tokens.next();
            }
        }
        let scale = match unit.to_ascii_lowercase().as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            "month" | "months" => 2_592_000,
            "y" | "year" | "years" => 31_536_000,
            other => return Err(format!("unknown time unit \"{other}\"")),
        };
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("\"{s}\" is too large"))?;
    }
    Ok(Duration::from_secs(total))
}

fn port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if p <= 65_535 => Ok(p as u16),
        Ok(p) => Err(format!("port {p} out of range")),
        Err(_) => Err(format!("\"{s}\" is not a port")),
    }
}

/// A vhost `<Listen>` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listen {
    /// `OFF`: no service port.
    Off,
    /// `*:port`: every address in `<Cache><Listen>`, or all addresses.
    AnyIp(u16),
    /// `IP:port`.
    Addr(SocketAddr),
}

/// Parses `*:80`, `1.1.1.1:90`, `[::1]:80` or `OFF`.
pub fn listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    let (host, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{s}\" is not IP:port, *:port or OFF"))?;
    let p = port(p)?;
    if host == "*" {
        return Ok(Listen::AnyIp(p));
    }
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("\"{host}\" is not an IP address"))?;
    Ok(Listen::Addr(SocketAddr::new(ip, p)))
}

/// An origin `<Address>`: `{IP|domain}[:port][/path]` (chapter 2, "Origin Server").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAddress {
    /// IP or domain name.
    pub host: String,
    /// TCP port (80 when omitted).
    pub port: u16,
    /// Whether the port was written (it then appears in the Host header).
    pub port_written: bool,
    /// Path prefix put before the client's URL ("" or "/account/dir").
    pub path: String,
    /// Whether `host` is an IP (the Host header then carries the vhost name).
    pub is_ip: bool,
    /// `https://`: the origin is spoken to over TLS, its certificate verified for
    /// `host` against the system's trusted roots.
    pub tls: bool,
}

impl OriginAddress {
    /// The `Host` header sent to this origin for `vhost`, per the guide's table.
    pub fn host_header(&self, vhost: &str) -> String {
        let name = if self.is_ip { vhost } else { &self.host };
        if self.port_written {
            format!("{name}:{}", self.port)
        } else {
            name.to_string()
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The socket address when the host is an IP.
    pub fn ip_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }

    /// `host:port` to connect to.
    pub fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Parses an origin address.
pub fn origin_address(s: &str) -> Result<OriginAddress, String> {
    let (tls, rest) = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, _)) => {
            return Err(format!(
                "scheme {scheme}:// is not supported (http:// or https://)"
            ))
        }
        None => (false, s),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port_str) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{s}\": unclosed ["))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!("\"{s}\" is not {{IP|domain}}[:port][/path]"));
    }
    let port_written = port_str.is_some();
    let port = port_str
        .map(port)
        .transpose()?
        .unwrap_or(if tls { 443 } else { 80 });
    if port == 0 {
        return Err("port 0 is not a valid origin port".into());
    }
    Ok(OriginAddress {
        is_ip: host.parse::<IpAddr>().is_ok(),
        host: host.to_string(),
        port,
        port_written,
        path: path.to_string(),
        tls,
    })
}

/// One address rule of an `<Allow>`/`<Deny>` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRule {
    /// One address.
    Single(IpAddr),
    /// `a.b.c.d-e`: the last octet from d to e.
    Range(Ipv4Addr, u8),
    /// `a.b.c.d/n` or `a.b.c.d/m.m.m.m`.
    Prefix(IpAddr, u8),
}

impl IpRule {
    /// Whether `ip` falls under the rule (IPv4-mapped IPv6 counts as IPv4).
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (*self, ip) {
            (IpRule::Single(a), b) => a == b,
            (IpRule::Range(first, last), IpAddr::V4(b)) => {
                let (f, o) = (first.octets(), b.octets());
                f[..3] == o[..3] && (f[3]..=last).contains(&o[3])
            }
            (IpRule::Prefix(IpAddr::V4(net), n), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(n)).unwrap_or(0);
                u32::from(net) & mask == u32::from(b) & mask
            }
            (IpRule::Prefix(IpAddr::V6(net), n), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(n)).unwrap_or(0);
                u128::from(net) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// Whether the rule admits loopback addresses only (a listener for it can bind loopback).
    pub fn is_loopback_only(&self) -> bool {
        match *self {
            IpRule::Single(ip) | IpRule::Prefix(ip, _) => super::is_loopback(ip),
            IpRule::Range(ip, _) => ip.is_loopback(),
        }
    }
}

/// Parses the four ACL forms: IP, IP range, bitmask and subnet.
pub fn ip_rule(s: &str) -> Result<IpRule, String> {
    let bad = || format!("\"{s}\" is not an IP, range (a.b.c.d-e), bitmask (a.b.c.d/n) or subnet");
    if let Some((net, mask)) = s.split_once('/') {
        let net: IpAddr = net.parse().map_err(|_| bad())?;
        let bits = if let Ok(m) = mask.parse::<Ipv4Addr>() {
            let m = u32::from(m);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(format!("\"{mask}\" is not a contiguous subnet mask"));
            }
            m.leading_ones() as u8
        } else {
            mask.parse::<u8>().map_err(|_| bad())?
        };
        let max = if net.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(format!("prefix /{bits} out of range (0-{max})"));
        }
        return Ok(IpRule::Prefix(net, bits));
    }
    if let Some((first, last)) = s.split_once('-') {
        let first: Ipv4Addr = first.parse().map_err(|_| bad())?;
        let last: u8 = last.parse().map_err(|_| bad())?;
        if last < first.octets()[3] {
            return Err(format!("range \"{s}\" ends before it starts"));
        }
        return Ok(IpRule::Range(first, last));
    }
    s.parse().map(IpRule::Single).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(duration("1800").unwrap().as_secs(), 1800);
        assert_eq!(duration("30 min").unwrap().as_secs(), 1800);
        assert_eq!(duration("1 day 12 hours").unwrap().as_secs(), 129_600);
        assert_eq!(duration("60sec").unwrap().as_secs(), 60);
        assert!(duration("soon").is_err());
        assert!(duration("5 fortnights").is_err());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen("*:80").unwrap(), Listen::AnyIp(80));
        assert_eq!(listen("OFF").unwrap(), Listen::Off);
        assert_eq!(
            listen("1.1.1.1:90").unwrap(),
            Listen::Addr("1.1.1.1:90".parse().unwrap())
        );
        assert_eq!(listen("*:99999").unwrap_err(), "port 99999 out of range");
        assert!(listen("nowhere").is_err());
    }

    #[test]
    fn origin_host_header_follows_the_guide_table() {
        let cases = [
            ("1.1.1.1", "www.example.com", "www.example.com", ""),
            (
                "1.1.1.1:8080",
                "www.example.com:8080",
                "www.example.com",
                "",
            ),
            ("1.1.1.1/account/dir", "www.example.com", "", "/account/dir"),
            (
                "1.1.1.1:8080/account/dir",
                "www.example.com:8080",
                "",
                "/account/dir",
            ),
            ("example.com", "example.com", "", ""),
            ("example.com:8080", "example.com:8080", "", ""),
            ("example.com/account/dir", "example.com", "", "/account/dir"),
            (
                "example.com:8080/account/dir",
                "example.com:8080",
                "",
                "/account/dir",
            ),
        ];
        for (addr, host, _, path) in cases {
            let a = origin_address(addr).unwrap();
            assert_eq!(a.host_header("www.example.com"), host, "{addr}");
            assert_eq!(a.path, path, "{addr}");
        }
        let tls = origin_address("https://origin.example").unwrap();
        assert!(tls.tls && tls.port == 443);
        assert!(origin_address("ftp://x").unwrap_err().contains("ftp"));
        assert!(origin_address("a b").is_err());
    }

    #[test]
    fn acl_forms() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_rule("192.168.1.1").unwrap().matches(ip("192.168.1.1")));
        let r = ip_rule("192.168.2.1-255").unwrap();
        assert!(r.matches(ip("192.168.2.200")) && !r.matches(ip("192.168.3.2")));
        let r = ip_rule("192.168.3.0/24").unwrap();
        assert!(r.matches(ip("192.168.3.9")) && !r.matches(ip("192.168.4.9")));
        let r = ip_rule("192.168.4.0/255.255.255.0").unwrap();
        assert!(r.matches(ip("::ffff:192.168.4.7")));
        assert!(ip_rule("1.2.3.4/255.0.255.0").is_err());
        assert!(ip_rule("1.2.3.9-4").is_err());
    }
}
