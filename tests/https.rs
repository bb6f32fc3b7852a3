//! Chapter 9 HTTPS: real kurad processes with certificates from a test CA, real
//! curl and `openssl s_client` as clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// An origin whose objects are cacheable for a minute, echoing what it was asked.
fn cacheable_origin() -> Origin {
    Origin::start(|seen| {
        Reply::ok(&format!("body of {}", seen.path)).header("Cache-Control", "max-age=60")
    })
}

/// kurad with one vhost (`www.test`, plain HTTP too) and `https` in server.xml.
fn kurad_with(https: &str, origin: &Origin) -> Kurad {
    Kurad::start(conf_dir(
        &server_xml_https(https, ""),
        &vhosts_xml(&vhost("www.test", origin.addr, "")),
    ))
}

/// curl over HTTPS to `name` resolved to `addr`, trusting `ca`.
fn curl_tls(addr: SocketAddr, name: &str, path: &str, ca: &Path, extra: &[&str]) -> CurlResponse {
    let resolve = format!("{name}:{}:{}", addr.port(), addr.ip());
    let ca = ca.display().to_string();
    let mut args = vec!["--resolve", &resolve, "--cacert", &ca];
    args.extend(extra);
    curl(&format!("https://{name}:{}{path}", addr.port()), &args)
}

/// `openssl s_client` output (certificate subject, protocol) for one handshake.
fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed");
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("Cipher is"), text)
}

/// The subject line of the server certificate s_client printed.
fn subject(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("(no subject)")
}

#[test]
fn sni_selects_the_certificate_and_no_sni_gets_the_first_block() {
    let ca = TestCa::new();
    let (a_cert, a_key) = ca.leaf("a", "a.test", &["a.test", "www.test"], true);
    let (b_cert, b_key) = ca.leaf("b", "b.test", &["*.b.test", "b.test"], false);
    let origin = cacheable_origin();
    let https = https_block("Listen=\"127.0.0.1:0\"", &a_cert, &a_key, Some(&ca.ca()))
        + &https_block("Listen=\"127.0.0.1:0\"", &b_cert, &b_key, Some(&ca.ca()));
    let k = kurad_with(&https, &origin);
    let addrs = k.https();
    assert_eq!(addrs.len(), 1, "two blocks on one address share one socket");
    let addr = addrs[0];

    // curl checks the certificate against the name, so success is the right certificate.
    for (name, cn) in [
        ("a.test", "a.test"),
        ("img.b.test", "b.test"),
        ("b.test", "b.test"),
    ] {
        let (ok, text) = s_client(addr, &["-servername", name]);
        assert!(ok, "{text}");
        assert!(
            subject(&text).contains(&format!("CN = {cn}")),
            "{name}: {text}"
        );
        let r = curl_tls(addr, name, "/x", &ca.ca(), &["-H", "Host: www.test"]);
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert_eq!(r.text(), "body of /x");
    }
    // No SNI, or a name no certificate has: the first block.
    for args in [&["-noservername"][..], &["-servername", "other.test"][..]] {
        let (ok, text) = s_client(addr, args);
        assert!(ok, "{text}");
        assert!(subject(&text).contains("CN = a.test"), "{args:?}: {text}");
    }
}

#[test]
fn most_specific_listen_wins_on_a_shared_port() {
    let ca = TestCa::new();
    let (any_cert, any_key) = ca.leaf("any", "any.test", &["any.test"], false);
    let (lo_cert, lo_key) = ca.leaf("lo", "lo.test", &["lo.test"], false);
    // A free port, for `*:port` and `127.0.0.2:port` to share.
    let port = listen_port();
    let https = https_block(&format!("Listen=\"*:{port}\""), &any_cert, &any_key, None)
        + &https_block(
            &format!("Listen=\"127.0.0.2:{port}\""),
            &lo_cert,
            &lo_key,
            None,
        );
    let k = kurad_with(&https, &cacheable_origin());
    assert_eq!(k.https().len(), 1, "one wildcard socket: {:?}", k.https());
    let at = |ip: &str| {
        let (ok, text) = s_client(format!("{ip}:{port}").parse().unwrap(), &["-noservername"]);
        assert!(ok, "{text}");
        subject(&text).to_string()
    };
    assert!(at("127.0.0.2").contains("CN = lo.test"));
    assert!(at("127.0.0.1").contains("CN = any.test"));
}

