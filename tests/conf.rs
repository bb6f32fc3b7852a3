//! The configuration lifecycle through the management API, as an operator
//! drives it with curl and tar: every applied configuration is archived
//! (`DATE_TIME_HASH.tgz` in the state directory), `/conf/history` and
//! `/conf/latest` list it, `/conf/download` returns it, `/conf/restore` and
//! `/conf/upload` put one in force after validating it, and a rejected one
//! changes nothing. Also the `key=JUSTDOIT` commands: cacheclear, terminate,
//! restart.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn api(k: &Kurad, path: &str) -> CurlResponse {
    curl(&format!("http://{}{path}", k.manager), &[])
}

fn json(r: &CurlResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// `/conf/history` entries, oldest first.
fn history(k: &Kurad) -> Vec<Value> {
    let r = api(k, "/conf/history");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)["history"].as_array().unwrap().clone()
}

fn vhost_names(k: &Kurad) -> Vec<String> {
    let v = json(&api(k, "/monitoring/vhostslist"));
    v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

fn vhosts_with(origin: SocketAddr, names: &[&str]) -> String {
    vhosts_xml(
        &names
            .iter()
            .map(|n| vhost(n, origin, ""))
            .collect::<String>(),
    )
}

/// Packs `server_xml` and `vhosts_xml` the way an operator would: `tar czf`.
fn operator_tgz(server_xml: &str, vhosts_xml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("server.xml"), server_xml).unwrap();
    std::fs::write(conf.join("vhosts.xml"), vhosts_xml).unwrap();
    let tgz = dir.path().join("conf.tgz");
    let st = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&conf)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    (dir, tgz)
}

fn upload(k: &Kurad, path: &str, args: &[&str]) -> (u16, Value) {
    let mut all = vec!["-X", "POST"];
    all.extend(args);
    let r = curl(&format!("http://{}{path}", k.manager), &all);
    (r.status, json(&r))
}

