//! The caching proxy as a client sees it: a real kurad, a real origin, curl.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// One vhost `www.test` in front of `origin`, with `<VHostDefault>` options.
fn single(origin: &Origin, options: &str) -> Kurad {
    let server = server_xml("", &format!("<Options>{options}</Options>"));
    Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("www.test", origin.addr, "")),
    ))
}

fn cacheable_origin() -> Origin {
    Origin::start(|s| match s.path.as_str() {
        "/fresh" => Reply::ok("fresh body").header("cache-control", "max-age=60"),
        "/no-store" => Reply::ok("secret").header("cache-control", "no-store"),
        "/private" => Reply::ok("mine").header("cache-control", "private, max-age=60"),
        "/plain" => Reply::ok("no cache headers"),
        // Two seconds: a response crossing a second boundary after its Date is already 1 s old.
        "/short" => Reply::ok("short").header("cache-control", "max-age=2"),
        "/missing" => Reply::ok("gone").status(404),
        "/cookie" => Reply::ok("c")
            .header("cache-control", "max-age=60")
            .header("set-cookie", "s=1"),
        "/vary" => Reply::ok(&format!(
            "lang={}",
            s.headers
                .get("accept-language")
                .cloned()
                .unwrap_or_default()
        ))
        .header("cache-control", "max-age=60")
        .header("vary", "Accept-Language"),
        _ => Reply::ok("other").header("cache-control", "max-age=60"),
    })
}

#[test]
fn miss_then_hit_with_growing_age() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    let first = get(k.http(), "www.test", "/fresh");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.header("cache-status"), Some("kura; fwd=uri-miss"));
    assert_eq!(first.text(), "fresh body");
    let second = get(k.http(), "www.test", "/fresh");
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(second.header("cache-status"), Some("kura; hit"));
    assert_eq!(second.text(), "fresh body");
    let age0: u64 = second.header("age").unwrap().parse().unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let third = get(k.http(), "www.test", "/fresh");
    let age2: u64 = third.header("age").unwrap().parse().unwrap();
    assert!(age2 >= age0 + 2, "Age must grow: {age0} then {age2}");
    assert_eq!(
        origin.count("/fresh"),
        1,
        "only the first request reaches the origin"
    );
}

#[test]
fn no_store_private_and_set_cookie_are_never_shared() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    for path in ["/no-store", "/private", "/cookie"] {
        for _ in 0..3 {
            let r = get(k.http(), "www.test", path);
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-cache"), Some("MISS"), "{path}");
        }
        assert_eq!(
            origin.count(path),
            3,
            "{path} must reach the origin every time"
        );
    }
}

#[test]
fn written_guide_ttls_apply_without_freshness_headers() {
    let origin = cacheable_origin();
    // <Res4xx> 2 s: the 404 is cached (TCP_HIT on the cached error), then expires.
    let k = single(
        &origin,
        "<TTL><Res2xx>1800</Res2xx><Res4xx>2</Res4xx></TTL>",
    );
    assert_eq!(
        get(k.http(), "www.test", "/plain").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        get(k.http(), "www.test", "/plain").header("x-cache"),
        Some("HIT"),
        "Res2xx 1800 s applies"
    );
    assert_eq!(get(k.http(), "www.test", "/missing").status, 404);
    let again = get(k.http(), "www.test", "/missing");
    assert_eq!((again.status, again.header("x-cache")), (404, Some("HIT")));
    std::thread::sleep(Duration::from_millis(2200));
    let expired = get(k.http(), "www.test", "/missing");
    assert_eq!(expired.header("x-cache"), Some("MISS"));
    assert_eq!(
        expired.header("cache-status"),
        Some("kura; fwd=stale"),
        "an expired copy is a refresh miss"
    );
    assert_eq!(origin.count("/missing"), 2);
}

#[test]
fn unwritten_guide_ttls_give_no_freshness_without_a_validator() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    get(k.http(), "www.test", "/plain");
    get(k.http(), "www.test", "/plain");
    get(k.http(), "www.test", "/missing");
    get(k.http(), "www.test", "/missing");
    assert_eq!(
        (origin.count("/plain"), origin.count("/missing")),
        (2, 2),
        "RFC 9111 4.2.2: no Last-Modified, no heuristic freshness"
    );
}

#[test]
fn expired_objects_are_fetched_again() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    get(k.http(), "www.test", "/short");
    assert_eq!(
        get(k.http(), "www.test", "/short").header("x-cache"),
        Some("HIT")
    );
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        get(k.http(), "www.test", "/short").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(origin.count("/short"), 2);
}

