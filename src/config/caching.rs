//! Reads the caching settings of chapters 4 and 5 (`<Options>` of a vhost or
//! `<VHostDefault>`) and the `svc/<vhost>/ttl.txt` and `querystring.txt` lists.

use std::time::Duration;

use super::node::Node;
use super::pattern::{parse_list, UrlPattern};
use super::{
    value, CachingPolicy, ConfFiles, Cx, KeyPolicy, PostPolicy, Purge2Expire, RootPurge, TtlPolicy,
};
use super::{TtlSource, VaryPolicy};

fn secs(cx: &mut Cx, n: Node<'_>, fallback: u64) -> Duration {
    cx.get(n.value(), value::duration, Duration::from_secs(fallback))
}

fn percent(cx: &mut Cx, v: Option<super::node::Value<'_>>, fallback: u32) -> u32 {
    cx.get(v, value::int_in(0u32, 100), fallback)
}

/// `<Options><TTL>` and `ttl.txt` (`files` is `None` for `<VHostDefault>`).
pub(super) fn read_ttl(
    cx: &mut Cx,
    options: &Node<'_>,
    svc: Option<(&ConfFiles, &str)>,
) -> TtlPolicy {
    let ttl = options.child("TTL");
    let priority = cx.get(
        ttl.attr("Priority"),
        ttl_priority,
        vec![
            TtlSource::CcNoCache,
            TtlSource::Custom,
            TtlSource::CcMaxAge,
            TtlSource::ResCode,
        ],
    );
    let res2xx = ttl.child("Res2xx");
    let written = |n: &str| ttl.child(n).value().is_some_and(|v| v.loc.is_some());
    let rescode_written = ["Res2xx", "Res3xx", "Res4xx", "Res5xx"].map(written);
    let no_cache = ttl.child("NoCache");
    let custom = svc_list(cx, svc, "ttl.txt", |v| {
        let v = v.ok_or("expected \"<URL pattern>, <seconds>\"")?;
        value::duration(v)
    });
    TtlPolicy {
        priority,
        res2xx: secs(cx, res2xx.clone(), 1800),
        res2xx_ratio: percent(cx, res2xx.attr("Ratio"), 20),
        res2xx_max: cx.get(
            res2xx.attr("Max"),
            value::duration,
            Duration::from_secs(86_400),
        ),
        no_cache: no_cache.is_written().then(|| secs(cx, no_cache.clone(), 5)),
        no_cache_ratio: percent(cx, no_cache.attr("Ratio"), 0),
        no_cache_max: cx.get(
            no_cache.attr("Max"),
            value::duration,
            Duration::from_secs(5),
        ),
        no_cache_max_age: cx.get(no_cache.attr("MaxAge"), value::duration, Duration::ZERO),
        res3xx: secs(cx, ttl.child("Res3xx"), 300),
        res4xx: secs(cx, ttl.child("Res4xx"), 30),
        res5xx: secs(cx, ttl.child("Res5xx"), 30),
        rescode_written,
        connect_timeout: secs(cx, ttl.child("ConnectTimeout"), 3),
        receive_timeout: secs(cx, ttl.child("ReceiveTimeout"), 3),
        origin_busy: secs(cx, ttl.child("OriginBusy"), 3),
        custom,
    }
}

