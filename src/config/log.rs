//! Chapter 12 settings: the global logs of `<Cache>` (`<InfoLog>`, `<DenyLog>`,
//! `<OriginErrorLog>`) and a vhost's `<Log>` group (`<Access>`, `<AccessFormat>`,
//! `<Origin>`, `<Monitoring>`). `<Dns>`, `<FileSystem>` and every `Ftp` attribute
//! are left unread, so they are reported as recognised, not implemented.

use std::path::PathBuf;

use super::node::Node;
use super::value;
use super::Cx;

/// When a log file is rolled (`Type`, `Unit`) and what is kept (`Retention`, `Compression`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rolling {
    /// Roll at every multiple of this many minutes of local wall-clock time (`time`, `both`).
    pub minutes: Option<u32>,
    /// Roll before the file would pass this many bytes (`size`, `both`).
    pub bytes: Option<u64>,
    /// Rolled files kept; the oldest beyond it is deleted.
    pub retention: u32,
    /// gzip a file when it is rolled (`.log.gz`).
    pub compress: bool,
}

/// One `<SysLog Priority Dest>` receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogDest {
    /// Facility code (RFC 3164: `user` 1, `local3` 19).
    pub facility: u8,
    /// Severity code (`alert` 1, `info` 6).
    pub severity: u8,
    /// `host:port` as written, port 514 added when omitted; resolved by the sender.
    pub dest: String,
}

/// The settings every log shares.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// The element's text: the file is written (log trace works either way).
    pub on: bool,
    /// Rolling and retention.
    pub rolling: Rolling,
    /// Syslog receivers; empty unless `SysLog="ON"`.
    pub syslog: Vec<SyslogDest>,
}

/// `<Cache>`'s global logs.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalLogs {
    /// `<InfoLog>`; its settings also serve the sys log (warnings and errors), which has no element.
    pub info: LogSettings,
    /// `<DenyLog>`.
    pub deny: LogSettings,
    /// `<OriginErrorLog>`.
    pub origin_error: LogSettings,
    /// `<OriginErrorLog Warning>`: malformed origin HTTP exchanges are logged as WARNING.
    pub origin_warning: bool,
}

/// `<Access XFF>`: how `X-Forwarded-For` joins the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xff {
    /// The header's value, then the client address.
    On,
    /// The client address only.
    Off,
    /// The header's value alone when there is one, else the client address.
    TrimCip,
}

/// `<Access Form>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessForm {
    /// W3C fields with STON's extensions (the default).
    Ston,
    /// Apache combined.
    Apache,
    /// IIS W3C default fields.
    Iis,
    /// `<AccessFormat>`, as written (compiled by the log module, which falls back to `Ston`).
    Custom(String),
}

/// `<Monitoring Form>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitoringForm {
    /// One JSON object per line.
    Json,
    /// One XML element per line.
    Xml,
}

/// A vhost's `<Log>` group with `<VHostDefault>` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct VhostLogs {
    /// `<Log Dir>`; the vhost's files go to `<Dir>/<vhost>/`. `None`: kurad's `--log-dir`.
    pub dir: Option<PathBuf>,
    /// `<Access>`.
    pub access: LogSettings,
    /// `<Access Form>` (with `<AccessFormat>` for `custom`).
    pub access_form: AccessForm,
    /// `<Access XFF>`.
    pub xff: Xff,
    /// `<Access Local>`: loopback clients are logged too.
    pub access_local: bool,
    /// `<Origin>`: one line per origin transaction.
    pub origin: LogSettings,
    /// `<Origin Local>`: transactions with a loopback origin are logged too.
    pub origin_local: bool,
    /// `<Monitoring>`.
    pub monitoring: LogSettings,
    /// `<Monitoring Form>`.
    pub monitoring_form: MonitoringForm,
}

