//! Client connections at the socket level: keep-alive across a reload, the
//! idle timeout, and malformed request heads.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;

#[test]
fn a_kept_alive_connection_survives_a_reload() {
    let origin = Origin::start(|_| Reply::ok("v").header("cache-control", "max-age=60"));
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let mut conn = connect(k.http());
    assert_eq!(exchange(&mut conn, "a.test", "/x").0, "HTTP/1.1 200 OK");
    k.write_vhosts(&vhosts_xml(&format!(
        "{}{}",
        vhost("a.test", origin.addr, ""),
        vhost("b.test", origin.addr, "")
    )));
    let r = curl(&format!("http://{}/conf/reload", k.manager), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // The same connection goes on, and already sees the new vhost.
    assert_eq!(
        exchange(&mut conn, "a.test", "/x"),
        ("HTTP/1.1 200 OK".into(), "HIT".into(), "v".into())
    );
    assert_eq!(exchange(&mut conn, "b.test", "/x").0, "HTTP/1.1 200 OK");
}

#[test]
fn idle_connections_close_after_client_keep_alive_sec() {
    let origin = Origin::start(|_| Reply::ok("v"));
    let server = server_xml(
        "",
        "<Options><ClientKeepAliveSec>1</ClientKeepAliveSec></Options>",
    );
    let k = Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let mut conn = connect(k.http());
    assert_eq!(exchange(&mut conn, "a.test", "/x").0, "HTTP/1.1 200 OK");
    let idle = Instant::now();
    let mut rest = Vec::new();
    let n = conn.read_to_end(&mut rest).unwrap_or(0);
    let waited = idle.elapsed();
    assert_eq!(n, 0, "the server closes, it does not send anything");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

/// Malformed heads get a well-formed answer (4xx) or a closed connection, and kurad keeps serving.
#[test]
fn malformed_request_heads_get_a_4xx_and_kurad_keeps_serving() {
    let origin = Origin::start(|_| Reply::ok("ok").header("cache-control", "max-age=60"));
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let addr = k.http();
    let heads = prop_oneof![
        "[\\x00-\\xff]{1,200}",
        "(GET|POST|FOO|G ET) [^\\r\\n]{0,40} HTTP/(1\\.1|9\\.9|x)\\r\\n([A-Za-z\\-: \\x00\\x7f]{0,30}\\r\\n){0,5}\\r\\n",
        "GET / HTTP/1\\.1\\r\\nHost: a\\.test\\r\\nContent-Length: (-1|abc|99999999999999999999|1, 2)\\r\\n\\r\\n",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let bad_heads_answered = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&heads, |head| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(head.as_bytes());
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            let text = String::from_utf8_lossy(&out);
            if let Some(status) = text.split_whitespace().nth(1) {
                prop_assert!(text.starts_with("HTTP/1.1 "), "{}", text);
                let code: u16 = status.parse().unwrap_or(0);
                prop_assert!((200..600).contains(&code), "{}", text);
                if (400..500).contains(&code) {
                    bad_heads_answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            prop_assert_eq!(
                get(addr, "a.test", "/alive").status,
                200,
                "kurad must keep serving"
            );
            Ok(())
        })
        .unwrap();
    assert!(
        bad_heads_answered.into_inner() > 10,
        "malformed heads are answered with 4xx, not just dropped"
    );
    let r = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--request-target",
            "no-slash",
            "-H",
            "Host: a.test",
        ])
        .arg(format!("http://{addr}/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "400",
        "a bad request target is a 400"
    );
}
