//! Access log lines (chapter 12 "Access Log"): the guide's `ston` fields,
//! Apache combined, IIS's default W3C fields and the `<AccessFormat>` codes.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Uri, Version};

use super::roll::Time;
use crate::cache::CacheResult;
use crate::config::log::{AccessForm, Xff};

/// The `ston` fields, in the guide's order.
pub const STON_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-bytes time-taken cs-referer sc-resinfo cs-range sc-cachehit cs-acceptencoding session-id sc-content-length";

/// IIS's default W3C fields.
pub const IIS_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

/// What is known of a client exchange when its response starts.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Request method.
    pub method: Method,
    /// Request target as received.
    pub uri: Uri,
    /// Request HTTP version.
    pub version: Version,
    /// Request headers.
    pub headers: HeaderMap,
    /// The client.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// The client connection's id (`session-id`).
    pub session: u64,
    /// The TLS version of an HTTPS connection (`TLS1.2`, `TLS1.3`), `None` for HTTP.
    pub tls: Option<&'static str>,
    /// Bytes of the request head and body.
    pub request: [u64; 2],
    /// Response status; 0 when the client left before there was one.
    pub status: u16,
    /// Bytes of the response head.
    pub head: u64,
    /// The response body's length when known in advance (`Content-Length`).
    pub content_length: Option<u64>,
    /// The response's `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// The cache result.
    pub result: CacheResult,
    /// Time until the response head.
    pub time_res: Duration,
}

/// How the exchange ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// When (local time).
    pub at: Time,
    /// Body bytes sent.
    pub sent: u64,
    /// Whether the body went to its end.
    pub completed: bool,
    /// From the request's arrival to the end.
    pub elapsed: Duration,
}

/// One `<AccessFormat>` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Text copied as is.
    Text(String),
    /// `%[!]codes{arg}X`.
    Field {
        /// Status codes the field is written for (`!`: all but these); empty: always.
        statuses: Vec<u16>,
        /// `!` before the codes.
        negated: bool,
        /// The `{...}` argument.
        arg: Option<String>,
        /// The letter.
        code: char,
    },
}

/// A compiled access log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// The guide's default.
    Ston,
    /// Apache combined.
    Apache,
    /// IIS W3C.
    Iis,
    /// `<AccessFormat>`.
    Custom(Vec<Token>),
}

/// `%` codes the guide documents.
const CODES: &str = "aAbCcDfhHimPqrstTUuXIORSeKyz";

impl Format {
    /// Compiles a `Form`; a custom format that does not parse is an error (the
    /// caller falls back to `ston`, as the guide says).
    pub fn compile(form: &AccessForm) -> Result<Format, String> {
        match form {
            AccessForm::Ston => Ok(Format::Ston),
            AccessForm::Apache => Ok(Format::Apache),
            AccessForm::Iis => Ok(Format::Iis),
            AccessForm::Custom(s) => parse_custom(s).map(Format::Custom),
        }
    }

    /// The `#Fields:` line written at the top of each file, for the W3C forms.
    pub fn header(&self) -> Option<String> {
        match self {
            Format::Ston => Some(format!("#Fields: {STON_FIELDS}")),
            Format::Iis => Some(format!("#Fields: {IIS_FIELDS}")),
            Format::Apache | Format::Custom(_) => None,
        }
    }

    /// The line for an exchange.
    pub fn line(&self, x: &Exchange, end: &Ended, xff: Xff) -> String {
        let mut out = String::with_capacity(256);
        match self {
            Format::Ston => ston(&mut out, x, end, xff),
            Format::Iis => iis(&mut out, x, end, xff),
            Format::Apache => apache(&mut out, x, end, xff),
            Format::Custom(tokens) => custom(&mut out, tokens, x, end),
        }
        out
    }
}

