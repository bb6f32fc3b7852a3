//! HTTP caching semantics (issue 5): each test is a real request sequence
//! against kurad in front of a scriptable origin, asserting what the client got
//! and how many requests reached the origin. Named after the rule they check.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// An origin whose answer for each path the test sets (and changes) as it goes.
/// The handler gets the request and how many times that path was asked before.
struct Scripted {
    origin: Origin,
    routes: Arc<Mutex<HashMap<String, Script>>>,
    /// While set, every request is answered by closing the connection.
    down: Arc<AtomicBool>,
}

impl Scripted {
    fn new() -> Scripted {
        let routes: Arc<Mutex<HashMap<String, Script>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (r, d) = (routes.clone(), down.clone());
        let origin = Origin::start(move |s| {
            if d.load(Ordering::SeqCst) {
                return Reply::reset();
            }
            let n = {
                let mut c = counts.lock().unwrap();
                let n = c.entry(s.path.clone()).or_default();
                *n += 1;
                *n - 1
            };
            let path = s.path.split('?').next().unwrap_or("/").to_string();
            let f = r.lock().unwrap().get(&path).cloned();
            match f {
                Some(f) => f(s, n),
                None => Reply::ok("no script").status(404),
            }
        });
        Scripted {
            origin,
            routes,
            down,
        }
    }

    /// Answers `path` (without query) with `f(request, times asked before)`.
    fn on(&self, path: &str, f: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> &Self {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), Arc::new(f));
        self
    }

    /// Answers `path` with a fixed 200 body and headers.
    fn fixed(&self, path: &str, body: &'static str, headers: &[(&'static str, &'static str)]) {
        let headers = headers.to_vec();
        self.on(path, move |_, _| {
            headers
                .iter()
                .fold(Reply::ok(body), |r, (k, v)| r.header(k, v))
        });
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Requests that reached the origin for `path` (path and query).
    fn count(&self, path: &str) -> usize {
        self.origin.count(path)
    }

    /// The last request the origin saw for `path`.
    fn last(&self, path: &str) -> Seen {
        self.origin
            .requests()
            .into_iter()
            .rev()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("the origin never saw {path}"))
    }
}

/// kurad with vhost `www.test` in front of `origin`; `options` go into
/// `<VHostDefault><Options>`, `cache` into `<Cache>`, `svc` files into `svc/www.test/`.
fn kura_full(
    origin: SocketAddr,
    options: &str,
    cache: &str,
    manager: &str,
    svc: &[(&str, &str)],
) -> Kurad {
    // Loopback clients are logged only with Local="ON"; the tests read TCP_* codes there.
    let mut server = server_xml(
        cache,
        &format!("<Options>{options}</Options><Log><Access Local=\"ON\">ON</Access></Log>"),
    );
    if !manager.is_empty() {
        server = server.replace(
            "<Manager Port=\"0\" Role=\"Admin\" />",
            &format!("<Manager Port=\"0\" Role=\"Admin\" {manager}"),
        );
    }
    let dir = conf_dir(&server, &vhosts_xml(&vhost("www.test", origin, "")));
    for (name, text) in svc {
        let d = dir.path().join("svc/www.test");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), text).unwrap();
    }
    Kurad::start(dir)
}

fn kura(o: &Scripted, options: &str) -> Kurad {
    kura_full(o.origin.addr, options, "", "", &[])
}

/// curl through the vhost with extra request headers (`"Name: value"`).
fn req(k: &Kurad, path: &str, headers: &[&str]) -> CurlResponse {
    let mut args = vec!["-H".to_string(), "Host: www.test".to_string()];
    for h in headers {
        args.push("-H".into());
        args.push(h.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&format!("http://{}{path}", k.http()), &args)
}

fn get(k: &Kurad, path: &str) -> CurlResponse {
    req(k, path, &[])
}

/// A management API call: (status, JSON).
fn api(k: &Kurad, path_and_query: &str) -> (u16, serde_json::Value) {
    let r = curl(&format!("http://{}{path_and_query}", k.manager), &[]);
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

/// `/command/<cmd>?url=www.test<path>`; returns the affected count.
fn command(k: &Kurad, cmd: &str, path: &str) -> u64 {
    let (status, v) = api(k, &format!("/command/{cmd}?url=www.test{path}"));
    assert_eq!(status, 200, "{cmd} {path}: {v}");
    v["result"]["Count"].as_u64().unwrap()
}

/// The `TCP_*` result of each of the first `n` access log lines.
fn results(k: &Kurad, n: usize) -> Vec<String> {
    let path = k.dir.path().join("logs/www.test/access.log");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let codes: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(' ').find(|t| t.starts_with("TCP_")))
            .map(str::to_string)
            .collect();
        if codes.len() >= n {
            return codes;
        }
        assert!(
            Instant::now() < until,
            "access log: {codes:?}, want {n}: {:?}",
            std::fs::read_dir(k.dir.path().join("logs"))
                .map(|d| d.map(|e| e.unwrap().path()).collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The result of the `i`-th request (0-based) once it is logged.
fn result(k: &Kurad, i: usize) -> String {
    results(k, i + 1)[i].clone()
}

fn x_cache(r: &CurlResponse) -> &str {
    r.header("x-cache").unwrap_or("")
}

fn origin_with(
    path: &'static str,
    body: &'static str,
    headers: &[(&'static str, &'static str)],
) -> Scripted {
    let o = Scripted::new();
    o.fixed(path, body, headers);
    o
}

const ETAG: (&str, &str) = ("etag", "\"v1\"");
const LAST_MODIFIED: (&str, &str) = ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT");

/// An origin that answers `/r` with body `v1` and an ETag, and 304 to a matching
/// `If-None-Match`.
fn validating_origin(cache_control: &'static str) -> Scripted {
    let o = Scripted::new();
    o.on("/r", move |s, _| {
        if s.headers.get("if-none-match").map(String::as_str) == Some("\"v1\"") {
            return Reply::ok("")
                .status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", cache_control);
        }
        Reply::ok("v1")
            .header("etag", "\"v1\"")
            .header("cache-control", cache_control)
    });
    o
}

/// How many of two GETs of `/a` reach an origin answering with `headers`.
fn origin_requests_for_two_gets(headers: &[(&'static str, &'static str)], options: &str) -> usize {
    let o = origin_with("/a", "A", headers);
    let k = kura(&o, options);
    get(&k, "/a");
    get(&k, "/a");
    o.count("/a")
}

// ---------------------------------------------------------------- freshness

#[test]
fn freshness_max_age_serves_hits_without_the_origin() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60")]);
    let k = kura(&o, "");
    assert_eq!(x_cache(&get(&k, "/a")), "MISS");
    let hit = get(&k, "/a");
    assert_eq!((x_cache(&hit), hit.text().as_str()), ("HIT", "A"));
    assert_eq!(o.count("/a"), 1);
    assert_eq!(results(&k, 2), ["TCP_MISS", "TCP_HIT"]);
}

#[test]
fn freshness_s_maxage_beats_max_age() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=0, s-maxage=60")]);
    let k = kura(&o, "");
    get(&k, "/a");
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn freshness_max_age_zero_is_stale_at_once() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=0")]);
    let k = kura(&o, "");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2);
}

#[test]
fn freshness_expires_counts_from_date() {
    let o = Scripted::new();
    o.on("/a", |_, _| {
        let now = std::time::SystemTime::now();
        Reply::ok("A")
            .header("date", &httpdate::fmt_http_date(now))
            .header(
                "expires",
                &httpdate::fmt_http_date(now + Duration::from_secs(120)),
            )
    });
    let k = kura(&o, "<TTL><Res2xx>0</Res2xx></TTL>");
    get(&k, "/a");
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn freshness_invalid_expires_means_already_expired() {
    let o = origin_with("/a", "A", &[("expires", "0")]);
    let k = kura(&o, "");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2, "Expires: 0 is in the past (RFC 9111 5.3)");
}

#[test]
fn freshness_cdn_cache_control_beats_cache_control_and_is_stripped() {
    let o = origin_with(
        "/a",
        "A",
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
    );
    let k = kura(&o, "");
    let first = get(&k, "/a");
    assert_eq!(first.header("cdn-cache-control"), None);
    assert_eq!(
        first.header("cache-control"),
        Some("no-store"),
        "the client's field is kept"
    );
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn freshness_cdn_cache_control_no_store_is_not_stored() {
    assert_eq!(
        origin_requests_for_two_gets(
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store"),
            ],
            ""
        ),
        2
    );
}

#[test]
fn freshness_surrogate_control_sets_the_ttl_and_is_stripped() {
    let o = origin_with(
        "/a",
        "A",
        &[
            ("cache-control", "max-age=0"),
            ("surrogate-control", "max-age=60"),
        ],
    );
    let k = kura(&o, "");
    assert_eq!(get(&k, "/a").header("surrogate-control"), None);
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn freshness_cdn_cache_control_beats_surrogate_control() {
    assert_eq!(
        origin_requests_for_two_gets(
            &[
                ("surrogate-control", "max-age=60"),
                ("cdn-cache-control", "max-age=0"),
            ],
            ""
        ),
        2
    );
}

#[test]
fn ttl_res2xx_applies_without_freshness_information() {
    let o = origin_with("/a", "A", &[]);
    let k = kura(&o, "<TTL><Res2xx>60</Res2xx></TTL>");
    get(&k, "/a");
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn ttl_res2xx_zero_fetches_every_time() {
    let o = origin_with("/a", "A", &[]);
    let k = kura(&o, "<TTL><Res2xx>0</Res2xx></TTL>");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2);
}

#[test]
fn ttl_res4xx_caches_errors_as_negative_hits() {
    let o = Scripted::new();
    o.on("/gone", |_, _| Reply::ok("gone").status(404));
    let k = kura(&o, "<TTL><Res4xx>60</Res4xx></TTL>");
    assert_eq!(get(&k, "/gone").status, 404);
    let second = get(&k, "/gone");
    assert_eq!((second.status, x_cache(&second)), (404, "HIT"));
    assert_eq!(o.count("/gone"), 1);
    assert_eq!(results(&k, 2), ["TCP_MISS", "TCP_NEGATIVE_HIT"]);
}

#[test]
fn ttl_res4xx_zero_does_not_cache_errors() {
    let o = Scripted::new();
    o.on("/gone", |_, _| Reply::ok("gone").status(404));
    let k = kura(&o, "<TTL><Res4xx>0</Res4xx></TTL>");
    get(&k, "/gone");
    get(&k, "/gone");
    assert_eq!(o.count("/gone"), 2);
}

#[test]
fn ttl_res3xx_caches_redirects() {
    let o = Scripted::new();
    o.on("/old", |_, _| {
        Reply::ok("").status(301).header("location", "/new")
    });
    let k = kura(&o, "<TTL><Res3xx>60</Res3xx></TTL>");
    assert_eq!(get(&k, "/old").status, 301);
    let second = get(&k, "/old");
    assert_eq!(
        (second.status, second.header("location")),
        (301, Some("/new"))
    );
    assert_eq!(o.count("/old"), 1);
}

#[test]
fn ttl_res5xx_caches_server_errors_briefly() {
    let o = Scripted::new();
    o.on("/err", |_, _| Reply::ok("boom").status(500));
    let k = kura(&o, "<TTL><Res5xx>60</Res5xx></TTL>");
    get(&k, "/err");
    assert_eq!(get(&k, "/err").status, 500);
    assert_eq!(o.count("/err"), 1);
}

#[test]
fn ttl_txt_custom_rule_overrides_max_age() {
    let o = origin_with("/page.jsp", "P", &[("cache-control", "max-age=0")]);
    let k = kura_full(
        o.origin.addr,
        "",
        "",
        "",
        &[("ttl.txt", "# comment\n*.jsp, 60\n")],
    );
    get(&k, "/page.jsp");
    assert_eq!(x_cache(&get(&k, "/page.jsp")), "HIT");
    assert_eq!(o.count("/page.jsp"), 1);
}

#[test]
fn ttl_txt_root_rule_matches_only_the_root() {
    let o = Scripted::new();
    o.fixed("/", "root", &[("cache-control", "max-age=0")]);
    o.fixed("/index.html", "index", &[("cache-control", "max-age=0")]);
    let k = kura_full(o.origin.addr, "", "", "", &[("ttl.txt", "/, 60\n")]);
    get(&k, "/");
    get(&k, "/");
    get(&k, "/index.html");
    get(&k, "/index.html");
    assert_eq!((o.count("/"), o.count("/index.html")), (1, 2));
}

#[test]
fn ttl_txt_directory_pattern_with_star() {
    let o = Scripted::new();
    o.fixed("/script/a/b.js", "js", &[("cache-control", "max-age=0")]);
    o.fixed("/other/b.js", "js", &[("cache-control", "max-age=0")]);
    let k = kura_full(
        o.origin.addr,
        "",
        "",
        "",
        &[("ttl.txt", "/script/*.js, 300\n")],
    );
    for _ in 0..2 {
        get(&k, "/script/a/b.js");
        get(&k, "/other/b.js");
    }
    assert_eq!((o.count("/script/a/b.js"), o.count("/other/b.js")), (1, 2));
}

#[test]
fn ttl_priority_cc_maxage_before_custom() {
    let o = origin_with("/page.jsp", "P", &[("cache-control", "max-age=0")]);
    let k = kura_full(
        o.origin.addr,
        r#"<TTL Priority="cc_maxage, custom, rescode" />"#,
        "",
        "",
        &[("ttl.txt", "*.jsp, 60\n")],
    );
    get(&k, "/page.jsp");
    get(&k, "/page.jsp");
    assert_eq!(
        o.count("/page.jsp"),
        2,
        "max-age=0 comes first in this priority"
    );
}

/// `kurad check` on a configuration with `svc/www.test/<file>`: (success, output).
fn check_with_svc(options: &str, file: &str, text: &str) -> (bool, String) {
    let dir = conf_dir(
        &server_xml("", &format!("<Options>{options}</Options>")),
        &vhosts_xml(&vhost("www.test", "127.0.0.1:1".parse().unwrap(), "")),
    );
    std::fs::create_dir_all(dir.path().join("svc/www.test")).unwrap();
    std::fs::write(dir.path().join("svc/www.test").join(file), text).unwrap();
    kurad_check(dir.path())
}

#[test]
fn ttl_txt_bad_line_is_a_config_error_with_file_and_line() {
    let (ok, text) = check_with_svc("", "ttl.txt", "*.jsp, 10\n/a.html, soon\n");
    assert!(!ok);
    assert!(text.contains("svc/www.test/ttl.txt:2"), "{text}");
}

// ------------------------------------------------------------- no-cache etc.

#[test]
fn no_cache_response_is_revalidated_on_every_use_by_default() {
    let o = validating_origin("no-cache");
    let k = kura(&o, "");
    get(&k, "/r");
    let second = get(&k, "/r");
    assert_eq!((second.text().as_str(), x_cache(&second)), ("v1", "HIT"));
    assert_eq!(o.count("/r"), 2);
    assert_eq!(
        o.last("/r")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(results(&k, 2), ["TCP_MISS", "TCP_REFRESH_HIT"]);
}

#[test]
fn no_cache_with_a_written_nocache_ttl_follows_the_guide() {
    let o = validating_origin("no-cache");
    let k = kura(&o, "<TTL><NoCache>60</NoCache></TTL>");
    get(&k, "/r");
    assert_eq!(x_cache(&get(&k, "/r")), "HIT");
    assert_eq!(o.count("/r"), 1);
}

#[test]
fn qualified_no_cache_strips_the_named_field_and_stores() {
    let o = origin_with(
        "/a",
        "A",
        &[
            ("cache-control", "max-age=60, no-cache=\"Set-Cookie\""),
            ("set-cookie", "session=secret"),
        ],
    );
    let k = kura(&o, "");
    get(&k, "/a");
    let hit = get(&k, "/a");
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.header("set-cookie"), None, "the cookie is never shared");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn private_response_is_never_stored() {
    let o = origin_with("/a", "A", &[("cache-control", "private, max-age=60")]);
    let k = kura(&o, "");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2);
}

#[test]
fn no_store_response_is_never_stored() {
    let o = origin_with("/a", "A", &[("cache-control", "no-store, max-age=60")]);
    let k = kura(&o, "");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2);
}

#[test]
fn authorization_request_is_not_shared_without_permission() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60")]);
    let k = kura(&o, "");
    req(&k, "/a", &["Authorization: Basic YTpi"]);
    req(&k, "/a", &["Authorization: Basic YTpi"]);
    get(&k, "/a");
    assert_eq!(o.count("/a"), 3);
}

