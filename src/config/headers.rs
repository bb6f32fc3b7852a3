//! Chapter 6 header settings: `<ModifyHeader>` with `svc/<vhost>/headers.txt`,
//! `<RefreshExpiresHeader>` with `expires.txt`, and `<OriginalHeader>`.

use std::time::Duration;

use super::node::Node;
use super::pattern::UrlPattern;
use super::value::{self, IpRule};
use super::{ConfFiles, ConfigError, Cx};

/// Which message a `headers.txt` rule changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `$REQ[...]`: the client's request, before the cache sees it.
    Request,
    /// `$RES[...]`: the response, just before it is sent.
    Response,
    /// `$ORGREQ[...]`: the request to the origin, just before it is sent
    /// (`<OriginOptions><ModifyHeader>`, chapter 7).
    OriginRequest,
}

/// What a rule does to its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace every value.
    Set,
    /// Add another field line.
    Put,
    /// Join to the existing value with `, ` (set when absent).
    Append,
    /// Remove.
    Unset,
}

/// When a rule applies.
#[derive(Debug, Clone)]
pub enum Match {
    /// `$IP[...]`: the client address.
    Ip(IpRule),
    /// `$HEADER[key]` or `$HEADER[key: pattern]`: a request header (present, or matching).
    Header(String, Option<UrlPattern>),
    /// `$URL[...]` or a bare pattern: the request path.
    Url(UrlPattern),
}

/// A response status condition: `200` or `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCond {
    /// That status.
    Exact(u16),
    /// That class (2 for `2xx`).
    Class(u16),
}

impl StatusCond {
    /// Whether `status` satisfies it.
    pub fn holds(self, status: u16) -> bool {
        match self {
            StatusCond::Exact(s) => s == status,
            StatusCond::Class(c) => status / 100 == c,
        }
    }
}

/// One `headers.txt` line.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    /// When it applies.
    pub when: Match,
    /// Request or response.
    pub side: Side,
    /// Field name, lower case.
    pub name: String,
    /// Field value (`""` when the line gives none).
    pub value: String,
    /// What to do.
    pub action: Action,
    /// Response status it needs, if any.
    pub status: Option<StatusCond>,
}

/// `<ModifyHeader>` ON with its rules.
#[derive(Debug, Clone, Default)]
pub struct ModifyHeader {
    /// `FirstOnly`: only the first matching rule (per side) applies.
    pub first_only: bool,
    /// The rules in file order.
    pub rules: Vec<HeaderRule>,
}

/// The base time of an `expires.txt` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresBase {
    /// The time of the request.
    Access,
    /// The origin's `Last-Modified` (no header: no Expires).
    Modification,
}

/// What an `expires.txt` rule matches.
#[derive(Debug, Clone)]
pub enum ExpiresMatch {
    /// `$URL[...]` or a bare pattern: the request path.
    Url(UrlPattern),
    /// `$MIME[...]`: the response's media type (without parameters).
    Mime(UrlPattern),
}

/// One `expires.txt` line.
#[derive(Debug, Clone)]
pub struct ExpiresRule {
    /// What it matches.
    pub when: ExpiresMatch,
    /// Time after the base.
    pub after: Duration,
    /// The base.
    pub base: ExpiresBase,
}

/// Chapter 6 header settings of a vhost.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// `<Options><ModifyHeader>` ON: its `$REQ`/`$RES` rules.
    pub modify: Option<ModifyHeader>,
    /// `<OriginOptions><ModifyHeader>` ON: its `$ORGREQ` rules.
    pub origin: Option<ModifyHeader>,
    /// `<RefreshExpiresHeader>` ON: the `expires.txt` rules (first match wins).
    pub expires: Option<Vec<ExpiresRule>>,
    /// `<OriginalHeader>` written OFF: only standard fields are kept from the origin.
    pub standard_only: bool,
}

