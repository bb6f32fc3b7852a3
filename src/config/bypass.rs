//! Chapter 8's bypass settings: `<BypassNoCacheRequest>`, `<BypassGetRequest>`,
//! `<BypassPostRequest>` with their `OriginAffinity`, `svc/<vhost>/bypass.txt`, the
//! bypass timeouts and the `Bypass` attribute of the origin request headers.

use std::time::Duration;

use super::headers::{condition, fields, lines, Match};
use super::node::Node;
use super::{value, ConfFiles, Cx};

/// The default of one method (`<BypassGetRequest>`, `<BypassPostRequest>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodBypass {
    /// The element's value: bypass by default.
    pub on: bool,
    /// `OriginAffinity`: a client's bypassed requests keep going to one origin IP.
    pub affinity: bool,
    /// `Private`: each client connection has its own origin connection.
    pub private: bool,
}

/// One `bypass.txt` line.
#[derive(Debug, Clone)]
pub struct BypassRule {
    /// Conditions joined by `&`, each possibly negated (`!HEADER[...]`).
    pub all: Vec<(bool, Match)>,
    /// `bypass` (true), `cache` (false), or the opposite of the method's default.
    pub action: Option<bool>,
}

/// A vhost's bypass settings.
#[derive(Debug, Clone)]
pub struct BypassPolicy {
    /// `<BypassNoCacheRequest>`: a client no-cache request is bypassed.
    pub no_cache: bool,
    /// `<BypassGetRequest>` (GET and HEAD).
    pub get: MethodBypass,
    /// `<BypassPostRequest>`.
    pub post: MethodBypass,
    /// `bypass.txt`, first matching line wins.
    pub rules: Vec<BypassRule>,
    /// `<BypassConnectTimeout>`.
    pub connect_timeout: Duration,
    /// `<BypassReceiveTimeout>`.
    pub receive_timeout: Duration,
    /// `<Host Bypass>`: the configured `<Host>` applies to bypassed requests too
    /// (off: the client's Host goes on).
    pub host: bool,
    /// `<UserAgent Bypass>`.
    pub user_agent: bool,
    /// `<XFFClientIPOnly Bypass>`.
    pub xff: bool,
}

/// A `<PortBypass>`: every TCP connection on `port` is relayed to the origin's `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBypass {
    /// The port kura accepts on (on each `<Cache><Listen>` address, or every address).
    pub port: u16,
    /// `Dest`: the origin port (the same port when absent).
    pub dest: u16,
}

/// Reads a vhost's `<PortBypass>` elements.
pub(super) fn read_ports(cx: &mut Cx, vhost: &Node<'_>) -> Vec<PortBypass> {
    let mut ports = Vec::new();
    for el in vhost.list("PortBypass") {
        let n = Node::new(Some(el), None, "Vhosts/Vhost/PortBypass");
        let port = cx.get(n.value(), value::int_in(0u16, u16::MAX), 0);
        let dest = cx.get(n.attr("Dest"), value::int_in(1u16, u16::MAX), port);
        if dest == 0 {
            // Port 0 (an ephemeral port, for tests) has no "same port" at the origin.
            cx.errors.push(n.error("Dest is required with port 0"));
            continue;
        }
        ports.push(PortBypass { port, dest });
    }
    ports
}

/// No port is bypassed twice (the guide: "Ports being bypassed can never have multiple
/// redundant settings").
pub(super) fn check_ports(
    cx: &mut Cx,
    vhosts: &[(std::sync::Arc<super::VhostConfig>, &super::xml::Element)],
) {
    let mut seen: std::collections::HashMap<u16, &str> = std::collections::HashMap::new();
    for (v, el) in vhosts {
        for p in v.port_bypass.iter().filter(|p| p.port != 0) {
            if let Some(owner) = seen.insert(p.port, &v.name) {
                let loc = el
                    .children_named("PortBypass")
                    .find(|x| x.text.trim() == p.port.to_string())
                    .map_or(el.loc, |x| x.loc);
                cx.errors.push(super::ConfigError::at(
                    loc,
                    "PortBypass",
                    format!("port {} is already bypassed by vhost {owner}", p.port),
                ));
            }
        }
    }
}

