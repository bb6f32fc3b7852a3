//! Origin management (guide chapter 7) with real kurad processes and real origins:
//! failover, exclusion and recovery, health checkers, standby addresses, balance
//! modes, domain addresses, `/monitoring/origin`, `/command/resetorigin`, and the
//! request headers kura sets.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// An origin answering 200 with its own name, so a test sees who served.
fn named(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::ok(name).header("cache-control", "no-store"))
}

/// An address nothing listens on (bound, then closed: connections are refused).
fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// kurad with `www.test` in front of `origin_xml` (the inside of `<Origin>`) and
/// `options` inside `<OriginOptions>`.
fn kura(origin_xml: &str, options: &str) -> Kurad {
    kura_full(origin_xml, options, "", &[])
}

/// kurad as [`kura`], with `<Options>` and `svc/www.test/` files (name, text) too.
fn kura_full(origin_xml: &str, origin_options: &str, options: &str, svc: &[(&str, &str)]) -> Kurad {
    // Every test keeps the originerror log, for the tests that read it.
    let server = server_xml(
        "<OriginErrorLog>ON</OriginErrorLog>",
        &format!("<OriginOptions>{origin_options}</OriginOptions><Options>{options}</Options>"),
    );
    let vhost = format!(
        "  <Vhost Name=\"www.test\">\n    <Listen>127.0.0.1:0</Listen>\n    <Origin>{origin_xml}</Origin>\n  </Vhost>\n"
    );
    let dir = conf_dir(&server, &vhosts_xml(&vhost));
    for (name, text) in svc {
        let d = dir.path().join("svc/www.test");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), text).unwrap();
    }
    Kurad::start(dir)
}

fn addresses(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("<Address>{a}</Address>"))
        .collect()
}

fn fetch(k: &Kurad, path: &str) -> CurlResponse {
    curl(
        &format!("http://{}{path}", k.http()),
        &["-H", "Host: www.test"],
    )
}

fn api(k: &Kurad, path: &str) -> (u16, Value) {
    let r = curl(&format!("http://{}{path}", k.manager), &[]);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// `/monitoring/origin?vhost=www.test`'s entry.
fn origin_state(k: &Kurad) -> Value {
    let (status, v) = api(k, "/monitoring/origin?vhost=www.test");
    assert_eq!(status, 200, "{v}");
    v["origin"][0].clone()
}

/// The state `/monitoring/origin` gives `addr` in `list` ("Address" or "Address2").
fn address_state(entry: &Value, list: &str, addr: SocketAddr) -> String {
    entry[list]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o.get(addr.to_string()))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{addr} not in {list}: {entry}"))
        .to_string()
}