#[test]
fn authorization_request_is_shared_with_public() {
    let o = origin_with("/a", "A", &[("cache-control", "public, max-age=60")]);
    let k = kura(&o, "");
    req(&k, "/a", &["Authorization: Basic YTpi"]);
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn authorization_request_is_shared_with_s_maxage() {
    let o = origin_with("/a", "A", &[("cache-control", "s-maxage=60")]);
    let k = kura(&o, "");
    req(&k, "/a", &["Authorization: Basic YTpi"]);
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn set_cookie_response_is_not_shared() {
    let o = origin_with(
        "/a",
        "A",
        &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
    );
    let k = kura(&o, "");
    get(&k, "/a");
    let second = get(&k, "/a");
    assert_eq!(second.header("set-cookie"), Some("a=1"));
    assert_eq!(o.count("/a"), 2);
}

// ------------------------------------------------------------- revalidation

#[test]
fn revalidation_with_etag_and_304_is_a_refresh_hit() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "");
    get(&k, "/r");
    assert_eq!(command(&k, "expire", "/r"), 1);
    let r = get(&k, "/r");
    assert_eq!(
        (r.status, r.text().as_str(), x_cache(&r)),
        (200, "v1", "HIT")
    );
    assert_eq!(
        o.last("/r")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(results(&k, 2), ["TCP_MISS", "TCP_REFRESH_HIT"]);
    assert_eq!(x_cache(&get(&k, "/r")), "HIT");
    assert_eq!(o.count("/r"), 2, "the 304 made the copy fresh again");
}

#[test]
fn revalidation_with_last_modified_sends_if_modified_since() {
    let o = Scripted::new();
    o.on("/r", |s, _| {
        if s.headers.contains_key("if-modified-since") {
            return Reply::ok("").status(304);
        }
        Reply::ok("v1")
            .header(LAST_MODIFIED.0, LAST_MODIFIED.1)
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").text(), "v1");
    assert_eq!(
        o.last("/r")
            .headers
            .get("if-modified-since")
            .map(String::as_str),
        Some(LAST_MODIFIED.1)
    );
    assert_eq!(result(&k, 1), "TCP_REFRESH_HIT");
}

#[test]
fn revalidation_without_validators_fetches_again_as_refresh_miss() {
    let o = Scripted::new();
    o.on("/r", |s, n| {
        assert!(!s.headers.contains_key("if-none-match"));
        Reply::ok(if n == 0 { "old" } else { "new" }).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").text(), "new");
    assert_eq!(results(&k, 2), ["TCP_MISS", "TCP_REFRESH_MISS"]);
}

#[test]
fn revalidation_200_replaces_the_stored_copy() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" })
            .header("etag", if n == 0 { "\"1\"" } else { "\"2\"" })
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").text(), "new");
    let hit = get(&k, "/r");
    assert_eq!(
        (hit.text().as_str(), hit.header("etag")),
        ("new", Some("\"2\""))
    );
    assert_eq!(o.count("/r"), 2);
}

#[test]
fn revalidation_304_updates_the_stored_headers() {
    let o = Scripted::new();
    o.on("/r", |s, _| {
        if s.headers.contains_key("if-none-match") {
            return Reply::ok("")
                .status(304)
                .header("x-version", "2")
                .header("cache-control", "max-age=60");
        }
        Reply::ok("body")
            .header("etag", "\"e\"")
            .header("x-version", "1")
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let r = get(&k, "/r");
    assert_eq!(
        (r.text().as_str(), r.header("x-version")),
        ("body", Some("2"))
    );
    assert_eq!(get(&k, "/r").header("x-version"), Some("2"));
}

#[test]
fn revalidation_304_keeps_the_stored_content_length() {
    let o = Scripted::new();
    o.on("/r", |s, _| {
        if s.headers.contains_key("if-none-match") {
            return Reply::ok("")
                .status(304)
                .header("cache-control", "max-age=60");
        }
        Reply::ok("0123456789")
            .header("etag", "\"e\"")
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let r = get(&k, "/r");
    assert_eq!(
        (r.text().as_str(), r.header("content-length")),
        ("0123456789", Some("10"))
    );
}

#[test]
fn revalidation_of_a_conditional_client_request_answers_304() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let r = req(&k, "/r", &["If-None-Match: \"v1\""]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(result(&k, 1), "TCP_REFRESH_HIT");
}

#[test]
fn concurrent_requests_for_an_expired_object_revalidate_once() {
    let o = Scripted::new();
    o.on("/r", |s, _| {
        if s.headers.contains_key("if-none-match") {
            return Reply::ok("").status(304).delay(Duration::from_millis(500));
        }
        Reply::ok("v1")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let url = format!("http://{}/r", k.http());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || curl(&url, &["-H", "Host: www.test"]).text())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "v1");
    }
    assert_eq!(o.count("/r"), 2, "one fetch and one revalidation");
}

#[test]
fn refresh_expired_off_answers_stale_and_refreshes_behind() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" }).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "<RefreshExpired>OFF</RefreshExpired>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let stale = get(&k, "/r");
    assert_eq!((stale.text().as_str(), x_cache(&stale)), ("old", "HIT"));
    let until = Instant::now() + Duration::from_secs(5);
    while get(&k, "/r").text() != "new" {
        assert!(
            Instant::now() < until,
            "the background refresh never landed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(o.count("/r"), 2);
}

#[test]
fn refresh_expired_on_waits_for_the_origin() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" }).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "<RefreshExpired>ON</RefreshExpired>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").text(), "new");
}

#[test]
fn refresh_expired_off_still_revalidates_must_revalidate_first() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" })
            .header("cache-control", "max-age=60, must-revalidate")
    });
    let k = kura(&o, "<RefreshExpired>OFF</RefreshExpired>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").text(), "new");
}

#[test]
fn stale_while_revalidate_answers_stale_within_the_window() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" })
            .header("cache-control", "max-age=1, stale-while-revalidate=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get(&k, "/r").text(), "old");
    let until = Instant::now() + Duration::from_secs(5);
    while get(&k, "/r").text() != "new" {
        assert!(Instant::now() < until, "never refreshed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stale_while_revalidate_past_the_window_waits_for_the_origin() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" })
            .header("cache-control", "max-age=1, stale-while-revalidate=1")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(get(&k, "/r").text(), "new");
}

#[test]
fn client_no_cache_is_ignored_by_default() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60")]);
    let k = kura(&o, "");
    get(&k, "/a");
    assert_eq!(x_cache(&req(&k, "/a", &["Cache-Control: no-cache"])), "HIT");
    assert_eq!(o.count("/a"), 1);
}

#[test]
fn client_no_cache_expires_the_copy_with_nocacherequestexpire() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "<NoCacheRequestExpire>ON</NoCacheRequestExpire>");
    get(&k, "/r");
    let r = req(&k, "/r", &["Cache-Control: no-cache"]);
    assert_eq!(r.text(), "v1");
    assert_eq!(o.count("/r"), 2);
    assert_eq!(
        o.last("/r")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );
}

