//! The guide's log files (chapter 12) written by a real kurad in front of a real
//! origin: lines are parsed back field by field, rolled files are listed and
//! decompressed, SIGUSR1 reopens, syslog frames reach a UDP socket, and log trace
//! streams over the management port.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// The lines of `path` once it has at least `n` (polling; the writer is asynchronous).
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < until,
            "{} has {} lines, expected {n}:\n{}",
            path.display(),
            lines.len(),
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns `Some`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_dir(k: &Kurad) -> PathBuf {
    k.dir.path().join("logs")
}

/// A request with the headers the access log records.
fn request(k: &Kurad, host: &str, path: &str) -> CurlResponse {
    curl(
        &format!("http://{}{path}", k.http()),
        &[
            "-H",
            &format!("Host: {host}"),
            "-A",
            "Test Agent/1.0",
            "-e",
            "http://ref.test/page",
            "-H",
            "Accept-Encoding: gzip, deflate",
            "-H",
            "X-Forwarded-For: 10.9.8.7",
            "-H",
            "Cookie: a=1; userid=winesoft",
            "-u",
            "alice:secret",
        ],
    )
}

fn origin() -> Origin {
    Origin::start(|s| match s.path.as_str() {
        p if p.starts_with("/hit") => {
            Reply::ok(&"h".repeat(1000)).header("cache-control", "public, max-age=600")
        }
        _ => Reply::ok("nope")
            .status(404)
            .header("cache-control", "no-store"),
    })
}

/// kurad with the default server.xml and one vhost, `a.test`, whose `<Vhost>` adds `extra`.
fn a_test(origin: &Origin, extra: &str) -> Kurad {
    Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, extra)),
    ))
}
#[test]
fn access_log_ston_fields_in_the_guides_order() {
    let origin = origin();
    let log = r#"<Log><Access Local="ON">ON</Access></Log>"#;
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, log)),
    ));
    let started = chrono::Local::now().naive_local();
    assert_eq!(request(&k, "a.test", "/hit/a.jpg?x=1").status, 200);
    assert_eq!(request(&k, "a.test", "/hit/a.jpg?x=1").status, 200);
    assert_eq!(request(&k, "a.test", "/nf").status, 404);
    let lines = wait_lines(&log_dir(&k).join("a.test/access.log"), 4);
    assert_eq!(
        lines[0],
        format!("#Fields: {}", kura::log::access::STON_FIELDS)
    );
    let names: Vec<&str> = lines[0]["#Fields: ".len()..].split(' ').collect();
    let http = k.http();
    for (i, (line, result, status, len)) in [
        (&lines[1], "TCP_MISS", "200", "1000"),
        (&lines[2], "TCP_HIT", "200", "1000"),
        (&lines[3], "TCP_MISS", "404", "4"),
    ]
    .into_iter()
    .enumerate()
    {
        let values: Vec<&str> = line.split(' ').collect();
        assert_eq!(values.len(), names.len(), "{line}");
        let f: std::collections::HashMap<&str, &str> =
            names.iter().copied().zip(values.iter().copied()).collect();
        let when = chrono::NaiveDateTime::parse_from_str(
            &format!("{} {}", f["date"], f["time"]),
            "%Y.%m.%d %H:%M:%S",
        )
        .unwrap();
        assert!(when >= started - chrono::Duration::seconds(1), "{line}");
        assert_eq!(f["s-ip"], http.ip().to_string());
        assert_eq!(f["cs-method"], "GET");
        assert_eq!(f["s-port"], http.port().to_string());
        assert_eq!(f["cs-username"], "alice");
        // XFF="ON" (the default): the header's value, then the client address.
        assert_eq!(f["c-ip"], "10.9.8.7,127.0.0.1");
        assert_eq!(f["cs(User-Agent)"], "Test+Agent/1.0");
        assert_eq!(f["sc-status"], status);
        let sc_bytes: u64 = f["sc-bytes"].parse().unwrap();
        assert!(
            sc_bytes > len.parse::<u64>().unwrap(),
            "head + body: {line}"
        );
        f["time-taken"].parse::<u64>().unwrap();
        assert_eq!(f["cs-referer"], "http://ref.test/page");
        assert_eq!(f["sc-resinfo"], "-");
        assert_eq!(f["cs-range"], "-");
        assert_eq!(f["sc-cachehit"], result, "line {i}: {line}");
        assert_eq!(f["cs-acceptencoding"], "gzip+deflate");
        f["session-id"].parse::<u64>().unwrap();
        assert_eq!(f["sc-content-length"], len);
        if i < 2 {
            assert_eq!(f["cs-uri-stem"], "/hit/a.jpg");
            assert_eq!(f["cs-uri-query"], "x=1");
        } else {
            assert_eq!((f["cs-uri-stem"], f["cs-uri-query"]), ("/nf", "-"));
        }
    }
}