/// Keys, Vary, update policy and purge settings.
pub(super) fn read_caching(
    cx: &mut Cx,
    options: &Node<'_>,
    svc: Option<(&ConfFiles, &str)>,
) -> CachingPolicy {
    let on = |cx: &mut Cx, n: Node<'_>, fallback: bool| cx.get(n.value(), value::on_off, fallback);
    let aqs = options.child("ApplyQueryString");
    let key = KeyPolicy {
        case_sensitive: on(cx, options.child("CaseSensitive"), true),
        apply_query_string: on(cx, aqs.clone(), true),
        collective: cx.get(aqs.attr("Collective"), value::on_off, false),
        query_exceptions: pattern_list(cx, svc, "querystring.txt"),
        accept_encoding: on(cx, options.child("AcceptEncoding"), true),
    };
    let vary_el = options.child("VaryHeader");
    let vary = if vary_el.is_written() {
        match vary_el.value() {
            Some(v) if v.raw.trim() == "*" => VaryPolicy::All,
            Some(v) => VaryPolicy::Only(
                v.raw
                    .split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .filter(|f| !f.is_empty())
                    .collect(),
            ),
            None => VaryPolicy::Only(Vec::new()),
        }
    } else {
        VaryPolicy::Rfc
    };
    let purge2expire = cx.get(
        options.child("Purge2Expire").value(),
        |s| match s.trim().to_ascii_uppercase().as_str() {
            "NONE" => Ok(Purge2Expire::None),
            "ROOT" => Ok(Purge2Expire::Root),
            "PATTERN" => Ok(Purge2Expire::Pattern),
            "ALL" => Ok(Purge2Expire::All),
            _ => Err(format!(
                "unknown value \"{s}\" (NONE, ROOT, PATTERN or ALL)"
            )),
        },
        Purge2Expire::None,
    );
    let root_purge = cx.get(
        options.child("RootPurgeExpire").value(),
        |s| match s.trim().to_ascii_uppercase().as_str() {
            "ON" => Ok(RootPurge::Both),
            "PURGE" => Ok(RootPurge::Purge),
            "EXPIRE" => Ok(RootPurge::Expire),
            "OFF" => Ok(RootPurge::Off),
            _ => Err(format!("unknown value \"{s}\" (ON, PURGE, EXPIRE or OFF)")),
        },
        RootPurge::Both,
    );
    let post_el = options.child("PostRequest");
    let post = PostPolicy {
        cache: on(cx, post_el.clone(), false),
        max_body: cx.get(
            post_el.attr("MaxContentLength"),
            value::int_in(0u64, 1 << 30),
            102_400,
        ),
        body_sensitive: cx.get(post_el.attr("BodySensitive"), value::on_off, true),
        body_exceptions: pattern_list(cx, svc, "postbody.txt"),
    };
    CachingPolicy {
        post,
        key,
        vary,
        ttl_extension_4xx: on(cx, options.child("TTLExtensionBy4xx"), false),
        ttl_extension_5xx: on(cx, options.child("TTLExtensionBy5xx"), true),
        refresh_expired: on(cx, options.child("RefreshExpired"), true),
        no_cache_request_expire: on(cx, options.child("NoCacheRequestExpire"), false),
        purge2expire,
        root_purge,
        no_target_status: cx.get(
            options.child("ResCodeNoCtrlTarget").value(),
            value::int_in(100u16, 599),
            200,
        ),
    }
}

/// An exception list (`querystring.txt`, `postbody.txt`): one URL pattern per line.
fn pattern_list(cx: &mut Cx, svc: Option<(&ConfFiles, &str)>, name: &str) -> Vec<UrlPattern> {
    let only_pattern = |v: Option<&str>| match v {
        None => Ok(()),
        Some(_) => Err("a URL pattern per line, without a comma".to_string()),
    };
    svc_list(cx, svc, name, only_pattern)
        .into_iter()
        .map(|(p, ())| p)
        .collect()
}

/// Parses `svc/<vhost>/<name>` when the vhost has one; errors go to `cx`.
fn svc_list<T>(
    cx: &mut Cx,
    svc: Option<(&ConfFiles, &str)>,
    name: &str,
    value: impl FnMut(Option<&str>) -> Result<T, String>,
) -> Vec<(UrlPattern, T)> {
    let Some((files, vhost)) = svc else {
        return Vec::new();
    };
    let rel = format!("svc/{vhost}/{name}");
    let Some(text) = files.get(&rel) else {
        return Vec::new();
    };
    parse_list(&rel, text, value).unwrap_or_else(|e| {
        cx.errors.push(e);
        Vec::new()
    })
}

/// `cc_nocache, custom, cc_maxage, rescode` in any order; `rescode` is appended when missing.
fn ttl_priority(s: &str) -> Result<Vec<TtlSource>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let src = match part.to_ascii_lowercase().as_str() {
            "cc_nocache" => TtlSource::CcNoCache,
            "custom" => TtlSource::Custom,
            "cc_maxage" => TtlSource::CcMaxAge,
            "rescode" => TtlSource::ResCode,
            _ => {
                return Err(format!(
                    "unknown TTL source \"{part}\" (cc_nocache, custom, cc_maxage, rescode)"
                ))
            }
        };
        if out.contains(&src) {
            return Err(format!("\"{part}\" is listed twice"));
        }
        out.push(src);
    }
    if !out.contains(&TtlSource::ResCode) {
        out.push(TtlSource::ResCode);
    }
    Ok(out)
}