#[test]
fn client_max_age_zero_counts_as_no_cache() {
    let o = Scripted::new();
    o.on("/a", |_, n| {
        Reply::ok(if n == 0 { "old" } else { "new" }).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "<NoCacheRequestExpire>ON</NoCacheRequestExpire>");
    get(&k, "/a");
    assert_eq!(req(&k, "/a", &["Cache-Control: max-age=0"]).text(), "new");
    assert_eq!(result(&k, 1), "TCP_CLIENT_REFRESH_MISS");
}

#[test]
fn client_pragma_no_cache_counts_as_no_cache() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60")]);
    let k = kura(&o, "<NoCacheRequestExpire>ON</NoCacheRequestExpire>");
    get(&k, "/a");
    req(&k, "/a", &["Pragma: no-cache"]);
    assert_eq!(o.count("/a"), 2);
}

// ----------------------------------------------------------- origin failure

#[test]
fn origin_reset_serves_the_stale_copy_as_ref_fail_hit() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    let r = get(&k, "/r");
    assert_eq!(
        (r.status, r.text().as_str(), x_cache(&r)),
        (200, "v1", "HIT")
    );
    assert_eq!(
        r.header("cache-status"),
        Some("kura; hit; detail=stale-on-error")
    );
    assert_eq!(result(&k, 1), "TCP_REF_FAIL_HIT");
}

#[test]
fn origin_refusing_connections_serves_the_stale_copy() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    drop(o);
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
    assert_eq!(result(&k, 1), "TCP_REF_FAIL_HIT");
}

#[test]
fn origin_failure_extends_the_copy_by_the_ttl_connect_timeout() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "<TTL><ReceiveTimeout>60</ReceiveTimeout></TTL>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    get(&k, "/r");
    let before = o.origin.requests().len();
    assert_eq!(x_cache(&get(&k, "/r")), "HIT");
    assert_eq!(
        o.origin.requests().len(),
        before,
        "the extended copy is fresh: no origin request"
    );
}

/// An origin whose `/r` is a fresh 200 `good` once, then `status` with `body`.
fn good_then(body: &'static str, status: u16) -> Scripted {
    let o = Scripted::new();
    o.on("/r", move |_, n| {
        if n == 0 {
            Reply::ok("good").header("cache-control", "max-age=60")
        } else {
            Reply::ok(body).status(status)
        }
    });
    o
}

#[test]
fn origin_5xx_on_revalidation_keeps_the_copy_by_default() {
    let o = good_then("broken", 503);
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "good"));
    assert_eq!(result(&k, 1), "TCP_REF_FAIL_HIT");
}

#[test]
fn origin_5xx_replaces_the_copy_with_ttl_extension_by_5xx_off() {
    let o = good_then("broken", 503);
    let k = kura(&o, "<TTLExtensionBy5xx>OFF</TTLExtensionBy5xx>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").status, 503);
}

#[test]
fn origin_4xx_on_revalidation_replaces_the_copy_by_default() {
    let o = good_then("gone", 404);
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").status, 404);
    assert_eq!(
        get(&k, "/r").status,
        404,
        "the 404 is now the cached answer"
    );
}

#[test]
fn origin_4xx_keeps_the_copy_with_ttl_extension_by_4xx_on() {
    let o = good_then("gone", 404);
    let k = kura(&o, "<TTLExtensionBy4xx>ON</TTLExtensionBy4xx>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "good"));
}

#[test]
fn must_revalidate_is_never_served_stale() {
    let o = validating_origin("max-age=60, must-revalidate");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    let r = get(&k, "/r");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.header("cache-status"),
        Some("kura; fwd=stale; detail=origin-error")
    );
    assert_eq!(result(&k, 1), "TCP_ERROR");
}

#[test]
fn proxy_revalidate_is_never_served_stale() {
    let o = validating_origin("max-age=60, proxy-revalidate");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    assert_eq!(get(&k, "/r").status, 502);
}

#[test]
fn s_maxage_is_never_served_stale() {
    let o = validating_origin("s-maxage=60");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    assert_eq!(get(&k, "/r").status, 502);
}

#[test]
fn must_revalidate_5xx_on_revalidation_is_passed_through() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        if n == 0 {
            Reply::ok("good").header("cache-control", "max-age=60, must-revalidate")
        } else {
            Reply::ok("broken").status(503)
        }
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    assert_eq!(get(&k, "/r").status, 503);
}

#[test]
fn stale_if_error_within_the_window_serves_stale() {
    let o = validating_origin("max-age=60, must-revalidate, stale-if-error=600");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
}

#[test]
fn stale_if_error_past_the_window_is_an_error() {
    let o = validating_origin("max-age=1, stale-if-error=1");
    let k = kura(&o, "");
    get(&k, "/r");
    std::thread::sleep(Duration::from_millis(3100));
    o.set_down(true);
    assert_eq!(get(&k, "/r").status, 502);
}

#[test]
fn origin_down_without_a_copy_is_an_error_remembered_for_the_ttl() {
    let o = origin_with("/a", "A", &[]);
    o.set_down(true);
    let k = kura(&o, "<TTL><ReceiveTimeout>60</ReceiveTimeout></TTL>");
    let first = get(&k, "/a");
    assert_eq!(first.status, 502);
    let seen = o.origin.requests().len();
    let second = get(&k, "/a");
    assert_eq!(second.status, 502);
    assert_eq!(
        o.origin.requests().len(),
        seen,
        "the error is answered from the cache"
    );
    assert_eq!(results(&k, 2), ["TCP_ERROR", "TCP_NEGATIVE_HIT"]);
}

#[test]
fn origin_error_ttl_zero_asks_the_origin_every_time() {
    let o = origin_with("/a", "A", &[]);
    o.set_down(true);
    let k = kura(
        &o,
        "<TTL><ConnectTimeout>0</ConnectTimeout><ReceiveTimeout>0</ReceiveTimeout></TTL>",
    );
    get(&k, "/a");
    o.set_down(false);
    assert_eq!(get(&k, "/a").status, 200);
}

/// kurad whose origin must answer within one second.
fn kura_receive_timeout_1s(o: &Scripted) -> Kurad {
    let server = server_xml(
        "",
        r#"<OriginOptions><ReceiveTimeout>1</ReceiveTimeout></OriginOptions><Log><Access Local="ON">ON</Access></Log>"#,
    );
    Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("www.test", o.origin.addr, "")),
    ))
}

#[test]
fn receive_timeout_without_a_copy_is_504() {
    let o = Scripted::new();
    o.on("/slow", |_, _| {
        Reply::ok("late").delay(Duration::from_secs(3))
    });
    let k = kura_receive_timeout_1s(&o);
    let started = Instant::now();
    assert_eq!(get(&k, "/slow").status, 504);
    assert!(started.elapsed() < Duration::from_millis(2900));
}

#[test]
fn receive_timeout_serves_the_stale_copy() {
    let o = Scripted::new();
    o.on("/r", |_, n| {
        let r = Reply::ok(if n == 0 { "v1" } else { "v2" }).header("cache-control", "max-age=60");
        if n == 0 {
            r
        } else {
            r.delay(Duration::from_secs(3))
        }
    });
    let k = kura_receive_timeout_1s(&o);
    get(&k, "/r");
    command(&k, "expire", "/r");
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
    assert_eq!(result(&k, 1), "TCP_REF_FAIL_HIT");
}

// ------------------------------------------------ client conditionals, ranges

#[test]
fn if_none_match_on_a_hit_is_304_ims_hit() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), ETAG]);
    let k = kura(&o, "");
    get(&k, "/a");
    let r = req(&k, "/a", &["If-None-Match: \"v1\""]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(result(&k, 1), "TCP_IMS_HIT");
}

#[test]
fn if_none_match_uses_the_weak_comparison() {
    let o = origin_with(
        "/a",
        "A",
        &[("cache-control", "max-age=60"), ("etag", "W/\"v1\"")],
    );
    let k = kura(&o, "");
    get(&k, "/a");
    assert_eq!(req(&k, "/a", &["If-None-Match: \"x\", \"v1\""]).status, 304);
    assert_eq!(req(&k, "/a", &["If-None-Match: *"]).status, 304);
}

#[test]
fn if_none_match_mismatch_is_a_full_200() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), ETAG]);
    let k = kura(&o, "");
    get(&k, "/a");
    let r = req(&k, "/a", &["If-None-Match: \"other\""]);
    assert_eq!((r.status, r.text().as_str()), (200, "A"));
}

#[test]
fn if_modified_since_not_older_than_last_modified_is_304() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), LAST_MODIFIED]);
    let k = kura(&o, "");
    get(&k, "/a");
    let r = req(
        &k,
        "/a",
        &["If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT"],
    );
    assert_eq!(r.status, 304);
    let r = req(
        &k,
        "/a",
        &["If-Modified-Since: Mon, 07 Nov 1994 08:49:37 GMT"],
    );
    assert_eq!(r.status, 304);
}

#[test]
fn if_modified_since_older_than_last_modified_is_200() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), LAST_MODIFIED]);
    let k = kura(&o, "");
    get(&k, "/a");
    let r = req(
        &k,
        "/a",
        &["If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT"],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "A"));
}

#[test]
fn if_none_match_wins_over_if_modified_since() {
    let o = origin_with(
        "/a",
        "A",
        &[("cache-control", "max-age=60"), ETAG, LAST_MODIFIED],
    );
    let k = kura(&o, "");
    get(&k, "/a");
    let r = req(
        &k,
        "/a",
        &[
            "If-None-Match: \"other\"",
            "If-Modified-Since: Mon, 07 Nov 1994 08:49:37 GMT",
        ],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn conditional_request_on_a_miss_is_answered_whole_by_the_origin_fetch() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), ETAG]);
    let k = kura(&o, "");
    let r = req(&k, "/a", &["If-None-Match: \"v1\""]);
    assert_eq!(r.status, 200);
    assert!(
        !o.last("/a").headers.contains_key("if-none-match"),
        "the cache fetches the whole object"
    );
}