/// Reads the bypass settings from `<Options>` and `<OriginOptions>`, and
/// `bypass.txt` (`svc` is `None` for `<VHostDefault>`).
pub(super) fn read(
    cx: &mut Cx,
    options: &Node<'_>,
    origin_options: &Node<'_>,
    svc: Option<(&ConfFiles, &str)>,
) -> BypassPolicy {
    let on = |cx: &mut Cx, v: Option<super::node::Value<'_>>, fallback: bool| {
        cx.get(v, value::on_off, fallback)
    };
    let method = |cx: &mut Cx, el: Node<'_>, fallback: bool| MethodBypass {
        on: on(cx, el.value(), fallback),
        affinity: on(cx, el.attr("OriginAffinity"), true),
        private: on(cx, el.attr("Private"), false),
    };
    let get = method(cx, options.child("BypassGetRequest"), false);
    let post = method(cx, options.child("BypassPostRequest"), true);
    let no_cache = on(cx, options.child("BypassNoCacheRequest").value(), false);
    // The guide's example values: Host and XFFClientIPOnly apply, UserAgent does not.
    let host = on(cx, origin_options.child("Host").attr("Bypass"), true);
    let user_agent = on(cx, origin_options.child("UserAgent").attr("Bypass"), false);
    let xff = on(
        cx,
        origin_options.child("XFFClientIPOnly").attr("Bypass"),
        true,
    );
    let secs = |cx: &mut Cx, n: Node<'_>, fallback: u64| {
        cx.get(n.value(), value::duration, Duration::from_secs(fallback))
    };
    let connect_timeout = secs(cx, origin_options.child("BypassConnectTimeout"), 5);
    let receive_timeout = secs(cx, origin_options.child("BypassReceiveTimeout"), 5);
    let rules = match svc {
        Some((files, vhost)) => {
            let file = format!("svc/{vhost}/bypass.txt");
            lines(cx, files, &file, |line, _| rule(line))
        }
        None => Vec::new(),
    };
    BypassPolicy {
        no_cache,
        get,
        post,
        rules,
        connect_timeout,
        receive_timeout,
        host,
        user_agent,
        xff,
    }
}

/// Parses one `bypass.txt` line: `cond [& cond...] [, cache|bypass]`, where a
/// condition is `$IP[..]`, `$HEADER[..]`, `$URL[..]` or a URL, and `!` in place of
/// `$` negates it. A trailing `// comment`, as in the guide's examples, is ignored.
fn rule(line: &str) -> Result<Option<BypassRule>, String> {
    let line = match line.find(" //").or_else(|| line.find("\t//")) {
        Some(i) => line[..i].trim(),
        None => line,
    };
    let f = fields(line);
    let action = match f.get(1).map(|a| a.to_ascii_lowercase()) {
        None => None,
        Some(a) if a == "bypass" => Some(true),
        Some(a) if a == "cache" => Some(false),
        Some(a) => return Err(format!("unknown action \"{a}\" (cache or bypass)")),
    };
    if f.len() > 2 {
        return Err("expected <conditions>[, cache|bypass]".into());
    }
    let mut all = Vec::new();
    for c in f[0].split('&').map(str::trim) {
        let (negated, c) = match c.strip_prefix('!') {
            Some(rest) => (true, format!("${rest}")),
            None => (false, c.to_string()),
        };
        if c.is_empty() || c == "$" {
            return Err("empty condition".into());
        }
        match condition(&c)? {
            Some(m) => all.push((negated, m)),
            // A GeoIP country: kura has no GeoIP database; the line never matches.
            None => return Ok(None),
        }
    }
    Ok(Some(BypassRule { all, action }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_bypass_lines_parse() {
        let r = rule("$HEADER[cookie: *ILLEGAL*], cache               // Always cache")
            .unwrap()
            .unwrap();
        assert_eq!(r.action, Some(false));
        assert!(matches!(&r.all[..], [(false, Match::Header(k, Some(_)))] if k == "cookie"));
        let r = rule("!HEADER[referer] & !HEADER[user-agent], bypass")
            .unwrap()
            .unwrap();
        assert_eq!(r.action, Some(true));
        assert_eq!(r.all.len(), 2);
        assert!(r.all.iter().all(|(neg, _)| *neg));
        let r = rule("$IP[192.168.2.1-255]").unwrap().unwrap();
        assert_eq!(r.action, None);
        assert!(matches!(&r.all[..], [(false, Match::Ip(_))]));
        assert!(matches!(
            &rule("/index.html").unwrap().unwrap().all[..],
            [(false, Match::Url(_))]
        ));
        assert!(rule("/a, skip").unwrap_err().contains("skip"));
    }
}