/// Waits until `address_state` is `want`.
fn wait_state(k: &Kurad, list: &str, addr: SocketAddr, want: &str) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let entry = origin_state(k);
        if address_state(&entry, list, addr) == want {
            return;
        }
        assert!(Instant::now() < until, "{addr} never {want}: {entry}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_origin_is_excluded_requests_keep_succeeding_and_it_recovers() {
    let a = named("a");
    let b = named("b");
    let a_addr = a.addr;
    let k = kura(
        &addresses(&[a.addr, b.addr]),
        "<Exclusion>2</Exclusion><Recovery Cycle=\"1\" Uri=\"/health\" ResCode=\"200\">2</Recovery>",
    );
    for i in 0..6 {
        assert_eq!(fetch(&k, &format!("/warm/{i}")).status, 200);
    }
    assert_eq!(a.count("/warm/0") + b.count("/warm/0"), 1);
    drop(a);
    let mut served_by_b = 0;
    for i in 0..20 {
        let r = fetch(&k, &format!("/after/{i}"));
        assert_eq!(
            r.status, 200,
            "request {i} failed with a dead origin beside a live one"
        );
        assert_eq!(r.text(), "b");
        served_by_b += 1;
    }
    assert_eq!(served_by_b, 20);
    let entry = origin_state(&k);
    assert_eq!(address_state(&entry, "Address", a_addr), "Inactive");
    assert_eq!(address_state(&entry, "Address", b.addr), "Active");
    assert!(
        entry["InactiveIP"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.get("127.0.0.1").is_some()),
        "{entry}"
    );

    let metrics = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    let up = |addr: SocketAddr| {
        metrics
            .lines()
            .find(|l| l.starts_with("kura_origin_up{") && l.contains(&format!("ip=\"{addr}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(
        (up(a_addr), up(b.addr)),
        (Some("0".into()), Some("1".into())),
        "{metrics}"
    );

    // Back on the same port: two probes of /health bring it back within the cycles.
    let a = Origin::start_at(a_addr, |_| {
        Reply::ok("a").header("cache-control", "no-store")
    });
    wait_state(&k, "Address", a_addr, "Active");
    assert!(
        a.count("/health") >= 2,
        "recovery probes: {:?}",
        a.requests().len()
    );
    let served: Vec<String> = (0..10)
        .map(|i| fetch(&k, &format!("/back/{i}")).text())
        .collect();
    assert!(
        served.iter().any(|s| s == "a"),
        "a gets traffic again: {served:?}"
    );

    // The originerror log tells the story as the guide's example does: errors, the
    // exclusion with the IPs left, the recovery with the IPs in service.
    let log = k.dir.path().join("logs/originerror.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let service: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("#2"))
        .map(|l| {
            let (stamp, rest) = l.split_at("#YYYY.MM.DD HH:MM:SS".len());
            chrono::NaiveDateTime::parse_from_str(&stamp[1..], "%Y.%m.%d %H:%M:%S")
                .unwrap_or_else(|e| panic!("{e}: {l}"));
            rest.to_string()
        })
        .collect();
    assert_eq!(
        service,
        [
            format!(" [www.test] {a_addr} excluded from service"),
            format!(" [www.test] Origin server list: {}", b.addr),
            format!(" [www.test] {a_addr} recovered back in service"),
            format!(" [www.test] Origin server list: {a_addr} {}", b.addr),
        ],
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(" [ERROR] 127.0.0.1 127.0.0.1 GET /after/")),
        "{text}"
    );
}

#[test]
fn round_robin_spreads_requests_evenly_and_hash_keeps_an_url_on_one_origin() {
    let a = named("a");
    let b = named("b");
    let k = kura(&addresses(&[a.addr, b.addr]), "");
    for i in 0..20 {
        assert_eq!(fetch(&k, &format!("/rr/{i}")).status, 200);
    }
    let count = |o: &Origin| o.requests().len();
    assert_eq!((count(&a), count(&b)), (10, 10));

    let h = kura(
        &addresses(&[a.addr, b.addr]),
        "<BalanceMode>Hash</BalanceMode>",
    );
    let first: Vec<String> = (0..30)
        .map(|i| fetch(&h, &format!("/h/{i}")).text())
        .collect();
    let again: Vec<String> = (0..30)
        .map(|i| fetch(&h, &format!("/h/{i}")).text())
        .collect();
    assert_eq!(first, again, "an URL moved between origins");
    let on_a = first.iter().filter(|s| *s == "a").count();
    assert!((5..=25).contains(&on_a), "hash spread {on_a} of 30 on a");
}

#[test]
fn session_mode_reuses_the_origin_with_an_idle_connection() {
    let a = named("a");
    let b = named("b");
    let k = kura(
        &addresses(&[a.addr, b.addr]),
        "<BalanceMode>Session</BalanceMode>",
    );
    let served: Vec<String> = (0..20)
        .map(|i| fetch(&k, &format!("/s/{i}")).text())
        .collect();
    let first = served[0].clone();
    assert!(
        served.iter().filter(|s| **s == first).count() >= 19,
        "one after another, requests stay on the kept-alive origin: {served:?}"
    );
}

#[test]
fn a_standby_address_stands_in_while_the_address_is_excluded() {
    let standby = named("standby");
    let dead = dead_addr();
    let k = kura(
        &format!(
            "<Address>{dead}</Address><Address2>{}</Address2>",
            standby.addr
        ),
        "<Exclusion>1</Exclusion><Recovery Cycle=\"1\">1</Recovery>",
    );
    let entry = origin_state(&k);
    assert_eq!(address_state(&entry, "Address2", standby.addr), "Inactive");
    let r = fetch(&k, "/x");
    assert_eq!(
        r.status, 200,
        "the failure that excludes the address fails over"
    );
    assert_eq!(r.text(), "standby");
    let entry = origin_state(&k);
    assert_eq!(address_state(&entry, "Address", dead), "Inactive");
    assert_eq!(address_state(&entry, "Address2", standby.addr), "Active");

    let back = Origin::start_at(dead, |_| {
        Reply::ok("primary").header("cache-control", "no-store")
    });
    wait_state(&k, "Address", dead, "Active");
    assert_eq!(
        address_state(&origin_state(&k), "Address2", standby.addr),
        "Inactive"
    );
    assert_eq!(fetch(&k, "/y").text(), "primary");
    drop(back);
}

#[test]
fn a_health_checker_excludes_on_a_bad_status_and_recovers_on_its_own_count() {
    let status = Arc::new(AtomicU16::new(500));
    let s = status.clone();
    let sick = Origin::start(move |seen| {
        if seen.path == "/alive.html" {
            Reply::ok("").status(s.load(Ordering::Relaxed))
        } else {
            Reply::ok("sick").header("cache-control", "no-store")
        }
    });
    let well = named("well");
    let k = kura(
        &format!(
            "{}<HealthChecker ResCode=\"200, 204\" Timeout=\"2\" Cycle=\"1\" Exclusion=\"2\" Recovery=\"2\">/alive.html</HealthChecker>",
            addresses(&[sick.addr, well.addr])
        ),
        "",
    );
    wait_state(&k, "Address", sick.addr, "Inactive");
    assert_eq!(
        address_state(&origin_state(&k), "Address", well.addr),
        "Active"
    );
    for i in 0..6 {
        assert_eq!(fetch(&k, &format!("/p/{i}")).text(), "well");
    }
    status.store(204, Ordering::Relaxed);
    wait_state(&k, "Address", sick.addr, "Active");
    assert!(
        well.count("/alive.html") >= 2,
        "the healthy origin is checked too"
    );
}

#[test]
fn an_idempotent_request_moves_on_after_a_receive_timeout_and_a_post_does_not() {
    let slow = Origin::start(|_| {
        Reply::ok("slow")
            .header("cache-control", "no-store")
            .delay(Duration::from_secs(3))
    });
    let fast = named("fast");
    let k = kura_full(
        &addresses(&[slow.addr, fast.addr]),
        "<ReceiveTimeout>1</ReceiveTimeout><BypassReceiveTimeout>1</BypassReceiveTimeout>\
         <Exclusion>100</Exclusion>",
        "<BypassPostRequest OriginAffinity=\"OFF\">ON</BypassPostRequest>",
        &[],
    );
    for i in 0..4 {
        let started = Instant::now();
        let r = fetch(&k, &format!("/t/{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "fast"));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    let posts: Vec<u16> = (0..4)
        .map(|i| {
            curl(
                &format!("http://{}/post/{i}", k.http()),
                &["-H", "Host: www.test", "--data-binary", "x"],
            )
            .status
        })
        .collect();
    assert!(
        posts.contains(&504),
        "a POST that timed out is not sent again: {posts:?}"
    );
    assert!(posts.contains(&200));
}

#[test]
fn with_every_origin_excluded_requests_fail_fast_until_resetorigin() {
    let dead = dead_addr();
    let k = kura(
        &format!("<Address>{dead}</Address>"),
        "<Exclusion>1</Exclusion><Recovery>0</Recovery>",
    );
    assert_eq!(fetch(&k, "/a").status, 502);
    let entry = origin_state(&k);
    assert_eq!(address_state(&entry, "Address", dead), "Inactive");
    let o = Origin::start_at(dead, |_| {
        Reply::ok("up").header("cache-control", "no-store")
    });
    let r = fetch(&k, "/b");
    assert_eq!(r.status, 502, "Recovery 0: an excluded origin is not asked");
    assert_eq!(o.requests().len(), 0);

    let (status, v) = api(&k, "/command/resetorigin?vhost=www.test");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], serde_json::json!(["www.test"]));
    assert_eq!(address_state(&origin_state(&k), "Address", dead), "Active");
    assert_eq!(fetch(&k, "/c").text(), "up");
    assert_eq!(api(&k, "/command/resetorigin?vhost=nope").0, 404);
}

#[test]
fn exclusion_survives_a_reload() {
    let dead = dead_addr();
    let live = named("live");
    let k = kura(
        &addresses(&[dead, live.addr]),
        "<Exclusion>1</Exclusion><Recovery>0</Recovery>",
    );
    assert_eq!(fetch(&k, "/a").status, 200);
    assert_eq!(fetch(&k, "/b").status, 200);
    wait_state(&k, "Address", dead, "Inactive");
    let (status, v) = api(&k, "/conf/reload");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        address_state(&origin_state(&k), "Address", dead),
        "Inactive"
    );
}

#[test]
fn a_domain_address_is_resolved_into_its_ip_table() {
    let o = named("dns");
    let k = kura(
        &format!("<Address>localhost:{}</Address>", o.addr.port()),
        "<DnsMaxTTL>30</DnsMaxTTL><Exclusion>1</Exclusion><Recovery>0</Recovery>",
    );
    let r = fetch(&k, "/d");
    assert_eq!((r.status, r.text().as_str()), (200, "dns"));
    let seen = o.requests();
    assert_eq!(
        seen[0].headers.get("host").map(String::as_str),
        Some(format!("localhost:{}", o.addr.port()).as_str()),
        "a domain address sends its own name"
    );
    let entry = origin_state(&k);
    let active = entry["ActiveIP"].as_array().unwrap();
    let ttl = active
        .iter()
        .find_map(|ip| ip.get("127.0.0.1"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("127.0.0.1 resolved and active: {entry}"));
    assert!((1..=30).contains(&ttl), "TTL left {ttl}");
    let (status, list) = api(&k, "/monitoring/dnslist");
    assert_eq!(status, 200);
    assert_eq!(list["dnslist"][0]["Domain"], "localhost");
}

#[test]
fn host_user_agent_and_xff_follow_origin_options() {
    let o = Origin::start(|_| Reply::ok("h").header("cache-control", "no-store"));
    let k = kura(
        &addresses(&[o.addr]),
        "<Host>origin.example:8080</Host><UserAgent>kura-edge</UserAgent><XFFClientIPOnly>ON</XFFClientIPOnly>",
    );
    curl(
        &format!("http://{}/hdr", k.http()),
        &[
            "-H",
            "Host: www.test",
            "-H",
            "X-Forwarded-For: 203.0.113.7, 10.1.1.1",
        ],
    );
    let seen = &o.requests()[0];
    assert_eq!(seen.headers["host"], "origin.example:8080");
    assert_eq!(seen.headers["user-agent"], "kura-edge");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7");

    let pass = Origin::start(|_| Reply::ok("h").header("cache-control", "no-store"));
    let k = kura(&addresses(&[pass.addr]), "<Host>*</Host>");
    curl(
        &format!("http://{}/hdr", k.http()),
        &[
            "-H",
            "Host: www.test",
            "-H",
            "User-Agent: browser/1",
            "-H",
            "X-Forwarded-For: 203.0.113.7",
        ],
    );
    let seen = &pass.requests()[0];
    assert_eq!(seen.headers["host"], "www.test");
    assert_eq!(seen.headers["user-agent"], "browser/1");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
}

#[test]
fn bad_origin_options_are_config_errors_naming_the_element() {
    let server = server_xml(
        "",
        "<OriginOptions><BalanceMode>Random</BalanceMode><Recovery ResCode=\"2xx\">5</Recovery></OriginOptions>",
    );
    let vhost = vhost("www.test", "127.0.0.1:1".parse().unwrap(), "");
    let dir = conf_dir(&server, &vhosts_xml(&vhost));
    let (ok, err) = kurad_check(dir.path());
    assert!(!ok);
    assert!(
        err.contains("BalanceMode") && err.contains("Random"),
        "{err}"
    );
    assert!(err.contains("ResCode") && err.contains("2xx"), "{err}");
    assert!(err.contains("server.xml:"), "{err}");
}

/// An origin whose answers may be cached for a minute.
fn cacheable(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::ok(name).header("cache-control", "max-age=60"))
}

fn fetch_with(k: &Kurad, path: &str, headers: &[&str]) -> CurlResponse {
    let mut args = vec!["-H", "Host: www.test"];
    for h in headers {
        args.extend(["-H", h]);
    }
    curl(&format!("http://{}{path}", k.http()), &args)
}

#[test]
fn bypass_txt_lists_exceptions_to_the_get_default_in_both_directions() {
    let o = cacheable("o");
    let rules = "# chapter 8\n/dyn/*\n$HEADER[cookie: *session=*], bypass   // logged-in users\n/dyn/static.css, cache\n";
    let k = kura_full(&addresses(&[o.addr]), "", "", &[("bypass.txt", rules)]);
    for _ in 0..3 {
        assert_eq!(fetch(&k, "/page").status, 200);
        assert_eq!(fetch(&k, "/dyn/list").status, 200);
        assert_eq!(
            fetch_with(&k, "/member", &["Cookie: a=1; session=xyz"]).status,
            200
        );
    }
    assert_eq!(o.count("/page"), 1, "GET is cached by default");
    assert_eq!(
        o.count("/dyn/list"),
        3,
        "a listed URL is the exception: bypassed"
    );
    assert_eq!(o.count("/member"), 3, "an explicit bypass line");

    // BypassGetRequest ON: the same unmarked line now means "cache".
    let o = cacheable("o");
    let k = kura_full(
        &addresses(&[o.addr]),
        "",
        "<BypassGetRequest>ON</BypassGetRequest>",
        &[(
            "bypass.txt",
            "/dyn/*\n!HEADER[referer] & !HEADER[user-agent], bypass\n",
        )],
    );
    for _ in 0..3 {
        fetch(&k, "/page");
        fetch(&k, "/dyn/list");
        fetch_with(&k, "/dyn/anon", &["User-Agent:"]);
    }
    assert_eq!(o.count("/page"), 3, "GET bypassed by default");
    assert_eq!(o.count("/dyn/list"), 1, "the exception is cached");
    assert_eq!(
        o.count("/dyn/anon"),
        3,
        "no Referer and no User-Agent: explicit bypass wins"
    );
}

#[test]
fn no_cache_requests_are_bypassed_when_configured_and_leave_the_copy_alone() {
    let o = cacheable("o");
    let k = kura_full(
        &addresses(&[o.addr]),
        "",
        "<BypassNoCacheRequest>ON</BypassNoCacheRequest>",
        &[],
    );
    assert_eq!(fetch(&k, "/a").header("x-cache"), Some("MISS"));
    for h in [
        "Cache-Control: no-cache",
        "Cache-Control: max-age=0",
        "Pragma: no-cache",
    ] {
        let r = fetch_with(&k, "/a", &[h]);
        assert_eq!(r.header("cache-status"), Some("kura; fwd=bypass"), "{h}");
    }
    assert_eq!(fetch(&k, "/a").header("x-cache"), Some("HIT"));
    assert_eq!(o.count("/a"), 4);
}

#[test]
fn origin_affinity_keeps_a_clients_bypassed_requests_on_one_origin() {
    let a = named("a");
    let b = named("b");
    let sticky = kura_full(
        &addresses(&[a.addr, b.addr]),
        "",
        "<BypassGetRequest OriginAffinity=\"ON\">ON</BypassGetRequest>",
        &[],
    );
    let served: Vec<String> = (0..10)
        .map(|i| fetch(&sticky, &format!("/p/{i}")).text())
        .collect();
    assert!(served.iter().all(|s| *s == served[0]), "{served:?}");

    let spread = kura_full(
        &addresses(&[a.addr, b.addr]),
        "",
        "<BypassGetRequest OriginAffinity=\"OFF\">ON</BypassGetRequest>",
        &[],
    );
    let served: Vec<String> = (0..10)
        .map(|i| fetch(&spread, &format!("/q/{i}")).text())
        .collect();
    assert_eq!(served.iter().filter(|s| *s == "a").count(), 5, "{served:?}");
}

#[test]
fn bypassed_requests_have_their_own_timeout_and_header_rules() {
    let slow = Origin::start(|_| {
        Reply::ok("slow")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(1500))
    });
    let k = kura_full(
        &addresses(&[slow.addr]),
        "<ReceiveTimeout>5</ReceiveTimeout><BypassReceiveTimeout>1</BypassReceiveTimeout>\
         <UserAgent Bypass=\"OFF\">kura-edge</UserAgent>",
        "",
        &[("bypass.txt", "/dyn/*, bypass\n")],
    );
    assert_eq!(
        fetch_with(&k, "/static", &["User-Agent: browser/1"]).status,
        200
    );
    assert_eq!(
        fetch_with(&k, "/dyn/x", &["User-Agent: browser/1"]).status,
        504
    );
    let seen = slow.requests();
    let ua =
        |path: &str| seen.iter().find(|s| s.path == path).unwrap().headers["user-agent"].clone();
    assert_eq!(ua("/static"), "kura-edge");
    assert_eq!(
        ua("/dyn/x"),
        "browser/1",
        "UserAgent Bypass=OFF: the client's goes on"
    );
}

#[test]
fn a_bad_bypass_line_names_the_file_and_line() {
    let server = server_xml("", "");
    let vhost = vhost("www.test", "127.0.0.1:1".parse().unwrap(), "");
    let dir = conf_dir(&server, &vhosts_xml(&vhost));
    let svc = dir.path().join("svc/www.test");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("bypass.txt"), "/ok\n/a, skip\n").unwrap();
    let (ok, err) = kurad_check(dir.path());
    assert!(!ok);
    assert!(
        err.contains("svc/www.test/bypass.txt:2") && err.contains("skip"),
        "{err}"
    );
}

#[test]
fn bypassed_requests_are_counted_apart_in_json_and_xml() {
    let o = cacheable("o");
    let k = kura_full(
        &addresses(&[o.addr]),
        "",
        "",
        &[("bypass.txt", "/dyn/*, bypass\n")],
    );
    for i in 0..3 {
        fetch(&k, &format!("/dyn/{i}"));
    }
    fetch(&k, "/static");
    curl(
        &format!("http://{}/form", k.http()),
        &["-H", "Host: www.test", "--data-binary", "x"],
    );
    // The 5-minute window holds completed minutes: wait for the one with the requests.
    let until = Instant::now() + Duration::from_secs(75);
    let vhost = loop {
        let (_, v) = api(&k, "/monitoring/average?type=JSON");
        let vhost = v["Host"]["VirtualHost"][0].clone();
        if vhost["ClientHttpReqBypassSum"]
            .as_u64()
            .is_some_and(|n| n > 0)
        {
            break vhost;
        }
        assert!(Instant::now() < until, "the minute never completed: {v:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        vhost["ClientHttpReqBypassSum"], 4,
        "three listed GETs and a POST"
    );
    assert_eq!(vhost["ClientHttpReqDeniedSum"], 0);
    let xml = curl(
        &format!("http://{}/monitoring/average?type=XML", k.manager),
        &[],
    )
    .text();
    assert!(
        xml.contains("<ClientHttpReqBypass Sum=\"4\">"),
        "{}",
        &xml[..xml.len().min(3000)]
    );
}

/// A TCP service answering each line with `echo:<line>`; a line `bye` makes it
/// close the connection (the origin closing first).
fn echo_service() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                for line in
                    std::io::BufRead::lines(std::io::BufReader::new(s)).map_while(Result::ok)
                {
                    if line == "bye" {
                        return;
                    }
                    let _ = std::io::Write::write_all(&mut w, format!("echo:{line}\n").as_bytes());
                }
            });
        }
    });
    addr
}