const DIGITS: &str = "0123456789";

fn digits() -> Scripted {
    origin_with(
        "/d",
        DIGITS,
        &[
            ("cache-control", "max-age=60"),
            ETAG,
            LAST_MODIFIED,
            ("content-type", "text/plain"),
        ],
    )
}

#[test]
fn range_single_is_206_from_the_cache() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=2-4"]);
    assert_eq!((r.status, r.text().as_str()), (206, "234"));
    assert_eq!(r.header("content-range"), Some("bytes 2-4/10"));
    assert_eq!(r.header("content-length"), Some("3"));
    assert_eq!(o.count("/d"), 1);
}

#[test]
fn range_suffix_takes_the_last_bytes() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=-3"]);
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
}

#[test]
fn range_open_ended_runs_to_the_end() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=7-"]);
    assert_eq!(
        (r.text().as_str(), r.header("content-range")),
        ("789", Some("bytes 7-9/10"))
    );
}

#[test]
fn range_past_the_end_is_clamped() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    assert_eq!(req(&k, "/d", &["Range: bytes=8-100"]).text(), "89");
}

#[test]
fn range_unsatisfiable_is_416() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=10-20"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
}

#[test]
fn range_malformed_is_ignored() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=5-2"]);
    assert_eq!((r.status, r.text().as_str()), (200, DIGITS));
}

#[test]
fn range_multiple_is_multipart_byteranges() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=0-1,5-6"]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(&ct);
    let text = r.text();
    assert_eq!(
        text.matches(&format!("--{boundary}\r\n")).count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 0-1/10\r\n\r\n01"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 5-6/10\r\n\r\n56"),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/plain"), "{text}");
    assert!(text.ends_with(&format!("--{boundary}--\r\n")));
}

#[test]
fn if_range_with_the_current_etag_serves_the_range() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=0-0", "If-Range: \"v1\""]);
    assert_eq!((r.status, r.text().as_str()), (206, "0"));
}

#[test]
fn if_range_with_another_etag_serves_the_whole_body() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(&k, "/d", &["Range: bytes=0-0", "If-Range: \"v0\""]);
    assert_eq!((r.status, r.text().as_str()), (200, DIGITS));
}

#[test]
fn if_range_with_the_last_modified_date_serves_the_range() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = req(
        &k,
        "/d",
        &[
            "Range: bytes=1-1",
            &format!("If-Range: {}", LAST_MODIFIED.1),
        ],
    );
    assert_eq!((r.status, r.text().as_str()), (206, "1"));
}

#[test]
fn range_on_a_miss_gets_the_whole_object() {
    let o = digits();
    let k = kura(&o, "");
    let r = req(&k, "/d", &["Range: bytes=0-1"]);
    assert_eq!((r.status, r.text().as_str()), (200, DIGITS));
    assert!(!o.last("/d").headers.contains_key("range"));
}

#[test]
fn head_on_a_hit_has_the_headers_and_no_body() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = curl(
        &format!("http://{}/d", k.http()),
        &["-I", "-H", "Host: www.test"],
    );
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    assert_eq!(x_cache(&r), "HIT");
}

// ---------------------------------------------------------------- keys

#[test]
fn key_case_sensitive_on_keeps_urls_apart() {
    let o = Scripted::new();
    o.fixed("/A.jpg", "upper", &[("cache-control", "max-age=60")]);
    o.fixed("/a.jpg", "lower", &[("cache-control", "max-age=60")]);
    let k = kura(&o, "");
    assert_eq!(get(&k, "/A.jpg").text(), "upper");
    assert_eq!(get(&k, "/a.jpg").text(), "lower");
}

#[test]
fn key_case_sensitive_off_shares_one_copy() {
    let o = Scripted::new();
    // The origin is asked for the caching key (chapter 7 `<WholeClientRequest>` OFF).
    o.fixed("/a.jpg", "upper", &[("cache-control", "max-age=60")]);
    let k = kura(&o, "<CaseSensitive>OFF</CaseSensitive>");
    assert_eq!(get(&k, "/A.jpg").text(), "upper");
    let r = get(&k, "/a.JPG");
    assert_eq!((r.text().as_str(), x_cache(&r)), ("upper", "HIT"));
}

#[test]
fn key_query_string_on_keeps_queries_apart() {
    let o = Scripted::new();
    o.on("/q", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    assert_eq!(get(&k, "/q?a=1").text(), "/q?a=1");
    assert_eq!(get(&k, "/q?a=2").text(), "/q?a=2");
}

#[test]
fn key_query_string_off_ignores_the_query() {
    let o = Scripted::new();
    o.on("/q", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "<ApplyQueryString>OFF</ApplyQueryString>");
    assert_eq!(
        get(&k, "/q?a=1").text(),
        "/q",
        "the origin gets the caching key"
    );
    let r = get(&k, "/q?a=2");
    assert_eq!((r.text().as_str(), x_cache(&r)), ("/q", "HIT"));
}

#[test]
fn key_querystring_txt_exceptions_invert_the_setting() {
    let o = Scripted::new();
    o.on("/image/ad.jpg", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=60")
    });
    o.on("/page.jsp", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=60")
    });
    let k = kura_full(
        o.origin.addr,
        "",
        "",
        "",
        &[("querystring.txt", "/image/ad.jpg\n")],
    );
    get(&k, "/image/ad.jpg?r=1");
    assert_eq!(x_cache(&get(&k, "/image/ad.jpg?r=2")), "HIT");
    get(&k, "/page.jsp?a=1");
    assert_eq!(x_cache(&get(&k, "/page.jsp?a=2")), "MISS");
}

#[test]
fn key_accept_encoding_on_keeps_encodings_apart() {
    let o = Scripted::new();
    o.on("/z", |s, _| {
        let gz = s
            .headers
            .get("accept-encoding")
            .is_some_and(|v| v.contains("gzip"));
        Reply::ok(if gz { "gzipped" } else { "plain" }).header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    assert_eq!(req(&k, "/z", &["Accept-Encoding: gzip"]).text(), "gzipped");
    assert_eq!(get(&k, "/z").text(), "plain");
    assert_eq!(x_cache(&req(&k, "/z", &["Accept-Encoding: gzip"])), "HIT");
    assert_eq!(o.count("/z"), 2);
}

#[test]
fn key_accept_encoding_off_drops_it_and_shares_one_copy() {
    let o = Scripted::new();
    o.on("/z", |s, _| {
        assert!(!s.headers.contains_key("accept-encoding"));
        Reply::ok("plain").header("cache-control", "max-age=60")
    });
    let k = kura(&o, "<AcceptEncoding>OFF</AcceptEncoding>");
    req(&k, "/z", &["Accept-Encoding: gzip"]);
    assert_eq!(x_cache(&get(&k, "/z")), "HIT");
    assert_eq!(o.count("/z"), 1);
}

fn vary_origin() -> Scripted {
    let o = Scripted::new();
    o.on("/v", |s, _| {
        Reply::ok(&format!(
            "lang={}",
            s.headers
                .get("accept-language")
                .cloned()
                .unwrap_or_default()
        ))
        .header("cache-control", "max-age=60")
        .header("vary", "Accept-Language")
    });
    o
}

#[test]
fn vary_is_honoured_when_vary_header_is_not_written() {
    let o = vary_origin();
    let k = kura(&o, "");
    assert_eq!(req(&k, "/v", &["Accept-Language: ko"]).text(), "lang=ko");
    assert_eq!(req(&k, "/v", &["Accept-Language: en"]).text(), "lang=en");
}

#[test]
fn vary_header_empty_ignores_vary_as_the_guide_says() {
    let o = vary_origin();
    let k = kura(&o, "<VaryHeader />");
    assert_eq!(req(&k, "/v", &["Accept-Language: ko"]).text(), "lang=ko");
    let r = req(&k, "/v", &["Accept-Language: en"]);
    assert_eq!((r.text().as_str(), x_cache(&r)), ("lang=ko", "HIT"));
}

#[test]
fn vary_header_list_honours_only_the_listed_fields() {
    let o = vary_origin();
    let k = kura(&o, "<VaryHeader>Accept</VaryHeader>");
    req(&k, "/v", &["Accept-Language: ko"]);
    assert_eq!(req(&k, "/v", &["Accept-Language: en"]).text(), "lang=ko");
    drop(k);
    let k = kura(&o, "<VaryHeader>Accept, Accept-Language</VaryHeader>");
    req(&k, "/v", &["Accept-Language: ko"]);
    assert_eq!(req(&k, "/v", &["Accept-Language: en"]).text(), "lang=en");
}

#[test]
fn vary_star_is_not_stored() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), ("vary", "*")]);
    let k = kura(&o, "");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2);
}

// ---------------------------------------------------------------- purge

fn two_objects() -> (Scripted, Kurad) {
    let o = Scripted::new();
    for p in ["/img/a.bmp", "/img/b.jpg", "/img/", "/css/s.css", "/x.bmp"] {
        o.on(p, move |_, n| {
            Reply::ok(&format!("{p} #{n}"))
                .header("cache-control", "max-age=600")
                .header("etag", "\"e\"")
        });
    }
    let k = kura(&o, "");
    for p in ["/img/a.bmp", "/img/b.jpg", "/img/", "/css/s.css", "/x.bmp"] {
        get(&k, p);
    }
    (o, k)
}

#[test]
fn purge_url_makes_the_next_request_fetch_again() {
    let (o, k) = two_objects();
    let (status, v) = api(&k, "/command/purge?url=http://www.test/img/b.jpg");
    assert_eq!(status, 200);
    assert_eq!(v["method"], "purge");
    assert_eq!(v["status"], "OK");
    assert_eq!(v["result"]["Count"], 1);
    assert_eq!(v["result"]["Size"], "/img/b.jpg #0".len());
    assert!(v["result"]["Time"].is_u64());
    assert_eq!(get(&k, "/img/b.jpg").text(), "/img/b.jpg #1");
    assert!(
        !o.last("/img/b.jpg").headers.contains_key("if-none-match"),
        "a purge refetches unconditionally"
    );
}

#[test]
fn purge_of_an_already_purged_object_counts_nothing() {
    let (_o, k) = two_objects();
    assert_eq!(command(&k, "purge", "/img/b.jpg"), 1);
    let (status, v) = api(&k, "/command/purge?url=www.test/img/b.jpg");
    assert_eq!((status, v["result"]["Count"].as_u64()), (200, Some(0)));
}

#[test]
fn purge_nothing_answers_res_code_no_ctrl_target() {
    let o = Scripted::new();
    let k = kura(&o, "<ResCodeNoCtrlTarget>404</ResCodeNoCtrlTarget>");
    let (status, v) = api(&k, "/command/purge?url=www.test/none.jpg");
    assert_eq!((status, v["result"]["Count"].as_u64()), (404, Some(0)));
}