#[test]
fn vary_keeps_variants_apart() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    let url = format!("http://{}/vary", k.http());
    let lang = |l: &str| {
        curl(
            &url,
            &[
                "-H",
                "Host: www.test",
                "-H",
                &format!("Accept-Language: {l}"),
            ],
        )
    };
    assert_eq!(lang("en").text(), "lang=en");
    let en = lang("en");
    assert_eq!(
        (en.text().as_str(), en.header("x-cache")),
        ("lang=en", Some("HIT"))
    );
    let ja = lang("ja");
    assert_eq!(
        (ja.text().as_str(), ja.header("x-cache")),
        ("lang=ja", Some("MISS"))
    );
}

#[test]
fn header_options_via_server_etag_age() {
    let origin = Origin::start(|_| {
        Reply::ok("x")
            .header("cache-control", "max-age=60")
            .header("server", "origin-srv")
            .header("etag", "\"v1\"")
    });
    let k = single(&origin, "");
    get(k.http(), "www.test", "/a");
    let on = get(k.http(), "www.test", "/a");
    assert_eq!(
        on.header("server"),
        Some("origin-srv"),
        "<ServerHeader>ON passes the origin's Server"
    );
    assert_eq!(on.header("etag"), Some("\"v1\""));
    assert!(on.header("via").unwrap().contains("kura"));
    assert!(
        on.header("age").is_some(),
        "Age is sent by default (RFC 9111)"
    );
    let k = single(&origin, "<ViaHeader>OFF</ViaHeader><ServerHeader>OFF</ServerHeader><ETagHeader>OFF</ETagHeader><AgeHeader>OFF</AgeHeader>");
    get(k.http(), "www.test", "/b");
    let off = get(k.http(), "www.test", "/b");
    assert_eq!(off.header("x-cache"), Some("HIT"));
    for h in ["via", "server", "etag", "age"] {
        assert_eq!(off.header(h), None, "{h} must be omitted");
    }
}

#[test]
fn keep_alive_headers_follow_chapter_6() {
    let origin = cacheable_origin();
    let k = single(
        &origin,
        "<ClientKeepAliveSec>7</ClientKeepAliveSec><KeepAliveHeader Max=\"2\">ON</KeepAliveHeader>",
    );
    // Two requests on one connection: max counts down, then the connection closes.
    let url = format!("http://{}/fresh", k.http());
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "Host: www.test",
            &url,
            "-H",
            "Host: www.test",
            &url,
        ])
        .output()
        .unwrap();
    let heads = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(heads.contains("keep-alive: timeout=7, max=2"), "{heads}");
    assert!(heads.contains("connection: close"), "{heads}");
    let close = curl(&url, &["-H", "Host: www.test", "-H", "Connection: close"]);
    assert_eq!(close.header("connection"), Some("close"));
    assert_eq!(close.header("keep-alive"), None);
}

#[test]
fn host_routing_aliases_wildcards_and_default() {
    let a = Origin::start(|_| Reply::ok("from-a").header("cache-control", "max-age=60"));
    let b = Origin::start(|_| Reply::ok("from-b").header("cache-control", "max-age=60"));
    let vhosts = vhosts_xml(&format!(
        "{}{}  <Default>b.test</Default>\n",
        vhost(
            "a.test",
            a.addr,
            "<Alias>alias-a.test</Alias><Alias>*.wild.test</Alias>"
        ),
        vhost("b.test", b.addr, "<Alias>*.test</Alias>"),
    ));
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts));
    let h = k.http();
    assert_eq!(get(h, "a.test", "/").text(), "from-a");
    assert_eq!(
        get(h, "A.TEST:80", "/").text(),
        "from-a",
        "case and port do not matter"
    );
    assert_eq!(get(h, "alias-a.test", "/").text(), "from-a");
    assert_eq!(
        get(h, "x.wild.test", "/").text(),
        "from-a",
        "the longer pattern wins"
    );
    assert_eq!(get(h, "deep.x.wild.test", "/").text(), "from-a");
    assert_eq!(get(h, "other.test", "/").text(), "from-b", "*.test");
    assert_eq!(get(h, "nowhere.example", "/").text(), "from-b", "<Default>");
    assert_eq!(get(h, "b.test", "/").text(), "from-b");
    // Same path on two vhosts: two cache entries.
    assert_eq!(get(h, "a.test", "/").header("x-cache"), Some("HIT"));
    assert_eq!(a.count("/"), 1);
}

#[test]
fn unknown_host_without_default_gets_404() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    let r = get(k.http(), "stranger.example", "/fresh");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("stranger.example"));
    assert_eq!(origin.count("/fresh"), 0);
}

#[test]
fn concurrent_misses_reach_the_origin_once() {
    let origin = Arc::new(Origin::start(|_| {
        Reply::ok(&"s".repeat(50_000))
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(700))
    }));
    let k = single(&origin, "");
    let addr = k.http();
    let handles: Vec<_> = (0..24)
        .map(|_| std::thread::spawn(move || get(addr, "www.test", "/slow")))
        .collect();
    let replies: Vec<CurlResponse> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &replies {
        assert_eq!((r.status, r.body.len()), (200, 50_000));
    }
    assert_eq!(
        origin.count("/slow"),
        1,
        "collapsed forwarding: one origin request for 24 clients"
    );
    let misses = replies
        .iter()
        .filter(|r| r.header("x-cache") == Some("MISS"))
        .count();
    assert_eq!(
        misses, 1,
        "one client fetched, the others shared its response"
    );
}