fn parse_custom(s: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            text.push('%');
            continue;
        }
        let negated = chars.next_if_eq(&'!').is_some();
        let mut digits = String::new();
        while let Some(d) = chars.next_if(|d| d.is_ascii_digit() || *d == ',') {
            digits.push(d);
        }
        let statuses = digits
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.parse::<u16>().map_err(|_| format!("bad status {d}")))
            .collect::<Result<Vec<u16>, String>>()?;
        let arg = if chars.next_if_eq(&'{').is_some() {
            let mut a = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(x) => a.push(x),
                    None => return Err("unclosed {".into()),
                }
            }
            Some(a)
        } else {
            None
        };
        let code = chars.next().ok_or("a % at the end")?;
        if !CODES.contains(code) {
            return Err(format!("unknown code %{code}"));
        }
        if matches!(code, 'C' | 'c' | 'i') && arg.is_none() {
            return Err(format!("%{code} needs a {{name}}"));
        }
        if let (Some(fmt), 't') = (&arg, code) {
            if StrftimeItems::new(fmt).any(|i| i == Item::Error) {
                return Err(format!("bad time format {fmt}"));
            }
        }
        if !text.is_empty() {
            tokens.push(Token::Text(std::mem::take(&mut text)));
        }
        tokens.push(Token::Field {
            statuses,
            negated,
            arg,
            code,
        });
    }
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    Ok(tokens)
}

/// A request header as text, if present and readable.
fn req(x: &Exchange, name: impl header::AsHeaderName) -> Option<&str> {
    x.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// A W3C field value: spaces become `+` (as in the guide's User-Agent), empty becomes `-`.
fn w3c(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) if !v.is_empty() => out.extend(v.chars().map(|c| if c == ' ' { '+' } else { c })),
        _ => out.push('-'),
    }
}

/// `c-ip` as `<Access XFF>` says.
fn client_ip(x: &Exchange, xff: Xff) -> String {
    let ip = x.peer.ip().to_string();
    let forwarded = req(x, "x-forwarded-for").map(|v| v.replace(' ', ""));
    match (xff, forwarded) {
        (Xff::On, Some(f)) => format!("{f},{ip}"),
        (Xff::TrimCip, Some(f)) => f,
        _ => ip,
    }
}