fn snmp_get(k: &Kurad, oid: &str) -> String {
    let out = std::process::Command::new("snmpget")
        .args(["-v2c", "-c", "public", "-Oqv", &k.snmp().to_string(), oid])
        .output()
        .expect("snmpget (apt-get install snmp)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn port_bypass_relays_tcp_to_the_origin_and_is_counted() {
    use std::io::{BufRead, BufReader, Read, Write};
    let http = named("http");
    let echo = echo_service();
    let dead = dead_addr();
    // Two free ports (two vhosts cannot both take port 0: one wildcard address).
    let (live_port, dead_port) = (listen_port(), listen_port());
    let server = server_xml("", "").replace(
        "<Manager Port=\"0\" Role=\"Admin\" />",
        "<Manager Port=\"0\" Role=\"Admin\" /><SNMP Port=\"0\" Status=\"Active\" />",
    );
    let vhosts = vhosts_xml(&format!(
        "{}{}",
        vhost(
            "www.test",
            http.addr,
            &format!(
                "<PortBypass Dest=\"{}\">{live_port}</PortBypass>",
                echo.port()
            )
        ),
        vhost(
            "dead.test",
            http.addr,
            &format!(
                "<PortBypass Dest=\"{}\">{dead_port}</PortBypass>",
                dead.port()
            )
        ),
    ));
    let k = Kurad::start(conf_dir(&server, &vhosts));
    assert_eq!(k.service("portbypass").len(), 2, "{}", k.log());
    let live = SocketAddr::from(([127, 0, 0, 1], live_port));
    let dead_relay = SocketAddr::from(([127, 0, 0, 1], dead_port));
    let talk = |addr: SocketAddr, line: &str| -> (std::net::TcpStream, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut got = String::new();
        let _ = BufReader::new(s.try_clone().unwrap()).read_line(&mut got);
        (s, got)
    };
    assert_eq!(talk(live, "probe").1, "echo:probe\n", "{}", k.log());
    // Two relays open at once, both answered; the sessions gauge sees them.
    let (a, got_a) = talk(live, "one");
    let (b, got_b) = talk(live, "two");
    assert_eq!(
        (got_a.as_str(), got_b.as_str()),
        ("echo:one\n", "echo:two\n")
    );
    let until = Instant::now() + Duration::from_secs(5);
    while snmp_get(&k, ".1.3.6.1.4.1.40001.1.4.3.1.11.11.11.3.0.1") != "2" {
        assert!(Instant::now() < until, "portbypass.sessionAverage never 2");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(a);
    // The origin closes first: the client sees the end of the stream.
    let mut b = b;
    b.write_all(b"bye\n").unwrap();
    let mut rest = Vec::new();
    assert_eq!(b.read_to_end(&mut rest).unwrap(), 0);
    // An origin port nothing listens on: the client's connection is closed at once.
    let (mut d, got) = talk(dead_relay, "anyone");
    assert_eq!(got, "");
    assert_eq!(d.read(&mut [0u8; 8]).unwrap_or(0), 0);

    // Over the completed minute: closes by side and the failed connect.
    let client_closed = ".1.3.6.1.4.1.40001.1.4.3.1.11.11.11.5.1";
    let origin_closed = ".1.3.6.1.4.1.40001.1.4.3.1.11.10.11.6.1";
    let until = Instant::now() + Duration::from_secs(75);
    let vhost_of = |name: &str| -> u32 {
        let (_, v) = api(&k, "/monitoring/vhostslist");
        let list: Vec<String> = serde_json::from_value(v["result"].clone()).unwrap_or_default();
        list.iter()
            .position(|n| n == name)
            .map_or(1, |i| i as u32 + 1)
    };
    let (www, dead_ix) = (vhost_of("www.test"), vhost_of("dead.test"));
    loop {
        let closed_by_client = snmp_get(&k, &format!("{client_closed}.{www}"));
        if closed_by_client != "0" && !closed_by_client.is_empty() {
            assert_eq!(closed_by_client, "2", "the probe and the first relay");
            assert_eq!(snmp_get(&k, &format!("{origin_closed}.{www}")), "1");
            let failed = snmp_get(
                &k,
                &format!(".1.3.6.1.4.1.40001.1.4.3.1.11.10.11.7.1.{dead_ix}"),
            );
            assert_eq!(failed, "1");
            break;
        }
        assert!(Instant::now() < until, "the minute never completed");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_port_bypassed_twice_is_a_config_error() {
    let vhosts = vhosts_xml(&format!(
        "{}{}",
        vhost(
            "a.test",
            "127.0.0.1:1".parse().unwrap(),
            "<PortBypass>1935</PortBypass>"
        ),
        vhost(
            "b.test",
            "127.0.0.1:1".parse().unwrap(),
            "<PortBypass>1935</PortBypass>"
        ),
    ));
    let dir = conf_dir(&server_xml("", ""), &vhosts);
    let (ok, err) = kurad_check(dir.path());
    assert!(!ok);
    assert!(
        err.contains("vhosts.xml:") && err.contains("1935 is already bypassed by vhost a.test"),
        "{err}"
    );
}

#[test]
fn orgreq_rules_change_the_origin_request_last() {
    let o = Origin::start(|_| {
        Reply::ok("v")
            .header("cache-control", "max-age=1")
            .header("last-modified", "Sat, 29 Oct 1994 19:43:31 GMT")
            .header("etag", "\"v1\"")
    });
    let rules = "$URL[/*.mp4], $ORGREQ[x-media-type: video/mp4], set\n\
                 $IP[127.0.0.1], $ORGREQ[x-probe: yes], put\n\
                 *, $ORGREQ[If-Modified-Since], unset\n\
                 *, $ORGREQ[If-None-Match], unset\n\
                 *, $REQ[x-client-rule: on], set\n";
    let k = kura_full(
        &addresses(&[o.addr]),
        "<ModifyHeader>ON</ModifyHeader>",
        "",
        &[("headers.txt", rules)],
    );
    assert_eq!(fetch(&k, "/clip.mp4").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fetch(&k, "/clip.mp4").status, 200);
    let seen = o.requests();
    assert_eq!(seen.len(), 2, "the expired copy is fetched again");
    for s in &seen {
        assert_eq!(
            s.headers.get("x-media-type").map(String::as_str),
            Some("video/mp4")
        );
        assert_eq!(s.headers.get("x-probe").map(String::as_str), Some("yes"));
        assert!(
            !s.headers.contains_key("if-modified-since")
                && !s.headers.contains_key("if-none-match"),
            "conditionals unset: {:?}",
            s.headers
        );
        assert!(
            !s.headers.contains_key("x-client-rule"),
            "$REQ rules belong to <Options><ModifyHeader>, which is OFF"
        );
    }
}

#[test]
fn redirection_trace_follows_one_redirect_and_caches_the_target() {
    let other = Origin::start(|s| {
        Reply::ok(&format!("other {}", s.path)).header("cache-control", "max-age=60")
    });
    let away = format!("http://127.0.0.1:{}/elsewhere", other.addr.port());
    let o = Origin::start(move |s| match s.path.as_str() {
        "/moved" => Reply::ok("").status(302).header("location", "/real"),
        "/twice" => Reply::ok("").status(301).header("location", "/moved"),
        "/away" => Reply::ok("").status(307).header("location", &away),
        p => Reply::ok(&format!("real {p}")).header("cache-control", "max-age=60"),
    });
    let k = kura(
        &addresses(&[o.addr]),
        "<RedirectionTrace>ON</RedirectionTrace>",
    );
    for _ in 0..2 {
        let r = fetch(&k, "/moved");
        assert_eq!((r.status, r.text().as_str()), (200, "real /real"));
    }
    assert_eq!(fetch(&k, "/moved").header("x-cache"), Some("HIT"));
    assert_eq!((o.count("/moved"), o.count("/real")), (1, 1));
    let r = fetch(&k, "/away");
    assert_eq!((r.status, r.text().as_str()), (200, "other /elsewhere"));
    assert_eq!(
        other.requests()[0].headers["host"],
        format!("127.0.0.1:{}", other.addr.port())
    );
    assert_eq!(
        fetch(&k, "/twice").status,
        302,
        "only one redirect is followed"
    );

    let plain = kura(&addresses(&[o.addr]), "");
    let r = fetch(&plain, "/moved");
    assert_eq!((r.status, r.header("location")), (302, Some("/real")));
}

#[test]
fn private_bypass_gives_each_client_connection_its_own_origin_connection() {
    let peers_of = |private: &str| -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let o = named("o");
        let k = kura_full(
            &addresses(&[o.addr]),
            "",
            &format!("<BypassGetRequest Private=\"{private}\">ON</BypassGetRequest>"),
            &[],
        );
        let (mut a, mut b) = (connect(k.http()), connect(k.http()));
        for i in 0..3 {
            assert!(exchange(&mut a, "www.test", &format!("/a/{i}"))
                .0
                .contains(" 200 "));
            assert!(exchange(&mut b, "www.test", &format!("/b/{i}"))
                .0
                .contains(" 200 "));
        }
        let seen = o.requests();
        let by = |prefix: &str| -> Vec<SocketAddr> {
            seen.iter()
                .filter(|s| s.path.starts_with(prefix))
                .map(|s| s.peer)
                .collect()
        };
        (by("/a/"), by("/b/"))
    };
    let (a, b) = peers_of("ON");
    assert!(
        a.iter().all(|p| *p == a[0]) && b.iter().all(|p| *p == b[0]),
        "{a:?} {b:?}"
    );
    assert_ne!(a[0], b[0], "two clients, two origin connections");
    // Without Private the kept-alive pool serves both clients on one origin connection.
    let (a, b) = peers_of("OFF");
    assert!(b.contains(&a[0]), "{a:?} {b:?}");
}

/// An address whose accept queue is full: further connections are never answered
/// (their SYNs are dropped), as with a black-holed origin.
fn black_hole() -> (SocketAddr, Vec<std::net::TcpStream>, std::os::fd::OwnedFd) {
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let addr: SockaddrIn =
        nix::sys::socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    let addr = SocketAddr::from((addr.ip(), addr.port()));
    // Fill the queue; connects beyond it hang.
    let mut held = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    (addr, held, fd)
}

#[test]
fn a_black_holed_origin_times_out_on_connect_and_the_next_one_answers() {
    let (hole, _held, _fd) = black_hole();
    let live = named("live");
    let k = kura(
        &addresses(&[hole, live.addr]),
        "<ConnectTimeout>1</ConnectTimeout><Exclusion>1</Exclusion><Recovery>0</Recovery>",
    );
    let started = Instant::now();
    let r = fetch(&k, "/x");
    let took = started.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "live"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "one connect timeout of 1 s before the live origin answered: {took:?}"
    );
    assert_eq!(
        address_state(&origin_state(&k), "Address", hole),
        "Inactive"
    );
    let started = Instant::now();
    assert_eq!(fetch(&k, "/y").text(), "live");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the excluded origin is not tried"
    );

    // Alone, the black hole is a 502 after ConnectTimeout, logged as Connect-Timeout.
    let (hole, _held2, _fd2) = black_hole();
    let server = server_xml(
        "<OriginErrorLog>ON</OriginErrorLog>",
        "<OriginOptions><ConnectTimeout>1</ConnectTimeout></OriginOptions>",
    );
    let k = Kurad::start(conf_dir(&server, &vhosts_xml(&vhost("www.test", hole, ""))));
    assert_eq!(fetch(&k, "/z").status, 502);
    let path = k.dir.path().join("logs/originerror.log");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        if log.contains("Connect-Timeout") {
            break;
        }
        assert!(Instant::now() < until, "originerror.log: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn full_range_init_fetches_the_original_with_a_range_from_zero() {
    // A module that rewrites plain GETs, as the guide's mod_h264_streaming example.
    let o = Origin::start(|s| match s.headers.get("range").map(String::as_str) {
        Some("bytes=0-") => Reply::ok("original")
            .status(206)
            .header("content-range", "bytes 0-7/8")
            .header("cache-control", "max-age=60"),
        _ => Reply::ok("rewritten by a module").header("cache-control", "max-age=60"),
    });
    let k = kura(&addresses(&[o.addr]), "<FullRangeInit>ON</FullRangeInit>");
    let r = fetch(&k, "/movie.mp4");
    assert_eq!((r.status, r.text().as_str()), (200, "original"));
    assert_eq!(r.header("content-range"), None);
    let r = fetch(&k, "/movie.mp4");
    assert_eq!(
        (r.text().as_str(), r.header("x-cache")),
        ("original", Some("HIT"))
    );
    let r = fetch_with(&k, "/movie.mp4", &["Range: bytes=2-4"]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (206, "igi"),
        "ranges are cut from the copy"
    );
    assert_eq!(o.requests().len(), 1);

    let plain = kura(&addresses(&[o.addr]), "");
    assert_eq!(fetch(&plain, "/movie.mp4").text(), "rewritten by a module");
}

#[test]
fn the_origin_log_has_a_line_per_origin_transaction() {
    let o = cacheable("o");
    let server = server_xml("", "<Log><Origin Local=\"ON\">ON</Origin></Log>");
    let vhost = vhost("www.test", o.addr, "");
    let k = Kurad::start(conf_dir(&server, &vhosts_xml(&vhost)));
    assert_eq!(fetch(&k, "/a.css").status, 200);
    assert_eq!(fetch(&k, "/a.css").header("x-cache"), Some("HIT"));
    curl(
        &format!("http://{}/form", k.http()),
        &["-H", "Host: www.test", "--data-binary", "x=1"],
    );
    let path = k.dir.path().join("logs/www.test/origin.log");
    let until = Instant::now() + Duration::from_secs(10);
    let lines: Vec<String> = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= 3 {
            break lines;
        }
        assert!(Instant::now() < until, "origin.log: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        lines[0],
        format!("#Fields: {}", kura::log::lines::ORIGIN_FIELDS)
    );
    let names: Vec<&str> = kura::log::lines::ORIGIN_FIELDS.split(' ').collect();
    let rows: Vec<std::collections::HashMap<&str, &str>> = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), names.len(), "{l}");
            names.iter().copied().zip(f).collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "the hit did not ask the origin: {lines:?}");
    let (get, post) = (&rows[0], &rows[1]);
    assert_eq!(
        (
            get["cs-method"],
            get["cs-uri"],
            get["sc-status"],
            get["cs-reqinfo"]
        ),
        ("GET", "/a.css", "200", "-")
    );
    assert_eq!((post["cs-method"], post["cs-reqinfo"]), ("POST", "Bypass"));
    for r in &rows {
        assert_eq!(r["s-ip"], "127.0.0.1");
        assert_eq!(r["s-port"], o.addr.port().to_string());
        assert_eq!(
            r["s-domain"],
            format!("www.test:{}", o.addr.port()),
            "an IP address sends the vhost's name (with the port written)"
        );
        assert_eq!(r["sc-cachecontrol"], "max-age=60");
        assert_eq!(r["sc-bytes"], "1");
        assert_eq!(r["session-type"], "cache");
        assert!(r["cs-requestsize"].parse::<u64>().unwrap() > 0);
        assert!(r["session-id"].parse::<u64>().unwrap() > 0);
    }
    // The bypass leg has its own keep-alive pool: two connections, one transaction each.
    assert_ne!(get["cs-sid"], post["cs-sid"]);
    assert_eq!((get["cs-tcount"], post["cs-tcount"]), ("1", "1"));
}