#[test]
fn tls13_and_tls12_and_tls12_off() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("w", "www.test", &["www.test"], true);
    let https = https_block("Listen=\"127.0.0.1:0\"", &cert, &key, None)
        + &https_block(
            "Listen=\"127.0.0.2:0\" TLS1.2=\"OFF\" TLS1.1=\"ON\"",
            &cert,
            &key,
            None,
        );
    let k = kurad_with(&https, &cacheable_origin());
    let addrs = k.https();
    let both = *addrs
        .iter()
        .find(|a| a.ip().to_string() == "127.0.0.1")
        .unwrap();
    let only13 = *addrs
        .iter()
        .find(|a| a.ip().to_string() == "127.0.0.2")
        .unwrap();

    let (ok, text) = s_client(both, &["-tls1_3"]);
    assert!(ok && text.contains("TLSv1.3"), "{text}");
    let (ok, text) = s_client(both, &["-tls1_2"]);
    assert!(ok && text.contains("TLSv1.2"), "{text}");
    assert!(text.contains("ECDHE-RSA-"), "an ECDHE suite: {text}");
    let (ok, text) = s_client(only13, &["-tls1_3"]);
    assert!(ok && text.contains("TLSv1.3"), "{text}");
    let (ok, text) = s_client(only13, &["-tls1_2"]);
    assert!(!ok, "TLS1.2=\"OFF\" refuses TLS 1.2: {text}");
    // TLS 1.1 ON cannot be honoured: said once, as not implemented.
    assert!(
        k.wait_log("Server/Https@TLS1.1 (rustls has no TLS1.1; TLS 1.2 and 1.3 only)"),
        "{}",
        k.log()
    );
}

#[test]
fn h2_and_http11_over_tls_are_cached() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("w", "www.test", &["www.test"], false);
    let origin = cacheable_origin();
    let k = kurad_with(
        &https_block("Listen=\"127.0.0.1:0\"", &cert, &key, Some(&ca.ca())),
        &origin,
    );
    let addr = k.https()[0];
    let h2 = |path: &str| {
        curl_tls(
            addr,
            "www.test",
            path,
            &ca.ca(),
            &["--http2", "-w", "%{http_version}"],
        )
    };
    let miss = h2("/h2");
    assert_eq!(miss.status, 200, "{miss:?}");
    assert!(miss.text().starts_with("body of /h2"), "{}", miss.text());
    assert!(
        miss.text().ends_with('2'),
        "HTTP/2 negotiated: {}",
        miss.text()
    );
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = h2("/h2");
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{hit:?}");
    let h1 = curl_tls(
        addr,
        "www.test",
        "/h2",
        &ca.ca(),
        &["--http1.1", "-w", "%{http_version}"],
    );
    assert_eq!(h1.header("x-cache"), Some("HIT"));
    assert!(h1.text().ends_with("1.1"), "{}", h1.text());
    assert_eq!(origin.count("/h2"), 1);
    // The origin learns the client came over TLS; plain HTTP says so too.
    assert_eq!(
        origin.requests()[0]
            .headers
            .get("x-forwarded-proto")
            .map(String::as_str),
        Some("https")
    );
    let plain = get(k.http(), "www.test", "/plain");
    assert_eq!(plain.status, 200);
    let seen = origin.requests();
    let last = seen.iter().find(|s| s.path == "/plain").unwrap();
    assert_eq!(
        last.headers.get("x-forwarded-proto").map(String::as_str),
        Some("http")
    );
}

/// `kurad check` of a server.xml with `https`: (success, output).
fn check(https: &str) -> (bool, String) {
    let dir = conf_dir(
        &server_xml_https(https, ""),
        &vhosts_xml(&vhost("www.test", "127.0.0.1:9".parse().unwrap(), "")),
    );
    kurad_check(dir.path())
}

