//! Reload through the management API, kuractl and SIGHUP: the new
//! configuration applies, a bad one is rejected with its place and the old
//! one keeps serving, and clients never see a failed request meanwhile.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn two_vhosts(origin: std::net::SocketAddr, second: bool) -> String {
    let mut body = vhost("a.test", origin, "");
    if second {
        body.push_str(&vhost("b.test", origin, ""));
    }
    vhosts_xml(&body)
}

#[test]
fn reload_applies_rejects_bad_config_and_keeps_serving() {
    // The origin echoes the Host it got: "<vhost>:<origin port>" for an IP:port address.
    let origin = Origin::start(|s| {
        Reply::ok(&format!("host={}", s.headers["host"])).header("cache-control", "max-age=60")
    });
    let port = origin.addr.port();
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &two_vhosts(origin.addr, false),
    ));
    let http = k.http();
    assert_eq!(
        get(http, "b.test", "/").status,
        404,
        "b.test is not configured yet"
    );

    // A client loop runs through every reload below.
    let looper = ClientLoop::start(http, "a.test", "/loop", move |r| {
        r.status == 200 && r.text() == format!("host=a.test:{port}")
    });

    // 1. Add a vhost and reload through kuractl.
    k.write_vhosts(&two_vhosts(origin.addr, true));
    let out = Command::new(kuractl_bin())
        .args(["reload", "--server", &k.manager.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("configuration reloaded: generation 1, 2 vhosts"));
    assert_eq!(
        get(http, "b.test", "/").text(),
        format!("host=b.test:{port}"),
        "the same port serves the new vhost"
    );

    // 2. A bad configuration is rejected with file:line:element, and nothing changes.
    let bad = two_vhosts(origin.addr, true).replace(
        "<Listen>127.0.0.1:0</Listen>",
        "<Listen>127.0.0.1:99999</Listen>",
    );
    k.write_vhosts(&bad);
    let r = curl(&format!("http://{}/conf/reload", k.manager), &[]);
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("vhosts.xml:3: <Listen>: port 99999 out of range"),
        "{}",
        r.text()
    );
    let out = Command::new(kuractl_bin())
        .args(["reload", "--server", &k.manager.to_string()])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kuractl reload exits non-zero on a rejected configuration"
    );
    assert_eq!(
        get(http, "b.test", "/").text(),
        format!("host=b.test:{port}"),
        "the old configuration keeps serving"
    );

    // 3. SIGHUP reloads too: remove b.test again.
    k.write_vhosts(&two_vhosts(origin.addr, false));
    k.signal("HUP");
    assert!(k.wait_log("generation=2"), "{}", k.log());
    assert_eq!(get(http, "b.test", "/").status, 404);

    std::thread::sleep(Duration::from_millis(300));
    let (ok, failed) = looper.finish();
    assert_eq!(failed, 0, "no client request failed during reloads");
    assert!(ok > 5);
}

#[test]
fn management_acl_and_roles() {
    let origin = Origin::start(|_| Reply::ok("x"));
    // Only 10.0.0.0/8 is allowed: a loopback client is disconnected without a reply.
    let server =
        "<Server><Host><Manager Port=\"0\"><Allow>10.0.0.0/8</Allow></Manager></Host></Server>";
    let k = Kurad::start(conf_dir(
        server,
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let r = curl(&format!("http://{}/version", k.manager), &[]);
    assert_eq!(r.status, 0, "the connection is closed without an answer");
    assert!(k.wait_log("manager connection refused"));

    let server = "<Server><Host><Manager Port=\"0\" Role=\"Looker\"><Allow>127.0.0.1</Allow></Manager></Host></Server>";
    let k = Kurad::start(conf_dir(
        server,
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let r = curl(&format!("http://{}/conf/reload", k.manager), &[]);
    assert_eq!(r.status, 401, "a Looker may not reload");
    let r = curl(&format!("http://{}/nope", k.manager), &[]);
    assert_eq!(r.status, 404);
    assert!(
        r.text().contains("\"status\": \"ERROR\""),
        "errors are JSON: {}",
        r.text()
    );
}

/// `<Allow>` is read for each request: a reload that drops an address reaches its open
/// keep-alive manager connection too (a JSON 403, then the connection closes), not
/// only its next connection.
#[test]
fn a_narrowed_allow_reaches_open_manager_connections() {
    use std::io::Read;
    let origin = Origin::start(|_| Reply::ok("x"));
    let server = |allow: &str| {
        format!(
            "<Server><Host><Manager Port=\"0\"><Allow>{allow}</Allow></Manager></Host></Server>"
        )
    };
    let k = Kurad::start(conf_dir(
        &server("127.0.0.1"),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let mut s = connect(k.manager);
    let (status, _, _) = exchange(&mut s, "m", "/version");
    assert!(status.contains(" 200 "), "{status}");

    std::fs::write(k.dir.path().join("server.xml"), server("10.0.0.0/8")).unwrap();
    k.signal("HUP");
    assert!(k.wait_log("generation=1"), "{}", k.log());
    let (status, _, body) = exchange(&mut s, "m", "/version");
    assert!(status.contains(" 403 "), "{status} {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["code"].as_u64()),
        (Some("ERROR"), Some(403))
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "the connection is closed after the refusal"
    );
    let r = curl(&format!("http://{}/version", k.manager), &[]);
    assert_eq!(r.status, 0, "a new connection is refused outright");
}