#[test]
fn access_log_apache_and_custom_forms() {
    let origin = origin();
    let apache = r#"<Log><Access Form="apache" XFF="OFF" Local="ON">ON</Access></Log>"#;
    let custom = r#"<Log><Access Form="custom" XFF="TrimCIP" Local="ON">ON</Access>
      <AccessFormat>%a %A %b id=%{userid}C %f %h %H "%{user-agent}i" %m %P "%r" %s %t %X %I %O %e %S %K %404{Referer}i %!404{Referer}i %q</AccessFormat></Log>"#;
    // A loopback client is not logged unless Local="ON" (the guide's default is OFF).
    let quiet = r#"<Log><Access>ON</Access></Log>"#;
    let iis = r#"<Log><Access Form="iis" XFF="OFF" Local="ON">ON</Access></Log>"#;
    let vhosts = vhost("apache.test", origin.addr, apache)
        + &vhost("custom.test", origin.addr, custom)
        + &vhost("iis.test", origin.addr, iis)
        + &vhost("quiet.test", origin.addr, quiet);
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts_xml(&vhosts)));
    let http = k.http();
    request(&k, "quiet.test", "/hit/q.jpg");
    request(&k, "apache.test", "/hit/b.jpg?y=2");
    request(&k, "custom.test", "/hit/c.jpg?z=3");
    request(&k, "custom.test", "/nf");
    let iis_sent = chrono::Utc::now().naive_utc();
    request(&k, "iis.test", "/hit/d.jpg?w=4");

    let a = wait_lines(&log_dir(&k).join("apache.test/access.log"), 1);
    assert_eq!(a.len(), 1, "no #Fields line in the apache form: {a:?}");
    // 127.0.0.1 - alice [27/Jun/2012:16:52:24 +0000] "GET /hit/b.jpg?y=2 HTTP/1.1" 200 1000 "ref" "ua"
    let (head, rest) = a[0].split_once(" [").unwrap();
    assert_eq!(head, "127.0.0.1 - alice");
    let (stamp, rest) = rest.split_once("] ").unwrap();
    chrono::DateTime::parse_from_str(stamp, "%d/%b/%Y:%H:%M:%S %z").unwrap();
    assert_eq!(
        rest,
        "\"GET /hit/b.jpg?y=2 HTTP/1.1\" 200 1000 \"http://ref.test/page\" \"Test Agent/1.0\""
    );

    let c = wait_lines(&log_dir(&k).join("custom.test/access.log"), 2);
    let expect = |status: &str, path: &str, file: &str, referers: (&str, &str), query: &str| {
        vec![
            "127.0.0.1".to_string(),
            http.ip().to_string(),
            if status == "200" { "1000" } else { "4" }.into(),
            "id=winesoft".into(),
            file.into(),
            "custom.test".into(),
            "http".into(),
            "\"Test Agent/1.0\"".into(),
            "GET".into(),
            http.port().to_string(),
            format!("\"GET {path} HTTP/1.1\""),
            status.into(),
        ]
        .into_iter()
        .chain(["DATE", "TIME", "C", "I", "O", "E", "TCP_MISS", "HTTP/1.1"].map(String::from))
        .chain([referers.0.into(), referers.1.into(), query.into()])
        .collect::<Vec<String>>()
    };
    for (line, want) in [
        (
            &c[0],
            expect(
                "200",
                "/hit/c.jpg?z=3",
                "c.jpg",
                ("-", "http://ref.test/page"),
                "z=3",
            ),
        ),
        (
            &c[1],
            expect("404", "/nf", "nf", ("http://ref.test/page", "-"), "-"),
        ),
    ] {
        // Split on spaces outside quotes.
        let mut got: Vec<String> = Vec::new();
        let mut quoted = false;
        for part in line.split(' ') {
            if quoted {
                let last = got.last_mut().unwrap();
                last.push(' ');
                last.push_str(part);
            } else {
                got.push(part.to_string());
            }
            quoted ^= part.matches('"').count() % 2 == 1;
        }
        assert_eq!(got.len(), want.len(), "{line}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            match w.as_str() {
                "DATE" => {
                    chrono::NaiveDate::parse_from_str(g, "%Y-%m-%d").unwrap();
                }
                "TIME" => {
                    chrono::NaiveTime::parse_from_str(g, "%H:%M:%S").unwrap();
                }
                "I" | "O" | "E" => {
                    g.parse::<u64>().unwrap();
                }
                _ => assert_eq!(g, w, "field {i} of {line}"),
            }
        }
    }
    // IIS's default W3C fields, the date and time in UTC.
    let i = wait_lines(&log_dir(&k).join("iis.test/access.log"), 2);
    assert_eq!(i[0], format!("#Fields: {}", kura::log::access::IIS_FIELDS));
    let f: Vec<&str> = i[1].split(' ').collect();
    assert_eq!(f.len(), i[0].split(' ').count() - 1, "{}", i[1]);
    let at =
        chrono::NaiveDateTime::parse_from_str(&format!("{} {}", f[0], f[1]), "%Y-%m-%d %H:%M:%S")
            .unwrap();
    let skew = (at - iis_sent).num_seconds();
    assert!(
        (-1..=5).contains(&skew),
        "not UTC: {} against {iis_sent}",
        i[1]
    );
    assert_eq!(
        f[2..14],
        [
            &http.ip().to_string(),
            "GET",
            "/hit/d.jpg",
            "w=4",
            &http.port().to_string(),
            "alice",
            "127.0.0.1",
            "Test+Agent/1.0",
            "http://ref.test/page",
            "200",
            "0",
            "0",
        ],
        "{}",
        i[1]
    );
    f[14].parse::<u64>().unwrap();

    // Lines are written in order: had quiet.test logged its loopback client, it
    // would be there by now.
    assert!(!log_dir(&k).join("quiet.test/access.log").exists());
}