#[test]
fn bad_certificates_and_suites_are_placed_configuration_errors() {
    let ca = TestCa::new();
    let (a_cert, a_key) = ca.leaf("a", "a.test", &["a.test"], true);
    let (_, b_key) = ca.leaf("b", "b.test", &["b.test"], false);
    let missing = ca.dir.path().join("missing.pem");
    // server_xml puts the blocks on line 12.
    let cases = [
        (
            https_block("", &a_cert, &b_key, None),
            format!(
                "server.xml:12: <Key>: {}: key does not match the certificate {}",
                b_key.display(),
                a_cert.display()
            ),
        ),
        (
            https_block("", &missing, &a_key, None),
            format!("server.xml:12: <Cert>: {}: cannot read: No such file", missing.display()),
        ),
        (
            https_block("", &a_key, &a_key, None),
            format!("server.xml:12: <Cert>: {}: no CERTIFICATE in the file", a_key.display()),
        ),
        (
            https_block("CipherSuite=\"RC4\"", &a_cert, &a_key, None),
            "server.xml:12: <Https>: CipherSuite: selects only legacy suites kura does not offer (ECDHE-RSA-RC4-SHA, RC4-SHA, RC4-MD5, ADH-RC4-MD5, EXP-RC4-MD5)".to_string(),
        ),
        (
            https_block("Listen=\"eth0\"", &a_cert, &a_key, None),
            "server.xml:12: <Https>: Listen: \"eth0\" looks like a network interface name".to_string(),
        ),
    ];
    for (block, want) in cases {
        let (ok, err) = check(&block);
        assert!(!ok, "{block}");
        assert!(err.contains(&want), "want {want}\nin {err}");
    }
    // The daemon refuses to start with it, too.
    let dir = conf_dir(
        &server_xml_https(&https_block("", &a_cert, &b_key, None), ""),
        &vhosts_xml(&vhost("www.test", "127.0.0.1:9".parse().unwrap(), "")),
    );
    let out = Command::new(kurad_bin())
        .arg("--conf-dir")
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key does not match"));
    // Legacy suites beside supported ones are ignored, and said so.
    let (ok, out) = check(&https_block(
        "CipherSuite=\"ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA\"",
        &a_cert,
        &a_key,
        None,
    ));
    assert!(ok, "{out}");
}

/// One keep-alive request on an open `openssl s_client` session: the status line and body.
fn request_on(
    session: &mut (impl Write, BufReader<impl Read>),
    host: &str,
    path: &str,
) -> (String, String) {
    write!(session.0, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    session.0.flush().unwrap();
    let mut status = String::new();
    while !status.starts_with("HTTP/1.1") {
        status.clear();
        assert!(
            session.1.read_line(&mut status).unwrap() > 0,
            "session closed"
        );
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        session.1.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    session.1.read_exact(&mut body).unwrap();
    (status.trim().to_string(), String::from_utf8(body).unwrap())
}

#[test]
fn reload_serves_a_replaced_certificate_and_keeps_open_connections() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("w", "www.test", &["www.test"], false);
    let origin = cacheable_origin();
    let k = kurad_with(
        &https_block("Listen=\"127.0.0.1:0\"", &cert, &key, None),
        &origin,
    );
    let addr = k.https()[0];
    let (_, before) = s_client(addr, &["-servername", "www.test"]);
    assert!(subject(&before).contains("CN = www.test"), "{before}");

    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-ign_eof",
            "-servername",
            "www.test",
            "-connect",
        ])
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut session = (
        child.stdin.take().unwrap(),
        BufReader::new(child.stdout.take().unwrap()),
    );
    let (status, body) = request_on(&mut session, "www.test", "/a");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "body of /a")
    );

    // Same file names, new certificate and key; then reload.
    let (new_cert, new_key) = ca.leaf("w2", "www.test v2", &["www.test"], true);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let r = curl(&format!("http://{}/conf/reload", k.manager), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(k.https(), [addr], "the socket is kept");

    let (_, after) = s_client(addr, &["-servername", "www.test"]);
    assert!(subject(&after).contains("CN = www.test v2"), "{after}");
    // The connection opened before the reload still serves requests.
    let (status, body) = request_on(&mut session, "www.test", "/b");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "body of /b")
    );
    let _ = child.kill();
    let _ = child.wait();

    // A block on a new address opens its socket on reload; removing it closes it.
    let server = k.conf_path().join("server.xml");
    let one = std::fs::read_to_string(&server).unwrap();
    let two = one.replace(
        "</Server>",
        &(https_block("Listen=\"127.0.0.2:0\"", &cert, &key, None) + "</Server>"),
    );
    std::fs::write(&server, two).unwrap();
    let (_, v) = api(&k, "/conf/reload");
    assert_eq!(
        v["result"]["opened"],
        serde_json::json!(["https://127.0.0.2:0"]),
        "{v}"
    );
    assert_eq!(k.https().len(), 2);
    let second = k.https()[1];
    assert!(s_client(second, &["-servername", "www.test"]).0);
    std::fs::write(&server, one).unwrap();
    let (_, v) = api(&k, "/conf/reload");
    assert_eq!(
        v["result"]["closed"],
        serde_json::json!(["https://127.0.0.2:0"]),
        "{v}"
    );
    assert!(!s_client(second, &["-servername", "www.test"]).0, "closed");

    // A reload that breaks the pair is refused and the old certificate keeps serving.
    std::fs::copy(ca.leaf("y", "y", &["y.test"], false).1, &key).unwrap();
    let r = curl(&format!("http://{}/conf/reload", k.manager), &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("key does not match"), "{}", r.text());
    let (ok, still) = s_client(addr, &["-servername", "www.test"]);
    assert!(
        ok && subject(&still).contains("CN = www.test v2"),
        "{still}"
    );
}