/// Splits on commas outside `[...]`.
pub(super) fn fields(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in line.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(line[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(line[start..].trim());
    out
}

/// `$NAME[inner]` -> `Some(inner)`.
fn bracket<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(name)?.strip_prefix('[')?;
    rest.strip_suffix(']')
}

/// `key` or `key: value`.
fn key_value(s: &str) -> (String, Option<&str>) {
    match s.split_once(':') {
        Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
        None => (s.trim().to_ascii_lowercase(), None),
    }
}

/// Parses one match: `$IP[...]`, `$HEADER[key]`, `$HEADER[key: pattern]`, `$URL[...]`
/// or a bare URL pattern. `Ok(None)` for a GeoIP country, which kura does not have.
pub(super) fn condition(s: &str) -> Result<Option<Match>, String> {
    Ok(Some(if let Some(ip) = bracket(s, "$IP") {
        match value::ip_rule(ip) {
            Ok(rule) => Match::Ip(rule),
            Err(_) if ip.chars().all(|c| c.is_ascii_alphabetic()) => return Ok(None),
            Err(e) => return Err(e),
        }
    } else if let Some(h) = bracket(s, "$HEADER") {
        let (k, v) = key_value(h);
        Match::Header(k, v.map(UrlPattern::new))
    } else if let Some(u) = bracket(s, "$URL") {
        Match::Url(UrlPattern::new(u))
    } else if s.starts_with('$') {
        return Err(format!("unknown match {s} ($IP, $HEADER or $URL)"));
    } else {
        Match::Url(UrlPattern::new(s))
    }))
}

/// Parses one `headers.txt` line.
fn header_rule(line: &str) -> Result<Option<HeaderRule>, String> {
    let f = fields(line);
    if !(3..=4).contains(&f.len()) {
        return Err(
            "expected {Match}, {$REQ[..], $RES[..] or $ORGREQ[..]}, {set|put|append|unset}[, {status}]"
                .into(),
        );
    }
    let Some(when) = condition(f[0])? else {
        return Ok(None);
    };
    let (side, spec) = if let Some(s) = bracket(f[1], "$REQ") {
        (Side::Request, s)
    } else if let Some(s) = bracket(f[1], "$RES") {
        (Side::Response, s)
    } else if let Some(s) = bracket(f[1], "$ORGREQ") {
        (Side::OriginRequest, s)
    } else {
        return Err(format!(
            "{} is not $REQ[...], $RES[...] or $ORGREQ[...]",
            f[1]
        ));
    };
    let (name, value) = key_value(spec);
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("\"{name}\" is not a header name"))?;
    let action = match f[2].to_ascii_lowercase().as_str() {
        "set" => Action::Set,
        "put" => Action::Put,
        "append" => Action::Append,
        "unset" => Action::Unset,
        other => {
            return Err(format!(
                "unknown action \"{other}\" (set, put, append or unset)"
            ))
        }
    };
    let status = match f.get(3) {
        None => None,
        Some(c) if side != Side::Response => {
            return Err(format!(
                "a status condition ({c}) only applies to $RES rules"
            ))
        }
        Some(c) => Some(status_cond(c)?),
    };
    Ok(Some(HeaderRule {
        when,
        side,
        name,
        value: value.unwrap_or("").to_string(),
        action,
        status,
    }))
}

fn status_cond(c: &str) -> Result<StatusCond, String> {
    let bad = || format!("\"{c}\" is not a status (200) or class (2xx)");
    match c.to_ascii_lowercase().strip_suffix("xx") {
        Some(d) => match d.parse::<u16>() {
            Ok(d @ 1..=5) => Ok(StatusCond::Class(d)),
            _ => Err(bad()),
        },
        None => match c.parse::<u16>() {
            Ok(s @ 100..=599) => Ok(StatusCond::Exact(s)),
            _ => Err(bad()),
        },
    }
}

/// Parses one `expires.txt` line: `{condition}, {time}[, access|modification]`.
fn expires_rule(line: &str) -> Result<ExpiresRule, String> {
    let f = fields(line);
    if !(2..=3).contains(&f.len()) {
        return Err("expected {condition}, {time}[, access|modification]".into());
    }
    let when = if let Some(u) = bracket(f[0], "$URL") {
        ExpiresMatch::Url(UrlPattern::new(u))
    } else if let Some(m) = bracket(f[0], "$MIME") {
        ExpiresMatch::Mime(UrlPattern::new(&m.to_ascii_lowercase()))
    } else if f[0].starts_with('$') {
        return Err(format!("unknown condition {} ($URL or $MIME)", f[0]));
    } else {
        ExpiresMatch::Url(UrlPattern::new(f[0]))
    };
    let base = match f.get(2).map(|b| b.to_ascii_lowercase()) {
        None => ExpiresBase::Access,
        Some(b) if b == "access" => ExpiresBase::Access,
        Some(b) if b == "modification" => ExpiresBase::Modification,
        Some(b) => {
            return Err(format!(
                "unknown reference \"{b}\" (access or modification)"
            ))
        }
    };
    Ok(ExpiresRule {
        when,
        after: value::duration(f[1])?,
        base,
    })
}

/// Reads `file` line by line with `parse`; errors name `file:line`.
pub(super) fn lines<T>(
    cx: &mut Cx,
    files: &ConfFiles,
    file: &str,
    mut parse: impl FnMut(&str, &str) -> Result<Option<T>, String>,
) -> Vec<T> {
    let Some(text) = files.get(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = format!("{file}:{}", n + 1);
        match parse(line, &place) {
            Ok(v) => out.extend(v),
            Err(m) => cx.errors.push(ConfigError::file(place, m)),
        }
    }
    out
}