#[test]
fn bad_log_attributes_are_placed_errors() {
    let origin = origin();
    let dir = conf_dir(
        &server_xml(r#"<InfoLog Type="time" Unit="1441">ON</InfoLog>"#, ""),
        &vhosts_xml(&vhost(
            "a.test",
            origin.addr,
            r#"<Log><Access Type="both" Unit="60">ON</Access><Origin Type="size">ON</Origin><Monitoring SysLog="ON">ON</Monitoring></Log>"#,
        )),
    );
    let out = std::process::Command::new(kurad_bin())
        .args(["check", "--conf-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for want in [
        "server.xml:7: <InfoLog>: Unit: \"1441\" is not a number of minutes from 1 to 1440",
        "vhosts.xml:5: <Access>: Unit: Type \"both\" needs \"minutes, MB\"",
        "vhosts.xml:5: <Origin>: Type \"size\" needs a Unit in MB",
        "vhosts.xml:5: <Monitoring>: SysLog=\"ON\" needs at least one <SysLog Priority Dest> child",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
}

/// A configuration with a.test's access log as `access` (its `<Access>` element)
/// says, and the path its file will have, its directory made so a test can put
/// something there first.
fn access_log_in_place(access: &str) -> (Origin, tempfile::TempDir, PathBuf) {
    let origin = origin();
    let dir = conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost(
            "a.test",
            origin.addr,
            &format!("<Log>{access}</Log>"),
        )),
    );
    let vhost_logs = dir.path().join("logs/a.test");
    std::fs::create_dir_all(&vhost_logs).unwrap();
    (origin, dir, vhost_logs.join("access.log"))
}

/// The writer is stalled on a FIFO nobody reads (as on a hung disk) with a queue of
/// four lines: every request is still served, the lines that do not fit are
/// dropped, and the drops show in `/metrics` and in `System.Log.Dropped`.
#[test]
fn a_stalled_log_drops_lines_and_counts_them_without_stalling_requests() {
    let (_origin, dir, access_log) = access_log_in_place(r#"<Access Local="ON">ON</Access>"#);
    assert!(std::process::Command::new("mkfifo")
        .arg(&access_log)
        .status()
        .unwrap()
        .success());
    let k = Kurad::start_args(dir, &["--log-queue", "4"]);
    for _ in 0..20 {
        assert_eq!(get(k.http(), "a.test", "/hit/x.jpg").status, 200);
    }
    let dropped = access_lines_dropped(&k);
    // The writer takes what waits (at most the bound, four) and blocks opening
    // the FIFO; four more may wait behind it: every later line is dropped.
    assert!(dropped >= 20 - 2 * 4, "{dropped} dropped");
    // The per-second figure: drops keep happening while we look.
    wait_for("System.Log.Dropped above 0", || {
        get(k.http(), "a.test", "/hit/x.jpg");
        let v: serde_json::Value = serde_json::from_slice(
            &curl(&format!("http://{}/monitoring/realtime", k.manager), &[]).body,
        )
        .unwrap();
        (v["Host"]["System"]["Log"]["Dropped"].as_i64().unwrap() > 0).then_some(())
    });
}

/// a.test's access log drop counter, from `/metrics`.
fn access_lines_dropped(k: &Kurad) -> u64 {
    let metrics = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("kura_log_dropped_lines_total{log=\"access\",vhost=\"a.test\"} ")
        })
        .unwrap_or_else(|| panic!("no access drop counter:\n{metrics}"))
        .parse()
        .unwrap()
}