/// `GET` on the management API as JSON.
fn api(k: &Kurad, path: &str) -> (u16, serde_json::Value) {
    let r = curl(&format!("http://{}{path}", k.manager), &[]);
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

#[test]
fn ssl_endpoint_expands_cipher_expressions() {
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("www.test", "127.0.0.1:9".parse().unwrap(), "")),
    ));
    let (status, v) = api(&k, "/monitoring/ssl?ciphersuite=HIGH:!ECDSA");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["method"], "ssl");
    assert_eq!(v["status"], "OK");
    let names: Vec<&str> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_GCM_SHA256",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-RSA-AES128-GCM-SHA256"
        ]
    );
    let first12 = &v["result"][3];
    assert_eq!(
        (
            &first12["Ver"],
            &first12["Kx"],
            &first12["Au"],
            &first12["Enc"],
            &first12["Mac"]
        ),
        (
            &"TLSv1.2".into(),
            &"ECDH".into(),
            &"RSA".into(),
            &"AESGCM(256)".into(),
            &"AEAD".into()
        )
    );
    let (status, v) = api(&k, "/monitoring/ssl.json?ciphersuite=RC4%3A%21HIGH");
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("legacy"), "{v}");
}

#[test]
fn handshakes_and_ssl_traffic_are_counted() {
    ssl_figures(false);
}

#[test]
fn https_traffic_on_counts_https_in_the_http_figures_too() {
    ssl_figures(true);
}