/// Reads `<InfoLog>`, `<DenyLog>` and `<OriginErrorLog>` of `<Cache>`.
pub(super) fn read_global(cx: &mut Cx, cache: &Node<'_>) -> GlobalLogs {
    let deny = cache.child("DenyLog");
    let origin_error = cache.child("OriginErrorLog");
    GlobalLogs {
        info: settings(cx, &cache.child("InfoLog"), true),
        deny: settings(cx, &deny, true),
        origin_warning: cx.get(origin_error.attr("Warning"), value::on_off, false),
        origin_error: settings(cx, &origin_error, false),
    }
}

/// Reads a vhost's (or `<VHostDefault>`'s) `<Log>` group.
pub(super) fn read_vhost(cx: &mut Cx, log: &Node<'_>) -> VhostLogs {
    let dir = log.attr("Dir").and_then(|v| {
        let p = PathBuf::from(v.raw.trim());
        if p.is_absolute() {
            Some(p)
        } else {
            cx.errors.push(v.error(format!(
                "\"{}\" is not an absolute directory path",
                v.raw.trim()
            )));
            None
        }
    });
    let access = log.child("Access");
    let form = cx.get(
        access.attr("Form"),
        |s| match s.to_ascii_lowercase().as_str() {
            "ston" => Ok(AccessForm::Ston),
            "apache" => Ok(AccessForm::Apache),
            "iis" => Ok(AccessForm::Iis),
            "custom" => Ok(AccessForm::Custom(String::new())),
            _ => Err(format!("unknown value \"{s}\"")),
        },
        AccessForm::Ston,
    );
    // <AccessFormat> is read only when Form="custom" asks for it; otherwise it is
    // reported as written but unused.
    let access_form = match form {
        AccessForm::Custom(_) => match log.child("AccessFormat").value() {
            Some(v) if !v.raw.trim().is_empty() => AccessForm::Custom(v.raw.trim().to_string()),
            _ => {
                cx.errors
                    .push(access.error("Form=\"custom\" needs an <AccessFormat>"));
                AccessForm::Ston
            }
        },
        other => other,
    };
    let xff = cx.get(
        access.attr("XFF"),
        |s| match s.to_ascii_lowercase().as_str() {
            "on" => Ok(Xff::On),
            "off" => Ok(Xff::Off),
            "trimcip" => Ok(Xff::TrimCip),
            _ => Err(format!("unknown value \"{s}\" (ON, OFF or TrimCIP)")),
        },
        Xff::On,
    );
    let monitoring = log.child("Monitoring");
    let origin = log.child("Origin");
    VhostLogs {
        origin_local: cx.get(origin.attr("Local"), value::on_off, false),
        origin: settings(cx, &origin, true),
        dir,
        access_local: cx.get(access.attr("Local"), value::on_off, false),
        access: settings(cx, &access, true),
        access_form,
        xff,
        monitoring_form: cx.get(
            monitoring.attr("Form"),
            |s| match s.to_ascii_lowercase().as_str() {
                "json" => Ok(MonitoringForm::Json),
                "xml" => Ok(MonitoringForm::Xml),
                _ => Err(format!("unknown value \"{s}\" (json or xml)")),
            },
            MonitoringForm::Json,
        ),
        monitoring: settings(cx, &monitoring, true),
    }
}

/// The attributes every log has. `on_by_default` applies when the element's text
/// is not written and the table gives no default (the per-vhost logs).
fn settings(cx: &mut Cx, n: &Node<'_>, on_by_default: bool) -> LogSettings {
    let on = cx.get(n.value(), value::on_off, on_by_default);
    let rolling = rolling(cx, n);
    let syslog_on = cx.get(n.attr("SysLog"), value::on_off, false);
    let mut syslog = Vec::new();
    for el in n.list("SysLog") {
        let s = Node::new(Some(el), None, &format!("{}/SysLog", n.path()));
        let pri = s.attr("Priority");
        let dest = s.attr("Dest");
        let (Some(pri), Some(dest)) = (pri, dest) else {
            cx.errors
                .push(s.error("needs both Priority and Dest attributes"));
            continue;
        };
        let (facility, severity) = cx.ok(pri.parse(priority), (1, 6));
        let dest = cx.ok(dest.parse(syslog_dest), String::new());
        if syslog_on && !dest.is_empty() {
            syslog.push(SyslogDest {
                facility,
                severity,
                dest,
            });
        }
    }
    if syslog_on && syslog.is_empty() {
        cx.errors
            .push(n.error("SysLog=\"ON\" needs at least one <SysLog Priority Dest> child"));
    }
    LogSettings {
        on,
        rolling,
        syslog,
    }
}