/// The access log is on a full disk (`/dev/full`): every request is still served,
/// and the lines the file refuses are dropped and counted, none uncounted.
#[test]
fn a_full_log_disk_drops_lines_and_counts_them_without_stalling_requests() {
    let (_origin, dir, access_log) = access_log_in_place(r#"<Access Local="ON">ON</Access>"#);
    std::os::unix::fs::symlink("/dev/full", &access_log).unwrap();
    let k = Kurad::start(dir);
    // Lines of over 4 KiB (long URLs): the writer's 64 KiB file buffer holds at most
    // 15 of them, waiting for the disk to take them.
    let path = format!("/hit/{}.jpg", "x".repeat(4096));
    let requests = 40;
    for _ in 0..requests {
        assert_eq!(get(k.http(), "a.test", &path).status, 200);
    }
    let dropped = wait_for("the refused lines counted", || {
        let n = access_lines_dropped(&k);
        (n >= requests - 15).then_some(n)
    });
    assert!(dropped <= requests, "{dropped} dropped of {requests} lines");
    assert!(
        k.wait_log("cannot write the log file"),
        "the failure is reported: {}",
        k.log()
    );
}

/// logrotate moves the file and sends SIGUSR1: lines go on into the moved file
/// until then, and into a fresh `access.log` (with its `#Fields:` line) after.
#[test]
fn sigusr1_reopens_the_log_files() {
    let origin = origin();
    let k = a_test(&origin, r#"<Log><Access Local="ON">ON</Access></Log>"#);
    let live = log_dir(&k).join("a.test/access.log");
    let moved = log_dir(&k).join("a.test/access.log.1");
    get(k.http(), "a.test", "/hit/1");
    wait_lines(&live, 2);
    std::fs::rename(&live, &moved).unwrap();
    get(k.http(), "a.test", "/hit/2");
    let before = wait_lines(&moved, 3);
    assert!(before[2].contains(" /hit/2 "), "{before:?}");
    k.signal("USR1");
    assert!(k.wait_log("log files reopened"), "{}", k.log());
    get(k.http(), "a.test", "/hit/3");
    let after = wait_lines(&live, 2);
    assert!(after[0].starts_with("#Fields: "), "{after:?}");
    assert!(after[1].contains(" /hit/3 "), "{after:?}");
    assert_eq!(std::fs::read_to_string(&moved).unwrap().lines().count(), 3);
}

/// `Type="size"` with a tiny `Unit` (a fraction of a MB, our extension), two files
/// kept, gzipped: the rolled files are named as the guide shows and hold whole lines.
#[test]
fn size_rolling_keeps_retention_and_compresses() {
    let origin = origin();
    let k = a_test(
        &origin,
        r#"<Log><Access Type="size" Unit="0.002" Retention="2" Compression="ON" Local="ON">ON</Access></Log>"#,
    );
    for i in 0..60 {
        assert_eq!(get(k.http(), "a.test", &format!("/hit/{i}")).status, 200);
    }
    let dir = log_dir(&k).join("a.test");
    // Lines roll before the one that would not fit: the last is in the live file,
    // and once it is there nothing rolls any more.
    let live = wait_for("the last request in the live file", || {
        // Missing for a moment while it rolls.
        let live = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
        live.contains(" /hit/59 ").then_some(live)
    });
    let name = regex_like_rolled;
    let rolled = wait_for("two compressed rolled files and nothing else", || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "access.log")
            .collect();
        names.sort();
        (names.len() == 2 && names.iter().all(|n| name(n))).then_some(names)
    });
    // The requests each kept file logged (cs-uri-stem `/hit/<i>`), oldest file first.
    let mut kept = Vec::new();
    for r in &rolled {
        let text = gunzip(&dir.join(r));
        assert!(text.len() <= 2098, "{r}: {} bytes", text.len());
        let mut it = text.lines();
        assert!(it.next().unwrap().starts_with("#Fields: date time "));
        for l in it {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 20, "{l}");
            kept.push(f[4]["/hit/".len()..].parse::<u32>().unwrap());
        }
    }
    kept.extend(live.lines().skip(1).map(|l| {
        l.split(' ').nth(4).unwrap()["/hit/".len()..]
            .parse::<u32>()
            .unwrap()
    }));
    // The newest lines are kept, in order and without a gap; the oldest were pruned.
    let first = kept[0];
    assert!(first > 0, "nothing pruned: {kept:?}");
    assert_eq!(kept, (first..60).collect::<Vec<_>>());
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Time rolling end to end: kurad's wall clock starts at 03:04:52 (libfaketime), so
/// the 1-minute access log rolls at 03:05:00 into the period's file, compressed, and
/// `Retention="1"` deletes the two older rolled files left there: older by the times
/// in their names, although their mtimes are newer.
#[test]
fn time_rolling_at_the_boundary_compresses_and_keeps_retention() {
    let (_origin, dir, access_log) = access_log_in_place(
        r#"<Access Type="time" Unit="1" Retention="1" Compression="ON" Local="ON">ON</Access>"#,
    );
    let logs = access_log.parent().unwrap().to_path_buf();
    let tomorrow = std::time::SystemTime::now() + Duration::from_secs(86_400);
    for old in ["access_20251231_2358.log", "access_20251231_2359.log.gz"] {
        let f = std::fs::File::create(logs.join(old)).unwrap();
        f.set_modified(tomorrow).unwrap();
    }
    let k = Kurad::start_env(
        dir,
        &[],
        &[
            ("LD_PRELOAD", libfaketime()),
            ("FAKETIME", Path::new("@2026-01-02 03:04:52")),
            ("FAKETIME_DONT_FAKE_MONOTONIC", Path::new("1")),
        ],
    );
    assert_eq!(request(&k, "a.test", "/hit/a.jpg").status, 200);
    let rolled = "access_20260102_0304.log.gz";
    let until = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        if names.iter().any(|n| n == rolled) || Instant::now() > until {
            break names;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(names, [rolled], "{}", k.log());
    let text = gunzip(&logs.join(rolled));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("#Fields: "), "{text}");
    assert!(
        lines[1].starts_with("2026.01.02 03:04:5") && lines[1].contains(" /hit/a.jpg "),
        "the line of the period: {text}"
    );
    // The next line opens a fresh live file with its header.
    assert_eq!(request(&k, "a.test", "/hit/b.jpg").status, 200);
    let live = wait_lines(&logs.join("access.log"), 2);
    assert!(live[1].starts_with("2026.01.02 03:05:"), "{live:?}");
}