#[test]
fn health_checks_are_written_to_the_origin_log_when_their_log_is_on() {
    let o = cacheable("o");
    let server = server_xml("", "<Log><Origin Local=\"ON\">ON</Origin></Log>");
    let vhost = format!(
        "  <Vhost Name=\"www.test\"><Listen>127.0.0.1:0</Listen><Origin><Address>{}</Address>\
         <HealthChecker Cycle=\"1\" Log=\"ON\">/alive</HealthChecker>\
         <HealthChecker Cycle=\"1\" Log=\"OFF\">/quiet</HealthChecker></Origin></Vhost>\n",
        o.addr
    );
    let k = Kurad::start(conf_dir(&server, &vhosts_xml(&vhost)));
    let path = k.dir.path().join("logs/www.test/origin.log");
    let until = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(" /alive ")) {
            break l.to_string();
        }
        assert!(Instant::now() < until, "origin.log: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let f: Vec<&str> = line.split(' ').collect();
    let names: Vec<&str> = kura::log::lines::ORIGIN_FIELDS.split(' ').collect();
    let field = |n: &str| f[names.iter().position(|x| *x == n).unwrap()];
    assert_eq!(
        (field("cs-method"), field("sc-status"), field("cs-reqinfo")),
        ("GET", "200", "HealthChecker")
    );
    assert_eq!(
        field("sc-bytes"),
        "1",
        "a health check reads the whole answer"
    );
    assert!(o.count("/quiet") >= 1, "the quiet checker runs");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(" /quiet "),
        "Log=\"OFF\" keeps it out: {text}"
    );
}