/// `Type`, `Unit`, `Retention`, `Compression`.
fn rolling(cx: &mut Cx, n: &Node<'_>) -> Rolling {
    let kind = cx.get(
        n.attr("Type"),
        |s| {
            let k = s.to_ascii_lowercase();
            match k.as_str() {
                "time" | "size" | "both" => Ok(k),
                _ => Err(format!("unknown value \"{s}\" (time, size or both)")),
            }
        },
        "time".to_string(),
    );
    // Another `Type` than the log's default, written without a `Unit`, does not take
    // the log's default unit, which belongs to its default type (`<InfoLog
    // Type="time">` is not "every minute").
    let unit = n.attr("Unit");
    let default_kind = n.attr_default("Type").unwrap_or("time");
    let unit = if unit.as_ref().is_none_or(|u| u.loc.is_none())
        && !kind.eq_ignore_ascii_case(default_kind)
    {
        match kind.as_str() {
            // The guide's default Unit for time rolling.
            "time" => None,
            _ => {
                cx.errors.push(n.error(format!(
                    "Type \"{kind}\" needs a Unit {}",
                    if kind == "size" {
                        "in MB"
                    } else {
                        "\"minutes, MB\""
                    }
                )));
                None
            }
        }
    } else {
        unit
    };
    let (minutes, bytes) = match unit {
        Some(unit) => cx.ok(unit.parse(|s| parse_unit(&kind, s)), (Some(1440), None)),
        None => (Some(1440), None),
    };
    Rolling {
        minutes,
        bytes,
        retention: cx.get(n.attr("Retention"), value::int_in(1u32, 100_000), 10),
        compress: cx.get(n.attr("Compression"), value::on_off, false),
    }
}

/// A `Unit` for a `Type`: minutes 1..=1440 for `time`, megabytes for `size` (a
/// fraction such as `0.5` is allowed: our extension), `"minutes, MB"` for `both`.
pub fn parse_unit(kind: &str, s: &str) -> Result<(Option<u32>, Option<u64>), String> {
    let minutes = |s: &str| -> Result<u32, String> {
        match s.trim().parse::<u32>() {
            Ok(m) if (1..=1440).contains(&m) => Ok(m),
            _ => Err(format!(
                "\"{}\" is not a number of minutes from 1 to 1440 (the log rolls at least daily)",
                s.trim()
            )),
        }
    };
    let megabytes = value::megabytes;
    match kind {
        "time" => Ok((Some(minutes(s)?), None)),
        "size" => Ok((None, Some(megabytes(s)?))),
        _ => match s.split_once(',') {
            Some((m, mb)) => Ok((Some(minutes(m)?), Some(megabytes(mb)?))),
            None => Err(format!(
                "Type \"both\" needs \"minutes, MB\" (such as \"1440, 100\"), not \"{s}\""
            )),
        },
    }
}