/// `access_YYYYMMDD_HHMMSS[_n].log.gz`.
fn regex_like_rolled(n: &str) -> bool {
    let Some(rest) = n
        .strip_prefix("access_")
        .and_then(|r| r.strip_suffix(".log.gz"))
    else {
        return false;
    };
    let parts: Vec<&str> = rest.split('_').collect();
    parts.len() >= 2
        && parts[0].len() == 8
        && parts[1].len() == 6
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The info log has what kurad logs at info level; the sys log its warnings.
#[test]
fn info_and_sys_logs_carry_kurads_own_messages() {
    let origin = origin();
    // <Dns> is recognised, not implemented: kurad warns about it at start.
    let k = a_test(&origin, "<Log><Dns>ON</Dns></Log>");
    let info = log_dir(&k).join("info.log");
    let ready = wait_for("kurad ready in info.log", || {
        std::fs::read_to_string(&info)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("kurad ready"))
            .map(str::to_string)
    });
    let (stamp, rest) = ready.split_at(19);
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y.%m.%d %H:%M:%S").unwrap();
    assert!(rest.starts_with(" [INFO] kurad ready version="), "{ready}");
    let sys = log_dir(&k).join("sys.log");
    let warned = wait_for("the not-implemented warning in sys.log", || {
        std::fs::read_to_string(&sys)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("recognised, not implemented"))
            .map(str::to_string)
    });
    assert!(
        warned.contains("[WARN]") && warned.contains("Log/Dns"),
        "{warned}"
    );
    let sys_text = std::fs::read_to_string(&sys).unwrap();
    assert!(!sys_text.contains("[INFO]"), "{sys_text}");
}