/// `<ModifyHeader>`, `<RefreshExpiresHeader>`, `<OriginalHeader>` and their files
/// (`svc` is `None` for `<VHostDefault>`).
pub(super) fn read(
    cx: &mut Cx,
    options: &Node<'_>,
    origin_options: &Node<'_>,
    svc: Option<(&ConfFiles, &str)>,
) -> HeaderPolicy {
    let on = |cx: &mut Cx, n: Node<'_>| cx.get(n.value(), value::on_off, false);
    let modify_el = options.child("ModifyHeader");
    let first_only = cx.get(modify_el.attr("FirstOnly"), value::on_off, false);
    let modify_on = on(cx, modify_el);
    let origin_el = origin_options.child("ModifyHeader");
    let origin_first_only = cx.get(origin_el.attr("FirstOnly"), value::on_off, false);
    let origin_on = on(cx, origin_el);
    let expires_el = options.child("RefreshExpiresHeader");
    // `Base` appears only in the guide's example, unexplained: read so it is not
    // reported, each expires.txt line carries its own base.
    let _ = expires_el.attr("Base");
    let expires_on = on(cx, expires_el);
    let original = options.child("OriginalHeader");
    let standard_only = original.is_written() && !on(cx, original);
    let mut policy = HeaderPolicy {
        standard_only,
        ..HeaderPolicy::default()
    };
    let Some((files, vhost)) = svc else {
        return policy;
    };
    if modify_on || origin_on {
        let file = format!("svc/{vhost}/headers.txt");
        let mut geoip = Vec::new();
        let rules = lines(cx, files, &file, |line, place| {
            let rule = header_rule(line)?;
            if rule.is_none() {
                geoip.push(place.to_string());
            }
            Ok(rule)
        });
        cx.partial
            .extend(geoip.into_iter().map(|place| super::node::Unused {
                path: "svc/<vhost>/headers.txt $IP[<GeoIP country>]".into(),
                place,
            }));
        // One file, two switches: `$REQ`/`$RES` lines are the client side's,
        // `$ORGREQ` lines the origin side's (chapter 7).
        let (origin, client): (Vec<HeaderRule>, Vec<HeaderRule>) = rules
            .into_iter()
            .partition(|r| r.side == Side::OriginRequest);
        policy.modify = modify_on.then_some(ModifyHeader {
            first_only,
            rules: client,
        });
        policy.origin = origin_on.then_some(ModifyHeader {
            first_only: origin_first_only,
            rules: origin,
        });
    }
    if expires_on {
        let file = format!("svc/{vhost}/expires.txt");
        policy.expires = Some(lines(cx, files, &file, |line, _| {
            expires_rule(line).map(Some)
        }));
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_headers_txt_examples_parse() {
        let lines = [
            "$IP[192.168.1.1], $REQ[SOAPAction], unset",
            "$IP[192.168.3.0/24], $REQ[cache-control: no-cache], append",
            "$HEADER[user-agent: *IE6*], $REQ[accept-encoding], unset",
            "$URL[/source/*.zip], $REQ[accept-encoding: deflate], set",
            "$IP[192.168.3.0/24], $RES[cache-control: no-cache, private], append, 3xx",
            "/secure/*.dat, $RES[x-custom], unset, 200",
            "/*.mp4, $RES[Access-Control-Allow-Origin: example2.com], put",
        ];
        for l in lines {
            assert!(header_rule(l).unwrap().is_some(), "{l}");
        }
        let r =
            header_rule("$IP[192.168.3.0/24], $RES[cache-control: no-cache, private], append, 3xx")
                .unwrap()
                .unwrap();
        assert_eq!(
            (r.name.as_str(), r.value.as_str()),
            ("cache-control", "no-cache, private")
        );
        assert_eq!(r.status, Some(StatusCond::Class(3)));
        assert!(header_rule("$IP[AP], $REQ[X-Forwarded-For], unset")
            .unwrap()
            .is_none());
        assert!(header_rule("/a, $REQ[x], remove").is_err());
        assert!(header_rule("/a, $REQ[x], set, 200").is_err());
    }

    #[test]
    fn the_guides_expires_txt_examples_parse() {
        for l in [
            "$URL[/test.jpg], 86400",
            "*, 86400, access",
            "/test/1.gif, 60 sec",
            "/test/*.dat, 30 min, modification",
            "$MIME[application/shockwave], 1 years",
            "$MIME[image/gif], 1 day 12 hours, access",
        ] {
            expires_rule(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        }
        assert_eq!(
            expires_rule("/a, 30 min").unwrap().after,
            Duration::from_secs(1800)
        );
        assert!(expires_rule("/a, soon").is_err());
    }
}