#[test]
fn purge_wildcard_extension_pattern() {
    let (o, k) = two_objects();
    let (_, v) = api(&k, "/command/purge?url=www.test/*.bmp");
    assert_eq!(v["result"]["Count"], 2);
    assert_eq!(x_cache(&get(&k, "/img/b.jpg")), "HIT");
    assert_eq!(get(&k, "/x.bmp").text(), "/x.bmp #1");
    assert_eq!(o.count("/img/b.jpg"), 1);
}

#[test]
fn purge_directory_pattern_takes_everything_below() {
    let (_o, k) = two_objects();
    assert_eq!(command(&k, "purge", "/img/*"), 3);
    assert_eq!(x_cache(&get(&k, "/css/s.css")), "HIT");
}

#[test]
fn purge_directory_url_is_only_that_page() {
    let (_o, k) = two_objects();
    assert_eq!(command(&k, "purge", "/img/"), 1);
    assert_eq!(x_cache(&get(&k, "/img/a.bmp")), "HIT");
    assert_eq!(x_cache(&get(&k, "/img/")), "MISS");
}

#[test]
fn purge_list_with_bars_and_omitted_hosts() {
    let (_o, k) = two_objects();
    let (_, v) = api(
        &k,
        "/command/purge?url=www.test/img/a.bmp|/css/s.css|/x.bmp",
    );
    assert_eq!(v["result"]["Count"], 3);
    let (_, v) = api(&k, "/command/purge?url=/img/b.jpg");
    assert_eq!(
        v["result"]["Count"], 1,
        "the host used last stands for an omitted one"
    );
}

#[test]
fn purge_without_any_host_is_400() {
    let o = Scripted::new();
    let k = kura(&o, "");
    let (status, v) = api(&k, "/command/purge?url=/a.jpg");
    assert_eq!((status, v["status"].as_str()), (400, Some("ERROR")));
}

#[test]
fn purge_of_an_unknown_host_is_404() {
    let o = Scripted::new();
    let k = kura(&o, "");
    assert_eq!(api(&k, "/command/purge?url=nowhere.test/a.jpg").0, 404);
}

#[test]
fn purge_without_url_is_400() {
    let o = Scripted::new();
    let k = kura(&o, "");
    assert_eq!(api(&k, "/command/purge").0, 400);
}

#[test]
fn purge_restores_the_copy_when_the_origin_fails() {
    let (o, k) = two_objects();
    command(&k, "purge", "/img/b.jpg");
    o.set_down(true);
    let r = get(&k, "/img/b.jpg");
    assert_eq!((r.status, r.text().as_str()), (200, "/img/b.jpg #0"));
    assert_eq!(result(&k, 5), "TCP_REF_FAIL_HIT");
}

#[test]
fn hardpurge_deletes_for_good() {
    let (o, k) = two_objects();
    assert_eq!(command(&k, "hardpurge", "/img/b.jpg"), 1);
    o.set_down(true);
    assert_eq!(get(&k, "/img/b.jpg").status, 502);
}

#[test]
fn hardpurge_twice_counts_once() {
    let (_o, k) = two_objects();
    assert_eq!(command(&k, "hardpurge", "/img/b.jpg"), 1);
    assert_eq!(
        api(&k, "/command/hardpurge?url=www.test/img/b.jpg").1["result"]["Count"],
        0
    );
}

#[test]
fn purge_setting_hard_makes_purge_delete() {
    let o = Scripted::new();
    o.fixed("/a", "A", &[("cache-control", "max-age=600")]);
    let k = kura_full(o.origin.addr, "", "<Purge>Hard</Purge>", "", &[]);
    get(&k, "/a");
    command(&k, "purge", "/a");
    o.set_down(true);
    assert_eq!(get(&k, "/a").status, 502);
}

#[test]
fn expire_revalidates_with_the_stored_validator() {
    let (o, k) = two_objects();
    assert_eq!(command(&k, "expire", "/img/b.jpg"), 1);
    get(&k, "/img/b.jpg");
    assert_eq!(
        o.last("/img/b.jpg")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"e\"")
    );
}

#[test]
fn expire_of_an_expired_object_counts_nothing() {
    let (_o, k) = two_objects();
    assert_eq!(command(&k, "expire", "/img/b.jpg"), 1);
    assert_eq!(
        api(&k, "/command/expire?url=www.test/img/b.jpg").1["result"]["Count"],
        0
    );
}

#[test]
fn expireafter_sets_a_new_expiry() {
    let (o, k) = two_objects();
    let (status, v) = api(&k, "/command/expireafter?sec=1&url=www.test/img/b.jpg");
    assert_eq!(
        (status, v["method"].as_str(), v["result"]["Count"].as_u64()),
        (200, Some("expireafter"), Some(1))
    );
    assert_eq!(x_cache(&get(&k, "/img/b.jpg")), "HIT");
    std::thread::sleep(Duration::from_millis(1500));
    get(&k, "/img/b.jpg");
    assert_eq!(
        o.count("/img/b.jpg"),
        2,
        "expired one second after the call"
    );
}

#[test]
fn expireafter_can_extend_the_expiry() {
    let o = Scripted::new();
    o.fixed("/a", "A", &[("cache-control", "max-age=1")]);
    let k = kura(&o, "");
    get(&k, "/a");
    command_with(&k, "expireafter?sec=600&", "/a");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
    assert_eq!(o.count("/a"), 1);
}

fn command_with(k: &Kurad, prefix: &str, path: &str) -> u64 {
    let (status, v) = api(k, &format!("/command/{prefix}url=www.test{path}"));
    assert_eq!(status, 200, "{v}");
    v["result"]["Count"].as_u64().unwrap()
}

#[test]
fn expireafter_zero_is_refused() {
    let (_o, k) = two_objects();
    assert_eq!(
        api(&k, "/command/expireafter?sec=0&url=www.test/img/b.jpg").0,
        400
    );
}

#[test]
fn expireafter_without_sec_is_one_day() {
    let o = Scripted::new();
    o.fixed("/a", "A", &[("cache-control", "max-age=1")]);
    let k = kura(&o, "");
    get(&k, "/a");
    assert_eq!(command(&k, "expireafter", "/a"), 1);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
}

#[test]
fn purge_post_form() {
    let (_o, k) = two_objects();
    let r = curl(
        &format!("http://{}/command/purge", k.manager),
        &["--data-binary", "url=http://www.test/img/b.jpg"],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["result"]["Count"].as_u64()), (200, Some(1)));
}

#[test]
fn expireafter_post_form_with_sec() {
    let (_o, k) = two_objects();
    let r = curl(
        &format!("http://{}/command/expireafter", k.manager),
        &["--data-binary", "sec=60&url=www.test/img/b.jpg"],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn purge_method_on_the_service_port_from_an_admin_address() {
    let (o, k) = two_objects();
    let r = curl(
        &format!("http://{}/img/b.jpg", k.http()),
        &["-X", "PURGE", "-H", "Host: www.test"],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["result"]["Count"].as_u64()), (200, Some(1)));
    get(&k, "/img/b.jpg");
    assert_eq!(o.count("/img/b.jpg"), 2);
}

#[test]
fn purge_method_is_refused_outside_the_manager_acl() {
    let o = Scripted::new();
    o.fixed("/a", "A", &[("cache-control", "max-age=600")]);
    let k = kura_full(
        o.origin.addr,
        "",
        "",
        r#"HttpMethod="ON"><Allow>127.0.0.1</Allow><Allow Role="User">10.0.0.0/8</Allow></Manager>"#,
        &[],
    );
    get(&k, "/a");
    // 127.0.0.1 is Admin here; curl from 127.0.0.2 is outside every Allow.
    let r = curl(
        &format!("http://{}/a", k.http()),
        &[
            "-X",
            "PURGE",
            "-H",
            "Host: www.test",
            "--interface",
            "127.0.0.2",
        ],
    );
    assert_eq!(r.status, 403);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["code"].as_u64()),
        (Some("ERROR"), Some(403)),
        "{v}"
    );
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
}

#[test]
fn purge_method_without_acl_check_when_http_method_is_off() {
    let o = Scripted::new();
    o.fixed("/a", "A", &[("cache-control", "max-age=600")]);
    let k = kura_full(
        o.origin.addr,
        "",
        "",
        r#"HttpMethod="OFF"><Allow>127.0.0.1</Allow></Manager>"#,
        &[],
    );
    get(&k, "/a");
    let r = curl(
        &format!("http://{}/a", k.http()),
        &[
            "-X",
            "PURGE",
            "-H",
            "Host: www.test",
            "--interface",
            "127.0.0.2",
        ],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn expire_and_hardpurge_methods_on_the_service_port() {
    let (o, k) = two_objects();
    let r = curl(
        &format!("http://{}/img/a.bmp", k.http()),
        &["-X", "EXPIRE", "-H", "Host: www.test"],
    );
    assert_eq!(r.status, 200);
    get(&k, "/img/a.bmp");
    assert!(o.last("/img/a.bmp").headers.contains_key("if-none-match"));
    let r = curl(
        &format!("http://{}/img/b.jpg", k.http()),
        &["-X", "HARDPURGE", "-H", "Host: www.test"],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["method"], "hardpurge");
}

#[test]
fn purge_method_on_the_manager_port() {
    let (_o, k) = two_objects();
    let r = curl(
        &format!("http://{}/img/b.jpg", k.manager),
        &["-X", "PURGE", "-H", "Host: www.test"],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["result"]["Count"].as_u64()), (200, Some(1)));
}

#[test]
fn purge2expire_pattern_expires_pattern_purges() {
    let o = Scripted::new();
    o.fixed(
        "/a.bmp",
        "A",
        &[("cache-control", "max-age=600"), ("etag", "\"e\"")],
    );
    let k = kura(&o, "<Purge2Expire>PATTERN</Purge2Expire>");
    get(&k, "/a.bmp");
    command(&k, "purge", "/*.bmp");
    get(&k, "/a.bmp");
    assert!(
        o.last("/a.bmp").headers.contains_key("if-none-match"),
        "an expire revalidates"
    );
}

#[test]
fn purge2expire_pattern_keeps_exact_purges() {
    let o = Scripted::new();
    o.fixed(
        "/a.bmp",
        "A",
        &[("cache-control", "max-age=600"), ("etag", "\"e\"")],
    );
    let k = kura(&o, "<Purge2Expire>PATTERN</Purge2Expire>");
    get(&k, "/a.bmp");
    command(&k, "purge", "/a.bmp");
    get(&k, "/a.bmp");
    assert!(!o.last("/a.bmp").headers.contains_key("if-none-match"));
}

#[test]
fn purge2expire_all_expires_every_purge() {
    let o = Scripted::new();
    o.fixed(
        "/a.bmp",
        "A",
        &[("cache-control", "max-age=600"), ("etag", "\"e\"")],
    );
    let k = kura(&o, "<Purge2Expire>ALL</Purge2Expire>");
    get(&k, "/a.bmp");
    command(&k, "purge", "/a.bmp");
    get(&k, "/a.bmp");
    assert!(o.last("/a.bmp").headers.contains_key("if-none-match"));
}

#[test]
fn purge2expire_root_expires_root_purges() {
    let o = Scripted::new();
    o.fixed(
        "/",
        "root",
        &[("cache-control", "max-age=600"), ("etag", "\"e\"")],
    );
    let k = kura(&o, "<Purge2Expire>ROOT</Purge2Expire>");
    get(&k, "/");
    command(&k, "purge", "/");
    get(&k, "/");
    assert!(o.last("/").headers.contains_key("if-none-match"));
}

#[test]
fn root_purge_expire_off_forbids_the_root() {
    let (_o, k) = two_objects();
    drop(k);
    let o = Scripted::new();
    o.fixed("/", "root", &[("cache-control", "max-age=600")]);
    let k = kura(&o, "<RootPurgeExpire>OFF</RootPurgeExpire>");
    get(&k, "/");
    assert_eq!(api(&k, "/command/purge?url=www.test/").0, 403);
    assert_eq!(api(&k, "/command/purge?url=www.test/*").0, 403);
    assert_eq!(
        api(&k, "/command/hardpurge?url=www.test/").0,
        200,
        "hardpurge is not guarded"
    );
}

#[test]
fn root_purge_expire_purge_allows_only_purge() {
    let o = Scripted::new();
    o.fixed("/", "root", &[("cache-control", "max-age=600")]);
    let k = kura(&o, "<RootPurgeExpire>PURGE</RootPurgeExpire>");
    get(&k, "/");
    assert_eq!(api(&k, "/command/expire?url=www.test/").0, 403);
    assert_eq!(api(&k, "/command/purge?url=www.test/").0, 200);
}

#[test]
fn purge_collective_takes_the_query_string_variants() {
    let o = Scripted::new();
    o.on("/p.jsp", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=600")
    });
    let k = kura(
        &o,
        r#"<ApplyQueryString Collective="ON">ON</ApplyQueryString>"#,
    );
    get(&k, "/p.jsp?a=1");
    get(&k, "/p.jsp?a=2");
    get(&k, "/p.jsp");
    assert_eq!(command(&k, "purge", "/p.jsp"), 3);
}