/// An origin that refuses connections: the originerror log has the guide's fields,
/// and with `SysLog="ON"` each line also reaches the `<SysLog>` receivers as an
/// RFC 3164 frame tagged `kura/ORIGINERROR`.
#[test]
fn origin_errors_are_logged_and_forwarded_to_syslog() {
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dest = receiver.local_addr().unwrap();
    // A port nothing listens on: bind one, note it, close it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cache = format!(
        r#"<OriginErrorLog SysLog="ON">ON<SysLog Priority="local3.info" Dest="{dest}" /></OriginErrorLog>"#
    );
    let k = Kurad::start(conf_dir(
        &server_xml(&cache, ""),
        &vhosts_xml(&vhost("a.test", dead, "")),
    ));
    assert_eq!(get(k.http(), "a.test", "/x.jpg?q=1").status, 502);
    let lines = wait_lines(&log_dir(&k).join("originerror.log"), 2);
    assert_eq!(
        lines[0],
        format!("#Fields: {}", kura::log::lines::ORIGIN_ERROR_FIELDS)
    );
    let f: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(f.len(), 11, "{}", lines[1]);
    chrono::NaiveDateTime::parse_from_str(&format!("{} {}", f[0], f[1]), "%Y.%m.%d %H:%M:%S")
        .unwrap();
    assert_eq!(
        &f[2..],
        [
            "[a.test]",
            "[ERROR]",
            "127.0.0.1",
            "127.0.0.1",
            "GET",
            "/x.jpg?q=1",
            f[8],
            "Connect-Fail",
            "-"
        ]
    );
    f[8].parse::<u64>().unwrap();
    let mut buf = [0u8; 2048];
    let n = receiver.recv(&mut buf).unwrap();
    let frame = String::from_utf8_lossy(&buf[..n]).into_owned();
    // <PRI> = local3 (19) * 8 + info (6); then "Mmm dd hh:mm:ss", the host name, the tag.
    let rest = frame
        .strip_prefix("<158>")
        .unwrap_or_else(|| panic!("{frame}"));
    chrono::NaiveTime::parse_from_str(&rest[7..15], "%H:%M:%S").unwrap();
    // HOSTNAME is <Host><Name> (the system's name when it is not set), as /monitoring shows it.
    let realtime: serde_json::Value = serde_json::from_slice(
        &curl(&format!("http://{}/monitoring/realtime", k.manager), &[]).body,
    )
    .unwrap();
    let host = realtime["Host"]["Name"].as_str().unwrap();
    assert_eq!(
        &rest[16..],
        format!("{host} kura/ORIGINERROR: {}", lines[1]),
        "{frame}"
    );
}

