//! The management API against `../shared/spec/api-endpoints.tsv`, walked row by
//! row with three clients, one per role: every documented endpoint answers, the
//! role matrix follows `role_min`, and an endpoint of a capability kura does not
//! have yet answers 501 with a JSON error naming it, never 404.

mod common;

use common::*;
use kura::config::Role;
use serde_json::Value;

/// Client addresses and the role `<Allow>` gives each (all loopback, so curl can
/// bind them with `--interface`).
const CLIENTS: [(&str, &str); 3] = [
    ("127.0.0.1", "Admin"),
    ("127.0.0.2", "User"),
    ("127.0.0.3", "Looker"),
];

fn role(name: &str) -> Role {
    Role::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

/// A concrete request path for a table row's path column.
fn request_path(column: &str) -> String {
    let path = column.split_whitespace().next().unwrap();
    if path.starts_with("/<") {
        return "/some/object.jpg".into();
    }
    match path.find(['{', '*']) {
        Some(i) => format!("{}cpu_day.png", &path[..i]),
        None => path.to_string(),
    }
}

#[test]
fn every_documented_endpoint_answers_with_the_documented_roles() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let allow: String = CLIENTS
        .iter()
        .map(|(ip, role)| format!("<Allow Role=\"{role}\">{ip}</Allow>"))
        .collect();
    let server =
        format!("<Server><Host><Manager Port=\"0\">{allow}</Manager></Host><Cache><Storage/></Cache></Server>");
    let k = Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/api-endpoints.tsv"),
    )
    .expect("../shared/spec/api-endpoints.tsv");
    let mut later = Vec::new();
    for row in table.lines().skip(1).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = row.split('\t').collect();
        let (column, method, role_min) = (f[0], f[1], role(f[3]));
        let mut path = request_path(column);
        // Log trace streams until the client leaves; `follow=OFF` ends after the recent lines.
        if path.starts_with("/monitoring/logtrace/") {
            path.push_str("?follow=OFF");
        }
        for (ip, name) in CLIENTS {
            let (role, have) = (name, self::role(name));
            let url = format!("http://{}{path}", k.manager);
            let mut args = vec!["--interface", ip, "-X", method, "-H", "Host: a.test"];
            if method == "POST" {
                args.extend(["-d", ""]);
            }
            let r = curl(&url, &args);
            let what = format!("{method} {path} as {role}: {} {}", r.status, r.text());
            if have < role_min {
                assert_eq!(r.status, 401, "{what}");
            } else {
                assert!(![0, 401, 404, 405].contains(&r.status), "{what}");
            }
            if r.status >= 400 {
                let v: Value = serde_json::from_slice(&r.body)
                    .unwrap_or_else(|e| panic!("errors are JSON ({e}): {what}"));
                // Upload failures keep the 2.5.16 guide's `Fail` beside our code.
                let failed = if v["method"] == "uploadconfig" && r.status == 500 {
                    "Fail"
                } else {
                    "ERROR"
                };
                assert_eq!(v["status"], failed, "{what}");
                assert_eq!(v["code"], r.status, "{what}");
            }
            if r.status == 501 {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                let message = v["message"].as_str().unwrap();
                // "<path> belongs to <feature>, which kura does not have yet"
                let feature = message
                    .strip_prefix(&format!("{path} belongs to "))
                    .and_then(|m| m.strip_suffix(", which kura does not have yet"))
                    .unwrap_or_else(|| panic!("the 501 names no feature: {what}"));
                assert!(!feature.is_empty(), "{what}");
                if path.starts_with("/graph/") {
                    assert_eq!(feature, "graphs", "{what}");
                }
                if role == "Admin" {
                    later.push(format!("{method} {path}"));
                }
            }
        }
    }
    // The served ones answer for real; what is left for later is listed, not hidden.
    for served in [
        "GET /version",
        "GET /monitoring/realtime",
        "GET /monitoring/realtime.xml",
        "GET /conf/server.xml",
        "GET /monitoring/hwinfo",
    ] {
        assert!(!later.iter().any(|l| l == served), "{served} answers 501");
    }
    assert!(
        later.iter().any(|l| l == "GET /graph/cpu_day.png"),
        "{later:?}"
    );
}