#[test]
fn purge_without_collective_takes_only_the_given_url() {
    let o = Scripted::new();
    o.on("/p.jsp", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=600")
    });
    let k = kura(&o, "");
    get(&k, "/p.jsp?a=1");
    get(&k, "/p.jsp");
    assert_eq!(command(&k, "purge", "/p.jsp"), 1);
    assert_eq!(command(&k, "purge", "/p.jsp?a=1"), 1);
}

#[test]
fn purge_takes_every_encoding_variant_of_the_url() {
    let o = Scripted::new();
    o.fixed("/z", "Z", &[("cache-control", "max-age=600")]);
    let k = kura(&o, "");
    get(&k, "/z");
    req(&k, "/z", &["Accept-Encoding: gzip"]);
    assert_eq!(command(&k, "purge", "/z"), 2);
}

#[test]
fn purge_follows_case_sensitive_off() {
    let o = Scripted::new();
    o.fixed("/A.jpg", "A", &[("cache-control", "max-age=600")]);
    let k = kura(&o, "<CaseSensitive>OFF</CaseSensitive>");
    get(&k, "/A.jpg");
    assert_eq!(command(&k, "purge", "/a.JPG"), 1);
}

#[test]
fn purge_needs_the_admin_role() {
    let o = Scripted::new();
    let k = kura_full(
        o.origin.addr,
        "",
        "",
        r#"><Allow Role="User">127.0.0.1</Allow></Manager>"#,
        &[],
    );
    assert_eq!(api(&k, "/command/purge?url=www.test/a").0, 401);
}

// ------------------------------------------------------- unsafe methods

fn post_origin() -> Scripted {
    let o = Scripted::new();
    o.on("/doc", |s, _| match s.method.as_str() {
        "GET" => Reply::ok("doc").header("cache-control", "max-age=600"),
        "DELETE" => Reply::ok("").status(204),
        _ => Reply::ok("posted")
            .header("location", "/other")
            .header("content-location", "http://www.test/third"),
    });
    o.fixed("/other", "other", &[("cache-control", "max-age=600")]);
    o.fixed("/third", "third", &[("cache-control", "max-age=600")]);
    o
}

#[test]
fn unsafe_post_invalidates_the_target() {
    let o = post_origin();
    let k = kura(&o, "");
    get(&k, "/doc");
    curl(
        &format!("http://{}/doc", k.http()),
        &["-H", "Host: www.test", "--data-binary", "x"],
    );
    assert_eq!(x_cache(&get(&k, "/doc")), "MISS");
}

#[test]
fn unsafe_post_invalidates_location_and_content_location_on_the_same_host() {
    let o = post_origin();
    let k = kura(&o, "");
    get(&k, "/other");
    get(&k, "/third");
    curl(
        &format!("http://{}/doc", k.http()),
        &["-H", "Host: www.test", "--data-binary", "x"],
    );
    assert_eq!(x_cache(&get(&k, "/other")), "MISS");
    assert_eq!(x_cache(&get(&k, "/third")), "MISS");
}

#[test]
fn unsafe_delete_invalidates_the_target() {
    let o = post_origin();
    let k = kura(&o, "");
    get(&k, "/doc");
    curl(
        &format!("http://{}/doc", k.http()),
        &["-X", "DELETE", "-H", "Host: www.test"],
    );
    assert_eq!(x_cache(&get(&k, "/doc")), "MISS");
}

#[test]
fn unsafe_request_that_fails_keeps_the_copy() {
    let o = Scripted::new();
    o.on("/doc", |s, _| match s.method.as_str() {
        "GET" => Reply::ok("doc").header("cache-control", "max-age=600"),
        _ => Reply::ok("no").status(500),
    });
    let k = kura(&o, "");
    get(&k, "/doc");
    curl(
        &format!("http://{}/doc", k.http()),
        &["-H", "Host: www.test", "--data-binary", "x"],
    );
    assert_eq!(x_cache(&get(&k, "/doc")), "HIT");
}

#[test]
fn unsafe_post_does_not_touch_other_hosts_locations() {
    let o = Scripted::new();
    o.on("/doc", |s, _| match s.method.as_str() {
        "GET" => Reply::ok("doc").header("cache-control", "max-age=600"),
        _ => Reply::ok("posted").header("location", "http://elsewhere.test/other"),
    });
    o.fixed("/other", "other", &[("cache-control", "max-age=600")]);
    let k = kura(&o, "");
    get(&k, "/other");
    curl(
        &format!("http://{}/doc", k.http()),
        &["-H", "Host: www.test", "--data-binary", "x"],
    );
    assert_eq!(x_cache(&get(&k, "/other")), "HIT");
}

// ------------------------------------------------------------ stampede

#[test]
fn collapsed_forwarding_keeps_the_origin_at_one_request_per_object() {
    let o = Scripted::new();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    o.on("/hot", move |_, _| {
        h.fetch_add(1, Ordering::SeqCst);
        Reply::ok("hot")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(300))
    });
    let k = kura(&o, "");
    let url = format!("http://{}/hot", k.http());
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || curl(&url, &["-H", "Host: www.test"]).text())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "hot");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------------- more rules

#[test]
fn refresh_hit_restarts_the_age() {
    let o = Scripted::new();
    o.on("/r", |s, _| {
        if s.headers.contains_key("if-none-match") {
            return Reply::ok("")
                .status(304)
                .header("cache-control", "max-age=60");
        }
        Reply::ok("v1")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    std::thread::sleep(Duration::from_millis(2100));
    assert!(get(&k, "/r").header("age").unwrap().parse::<u64>().unwrap() >= 2);
    command(&k, "expire", "/r");
    let r = get(&k, "/r");
    assert_eq!(
        r.header("age"),
        Some("0"),
        "a revalidated copy is new again"
    );
}

#[test]
fn purged_copy_refetched_is_a_refresh_miss() {
    let (_o, k) = two_objects();
    command(&k, "purge", "/img/b.jpg");
    get(&k, "/img/b.jpg");
    assert_eq!(result(&k, 5), "TCP_REFRESH_MISS");
}

#[test]
fn hardpurged_copy_refetched_is_a_plain_miss() {
    let (_o, k) = two_objects();
    command(&k, "hardpurge", "/img/b.jpg");
    get(&k, "/img/b.jpg");
    assert_eq!(result(&k, 5), "TCP_MISS");
}

#[test]
fn expire_keeps_the_copy_when_the_origin_is_down() {
    let (o, k) = two_objects();
    command(&k, "expire", "/img/b.jpg");
    o.set_down(true);
    let r = get(&k, "/img/b.jpg");
    assert_eq!((r.status, r.text().as_str()), (200, "/img/b.jpg #0"));
}

#[test]
fn remembered_origin_error_ends_after_the_ttl() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60")]);
    o.set_down(true);
    let k = kura(&o, "<TTL><ReceiveTimeout>1</ReceiveTimeout></TTL>");
    assert_eq!(get(&k, "/a").status, 502);
    o.set_down(false);
    assert_eq!(get(&k, "/a").status, 502, "still remembered");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&k, "/a").status, 200);
}

#[test]
fn stale_extension_lasts_the_ttl_then_the_origin_is_asked_again() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "<TTL><ReceiveTimeout>1</ReceiveTimeout></TTL>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    assert_eq!(get(&k, "/r").text(), "v1");
    o.set_down(false);
    std::thread::sleep(Duration::from_millis(1100));
    let before = o.count("/r");
    get(&k, "/r");
    assert_eq!(
        o.count("/r"),
        before + 1,
        "after the extension the copy is revalidated"
    );
}

#[test]
fn ttl_extension_by_5xx_keeps_the_copy_for_res5xx() {
    let o = good_then("broken", 500);
    let k = kura(&o, "<TTL><Res5xx>60</Res5xx></TTL>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    get(&k, "/r");
    let r = get(&k, "/r");
    assert_eq!((r.text().as_str(), x_cache(&r)), ("good", "HIT"));
    assert_eq!(o.count("/r"), 2, "extended: no origin request for 60 s");
}

#[test]
fn conditionals_do_not_apply_to_cached_errors() {
    let o = Scripted::new();
    o.on("/gone", |_, _| {
        Reply::ok("gone")
            .status(404)
            .header("etag", "\"g\"")
            .header("cache-control", "max-age=60")
    });
    let k = kura(&o, "");
    get(&k, "/gone");
    let r = req(&k, "/gone", &["If-None-Match: \"g\"", "Range: bytes=0-1"]);
    assert_eq!((r.status, r.text().as_str()), (404, "gone"));
}

#[test]
fn more_than_sixteen_ranges_get_the_whole_body() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let many: Vec<String> = (0..17).map(|i| format!("{}-{}", i % 10, i % 10)).collect();
    let r = req(&k, "/d", &[&format!("Range: bytes={}", many.join(","))]);
    assert_eq!((r.status, r.text().as_str()), (200, DIGITS));
}