/// `facility.severity` (`local3.info`) as RFC 3164 codes.
pub fn priority(s: &str) -> Result<(u8, u8), String> {
    const FACILITIES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    const SEVERITIES: [&[&str]; 8] = [
        &["emerg", "panic"],
        &["alert"],
        &["crit"],
        &["err", "error"],
        &["warning", "warn"],
        &["notice"],
        &["info"],
        &["debug"],
    ];
    let bad = || format!("\"{s}\" is not facility.severity (such as local3.info)");
    let (f, sev) = s.split_once('.').ok_or_else(bad)?;
    let f = f.trim().to_ascii_lowercase();
    let sev = sev.trim().to_ascii_lowercase();
    let facility = FACILITIES.iter().position(|x| *x == f).ok_or_else(bad)?;
    let severity = SEVERITIES
        .iter()
        .position(|names| names.contains(&sev.as_str()))
        .ok_or_else(bad)?;
    Ok((facility as u8, severity as u8))
}

/// `host[:port]`, port 514 when omitted.
fn syslog_dest(s: &str) -> Result<String, String> {
    let bad = || format!("\"{s}\" is not host[:port]");
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(bad());
    }
    if s.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_ipv6()) {
        return Ok(format!("[{s}]:514"));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') || host.starts_with('[') => {
            port.parse::<u16>().map_err(|_| bad())?;
            Ok(s.to_string())
        }
        Some(_) => Err(bad()),
        None => Ok(format!("{s}:514")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_type() {
        assert_eq!(parse_unit("time", "10"), Ok((Some(10), None)));
        assert_eq!(parse_unit("size", "1"), Ok((None, Some(1_048_576))));
        assert_eq!(parse_unit("size", "0.01"), Ok((None, Some(10_486))));
        assert_eq!(
            parse_unit("both", "1440, 100"),
            Ok((Some(1440), Some(104_857_600)))
        );
        for (kind, bad) in [
            ("time", "1441"),
            ("time", "0"),
            ("time", "1.5"),
            ("size", "-1"),
            ("size", "x"),
            ("both", "1440"),
        ] {
            assert!(parse_unit(kind, bad).is_err(), "{kind} {bad}");
        }
    }

    #[test]
    fn another_type_without_a_unit_takes_that_types_default() {
        let global = |info: &str| {
            let server = format!("<Server><Cache>{info}</Cache></Server>");
            crate::config::load_str(std::path::Path::new("/nonexistent"), &server, "<Vhosts/>")
                .map(|c| c.server.logs.info.rolling)
        };
        let minutes_bytes = |r: Rolling| (r.minutes, r.bytes);
        // The info log's own default: 1 MB.
        let own = global("<InfoLog>ON</InfoLog>").unwrap();
        assert_eq!(minutes_bytes(own), (None, Some(1_048_576)));
        let same = global(r#"<InfoLog Type="size">ON</InfoLog>"#).unwrap();
        assert_eq!(minutes_bytes(same), (None, Some(1_048_576)));
        // Time rolling without a Unit is the guide's daily roll, not every minute.
        let time = global(r#"<InfoLog Type="time">ON</InfoLog>"#).unwrap();
        assert_eq!(minutes_bytes(time), (Some(1440), None));
        let both = global(r#"<InfoLog Type="both">ON</InfoLog>"#).unwrap_err();
        assert!(
            both.to_string()
                .contains(r#"<InfoLog>: Type "both" needs a Unit "minutes, MB""#),
            "{both}"
        );
    }

    #[test]
    fn priorities_and_destinations() {
        assert_eq!(priority("local3.info"), Ok((19, 6)));
        assert_eq!(priority("user.alert"), Ok((1, 1)));
        assert_eq!(priority("mail.debug"), Ok((2, 7)));
        assert!(priority("local9.info").is_err());
        assert!(priority("info").is_err());
        assert_eq!(syslog_dest("192.168.0.1:514").unwrap(), "192.168.0.1:514");
        assert_eq!(syslog_dest("192.168.0.2").unwrap(), "192.168.0.2:514");
        assert_eq!(
            syslog_dest("log.example.com").unwrap(),
            "log.example.com:514"
        );
        assert_eq!(syslog_dest("::1").unwrap(), "[::1]:514");
        assert!(syslog_dest("host:99999").is_err());
    }
}