/// `curl -F field=@file` to `/conf/upload`.
fn post_form(k: &Kurad, field: &str, file: &Path) -> (u16, Value) {
    upload(
        k,
        "/conf/upload",
        &["-F", &format!("{field}=@{}", file.display())],
    )
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[test]
fn every_applied_configuration_is_archived_listed_and_downloadable() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let first = vhosts_with(origin.addr, &["a.test"]);
    let k = Kurad::start(conf_dir(&server_xml("", ""), &first));

    let h = history(&k);
    assert_eq!(h.len(), 1, "{h:?}");
    let loaded = &h[0];
    assert_eq!(
        (loaded["id"].as_str(), loaded["type"].as_str()),
        (Some("1"), Some("loaded"))
    );
    let hash = loaded["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 40);
    assert!(hash
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert_eq!(loaded["ver"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    let size: usize = loaded["size"].as_str().unwrap().parse().unwrap();
    assert_eq!(size, server_xml("", "").len() + first.len());
    let date = loaded["conf-date"].as_str().unwrap();
    let time = loaded["conf-time"].as_str().unwrap();
    assert_eq!((date.len(), time.len()), (10, 8), "{date} {time}");

    // The archive is in the state directory under the guide's name.
    let archive = format!(
        "{}_{}_{hash}.tgz",
        date.replace('-', ""),
        time.replace(':', "")
    );
    assert!(
        k.conf_path().join("state/conf").join(&archive).is_file(),
        "{archive}"
    );

    // A reload that changes nothing records nothing; a changed one does.
    assert_eq!(api(&k, "/conf/reload").status, 200);
    assert_eq!(history(&k).len(), 1);
    k.write_vhosts(&vhosts_with(origin.addr, &["a.test", "b.test"]));
    assert_eq!(api(&k, "/conf/reload").status, 200);
    let h = history(&k);
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[1]["id"].as_str(), h[1]["type"].as_str()),
        (Some("2"), Some("modified"))
    );
    assert_ne!(h[1]["hash"], h[0]["hash"]);
    let latest = json(&api(&k, "/conf/latest"));
    assert_eq!(latest["history"].as_array().unwrap(), &[h[1].clone()]);

    // Download id 1 and unpack it with tar: the files as they were.
    let r = api(&k, "/conf/download?id=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-compressed"));
    assert!(r.header("content-disposition").unwrap().contains(&archive));
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("a.tgz"), &r.body).unwrap();
    let st = Command::new("tar")
        .args(["xzf", "a.tgz"])
        .current_dir(out.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(read(out.path(), "vhosts.xml"), first);
    assert_eq!(read(out.path(), "server.xml"), server_xml("", ""));
    // By hash (any case) too; the hash wins over the id.
    let by_hash = api(
        &k,
        &format!("/conf/download?id=2&hash={}", hash.to_lowercase()),
    );
    assert_eq!(by_hash.body, r.body);
    for (path, status) in [
        ("/conf/download?id=99", 404),
        (
            "/conf/download?hash=0000000000000000000000000000000000000000",
            404,
        ),
        ("/conf/download", 400),
        ("/conf/download?id=x", 400),
    ] {
        let r = api(&k, path);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(json(&r)["status"], "ERROR", "{path}");
    }

    // The history survives a restart (and the start, unchanged, adds nothing).
    let dir = {
        let mut k = k;
        k.signal("TERM");
        k.child.wait().unwrap();
        std::mem::replace(&mut k.dir, tempfile::tempdir().unwrap())
    };
    let k = Kurad::start(dir);
    assert_eq!(history(&k), h);
}

#[test]
fn restore_and_upload_validate_first_and_keep_serving() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let one = vhosts_with(origin.addr, &["a.test"]);
    let two = vhosts_with(origin.addr, &["a.test", "b.test"]);
    let k = Kurad::start(conf_dir(&server_xml("", ""), &one));
    k.write_vhosts(&two);
    assert_eq!(api(&k, "/conf/reload").status, 200);
    let looper = ClientLoop::start(k.http(), "a.test", "/loop", |r| r.status == 200);

    // A bad upload is rejected with its place, and nothing changes.
    let bad_vhosts = two.replace(
        "<Vhost Name=\"b.test\">",
        "<Vhost Name=\"b.test\" Status=\"Sleepy\">",
    );
    let (_d, bad) = operator_tgz(&server_xml("", ""), &bad_vhosts);
    let (status, v) = post_form(&k, "confile", &bad);
    assert_eq!(
        (status, v["status"].as_str(), v["result"].as_str()),
        (500, Some("Fail"), Some("E0004")),
        "{v}"
    );
    let errors = v["errors"].to_string();
    assert!(
        errors.contains("vhosts.xml:7") && errors.contains("Vhost"),
        "{errors}"
    );
    assert_eq!(
        read(k.conf_path(), "vhosts.xml"),
        two,
        "the files are untouched"
    );
    assert_eq!(vhost_names(&k), ["a.test", "b.test"]);
    assert_eq!(history(&k).len(), 2);

    // Not an archive, and no file at all.
    let junk = k.conf_path().join("junk.tgz");
    std::fs::write(&junk, "not a tgz").unwrap();
    let (status, v) = post_form(&k, "confile", &junk);
    assert_eq!((status, v["result"].as_str()), (500, Some("E0002")), "{v}");
    let (status, v) = post_form(&k, "other", &junk);
    assert_eq!((status, v["result"].as_str()), (500, Some("E0001")), "{v}");
    assert_eq!(history(&k).len(), 2);

    // Restore id 1: applied, written back to the files, recorded as a new entry.
    let r = api(&k, "/conf/restore?id=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(vhost_names(&k), ["a.test"]);
    assert_eq!(read(k.conf_path(), "vhosts.xml"), one);
    let h = history(&k);
    assert_eq!(h.len(), 3);
    assert_eq!(
        (h[2]["id"].as_str(), h[2]["type"].as_str()),
        (Some("3"), Some("restored"))
    );
    assert_eq!(
        h[2]["hash"], h[0]["hash"],
        "identical settings share the hash"
    );
    // An unknown one fails with 500, as the guide says, and changes nothing.
    let r = api(&k, "/conf/restore?id=42");
    assert_eq!(r.status, 500);
    assert_eq!(history(&k).len(), 3);

    // A good upload, packed with tar by hand: applied and recorded.
    let three = vhosts_with(origin.addr, &["a.test", "c.test"]);
    let (_d, good) = operator_tgz(&server_xml("", ""), &three);
    let (status, v) = post_form(&k, "confile", &good);
    assert_eq!((status, v["result"].as_str()), (200, Some("E0000")), "{v}");
    assert_eq!(vhost_names(&k), ["a.test", "c.test"]);
    assert_eq!(read(k.conf_path(), "vhosts.xml"), three);
    let h = history(&k);
    assert_eq!(h[3]["type"], "uploaded");
    assert_eq!(v["hash"], h[3]["hash"]);

    // One file as the raw body (2.5.16's /conf/upload/vhosts.xml).
    let file = k.conf_path().join("next.xml");
    std::fs::write(&file, &two).unwrap();
    let (status, v) = upload(
        &k,
        "/conf/upload/vhosts.xml",
        &["--data-binary", &format!("@{}", file.display())],
    );
    assert_eq!((status, v["result"].as_str()), (200, Some("E0000")), "{v}");
    assert_eq!(vhost_names(&k), ["a.test", "b.test"]);
    assert_eq!(history(&k)[4]["hash"], h[1]["hash"]);

    // Restore by hash.
    let hash = h[3]["hash"].as_str().unwrap();
    assert_eq!(api(&k, &format!("/conf/restore?hash={hash}")).status, 200);
    assert_eq!(vhost_names(&k), ["a.test", "c.test"]);

    // An archive damaged on disk is refused, and nothing changes. (Ids 2 and 5 share
    // the hash; each has its archive unless both were made in the same second.)
    let two_hash = h[1]["hash"].as_str().unwrap();
    let archives: Vec<_> = std::fs::read_dir(k.dir.path().join("state/conf"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(&format!("_{two_hash}.tgz")))
        .collect();
    assert!(!archives.is_empty(), "the archive of id 2");
    for archive in archives {
        let bytes = std::fs::read(&archive).unwrap();
        std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    }
    let entries = history(&k).len();
    let r = api(&k, &format!("/conf/restore?hash={two_hash}"));
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(json(&r)["status"], "ERROR", "{}", r.text());
    assert_eq!(vhost_names(&k), ["a.test", "c.test"]);
    assert_eq!(read(k.conf_path(), "vhosts.xml"), three);
    assert_eq!(history(&k).len(), entries);

    // No client request failed through any of it.
    let (ok, failed) = looper.finish();
    assert_eq!(failed, 0, "no client request failed");
    assert!(ok > 0);
}

#[test]
fn an_upload_that_cannot_bind_is_rolled_back() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let one = vhosts_with(origin.addr, &["a.test"]);
    let k = Kurad::start(conf_dir(&server_xml("", ""), &one));
    let clash = vhosts_xml(&format!(
        "{}  <Vhost Name=\"b.test\">\n    <Listen>{}</Listen>\n    <Origin><Address>{}</Address></Origin>\n  </Vhost>\n",
        vhost("a.test", origin.addr, ""),
        taken.local_addr().unwrap(),
        origin.addr
    ));
    let (_d, tgz) = operator_tgz(&server_xml("", ""), &clash);
    let (status, v) = post_form(&k, "confile", &tgz);
    assert_eq!((status, v["result"].as_str()), (500, Some("E0003")), "{v}");
    assert!(v["errors"].to_string().contains("cannot listen"), "{v}");
    assert_eq!(
        read(k.conf_path(), "vhosts.xml"),
        one,
        "the files are written back"
    );
    assert_eq!(vhost_names(&k), ["a.test"]);
    assert_eq!(history(&k).len(), 1);
}

#[test]
fn the_multipart_field_name_follows_upload_multipart_name() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let server = server_xml("", "").replace(
        "<Manager Port=\"0\" Role=\"Admin\" />",
        "<Manager Port=\"0\" Role=\"Admin\" UploadMultipartName=\"cfg\" />",
    );
    let k = Kurad::start(conf_dir(&server, &vhosts_with(origin.addr, &["a.test"])));
    let (_d, tgz) = operator_tgz(&server, &vhosts_with(origin.addr, &["b.test"]));
    let (status, v) = post_form(&k, "confile", &tgz);
    assert_eq!((status, v["result"].as_str()), (500, Some("E0001")), "{v}");
    let (status, _) = post_form(&k, "cfg", &tgz);
    assert_eq!(status, 200);
    assert_eq!(vhost_names(&k), ["b.test"]);
}