/// HTTPS requests and failed handshakes until `/monitoring/realtime` shows them: in
/// `System.SSL` and the vhost's `SSL` bytes, and in its HTTP figures only with
/// `<HttpsTraffic>ON`.
fn ssl_figures(https_traffic: bool) {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("w", "www.test", &["www.test"], false);
    let origin = cacheable_origin();
    let setting = if https_traffic { "ON" } else { "OFF" };
    let k = Kurad::start(conf_dir(
        &server_xml_https(
            &https_block("Listen=\"127.0.0.1:0\"", &cert, &key, None),
            &format!("<Stats><HttpsTraffic>{setting}</HttpsTraffic></Stats>"),
        ),
        &vhosts_xml(&vhost("www.test", origin.addr, "")),
    ));
    let addr = k.https()[0];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // A handshake and a request, a failed handshake (plain HTTP to the TLS port).
        let r = curl_tls(addr, "www.test", "/c", &ca.ca(), &[]);
        assert_eq!(r.status, 200);
        let _ = curl(&format!("http://{addr}/"), &[]);
        let (_, v) = api(&k, "/monitoring/realtime");
        let system = &v["Host"]["System"]["SSL"];
        let vhost = v["Host"]["VirtualHost"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["Name"] == "www.test"))
            .cloned()
            .unwrap_or_default();
        let traffic = &vhost["ClientTraffic"];
        let ssl = &traffic["Traffic"][0]["SSL"];
        let counted = system["Handshakes"].as_i64() > Some(0)
            && system["HandshakeErrors"].as_i64() > Some(0)
            && ssl["SendSize"].as_i64() > Some(0)
            && ssl["RecvSize"].as_i64() > Some(0);
        if counted {
            assert_eq!(traffic["HttpsTraffic"], setting);
            let http_requests = traffic["Traffic"][0]["HttpReqCount"].as_i64().unwrap();
            assert_eq!(http_requests > 0, https_traffic, "{vhost}");
            break;
        }
        assert!(Instant::now() < deadline, "no SSL figures: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// kurad in front of `https://localhost:<port>` of `front`, trusting the roots in
/// `roots` (as `SSL_CERT_FILE`, which the system store honours).
fn https_origin_client(front: &Kurad, roots: &Path) -> Kurad {
    let port = front.https()[0].port();
    let vhosts = format!(
        "<Vhosts><Vhost Name=\"edge.test\"><Listen>127.0.0.1:0</Listen>\
         <Origin><Address>https://localhost:{port}</Address></Origin>\
         <OriginOptions><Host>www.test</Host></OriginOptions></Vhost></Vhosts>\n"
    );
    let dir = conf_dir(&server_xml("", ""), &vhosts);
    Kurad::start_env(dir, &[], &[("SSL_CERT_FILE", roots)])
}

#[test]
fn an_https_origin_is_spoken_to_over_verified_tls() {
    let ca = TestCa::new();
    let (cert, key) = ca.leaf("origin", "localhost", &["localhost"], false);
    let origin = cacheable_origin();
    let front = kurad_with(
        &https_block("Listen=\"127.0.0.1:0\"", &cert, &key, Some(&ca.ca())),
        &origin,
    );
    let edge = https_origin_client(&front, &ca.ca());
    let r = curl(
        &format!("http://{}/over-tls", edge.http()),
        &["-H", "Host: edge.test"],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "body of /over-tls"));
    let seen = origin.requests();
    assert_eq!(
        seen[0].headers.get("x-forwarded-proto").map(String::as_str),
        Some("https"),
        "the front kurad got the request over TLS"
    );

    // Roots without the test CA: the origin's certificate is refused, nothing is fetched.
    let other = TestCa::new();
    let untrusting = https_origin_client(&front, &other.ca());
    let r = curl(
        &format!("http://{}/refused", untrusting.http()),
        &["-H", "Host: edge.test"],
    );
    assert_eq!(r.status, 502);
    assert_eq!(origin.count("/refused"), 0);
}

#[test]
fn an_ocsp_response_beside_the_certificate_is_stapled() {
    let ca = TestCa::new();
    let (stapled, stapled_key) = ca.leaf("stapled", "a.test", &["a.test"], false);
    let (bare, bare_key) = ca.leaf("bare", "b.test", &["b.test"], false);
    ca.staple(&stapled);
    let origin = cacheable_origin();
    let https = https_block(
        "Listen=\"127.0.0.1:0\"",
        &stapled,
        &stapled_key,
        Some(&ca.ca()),
    ) + &https_block("Listen=\"127.0.0.1:0\"", &bare, &bare_key, Some(&ca.ca()));
    let k = kurad_with(&https, &origin);
    let addr = k.https()[0];
    let (ok, text) = s_client(addr, &["-servername", "a.test", "-status"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("OCSP Response Status: successful") && text.contains("Cert Status: good"),
        "{text}"
    );
    let (ok, text) = s_client(addr, &["-servername", "b.test", "-status"]);
    assert!(ok, "{text}");
    assert!(text.contains("OCSP response: no response sent"), "{text}");
}