/// An origin written by hand, for answers no well-behaved server gives: each
/// connection reads one request head, gets `answer(path)` as raw bytes, and is closed.
fn raw_origin(answer: fn(&str) -> Vec<u8>) -> SocketAddr {
    use std::io::{BufRead, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream);
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() <= 2 {
                        break;
                    }
                }
                let path = first.split(' ').nth(1).unwrap_or("/").to_string();
                let _ = reader.get_mut().write_all(&answer(&path));
            });
        }
    });
    addr
}

/// `<OriginErrorLog Warning="ON">` writes the guide's HTTP communication warnings: a
/// 206 to a request without Range, a 200 to the `bytes=0-` of `<FullRangeInit>`, a
/// body cut short by the origin. With Warning OFF (the default) none of them.
#[test]
fn malformed_origin_exchanges_are_originerror_warnings() {
    let origin = raw_origin(|path| {
        let head = |status: &str, extra: &str, len: usize| {
            format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nCache-Control: max-age=60\r\nConnection: close\r\n{extra}\r\n")
        };
        let mut out = match path {
            "/partial" => head(
                "206 Partial Content",
                "Content-Range: bytes 0-9/100\r\n",
                10,
            ),
            "/short" => head("200 OK", "", 1000),
            _ => head("200 OK", "", 10),
        }
        .into_bytes();
        out.extend(std::iter::repeat_n(
            b'x',
            if path == "/short" { 100 } else { 10 },
        ));
        out
    });
    for warning in ["ON", "OFF"] {
        let vhosts = vhost("a.test", origin, "")
            + &vhost(
                "b.test",
                origin,
                "<OriginOptions><FullRangeInit>ON</FullRangeInit></OriginOptions>",
            )
            + &vhost("dead.test", dead_addr(), "");
        let k = Kurad::start(conf_dir(
            &server_xml(
                &format!(r#"<OriginErrorLog Warning="{warning}">ON</OriginErrorLog>"#),
                "",
            ),
            &vhosts_xml(&vhosts),
        ));
        assert_eq!(get(k.http(), "a.test", "/partial").status, 206);
        let short = get(k.http(), "a.test", "/short");
        assert!(
            short.body.len() < 1000,
            "the cut body is not passed as whole"
        );
        // The same passed around the cache (POST goes to the origin).
        let url = format!("http://{}/short", k.http());
        let posted = curl(&url, &["-H", "Host: a.test", "-d", "x=1"]);
        assert!(posted.body.len() < 1000, "{}", posted.body.len());
        assert_eq!(get(k.http(), "b.test", "/whole").status, 200);
        // An error line last: once it is written, every line before it is.
        assert_eq!(get(k.http(), "dead.test", "/marker").status, 502);
        let log = k.dir.path().join("logs/originerror.log");
        let until = Instant::now() + Duration::from_secs(10);
        let text = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("[dead.test] [ERROR]") {
                break text;
            }
            assert!(Instant::now() < until, "no error line: {text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let warnings: Vec<String> = text
            .lines()
            .filter(|l| l.contains(" [WARNING] "))
            .map(|l| {
                // date time [vhost] [WARNING] s-domain s-ip method uri time-taken sc-error sc-resinfo
                let f: Vec<&str> = l.split(' ').collect();
                assert_eq!(f.len(), 11, "{l}");
                f[8].parse::<u64>().unwrap();
                [&f[2..8], &f[9..]].concat().join(" ")
            })
            .collect();
        let want = if warning == "ON" {
            vec![
                "[a.test] [WARNING] 127.0.0.1 127.0.0.1 GET /partial PartialResponseOnNormalRequest Res=206,Len=10",
                "[a.test] [WARNING] 127.0.0.1 127.0.0.1 GET /short ClosedWhenDownloading Res=200,Len=1000,Received=100",
                "[a.test] [WARNING] 127.0.0.1 127.0.0.1 POST /short ClosedWhenDownloading Res=200,Len=1000,Received=100",
                "[b.test] [WARNING] 127.0.0.1 127.0.0.1 GET /whole NotPartialResponseOnRangeRequest Res=200,Len=10",
            ]
        } else {
            vec![]
        };
        assert_eq!(warnings, want, "Warning={warning}:\n{text}");
    }
}