#[test]
fn range_is_ignored_on_head() {
    let o = digits();
    let k = kura(&o, "");
    get(&k, "/d");
    let r = curl(
        &format!("http://{}/d", k.http()),
        &["-I", "-H", "Host: www.test", "-H", "Range: bytes=0-3"],
    );
    // RFC 9110 14.2: Range is defined for GET only.
    assert_eq!((r.status, r.header("content-range")), (200, None));
}

#[test]
fn vary_star_is_stored_when_vary_header_ignores_vary() {
    let o = origin_with("/a", "A", &[("cache-control", "max-age=60"), ("vary", "*")]);
    let k = kura(&o, "<VaryHeader />");
    get(&k, "/a");
    assert_eq!(x_cache(&get(&k, "/a")), "HIT");
}

#[test]
fn vary_header_star_honours_every_field() {
    let o = vary_origin();
    let k = kura(&o, "<VaryHeader>*</VaryHeader>");
    req(&k, "/v", &["Accept-Language: ko"]);
    assert_eq!(req(&k, "/v", &["Accept-Language: en"]).text(), "lang=en");
}

#[test]
fn key_querystring_txt_pattern_with_a_query() {
    let o = Scripted::new();
    o.on("/private/personal.jsp", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=60")
    });
    let k = kura_full(
        o.origin.addr,
        "<ApplyQueryString>OFF</ApplyQueryString>",
        "",
        "",
        &[("querystring.txt", "/private/personal.jsp?login=ok*\n")],
    );
    get(&k, "/private/personal.jsp?login=ok&u=1");
    assert_eq!(
        get(&k, "/private/personal.jsp?login=ok&u=2").text(),
        "/private/personal.jsp?login=ok&u=2"
    );
    get(&k, "/private/personal.jsp?x=1");
    assert_eq!(x_cache(&get(&k, "/private/personal.jsp?x=2")), "HIT");
}

#[test]
fn surrogate_control_no_store_is_not_stored() {
    assert_eq!(
        origin_requests_for_two_gets(
            &[
                ("cache-control", "max-age=60"),
                ("surrogate-control", "no-store"),
            ],
            ""
        ),
        2
    );
}

#[test]
fn cdn_cache_control_makes_a_private_response_storable_for_the_cdn() {
    let o = origin_with(
        "/a",
        "A",
        &[
            ("cache-control", "private"),
            ("cdn-cache-control", "max-age=60"),
        ],
    );
    let k = kura(&o, "");
    get(&k, "/a");
    let hit = get(&k, "/a");
    assert_eq!(
        (x_cache(&hit), hit.header("cache-control")),
        ("HIT", Some("private"))
    );
}

#[test]
fn purge_url_with_a_scheme_and_port_free_host() {
    let (_o, k) = two_objects();
    let (_, v) = api(&k, "/command/purge?url=https://www.test/img/b.jpg");
    assert_eq!(v["result"]["Count"], 1);
}

#[test]
fn purge_sec_after_url_belongs_to_the_url() {
    let (_o, k) = two_objects();
    let (status, v) = api(&k, "/command/expireafter?url=www.test/img/b.jpg&sec=5");
    assert_eq!(
        (status, v["result"]["Count"].as_u64()),
        (200, Some(0)),
        "{v}"
    );
}

/// kurad with `one.test` (with `extra`) and `two.test` on one free port, each
/// with `/a` cached.
fn two_vhosts_with_a(extra: &str) -> (Scripted, Kurad) {
    let o = Scripted::new();
    o.fixed("/a", "A", &[("cache-control", "max-age=600")]);
    let port = listen_port();
    let listen = format!("<Listen>127.0.0.1:{port}</Listen>");
    let vhosts = vhost("one.test", o.origin.addr, extra)
        .replace("<Listen>127.0.0.1:0</Listen>", &listen)
        + &vhost("two.test", o.origin.addr, "").replace("<Listen>127.0.0.1:0</Listen>", &listen);
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts_xml(&vhosts)));
    for host in ["one.test", "two.test"] {
        curl(
            &format!("http://{}/a", k.http()),
            &["-H", &format!("Host: {host}")],
        );
    }
    (o, k)
}

#[test]
fn purge_by_alias_and_across_two_vhosts() {
    let (_o, k) = two_vhosts_with_a("<Alias>*.one.test</Alias>");
    let (_, v) = api(&k, "/command/purge?url=www.one.test/a|two.test/a");
    assert_eq!(v["result"]["Count"], 2);
}

#[test]
fn purge_of_one_vhost_leaves_the_other() {
    let (_o, k) = two_vhosts_with_a("");
    let (_, v) = api(&k, "/command/purge?url=one.test/*");
    assert_eq!(v["result"]["Count"], 1);
}

#[test]
fn purge_of_many_objects_by_pattern_counts_them_all() {
    let o = Scripted::new();
    o.on("/many", |s, _| {
        Reply::ok(&s.path).header("cache-control", "max-age=600")
    });
    let k = kura(&o, "");
    let url = format!("http://{}/many?i=[1-300]", k.http());
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-H", "Host: www.test", &url])
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(command(&k, "purge", "/many?*"), 300);
    assert_eq!(command(&k, "hardpurge", "/many*"), 300);
}

#[test]
fn vary_keeps_every_variant_of_a_url() {
    let o = vary_origin();
    let k = kura(&o, "");
    for lang in ["en", "fr", "en", "fr"] {
        let r = req(&k, "/v", &[&format!("Accept-Language: {lang}")]);
        assert_eq!(r.text(), format!("lang={lang}"));
    }
    assert_eq!(o.count("/v"), 2, "en and fr are both kept");
    let none = get(&k, "/v");
    assert_eq!((none.text().as_str(), x_cache(&none)), ("lang=", "MISS"));
    assert_eq!(
        x_cache(&get(&k, "/v")),
        "HIT",
        "a request without the field is a variant too"
    );
}

#[test]
fn vary_variants_are_purged_together() {
    let o = vary_origin();
    let k = kura(&o, "");
    req(&k, "/v", &["Accept-Language: en"]);
    req(&k, "/v", &["Accept-Language: fr"]);
    assert_eq!(command(&k, "purge", "/v"), 2);
}

#[test]
fn vary_variant_is_revalidated_in_place() {
    let o = Scripted::new();
    o.on("/v", |s, _| {
        let lang = s
            .headers
            .get("accept-language")
            .cloned()
            .unwrap_or_default();
        if s.headers.get("if-none-match") == Some(&format!("\"{lang}\"")) {
            return Reply::ok("").status(304).header("vary", "Accept-Language");
        }
        Reply::ok(&lang)
            .header("etag", &format!("\"{lang}\""))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language")
    });
    let k = kura(&o, "");
    req(&k, "/v", &["Accept-Language: en"]);
    req(&k, "/v", &["Accept-Language: fr"]);
    command(&k, "expire", "/v");
    assert_eq!(req(&k, "/v", &["Accept-Language: fr"]).text(), "fr");
    assert_eq!(
        o.last("/v")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"fr\"")
    );
    assert_eq!(x_cache(&req(&k, "/v", &["Accept-Language: fr"])), "HIT");
    assert_eq!(result(&k, 2), "TCP_REFRESH_HIT");
}

#[test]
fn origin_failure_on_a_copy_that_forbids_stale_keeps_the_copy() {
    let o = validating_origin("max-age=60, must-revalidate");
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    o.set_down(true);
    assert_eq!(get(&k, "/r").status, 502);
    o.set_down(false);
    let r = get(&k, "/r");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "v1"),
        "no remembered error over a copy"
    );
    assert_eq!(
        o.last("/r")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(result(&k, 2), "TCP_REFRESH_HIT");
}

#[test]
fn origin_5xx_on_a_copy_that_forbids_stale_is_passed_and_not_stored() {
    let o = Scripted::new();
    let broken = Arc::new(AtomicBool::new(false));
    let b = broken.clone();
    o.on("/r", move |s, _| {
        if b.load(Ordering::SeqCst) {
            return Reply::ok("broken").status(503);
        }
        if s.headers.contains_key("if-none-match") {
            return Reply::ok("").status(304);
        }
        Reply::ok("good")
            .header("etag", "\"g\"")
            .header("cache-control", "max-age=60, must-revalidate")
    });
    let k = kura(&o, "");
    get(&k, "/r");
    command(&k, "expire", "/r");
    broken.store(true, Ordering::SeqCst);
    assert_eq!(get(&k, "/r").status, 503);
    broken.store(false, Ordering::SeqCst);
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "good"));
    assert_eq!(result(&k, 2), "TCP_REFRESH_HIT");
}

#[test]
fn purge_targets_are_decoded_after_splitting_on_bars() {
    let o = Scripted::new();
    o.fixed("/a b.jpg", "A", &[("cache-control", "max-age=600")]);
    let k = kura(&o, "");
    get(&k, "/a%20b.jpg");
    let (_, v) = api(&k, "/command/purge?url=www.test/a%20b.jpg|/none%7Cx.jpg");
    assert_eq!(v["result"]["Count"], 1, "{v}");
}

// ------------------------------------------------- chapter 6 header rules

fn mp4_origin() -> Scripted {
    let o = Scripted::new();
    o.on("/v.mp4", |s, _| {
        Reply::ok(&format!(
            "ae={}",
            s.headers
                .get("accept-encoding")
                .cloned()
                .unwrap_or_default()
        ))
        .header("cache-control", "max-age=60")
        .header("content-type", "video/mp4")
        .header("x-origin-thing", "1")
    });
    o.on("/gone", |_, _| Reply::ok("gone").status(404));
    o
}

fn kura_headers(o: &Scripted, options: &str, headers_txt: &str) -> Kurad {
    kura_full(
        o.origin.addr,
        options,
        "",
        "",
        &[("headers.txt", headers_txt)],
    )
}

#[test]
fn modify_header_set_and_put_on_responses_by_url() {
    let o = mp4_origin();
    let k = kura_headers(
        &o,
        "<ModifyHeader>ON</ModifyHeader>",
        "/*.mp4, $RES[Access-Control-Allow-Origin: example1.com], set\n/*.mp4, $RES[Access-Control-Allow-Origin: example2.com], put\n",
    );
    let r = curl(
        &format!("http://{}/v.mp4", k.http()),
        &["-H", "Host: www.test"],
    );
    let values: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("access-control-allow-origin"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values, ["example1.com", "example2.com"]);
}

#[test]
fn modify_header_first_only_applies_one_rule() {
    let o = mp4_origin();
    let k = kura_headers(
        &o,
        r#"<ModifyHeader FirstOnly="ON">ON</ModifyHeader>"#,
        "/*.mp4, $RES[x-a: 1], set\n/*.mp4, $RES[x-b: 2], set\n",
    );
    let r = get(&k, "/v.mp4");
    assert_eq!((r.header("x-a"), r.header("x-b")), (Some("1"), None));
}