#[test]
fn cacheclear_acts_only_with_the_key() {
    let origin = Origin::start(|_| Reply::ok("body").header("cache-control", "max-age=600"));
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_with(origin.addr, &["a.test"]),
    ));
    let fetch = || get(k.http(), "a.test", "/obj");
    fetch();
    fetch();
    assert_eq!(origin.count("/obj"), 1, "the second request is a hit");

    let r = json(&api(&k, "/command/cacheclear"));
    assert_eq!(r["status"], "Confirm", "{r}");
    assert!(r["result"].as_str().unwrap().contains("key=JUSTDOIT"));
    fetch();
    assert_eq!(
        origin.count("/obj"),
        1,
        "without the key nothing is cleared"
    );

    let r = json(&api(&k, "/command/cacheclear?key=JUSTDOIT"));
    assert_eq!(
        (r["status"].as_str(), r["result"]["Count"].as_u64()),
        (Some("OK"), Some(1)),
        "{r}"
    );
    fetch();
    assert_eq!(origin.count("/obj"), 2, "the object is fetched again");
}

/// `/command/cleanup?age=1` two days (of kurad's clock, moved by libfaketime) after an
/// object's last hit drops it and keeps one hit since; configuration archives older
/// than `<ConfigHistory>` (1 day) go with their files, except the one in force.
#[test]
fn cleanup_drops_objects_idle_for_age_days_and_archives_past_config_history() {
    let origin = Origin::start(|_| Reply::ok("body").header("cache-control", "max-age=8640000"));
    let clock = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(clock.path(), "+0d\n").unwrap();
    let k = Kurad::start_env(
        conf_dir(
            &server_xml("<ConfigHistory>1</ConfigHistory>", ""),
            &vhosts_with(origin.addr, &["a.test"]),
        ),
        &[],
        &[
            ("LD_PRELOAD", libfaketime()),
            ("FAKETIME_TIMESTAMP_FILE", clock.path()),
            ("FAKETIME_NO_CACHE", Path::new("1")),
            ("FAKETIME_DONT_FAKE_MONOTONIC", Path::new("1")),
        ],
    );
    let fetch = |path: &str| get(k.http(), "a.test", path);
    fetch("/old");
    fetch("/old");
    assert_eq!(origin.count("/old"), 1, "the second request is a hit");
    k.write_vhosts(&vhosts_with(origin.addr, &["a.test", "b.test"]));
    assert_eq!(api(&k, "/conf/reload").status, 200);

    std::fs::write(clock.path(), "+2d\n").unwrap();
    fetch("/new");
    let before = history(&k);
    assert_eq!(before.len(), 2, "{before:?}");
    let archives = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(k.dir.path().join("state/conf"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tgz"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(archives().len(), 2);

    let r = json(&api(&k, "/command/cleanup?age=1"));
    assert_eq!(
        (
            r["result"]["Count"].as_u64(),
            r["result"]["ConfigArchives"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
    fetch("/old");
    assert_eq!(origin.count("/old"), 2, "the idle object was dropped");
    fetch("/new");
    assert_eq!(origin.count("/new"), 1, "the recent one is still a hit");
    let after = history(&k);
    assert_eq!(
        after,
        before[1..],
        "only the configuration in force is left"
    );
    let hash = after[0]["hash"].as_str().unwrap();
    assert!(
        matches!(&archives()[..], [only] if only.ends_with(&format!("_{hash}.tgz"))),
        "{:?}",
        archives()
    );
}

/// Manager addresses kurad logged, in order (one per start).
fn manager_addrs(k: &Kurad) -> Vec<SocketAddr> {
    k.log()
        .lines()
        .filter(|l| l.contains("service=\"manager\""))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
        .filter_map(|a| a.parse().ok())
        .collect()
}

#[test]
fn terminate_and_restart_need_the_key() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let mut k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_with(origin.addr, &["a.test"]),
    ));
    let pid = k.child.id();
    for cmd in ["restart", "terminate"] {
        let r = json(&api(&k, &format!("/command/{cmd}")));
        assert_eq!(r["status"], "Confirm");
    }
    assert!(k.child.try_wait().unwrap().is_none(), "still running");

    // Restart: the same process starts again and serves on fresh ports.
    let r = json(&api(&k, "/command/restart?key=JUSTDOIT"));
    assert_eq!(r["result"], "restarting");
    let until = Instant::now() + Duration::from_secs(20);
    while manager_addrs(&k).len() < 2 {
        assert!(Instant::now() < until, "no second start:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(k.child.id(), pid);
    k.manager = manager_addrs(&k)[1];
    assert!(k.wait_log("kurad restarting"));
    let v = json(&api(&k, "/version"));
    assert_eq!(v["status"], "OK");

    // Terminate: kurad exits cleanly.
    let r = json(&api(&k, "/command/terminate?key=JUSTDOIT"));
    assert_eq!(r["result"], "terminating");
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = k.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "kurad did not exit:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