#[test]
fn configuration_files_are_read_back_as_written() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let vhosts = vhosts_xml(&vhost("a.test", origin.addr, ""));
    let dir = conf_dir(&server_xml("", ""), &vhosts);
    std::fs::create_dir_all(dir.path().join("svc/a.test")).unwrap();
    let ttl = "# custom TTL\n$URL[/img/*.jpg], 3600\n";
    std::fs::write(dir.path().join("svc/a.test/ttl.txt"), ttl).unwrap();
    let k = Kurad::start(dir);
    let get = |p: &str| curl(&format!("http://{}{p}", k.manager), &[]);

    let r = get("/conf/vhosts.xml");
    assert_eq!((r.status, r.text()), (200, vhosts.clone()));
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let r = get("/conf/ttl.txt?vhost=a.test");
    assert_eq!((r.status, r.text()), (200, ttl.to_string()));
    // A vhost without the file has no such rules.
    let r = get("/conf/bypass.txt?vhost=a.test");
    assert_eq!((r.status, r.text()), (200, String::new()));
    for (path, status) in [
        ("/conf/ttl.txt", 400),
        ("/conf/ttl.txt?vhost=nope.test", 404),
        ("/conf/ttl.txt?vhost=../../etc", 404),
    ] {
        let r = get(path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], "ERROR");
    }
    // The `.json`/`.xml` forms of the monitoring endpoints choose their format.
    let r = get("/monitoring/realtime.xml");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("<?xml"), "{}", r.text());
    let r = get("/monitoring/average.json");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["Host"]["VirtualHost"].is_array());
    let cpu: Value = serde_json::from_slice(&get("/monitoring/cpuinfo.json").body).unwrap();
    assert_eq!(cpu["method"], "cpuinfo");
    assert!(cpu["result"]["ProcCount"].is_string(), "{cpu}");
}

#[test]
fn manager_allow_forms_admit_their_addresses_with_their_roles() {
    let origin = Origin::start(|_| Reply::ok("x"));
    // The four forms chapter 3 lists; the <Manager Role> applies where <Allow> has none.
    let server = "<Server><Host><Manager Port=\"0\" Role=\"User\">\
        <Allow Role=\"Admin\">127.0.0.2</Allow>\
        <Allow Role=\"Looker\">127.0.1.10-20</Allow>\
        <Allow Role=\"Admin\">127.0.2.0/24</Allow>\
        <Allow>127.0.3.0/255.255.255.0</Allow>\
        </Manager></Host><Cache><Storage/></Cache></Server>";
    let k = Kurad::start(conf_dir(
        server,
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let status = |ip: &str, path: &str| {
        curl(&format!("http://{}{path}", k.manager), &["--interface", ip]).status
    };
    // (client, its role or None when refused)
    for (ip, role) in [
        ("127.0.0.2", Some("Admin")),
        ("127.0.1.10", Some("Looker")),
        ("127.0.1.20", Some("Looker")),
        ("127.0.2.200", Some("Admin")),
        ("127.0.3.7", Some("User")),
        ("127.0.0.1", None),
        ("127.0.1.9", None),
        ("127.0.1.21", None),
        ("127.0.4.1", None),
    ] {
        // A User endpoint and an Admin endpoint tell the three roles apart.
        let got = (
            status(ip, "/monitoring/vhostslist"),
            status(ip, "/conf/latest"),
        );
        let want = match role {
            Some("Admin") => (200, 200),
            Some("User") => (200, 401),
            Some(_) => (401, 401),
            // Refused: the connection is closed without a reply (curl reports no status).
            None => (0, 0),
        };
        assert_eq!(got, want, "{ip} as {role:?}");
    }
}