#[test]
fn a_1_gib_body_streams_in_bounded_memory() {
    let origin = Origin::start(|s| {
        let with_length = s.path == "/big-known";
        Reply {
            status: 200,
            headers: vec![("cache-control".into(), "max-age=60".into())],
            body: ReplyBody::Generated {
                len: 1 << 30,
                with_length,
                pace: Duration::ZERO,
            },
            delay: Duration::ZERO,
            reset: false,
        }
    });
    // 1% of RAM for the cache keeps the largest cached object far below 1 GiB.
    let server = server_xml("<SystemMemoryRatio>1</SystemMemoryRatio>", "");
    let k = Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("www.test", origin.addr, "")),
    ));
    for path in ["/big-chunked", "/big-known"] {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
                "-H",
                "Host: www.test",
            ])
            .arg(format!("http://{}{path}", k.http()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("200 {}", 1u64 << 30),
            "{path}"
        );
    }
    let peak_mib = k.peak_rss_kib() / 1024;
    eprintln!("peak RSS while passing two 1 GiB bodies: {peak_mib} MiB");
    assert!(
        peak_mib < 256,
        "kurad peaked at {peak_mib} MiB while passing 1 GiB bodies"
    );
}

#[test]
fn origin_down_is_a_502_with_tcp_error() {
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server = server_xml("", "");
    let k = Kurad::start(conf_dir(&server, &vhosts_xml(&vhost("www.test", dead, ""))));
    let r = get(k.http(), "www.test", "/x");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.header("cache-status"),
        Some("kura; fwd=uri-miss; detail=origin-error")
    );
}

#[test]
fn head_and_post() {
    let origin = cacheable_origin();
    let k = single(&origin, "");
    let head = curl(
        &format!("http://{}/fresh", k.http()),
        &["-I", "-H", "Host: www.test"],
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some("10"),
        "HEAD keeps the length of the GET body"
    );
    assert_eq!(
        origin.requests()[0].method,
        "GET",
        "a HEAD miss is fetched as GET and cached"
    );
    assert_eq!(
        get(k.http(), "www.test", "/fresh").header("x-cache"),
        Some("HIT")
    );
    let post = curl(
        &format!("http://{}/form", k.http()),
        &["-H", "Host: www.test", "--data", "a=1"],
    );
    assert_eq!(post.header("cache-status"), Some("kura; fwd=bypass"));
    let seen = origin.requests();
    let p = seen
        .iter()
        .find(|s| s.method == "POST")
        .expect("POST reaches the origin");
    assert_eq!(p.path, "/form");
    assert!(p.headers["via"].contains("kura") && p.headers.contains_key("x-forwarded-for"));
}

#[test]
fn origin_address_path_and_host_header() {
    let origin = cacheable_origin();
    let vhosts = vhosts_xml(&format!(
        "  <Vhost Name=\"www.test\"><Listen>127.0.0.1:0</Listen><Origin><Address>{}/account/dir</Address></Origin></Vhost>\n",
        origin.addr
    ));
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts));
    get(k.http(), "www.test", "/img.jpg?x=1");
    let seen = &origin.requests()[0];
    assert_eq!(seen.path, "/account/dir/img.jpg?x=1");
    assert_eq!(
        seen.headers["host"],
        format!("www.test:{}", origin.addr.port()),
        "IP:port address: vhost name with the port"
    );
}

#[test]
fn demo_mode_serves_a_miss_then_a_hit() {
    let mut child = std::process::Command::new(kurad_bin())
        .args(["demo", "--listen", "127.0.0.1:0", "--manager-port", "0"])
        .env("KURA_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (_log, listening, manager) = watch_log(&mut child);
    let manager = manager
        .recv_timeout(Duration::from_secs(20))
        .expect("demo manager port");
    let http = listening.lock().unwrap()[0].1;
    let mut banner = String::new();
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    while !banner.contains("Stop with") {
        out.read_line(&mut banner).unwrap();
    }
    assert!(
        banner.contains(&format!("curl -si http://{http}/hello.txt")),
        "{banner}"
    );
    assert_eq!(
        get(http, "anything", "/hello.txt").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        get(http, "anything", "/hello.txt").header("x-cache"),
        Some("HIT")
    );
    let list = curl(&format!("http://{manager}/monitoring/vhostslist"), &[]);
    assert!(list.text().contains("demo.kura"));
    let _ = child.kill();
    let _ = child.wait();
}