/// The user of `Authorization: Basic`, if any.
fn username(x: &Exchange) -> Option<String> {
    let v = req(x, header::AUTHORIZATION)?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let decoded = base64_decode(b64.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next()?.to_string())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.bytes().filter(|b| *b != b'=') {
        let v = ALPHABET.iter().position(|a| *a == b)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `sc-resinfo`: `Bypass` for requests passed around the cache, the content
/// encoding, and the TLS version of an HTTPS request, `+`-joined in the guide's order.
fn resinfo(x: &Exchange) -> Option<String> {
    let mut parts = Vec::new();
    if x.result == CacheResult::ClientRefreshMiss {
        parts.push("Bypass");
    }
    if let Some(e) = x.content_encoding.as_deref() {
        parts.push(e);
    }
    if let Some(v) = x.tls {
        parts.push(v);
    }
    (!parts.is_empty()).then(|| parts.join("+"))
}

/// The fields `ston` and `iis` share, from `date time` to `cs(User-Agent)`.
/// Writes `at` as `fmt` says, formatted once per second and thread: parsing a strftime
/// format costs more than the rest of an access line.
fn stamp(out: &mut String, at: &Time, fmt: &'static str, utc: bool) {
    thread_local! {
        /// The last second written, its format and clock, and its text.
        static LAST: std::cell::RefCell<(i64, &'static str, bool, String)> =
            const { std::cell::RefCell::new((i64::MIN, "", false, String::new())) };
    }
    LAST.with_borrow_mut(|(second, format, in_utc, text)| {
        let now = at.timestamp();
        if (*second, *in_utc) != (now, utc) || !std::ptr::eq(*format, fmt) {
            text.clear();
            let _ = if utc {
                write!(text, "{}", at.naive_utc().format(fmt))
            } else {
                write!(text, "{}", at.format(fmt))
            };
            (*second, *format, *in_utc) = (now, fmt, utc);
        }
        out.push_str(text);
    });
}

/// The fields `ston` and `iis` share: the date and time as `(format, utc)` say, then ours.
fn w3c_common(out: &mut String, x: &Exchange, at: (&Time, &'static str, bool), xff: Xff) {
    stamp(out, at.0, at.1, at.2);
    let _ = write!(out, " {} {} ", x.local.ip(), x.method);
    w3c(out, Some(x.uri.path()));
    out.push(' ');
    w3c(out, x.uri.query());
    let _ = write!(out, " {} ", x.local.port());
    w3c(out, username(x).as_deref());
    out.push(' ');
    w3c(out, Some(&client_ip(x, xff)));
    out.push(' ');
    w3c(out, req(x, header::USER_AGENT));
}

fn ston(out: &mut String, x: &Exchange, end: &Ended, xff: Xff) {
    w3c_common(out, x, (&end.at, "%Y.%m.%d %H:%M:%S", false), xff);
    let _ = write!(
        out,
        " {} {} {} ",
        x.status,
        x.head_sent(end),
        end.elapsed.as_millis()
    );
    w3c(out, req(x, header::REFERER));
    out.push(' ');
    w3c(out, resinfo(x).as_deref());
    out.push(' ');
    w3c(
        out,
        req(x, header::RANGE).map(|r| r.strip_prefix("bytes=").unwrap_or(r)),
    );
    let _ = write!(out, " {} ", x.result.as_str());
    let accept = req(x, header::ACCEPT_ENCODING).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join("+")
    });
    w3c(out, accept.as_deref());
    let _ = write!(out, " {} ", x.session);
    match x.content_length {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push('-'),
    }
}

fn iis(out: &mut String, x: &Exchange, end: &Ended, xff: Xff) {
    w3c_common(out, x, (&end.at, "%Y-%m-%d %H:%M:%S", true), xff);
    out.push(' ');
    w3c(out, req(x, header::REFERER));
    let _ = write!(out, " {} 0 0 {}", x.status, end.elapsed.as_millis());
}

/// An Apache quoted string: `"` and `\` escaped, control bytes as `\xHH`.
fn quoted(out: &mut String, v: Option<&str>) {
    out.push('"');
    match v {
        None => out.push('-'),
        Some(v) => {
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => {
                        let _ = write!(out, "\\x{:02x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
        }
    }
    out.push('"');
}

fn request_line(x: &Exchange) -> String {
    format!(
        "{} {} {:?}",
        x.method,
        x.uri.path_and_query().map_or("/", |p| p.as_str()),
        x.version
    )
}

fn apache(out: &mut String, x: &Exchange, end: &Ended, xff: Xff) {
    let _ = write!(out, "{} - ", client_ip(x, xff));
    out.push_str(username(x).as_deref().unwrap_or("-"));
    out.push_str(" [");
    stamp(out, &end.at, "%d/%b/%Y:%H:%M:%S %z", false);
    out.push_str("] ");
    quoted(out, Some(&request_line(x)));
    let _ = write!(out, " {} ", x.status);
    if end.sent == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", end.sent);
    }
    out.push(' ');
    quoted(out, req(x, header::REFERER));
    out.push(' ');
    quoted(out, req(x, header::USER_AGENT));
}

/// The value of cookie `name` (a trailing `=` in the name is ignored).
fn cookie(x: &Exchange, name: &str) -> Option<String> {
    let name = name.trim_end_matches('=');
    x.headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

fn custom(out: &mut String, tokens: &[Token], x: &Exchange, end: &Ended) {
    for t in tokens {
        let (statuses, negated, arg, code) = match t {
            Token::Text(s) => {
                out.push_str(s);
                continue;
            }
            Token::Field {
                statuses,
                negated,
                arg,
                code,
            } => (statuses, *negated, arg.as_deref(), *code),
        };
        if !statuses.is_empty() && statuses.contains(&x.status) == negated {
            out.push('-');
            continue;
        }
        let v: Option<String> = match code {
            'a' => Some(x.peer.ip().to_string()),
            'A' => Some(x.local.ip().to_string()),
            'b' => Some(end.sent.to_string()),
            'C' | 'c' => cookie(x, arg.unwrap_or("")),
            'D' => Some(end.elapsed.as_millis().to_string()),
            'R' => Some(x.time_res.as_millis().to_string()),
            'f' => x
                .uri
                .path()
                .rsplit('/')
                .next()
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            'h' => req(x, header::HOST).map(str::to_string),
            'H' => Some(if x.tls.is_some() { "https" } else { "http" }.into()),
            'i' => HeaderName::from_bytes(arg.unwrap_or("").as_bytes())
                .ok()
                .and_then(|n| req(x, n).map(str::to_string)),
            'm' => Some(x.method.to_string()),
            'P' => Some(x.local.port().to_string()),
            'q' => x.uri.query().map(str::to_string),
            'r' => Some(request_line(x)),
            's' => Some(x.status.to_string()),
            't' => Some(match arg {
                Some(f) => end.at.format(f).to_string(),
                None => end.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            }),
            'T' => Some(end.elapsed.as_secs().to_string()),
            'U' => Some(x.uri.path().to_string()),
            'u' => Some(
                x.uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string(),
            ),
            'X' => Some(if end.completed { "C" } else { "X" }.to_string()),
            'I' => Some((x.request[0] + x.request[1]).to_string()),
            'O' => Some(x.head_sent(end).to_string()),
            'e' => Some(x.session.to_string()),
            'S' => Some(x.result.as_str().to_string()),
            'K' => Some(format!("{:?}", x.version)),
            'y' => Some(x.request[0].to_string()),
            'z' => Some(x.head.to_string()),
            _ => None,
        };
        match v {
            Some(v) if !v.is_empty() => out.push_str(&v),
            _ => out.push('-'),
        }
    }
}

impl Exchange {
    /// `sc-bytes`: head and body sent (0 when there was no response).
    fn head_sent(&self, end: &Ended) -> u64 {
        if self.status == 0 {
            0
        } else {
            self.head + end.sent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn exchange() -> Exchange {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux)".parse().unwrap(),
        );
        headers.insert(header::ACCEPT_ENCODING, "gzip, deflate".parse().unwrap());
        headers.insert(header::HOST, "example.com".parse().unwrap());
        headers.insert(header::COOKIE, "a=1; userid=winesoft".parse().unwrap());
        headers.insert(header::RANGE, "bytes=0-99".parse().unwrap());
        headers.insert("x-forwarded-for", "10.0.0.9".parse().unwrap());
        headers.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6c2VjcmV0".parse().unwrap(),
        );
        Exchange {
            method: Method::GET,
            uri: "/web/h.gif?a=1".parse().unwrap(),
            version: Version::HTTP_11,
            headers,
            peer: "61.50.7.9:5000".parse().unwrap(),
            local: "220.134.10.5:80".parse().unwrap(),
            session: 7,
            tls: None,
            request: [200, 0],
            status: 206,
            head: 150,
            content_length: Some(100),
            content_encoding: None,
            result: CacheResult::Hit,
            time_res: Duration::from_millis(2),
        }
    }

    fn ended() -> Ended {
        Ended {
            at: chrono::Local
                .with_ymd_and_hms(2012, 6, 27, 16, 52, 24)
                .unwrap(),
            sent: 100,
            completed: true,
            elapsed: Duration::from_millis(5),
        }
    }

    #[test]
    fn ston_writes_the_guides_fields_in_order() {
        let line = Format::Ston.line(&exchange(), &ended(), Xff::On);
        assert_eq!(
            line,
            "2012.06.27 16:52:24 220.134.10.5 GET /web/h.gif a=1 80 alice 10.0.0.9,61.50.7.9 Mozilla/5.0+(X11;+Linux) 206 250 5 - - 0-99 TCP_HIT gzip+deflate 7 100"
        );
        assert_eq!(
            line.split(' ').count(),
            STON_FIELDS.split(' ').count(),
            "one value per field"
        );
        let trimmed = Format::Ston.line(&exchange(), &ended(), Xff::TrimCip);
        assert!(trimmed.contains(" alice 10.0.0.9 "), "{trimmed}");
    }

    #[test]
    fn custom_codes_and_conditions() {
        let f = Format::compile(&AccessForm::Custom(
            "%a %A %b id=%{userid}C %f %h %H \"%{user-agent}i\" %m %P \"%r\" %s %X %I %O %R %e %S %K %400,501{User-agent}i %!200{Host}i %q %{%H:%M}t %%".into(),
        ))
        .unwrap();
        assert_eq!(
            f.line(&exchange(), &ended(), Xff::On),
            "61.50.7.9 220.134.10.5 100 id=winesoft h.gif example.com http \"Mozilla/5.0 (X11; Linux)\" GET 80 \"GET /web/h.gif?a=1 HTTP/1.1\" 206 C 200 250 2 7 TCP_HIT HTTP/1.1 - example.com a=1 16:52 %"
        );
        // Over TLS: %H is https, and sc-resinfo carries the version after the encoding.
        let tls = Exchange {
            tls: Some("TLS1.3"),
            content_encoding: Some("gzip".into()),
            ..exchange()
        };
        let https = Format::compile(&AccessForm::Custom("%H".into())).unwrap();
        assert_eq!(https.line(&tls, &ended(), Xff::On), "https");
        let ston = Format::Ston.line(&tls, &ended(), Xff::On);
        assert!(ston.contains(" gzip+TLS1.3 "), "{ston}");
        for bad in ["%Z", "%{x", "%i", "%{%Q}t", "trailing %"] {
            assert!(
                Format::compile(&AccessForm::Custom(bad.into())).is_err(),
                "{bad}"
            );
        }
    }
}