#[test]
fn modify_header_request_rule_runs_before_the_cache() {
    let o = mp4_origin();
    let k = kura_headers(
        &o,
        "<ModifyHeader>ON</ModifyHeader>",
        "$HEADER[user-agent: *IE6*], $REQ[accept-encoding], unset\n",
    );
    let r = req(
        &k,
        "/v.mp4",
        &[
            "User-Agent: Mozilla/4.0 (MSIE 6.0; IE6)",
            "Accept-Encoding: gzip",
        ],
    );
    assert_eq!(r.text(), "ae=");
    let r = req(&k, "/v.mp4", &["User-Agent: curl", "Accept-Encoding: gzip"]);
    assert_eq!(
        r.text(),
        "ae=gzip",
        "another agent keeps its encoding, and its own key"
    );
}

#[test]
fn modify_header_status_condition() {
    let o = mp4_origin();
    let k = kura_headers(
        &o,
        "<ModifyHeader>ON</ModifyHeader>",
        "$URL[/*], $RES[X-Cache], unset, 2xx\n",
    );
    assert_eq!(get(&k, "/v.mp4").header("x-cache"), None);
    assert_eq!(get(&k, "/gone").header("x-cache"), Some("MISS"));
}

#[test]
fn modify_header_ip_match() {
    let o = mp4_origin();
    let k = kura_headers(
        &o,
        "<ModifyHeader>ON</ModifyHeader>",
        "$IP[127.0.0.0/8], $RES[x-local: yes], set\n$IP[10.0.0.1], $RES[x-ten: yes], set\n",
    );
    let r = get(&k, "/v.mp4");
    assert_eq!(
        (r.header("x-local"), r.header("x-ten")),
        (Some("yes"), None)
    );
}

#[test]
fn modify_header_append_joins_with_a_comma() {
    let o = mp4_origin();
    let k = kura_headers(
        &o,
        "<ModifyHeader>ON</ModifyHeader>",
        "/v.mp4, $RES[cache-control: no-transform], append\n",
    );
    assert_eq!(
        get(&k, "/v.mp4").header("cache-control"),
        Some("max-age=60, no-transform")
    );
}

#[test]
fn modify_header_off_ignores_headers_txt() {
    let o = mp4_origin();
    let k = kura_headers(&o, "", "/*.mp4, $RES[x-a: 1], set\n");
    assert_eq!(get(&k, "/v.mp4").header("x-a"), None);
}

#[test]
fn headers_txt_error_names_the_file_and_line() {
    let rules = "/a, $RES[x: 1], set\n/b, $RES[x], zap\n";
    let (ok, text) = check_with_svc("<ModifyHeader>ON</ModifyHeader>", "headers.txt", rules);
    assert!(!ok);
    assert!(
        text.contains("svc/www.test/headers.txt:2: unknown action \"zap\""),
        "{text}"
    );
}

#[test]
fn refresh_expires_header_sets_expires_and_max_age() {
    let o = mp4_origin();
    let k = kura_full(
        o.origin.addr,
        "<RefreshExpiresHeader>ON</RefreshExpiresHeader>",
        "",
        "",
        &[("expires.txt", "$MIME[video/*], 1 day\n")],
    );
    let r = get(&k, "/v.mp4");
    assert_eq!(r.header("cache-control"), Some("max-age=86400"));
    let expires = httpdate::parse_http_date(r.header("expires").unwrap()).unwrap();
    let ahead = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        ahead > Duration::from_secs(86_000) && ahead <= Duration::from_secs(86_400),
        "{ahead:?}"
    );
    assert_eq!(
        get(&k, "/gone").header("expires"),
        None,
        "errors are left alone"
    );
}

#[test]
fn refresh_expires_header_modification_base_needs_last_modified() {
    let o = Scripted::new();
    o.fixed(
        "/lm.dat",
        "x",
        &[("cache-control", "max-age=60"), LAST_MODIFIED],
    );
    o.fixed("/nolm.dat", "x", &[("cache-control", "max-age=60")]);
    let k = kura_full(
        o.origin.addr,
        "<RefreshExpiresHeader>ON</RefreshExpiresHeader>",
        "",
        "",
        &[("expires.txt", "*.dat, 30 min, modification\n")],
    );
    // 1994 + 30 min is long past: the guide uses the current time, max-age=0.
    assert_eq!(
        get(&k, "/lm.dat").header("cache-control"),
        Some("max-age=0")
    );
    assert_eq!(
        get(&k, "/nolm.dat").header("cache-control"),
        Some("max-age=60")
    );
}

#[test]
fn original_header_off_drops_nonstandard_origin_fields() {
    let o = mp4_origin();
    let k = kura(&o, "<OriginalHeader>OFF</OriginalHeader>");
    let r = get(&k, "/v.mp4");
    assert_eq!(
        (r.header("x-origin-thing"), r.header("content-type")),
        (None, Some("video/mp4"))
    );
}

#[test]
fn original_header_not_written_forwards_every_field() {
    let o = mp4_origin();
    let k = kura(&o, "");
    assert_eq!(get(&k, "/v.mp4").header("x-origin-thing"), Some("1"));
}

// ------------------------------------------------------------ POST caching

fn post_echo() -> Scripted {
    let o = Scripted::new();
    o.on("/search", |s, _| {
        Reply::ok(&format!(
            "{} {}",
            s.method,
            String::from_utf8_lossy(&s.body)
        ))
        .header("cache-control", "max-age=60")
    });
    o
}

fn post(k: &Kurad, path: &str, body: &str) -> CurlResponse {
    curl(
        &format!("http://{}{path}", k.http()),
        &["-H", "Host: www.test", "--data-binary", body],
    )
}

const POST_CACHE: &str = "<BypassPostRequest>OFF</BypassPostRequest><PostRequest>ON</PostRequest>";

#[test]
fn post_is_passed_to_the_origin_by_default() {
    let o = post_echo();
    let k = kura(&o, "");
    post(&k, "/search", "q=1");
    assert_eq!(post(&k, "/search", "q=1").text(), "POST q=1");
    assert_eq!(o.count("/search"), 2);
}

#[test]
fn post_request_caches_by_body() {
    let o = post_echo();
    let k = kura(&o, POST_CACHE);
    assert_eq!(post(&k, "/search", "q=1").text(), "POST q=1");
    let hit = post(&k, "/search", "q=1");
    assert_eq!((hit.text().as_str(), x_cache(&hit)), ("POST q=1", "HIT"));
    assert_eq!(post(&k, "/search", "q=2").text(), "POST q=2");
    assert_eq!(o.count("/search"), 2);
    assert_eq!(
        get(&k, "/search").text(),
        "GET ",
        "a GET of the URL is its own object"
    );
}

#[test]
fn post_request_body_insensitive_shares_one_copy() {
    let o = post_echo();
    let k = kura(
        &o,
        r#"<BypassPostRequest>OFF</BypassPostRequest><PostRequest BodySensitive="OFF">ON</PostRequest>"#,
    );
    post(&k, "/search", "q=1");
    assert_eq!(post(&k, "/search", "q=2").text(), "POST q=1");
}

#[test]
fn postbody_txt_exception_inverts_body_sensitive() {
    let o = post_echo();
    let k = kura_full(
        o.origin.addr,
        POST_CACHE,
        "",
        "",
        &[("postbody.txt", "/search\n")],
    );
    post(&k, "/search", "q=1");
    assert_eq!(
        post(&k, "/search", "q=2").text(),
        "POST q=1",
        "the exception ignores the body"
    );
}

#[test]
fn post_without_content_length_is_411() {
    let o = post_echo();
    let k = kura(&o, POST_CACHE);
    let r = curl(
        &format!("http://{}/search", k.http()),
        &[
            "-H",
            "Host: www.test",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "q=1",
        ],
    );
    assert_eq!(r.status, 411);
    assert_eq!(o.count("/search"), 0);
}

#[test]
fn post_over_max_content_length_is_413() {
    let o = post_echo();
    let k = kura(
        &o,
        r#"<BypassPostRequest>OFF</BypassPostRequest><PostRequest MaxContentLength="4">ON</PostRequest>"#,
    );
    assert_eq!(post(&k, "/search", "q=12345").status, 413);
    assert_eq!(post(&k, "/search", "q=1").status, 200);
}

#[test]
fn post_neither_bypassed_nor_cached_is_405() {
    let o = post_echo();
    let k = kura(&o, "<BypassPostRequest>OFF</BypassPostRequest>");
    let r = post(&k, "/search", "q=1");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn cached_post_is_purged_with_its_url() {
    let o = post_echo();
    let k = kura(&o, POST_CACHE);
    post(&k, "/search", "q=1");
    post(&k, "/search", "q=2");
    assert_eq!(command(&k, "purge", "/search"), 2);
}

#[test]
fn heuristic_freshness_from_last_modified_when_res2xx_is_not_written() {
    let o = Scripted::new();
    o.on("/lm", |_, _| {
        let now = std::time::SystemTime::now();
        Reply::ok("old file")
            .header("date", &httpdate::fmt_http_date(now))
            .header(
                "last-modified",
                &httpdate::fmt_http_date(now - Duration::from_secs(3600)),
            )
    });
    let k = kura(&o, "");
    get(&k, "/lm");
    assert_eq!(
        x_cache(&get(&k, "/lm")),
        "HIT",
        "a tenth of an hour: 6 minutes fresh"
    );
    assert_eq!(o.count("/lm"), 1);
}

#[test]
fn no_freshness_and_no_validator_is_not_fresh_unless_a_rule_says_so() {
    let o = origin_with("/a", "A", &[]);
    let k = kura(&o, "");
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 2);
    let k = kura_full(o.origin.addr, "", "", "", &[("ttl.txt", "/a, 60\n")]);
    get(&k, "/a");
    get(&k, "/a");
    assert_eq!(o.count("/a"), 3, "the ttl.txt rule makes it fresh");
}

#[test]
fn origin_busy_keeps_expired_copies_without_asking_the_origin() {
    let o = validating_origin("max-age=60");
    o.on("/slow", |_, _| {
        Reply::ok("slow").delay(Duration::from_millis(1500))
    });
    let server = server_xml(
        "",
        r#"<Options><TTL><OriginBusy>60</OriginBusy></TTL></Options><OriginOptions><BusySessionCount>1</BusySessionCount></OriginOptions><Log><Access Local="ON">ON</Access></Log>"#,
    );
    let k = Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("www.test", o.origin.addr, "")),
    ));
    get(&k, "/r");
    command(&k, "expire", "/r");
    let url = format!("http://{}/slow", k.http());
    let slow = std::thread::spawn(move || curl(&url, &["-H", "Host: www.test"]).status);
    std::thread::sleep(Duration::from_millis(400));
    let r = get(&k, "/r");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
    assert_eq!(o.count("/r"), 1, "the busy origin was not asked");
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(
        x_cache(&get(&k, "/r")),
        "HIT",
        "kept for <OriginBusy> seconds"
    );
    assert_eq!(o.count("/r"), 1);
}

#[test]
fn origin_not_busy_revalidates_as_usual() {
    let o = validating_origin("max-age=60");
    let k = kura(&o, "<TTL><OriginBusy>60</OriginBusy></TTL>");
    get(&k, "/r");
    command(&k, "expire", "/r");
    get(&k, "/r");
    assert_eq!(o.count("/r"), 2);
}