/// Log trace: the recent lines, then new lines live, on one chunked response.
#[test]
fn logtrace_streams_recent_then_live_lines() {
    let origin = origin();
    let k = a_test(&origin, r#"<Log><Access Local="ON">OFF</Access></Log>"#);
    // The info log's recent lines include kurad's start (once the writer took it).
    wait_for("kurad ready in the info log's recent lines", || {
        let info = curl(
            &format!("http://{}/monitoring/logtrace/info?follow=OFF", k.manager),
            &[],
        );
        assert_eq!(info.status, 200);
        info.text().contains("[INFO] kurad ready").then_some(())
    });
    let r = curl(
        &format!("http://{}/monitoring/logtrace/access", k.manager),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Follow the access log (OFF: no file, but log trace works, as the guide says).
    let mut s = std::net::TcpStream::connect(k.manager).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{BufRead, Write};
    write!(
        s,
        "GET /monitoring/logtrace/access?vhost=a.test HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    // The follower is subscribed once the head is out; each request is now a chunk.
    get(k.http(), "a.test", "/hit/live.jpg");
    let mut seen = String::new();
    while !seen.contains("/hit/live.jpg") {
        let mut l = String::new();
        assert!(
            reader.read_line(&mut l).unwrap() > 0,
            "stream ended: {seen}"
        );
        seen.push_str(&l);
    }
    assert!(seen.contains(" TCP_MISS "), "{seen}");
    assert!(!log_dir(&k).join("a.test/access.log").exists());
}

/// The monitoring log: one line per period with the vhost's `VirtualHost` entry of
/// `/monitoring/average` (JSON), after the local time.
#[test]
fn monitoring_log_writes_the_vhosts_five_minute_averages() {
    let origin = origin();
    let k = Kurad::start_args(
        conf_dir(
            &server_xml("", ""),
            &vhosts_xml(
                &(vhost(
                    "a.test",
                    origin.addr,
                    r#"<Log><Monitoring Form="json">ON</Monitoring></Log>"#,
                ) + &vhost(
                    "b.test",
                    origin.addr,
                    r#"<Log><Monitoring Form="xml">ON</Monitoring></Log>"#,
                )),
            ),
        ),
        &["--monitoring-log-secs", "1"],
    );
    let lines = wait_lines(&log_dir(&k).join("a.test/monitoring.log"), 1);
    let (stamp, json) = lines[0].split_at(19);
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y.%m.%d %H:%M:%S").unwrap();
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Name"], "a.test");
    let average: serde_json::Value = serde_json::from_slice(
        &curl(&format!("http://{}/monitoring/average", k.manager), &[]).body,
    )
    .unwrap();
    let vh = &average["Host"]["VirtualHost"][0];
    let keys =
        |o: &serde_json::Value| -> Vec<String> { o.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&v), keys(vh));

    // Form="xml": the same entry as one line of well-formed XML.
    let lines = wait_lines(&log_dir(&k).join("b.test/monitoring.log"), 1);
    let (stamp, xml) = lines[0].split_at(19);
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y.%m.%d %H:%M:%S").unwrap();
    let mut r = quick_xml::Reader::from_str(xml.trim());
    let mut elements = Vec::new();
    loop {
        match r.read_event().unwrap_or_else(|e| panic!("{e}: {xml}")) {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if elements.is_empty() {
                    let vhost = e.try_get_attribute("Name").unwrap().unwrap();
                    assert_eq!(&*vhost.value, b"b.test", "{xml}");
                }
                elements.push(name);
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(elements[0], "VirtualHost", "{xml}");
    assert!(elements.len() > 10, "{xml}");
}

/// `<ServiceAccess>` (chapter 14): a refused client's connection is closed before any
/// request and written to the deny log with the rule that refused it; the counts reach
/// `/monitoring/realtime` and `/metrics`; a reload applies new rules to new connections
/// and a bad rule is rejected with its place. The management port is not affected.
#[test]
fn service_access_refuses_clients_and_writes_the_deny_log() {
    let origin = origin();
    let with_access = |access: &str| {
        server_xml("", "").replace(
            "</Host>",
            &format!("<SNMP Port=\"0\" Status=\"Active\" />\n{access}\n  </Host>"),
        )
    };
    let k = Kurad::start(conf_dir(
        &with_access(
            r#"<ServiceAccess Default="Allow">
      <Allow>127.0.0.2</Allow>
      <Deny>127.0.0.0/8</Deny>
    </ServiceAccess>"#,
        ),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let url = format!("http://{}/hit/a.jpg", k.http());
    let from = |ip: &str| curl(&url, &["-H", "Host: a.test", "--interface", ip]).status;
    assert_eq!(from("127.0.0.1"), 0, "127.0.0.1 is denied by 127.0.0.0/8");
    assert_eq!(from("127.0.0.2"), 200, "the earlier <Allow> wins");
    assert_eq!(from("127.0.0.3"), 0);
    assert_eq!(origin.count("/hit/a.jpg"), 1);

    let lines = wait_lines(&log_dir(&k).join("deny.log"), 3);
    assert_eq!(
        lines[0],
        format!("#Fields: {}", kura::log::lines::DENY_FIELDS)
    );
    for (line, ip) in lines[1..].iter().zip(["127.0.0.1", "127.0.0.3"]) {
        let f: Vec<&str> = line.split(' ').collect();
        chrono::NaiveDateTime::parse_from_str(&format!("{} {}", f[0], f[1]), "%Y.%m.%d %H:%M:%S")
            .unwrap();
        assert_eq!(&f[2..], [ip, "127.0.0.0/8"], "{line}");
    }
    let metrics = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    for sample in [
        "kura_service_access_total{result=\"allow\"} 1",
        "kura_service_access_total{result=\"deny\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == sample), "{sample}\n{metrics}");
    }
    // The last second's counts: realtime shows a second the refusals fell in.
    wait_for("ServiceAccess.Deny in realtime", || {
        let realtime: serde_json::Value = serde_json::from_slice(
            &curl(&format!("http://{}/monitoring/realtime", k.manager), &[]).body,
        )
        .unwrap();
        let counts = &realtime["Host"]["System"]["ServiceAccess"];
        (counts["Deny"].as_u64() >= Some(1)).then_some(())
    });
    // SNMP ServiceAccess.Deny for minute 0 (the last second), from the same counts.
    let agent = k.snmp().to_string();
    wait_for("ServiceAccess.Deny by snmpget", || {
        let out = std::process::Command::new("snmpget")
            .args(["-v2c", "-c", "public", "-On", "-Oqv", "-t", "1", "-r", "0"])
            .args([agent.as_str(), ".1.3.6.1.4.1.40001.1.3.31.0"])
            .output()
            .expect("snmpget (apt-get install snmp)");
        let value: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (value >= 1).then_some(())
    });

    // Default="Deny" turns the list into a whitelist, from the reload on.
    std::fs::write(
        k.conf_path().join("server.xml"),
        with_access(
            r#"<ServiceAccess Default="Deny">
      <Allow>127.0.0.2</Allow>
    </ServiceAccess>"#,
        ),
    )
    .unwrap();
    let reload = format!("http://{}/conf/reload", k.manager);
    assert_eq!(curl(&reload, &[]).status, 200);
    assert_eq!(from("127.0.0.2"), 200);
    assert_eq!(from("127.0.0.1"), 0);
    let lines = wait_lines(&log_dir(&k).join("deny.log"), 4);
    assert!(lines[3].ends_with(" 127.0.0.1 Default"), "{}", lines[3]);

    // A rule that is no address is refused with its place; the whitelist stays.
    std::fs::write(
        k.conf_path().join("server.xml"),
        with_access("<ServiceAccess>\n<Deny>127.0.0.300</Deny>\n</ServiceAccess>"),
    )
    .unwrap();
    let r = curl(&reload, &[]);
    assert_eq!(r.status, 500);
    let reply: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let error = reply["errors"][0].as_str().unwrap_or_default();
    assert!(
        error.starts_with("server.xml:6: <Deny>: \"127.0.0.300\" is not an IP"),
        "{reply}"
    );
    assert_eq!(from("127.0.0.1"), 0);
    assert_eq!(from("127.0.0.2"), 200);
}
