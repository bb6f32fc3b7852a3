//! kuractl tested as a user runs it: the real binary against a real kurad and
//! origin (or, for the configuration history whose server side is not on this
//! branch, a stub that speaks the documented contract), reading stdout, stderr
//! and the exit code.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Every top-level subcommand, as `--help`, the man page and the completions list them.
const SUBCOMMANDS: [&str; 13] = [
    "status",
    "check",
    "reload",
    "version",
    "purge",
    "expire",
    "hardpurge",
    "conf",
    "stats",
    "top",
    "completions",
    "man",
    "help",
];

/// What one kuractl run left behind.
struct Run {
    /// Exit code (`None` if killed by a signal).
    code: Option<i32>,
    /// stdout as text.
    stdout: String,
    /// stderr as text.
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (code, out, err) = (self.code, &self.stdout, &self.stderr);
        write!(f, "exit {code:?}\n--- stdout\n{out}--- stderr\n{err}")
    }
}

/// Runs kuractl with `args`, stdout and stderr captured (so stdout is not a terminal).
fn kuractl(args: &[&str]) -> Run {
    Command::new(kuractl_bin())
        .args(args)
        .output()
        .expect("run kuractl")
        .into()
}

/// Runs kuractl against the management port `server`.
fn kuractl_at(server: SocketAddr, args: &[&str]) -> Run {
    let server = server.to_string();
    let mut all = vec!["--server", server.as_str()];
    all.extend_from_slice(args);
    kuractl(&all)
}

/// Two vhosts in front of the known-mix origin: `a.test` gets traffic, `b.test` stays idle.
fn two_vhosts(origin: &Origin) -> Kurad {
    let vhosts = vhosts_xml(&format!(
        "{}{}",
        vhost("a.test", origin.addr, ""),
        vhost("b.test", origin.addr, "")
    ));
    Kurad::start(conf_dir(&server_xml("", ""), &vhosts))
}

/// The stats table as a user reads it: the title line, then each row's cells by column title.
fn parse_table(text: &str) -> (String, HashMap<String, HashMap<String, String>>) {
    let mut lines = text.lines();
    let title = lines.next().expect("a title line").to_string();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    let rows = lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells.len(), header.len(), "one word per cell: {l:?}");
            let row: HashMap<String, String> = header
                .iter()
                .zip(&cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect();
            (cells[0].to_string(), row)
        })
        .collect();
    (title, rows)
}

/// A byte cell (`812B`, `1.21KB`, `3.00MB`) read back as bytes.
fn scaled(cell: &str) -> f64 {
    let digits = cell.trim_end_matches(char::is_alphabetic);
    let power = match &cell[digits.len()..] {
        "B" => 0,
        "KB" => 1,
        "MB" => 2,
        "GB" => 3,
        unit => panic!("unit {unit:?} in {cell:?}"),
    };
    digits.parse::<f64>().unwrap() * 1024f64.powi(power)
}

/// A closed port on loopback: bound, then released.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let help = kuractl(&["--help"]);
    assert_eq!(help.code, Some(0), "{help}");
    let commands = help
        .stdout
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("Options:").next())
        .expect("a Commands section");
    let listed: Vec<&str> = commands
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, SUBCOMMANDS, "{help}");
    for line in [
        "0  success",
        "1  kurad answered an error",
        "2  usage error",
        "3  kurad cannot be reached",
        "--server <SERVER>",
        "[default: 127.0.0.1:10040]",
    ] {
        assert!(help.stdout.contains(line), "{line:?} in {help}");
    }
    let conf = kuractl(&["conf", "--help"]);
    for sub in ["history", "restore", "download", "upload"] {
        assert!(
            conf.stdout.contains(&format!("\n  {sub} ")),
            "{sub} in {conf}"
        );
    }
    let stats = kuractl(&["stats", "--help"]);
    for opt in ["--vhost <V>", "--window <WINDOW>", "--json", "now or 1s"] {
        assert!(stats.stdout.contains(opt), "{opt} in {stats}");
    }
}

#[test]
fn the_man_page_and_completions_come_from_the_same_definitions() {
    let man = kuractl(&["man"]);
    assert_eq!(man.code, Some(0), "{man}");
    assert!(man.stdout.starts_with(".ie \\n(.g .ds Aq"), "roff: {man}");
    assert!(man.stdout.contains(".TH kuractl 1"), "{man}");
    for sub in SUBCOMMANDS
        .iter()
        .chain(&["history", "restore", "download", "upload"])
    {
        assert!(man.stdout.contains(sub), "{sub} in the man page");
    }
    let exit = man
        .stdout
        .split(".SH \"EXIT STATUS\"\n")
        .nth(1)
        .expect("an EXIT STATUS section");
    for code in 0..4 {
        assert!(
            exit.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit {code}: {exit}"
        );
    }
    assert!(exit.contains("kurad cannot be reached"), "{exit}");
    assert!(
        !man.stdout.contains(".SH EXTRA"),
        "the exit codes are not a reflowed paragraph"
    );

    // For packaging: one page per command, so kuractl.1's references resolve.
    let dir = tempfile::tempdir().unwrap();
    let r = kuractl(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut want: Vec<String> = SUBCOMMANDS
        .iter()
        .filter(|s| **s != "help")
        .map(|s| format!("kuractl-{s}.1"))
        .chain(["history", "restore", "download", "upload"].map(|s| format!("kuractl-conf-{s}.1")))
        .chain(["kuractl.1".to_string()])
        .collect();
    want.sort();
    assert_eq!(pages, want);
    let main = std::fs::read_to_string(dir.path().join("kuractl.1")).unwrap();
    assert_eq!(main, man.stdout, "the installed page is the printed one");

    let bash = kuractl(&["completions", "bash"]);
    assert_eq!(bash.code, Some(0), "{bash}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kuractl.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", Run::from(check));
    for sub in SUBCOMMANDS {
        assert!(bash.stdout.contains(sub), "{sub} completes in bash");
    }
    for shell in ["zsh", "fish"] {
        let r = kuractl(&["completions", shell]);
        assert!(r.code == Some(0) && r.stdout.contains("hardpurge"), "{r}");
    }
}

#[test]
fn usage_errors_exit_2_without_touching_kurad() {
    // The server is a closed port: a usage error must be found before any call (else 3).
    let server = closed_port().to_string();
    for args in [
        &["frobnicate"][..],
        &["stats", "--window", "7h"],
        &["stats", "--window", "61m"],
        &["stats", "--json", "--vhost", "a.test"],
        &["purge"],
        &["expire", "--after", "0", "a.test/x"],
        &["conf", "restore", "not-an-id"],
        &["top", "--interval", "0"],
        &["status", "--server", "https://127.0.0.1:10040"],
    ] {
        let mut all = vec!["--server", server.as_str()];
        all.extend_from_slice(args);
        let r = kuractl(&all);
        assert_eq!(r.code, Some(2), "{args:?}: {r}");
        assert!(r.stdout.is_empty() && !r.stderr.is_empty(), "{args:?}: {r}");
    }
}

#[test]
fn an_unreachable_kurad_exits_3_with_the_allow_hint() {
    let closed = closed_port();
    for args in [
        &["status"][..],
        &["stats"],
        &["top", "--count", "1"],
        &["reload"],
        &["version"],
        &["purge", "a.test/x"],
        &["conf", "history"],
    ] {
        let r = kuractl_at(closed, args);
        assert_eq!(r.code, Some(3), "{args:?}: {r}");
        assert!(r.stdout.is_empty(), "{args:?}: {r}");
        assert!(
            r.stderr
                .contains(&format!("cannot reach kurad at http://{closed}"))
                && r.stderr.contains("is this address in <Manager><Allow>?"),
            "{args:?}: {r}"
        );
    }

    // kurad itself drops a client outside <Allow> without a reply: the same exit and hint.
    let origin = Origin::start(|_| Reply::ok("x"));
    let server = "<Server><Host><Manager Port=\"0\"><Allow>127.0.0.9</Allow></Manager></Host>\
                  <Cache><Storage/></Cache></Server>";
    let k = Kurad::start(conf_dir(
        server,
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let r = kuractl_at(k.manager, &["status"]);
    assert_eq!(r.code, Some(3), "{r}");
    assert!(r.stderr.contains("<Manager><Allow>"), "{r}");
}

#[test]
fn status_and_version_describe_the_running_kurad() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    let r = kuractl_at(k.manager, &["status"]);
    assert_eq!(r.code, Some(0), "{r}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("kurad {} on ", kura::VERSION))
            && lines[0].contains(&format!("at http://{}: Healthy, up ", k.manager)),
        "{r}"
    );
    assert_eq!(lines[1], "vhosts: 2 (a.test, b.test)", "{r}");
    assert!(lines[2].starts_with("sessions: "), "{r}");
    assert!(lines[3].starts_with("last second: "), "{r}");
    assert_eq!(lines.len(), 4, "{r}");

    let v = kuractl_at(k.manager, &["version"]);
    assert_eq!(
        (v.code, v.stdout.trim()),
        (Some(0), &*format!("kurad {}", kura::VERSION))
    );
}

#[test]
fn purge_expire_and_hardpurge_report_the_missing_feature_and_exit_1() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    for args in [
        &["purge", "a.test/hit", "/m0"][..],
        &["expire", "a.test/*.jpg"],
        &["expire", "--after", "60", "a.test/hit"],
        &["hardpurge", "http://a.test/a b&c"],
    ] {
        let r = kuractl_at(k.manager, args);
        assert_eq!(r.code, Some(1), "{args:?}: {r}");
        assert!(r.stdout.is_empty(), "{args:?}: {r}");
        assert!(
            r.stderr.contains("not in this kurad yet (501)")
                && r.stderr.contains("purge, expire and hardpurge"),
            "{args:?}: {r}"
        );
    }
}

#[test]
fn reload_prints_the_summary_or_the_placed_errors() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    let dir = k.conf_path().to_str().unwrap();
    let check = kuractl(&["check", "--conf-dir", dir]);
    assert_eq!(
        check.stdout,
        format!("{dir}: configuration OK (2 vhosts)\n"),
        "{check}"
    );
    let ok = kuractl_at(k.manager, &["reload"]);
    assert_eq!(ok.code, Some(0), "{ok}");
    assert_eq!(
        ok.stdout,
        "configuration reloaded: generation 1, 2 vhosts; opened none; closed none\n"
    );
    let json = kuractl_at(k.manager, &["reload", "--json"]);
    let v: Value = serde_json::from_str(&json.stdout).expect("--json prints kurad's JSON");
    assert_eq!(
        (v["method"].as_str(), v["status"].as_str()),
        (Some("reload"), Some("OK"))
    );

    let broken = vhosts_xml(&vhost("a.test", origin.addr, "")).replace(
        "<Listen>127.0.0.1:0</Listen>",
        "<Listen>127.0.0.1:99999</Listen>",
    );
    k.write_vhosts(&broken);
    // check finds the same error locally, without kurad.
    let check = kuractl(&["check", "--conf-dir", dir]);
    assert_eq!(check.code, Some(1), "{check}");
    assert!(
        check
            .stderr
            .starts_with(&format!("kuractl: {dir}: configuration rejected\n  "))
            && check
                .stderr
                .contains("vhosts.xml:3: <Listen>: port 99999 out of range"),
        "{check}"
    );
    let r = kuractl_at(k.manager, &["reload"]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
    assert!(
        r.stderr.contains("/conf/reload: configuration rejected")
            && r.stderr
                .contains("\n  vhosts.xml:3: <Listen>: port 99999 out of range\n"),
        "{r}"
    );
}

/// `stats` on a known mix, read as a user reads it: a.test gets one fill, 20
/// hits, 5 misses and 3 404s; b.test stays idle. The table's counts and ratios
/// are the mix's, and `--json` is the API's reply byte for byte.
#[test]
fn stats_shows_a_known_mix() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    let (hits, misses, not_found) = (20u64, 5u64, 3u64);
    send_mix(k.http(), "a.test", hits, misses, not_found);
    let requests = 1 + hits + misses + not_found;

    // Minute windows hold only completed minutes: wait for the one with the mix.
    let until = Instant::now() + Duration::from_secs(75);
    loop {
        let r = kuractl_at(k.manager, &["stats", "--json"]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
        if v["Host"]["HttpCountSum"]["ClientReqCount"] == requests {
            break;
        }
        assert!(Instant::now() < until, "the minute never completed: {r}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let r = kuractl_at(k.manager, &["stats"]);
    assert_eq!(r.code, Some(0), "{r}");
    let (title, rows) = parse_table(&r.stdout);
    assert!(
        title.starts_with(&format!("kurad {} on ", kura::VERSION))
            && title.ends_with("window: the last 5 completed minutes"),
        "{r}"
    );
    let names: Vec<&str> = r
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        ["a.test", "b.test", "TOTAL"],
        "one row per vhost, then the total"
    );
    let a = &rows["a.test"];
    assert_eq!(a["REQS"], requests.to_string(), "{r}");
    // 20 hits of 29 requests = 68.965 %.
    assert_eq!(a["HIT%"], "68.97", "{r}");
    assert_eq!(
        a["ORIG-REQS"],
        (1 + misses + not_found).to_string(),
        "hits never reach the origin"
    );
    assert_eq!(
        a["ORIG-ERRS"], "0",
        "a 404 is an answer, not an origin failure"
    );
    let ms = |c: &str| {
        a[c].parse::<f64>()
            .unwrap_or_else(|e| panic!("{c}: {e}: {r}"))
    };
    assert!(ms("P50ms") > 0.0 && ms("P50ms") <= ms("P99ms"), "{r}");
    assert!(ms("ORIG-P99ms") > 0.0, "{r}");
    let b = &rows["b.test"];
    assert_eq!(
        (
            b["REQS"].as_str(),
            b["HIT%"].as_str(),
            b["P99ms"].as_str(),
            b["OUT/S"].as_str()
        ),
        ("0", "-", "-", "0B"),
        "an idle vhost: {r}"
    );
    assert_eq!(rows["TOTAL"]["REQS"], requests.to_string(), "{r}");
    assert_eq!(rows["TOTAL"]["HIT%"], "68.97", "{r}");

    // The byte columns are the API's numbers, scaled: check them against its JSON.
    let api: Value = serde_json::from_slice(
        &curl(&format!("http://{}/monitoring/average", k.manager), &[]).body,
    )
    .unwrap();
    let vh = &api["Host"]["VirtualHost"][0];
    assert_eq!(vh["Name"], "a.test");
    let bhr = vh["ByteHitRatio"].as_i64().unwrap();
    assert_eq!(
        a["BYTEHIT%"],
        format!("{}.{:02}", bhr / 100, bhr % 100),
        "{r}"
    );
    for (cell, member) in [("OUT/S", "ClientOutbound"), ("IN/S", "ClientInbound")] {
        let api = vh[member].as_f64().unwrap();
        let shown = scaled(&a[cell]);
        assert!(
            api > 0.0 && (shown - api).abs() <= api * 0.005,
            "{cell} {} is {member} {api} to three digits: {r}",
            a[cell]
        );
    }

    // --vhost narrows to one row, in any case; an unknown vhost is an error naming the known ones.
    let one = kuractl_at(
        k.manager,
        &["stats", "--vhost", "A.TEST", "--window", "60m"],
    );
    let (title, rows) = parse_table(&one.stdout);
    assert!(
        title.ends_with("window: the last 60 completed minutes"),
        "{one}"
    );
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["a.test"], "{one}");
    assert_eq!(rows["a.test"]["REQS"], requests.to_string(), "{one}");
    let none = kuractl_at(k.manager, &["stats", "--vhost", "c.test"]);
    assert_eq!(none.code, Some(1), "{none}");
    assert!(
        none.stderr
            .contains("no vhost c.test (it has: a.test, b.test)"),
        "{none}"
    );

    // --json is the reply as kurad sent it. Uptime changes every second, so
    // compare with API replies fetched just before and after that agree.
    let url = format!("http://{}/monitoring/average?minutes=5", k.manager);
    let matched = (0..10).any(|_| {
        let before = curl(&url, &[]).text();
        let json = kuractl_at(k.manager, &["stats", "--json"]).stdout;
        let after = curl(&url, &[]).text();
        before == after && json == before
    });
    assert!(matched, "stats --json never equalled the API's reply");
}

#[test]
fn top_redraws_the_table_and_leaves_escapes_to_terminals() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    let r = kuractl_at(k.manager, &["top", "--count", "2", "--interval", "1"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        !r.stdout.contains('\x1b'),
        "no escapes into a pipe: {r:?}",
        r = r.stdout
    );
    let frames: Vec<&str> = r.stdout.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 2, "{r}");
    for f in frames {
        let (title, rows) = parse_table(&format!("{f}\n"));
        assert!(title.ends_with("window: the last second"), "{f}");
        let mut names: Vec<&String> = rows.keys().collect();
        names.sort();
        assert_eq!(names, ["TOTAL", "a.test", "b.test"], "{f}");
    }

    // On a terminal (script(1) gives it one) each frame starts by clearing the screen.
    let cmd = format!(
        "{} --server {} top --count 2 --interval 1 --vhost a.test",
        kuractl_bin(),
        k.manager
    );
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let tty = Run::from(tty);
    assert_eq!(tty.code, Some(0), "{tty}");
    assert_eq!(tty.stdout.matches("\x1b[H\x1b[2J").count(), 2, "{tty}");
    assert!(
        !tty.stdout.contains("TOTAL"),
        "--vhost leaves the total out: {tty}"
    );
}

/// A request as the contract stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// Request line target (path and query).
    target: String,
    /// Headers, names in lower case.
    headers: HashMap<String, String>,
    /// The body as sent.
    body: Vec<u8>,
}

/// What the stub answers: status, extra headers, body.
type StubReply = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// A management port that answers by the documented contract of the
/// configuration history API (server side not on this branch), so kuractl's
/// side can be tested now. Replies are chunked, as a streaming server's are.
struct Stub {
    /// Where it listens.
    addr: SocketAddr,
    /// Every request so far.
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    fn start(answer: impl Fn(&Seen) -> StubReply + Send + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut r = BufReader::new(stream.unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    match h.trim_end().split_once(':') {
                        Some((k, v)) => {
                            headers.insert(k.to_ascii_lowercase(), v.trim().to_string())
                        }
                        None => break,
                    };
                }
                let len = headers
                    .get("content-length")
                    .map_or(0, |l| l.parse().unwrap());
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let req = Seen {
                    target,
                    headers,
                    body,
                };
                let (status, extra, reply) = answer(&req);
                log.lock().unwrap().push(req);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                );
                for (k, v) in extra {
                    head += &format!("{k}: {v}\r\n");
                }
                let s = r.get_mut();
                s.write_all(format!("{head}\r\n").as_bytes()).unwrap();
                // Two chunks, so a client that reads only the first one is caught.
                let (one, two) = reply.split_at(reply.len() / 2);
                for chunk in [one, two].into_iter().filter(|c| !c.is_empty()) {
                    s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .unwrap();
                    s.write_all(chunk).unwrap();
                    s.write_all(b"\r\n").unwrap();
                }
                s.write_all(b"0\r\n\r\n").unwrap();
            }
        });
        Stub { addr, seen }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The guide's chapter 3 history example.
const HISTORY: &str = r#"{"history":[
 {"id":"5","conf-date":"2013-11-06","conf-time":"15:26:37","type":"loaded","size":"16368","hash":"D62CA26F16FE7C66F81D215D8C52266AB70AA5C8","ver":"0.1.0"},
 {"id":"6","conf-date":"2013-11-07","conf-time":"07:02:21","type":"modified","size":"27544","hash":"F81D215D8C52266AB70AA5C8D62CA26F16FE7C66","ver":"0.1.0"}]}"#;

/// A JSON error reply as kurad writes them.
fn json_error(status: u16, method: &str, message: &str, errors: &[&str]) -> StubReply {
    let v = serde_json::json!({"version": "0.1.0", "method": method, "status": "ERROR",
                               "code": status, "message": message, "errors": errors});
    (
        status,
        vec![("Content-Type", "application/json".into())],
        v.to_string().into_bytes(),
    )
}

/// An archive's bytes: binary, with NULs, CR LFs and high bytes.
fn archive() -> Vec<u8> {
    let mut a = vec![0x1f, 0x8b, 0x08, 0x00, b'\r', b'\n', 0xff];
    a.extend((0..=255u8).cycle().take(70_000));
    a
}

/// The configuration history commands against the contract stub: tables,
/// archives (chunked, binary, named by Content-Disposition or the hash),
/// errors with their placed lines, and the multipart upload.
#[test]
fn conf_commands_follow_the_history_contract() {
    let stub = Stub::start(|req| {
        let ok = |body: &str| {
            (
                200,
                vec![("Content-Type", "application/json".into())],
                body.as_bytes().to_vec(),
            )
        };
        let tgz = |name: Option<&str>| {
            let mut h = vec![("Content-Type", "application/x-compressed".to_string())];
            if let Some(n) = name {
                h.push((
                    "Content-Disposition",
                    format!("attachment; filename=\"{n}\""),
                ));
            }
            (200, h, archive())
        };
        match req.target.as_str() {
            "/conf/history" => ok(HISTORY),
            "/conf/latest" => {
                ok(r#"{"history":[{"id":"6","hash":"F81D215D8C52266AB70AA5C8D62CA26F16FE7C66"}]}"#)
            }
            "/conf/download?id=5" => tgz(None),
            "/conf/download?hash=F81D215D8C52266AB70AA5C8D62CA26F16FE7C66" => {
                tgz(Some("../20131107_070221_F81D.tgz"))
            }
            "/conf/download?id=9" => json_error(404, "download", "no configuration with id 9", &[]),
            "/conf/restore?id=5" => {
                ok(r#"{"version":"0.1.0","method":"restore","status":"OK","result":null}"#)
            }
            "/conf/restore?hash=D62CA26F16FE7C66F81D215D8C52266AB70AA5C8" => json_error(
                500,
                "restore",
                "configuration rejected; the previous configuration keeps serving",
                &["vhosts.xml:3: <Listen>: port 99999 out of range"],
            ),
            "/conf/upload" => {
                ok(r#"{"version":"0.1.0","method":"upload","status":"OK","result":null}"#)
            }
            t => json_error(404, "", &format!("no such API: {t}"), &[]),
        }
    });

    let table = kuractl_at(stub.addr, &["conf", "history"]);
    assert_eq!(table.code, Some(0), "{table}");
    let lines: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["ID", "DATE", "TIME", "TYPE", "SIZE", "HASH", "VER"]
    );
    assert_eq!(
        lines[2],
        [
            "6",
            "2013-11-07",
            "07:02:21",
            "modified",
            "27544",
            "F81D215D8C52266AB70AA5C8D62CA26F16FE7C66",
            "0.1.0"
        ]
    );
    let json = kuractl_at(stub.addr, &["conf", "history", "--json"]);
    assert_eq!(json.stdout, HISTORY, "--json is the reply as sent");
    let latest = kuractl_at(stub.addr, &["conf", "history", "--latest"]);
    assert_eq!(latest.stdout.lines().count(), 2, "{latest}");

    // Downloads: the name from Content-Disposition (never outside the directory),
    // else the hash looked up for the id; never over an existing file unless -o says so.
    let dir = tempfile::tempdir().unwrap();
    let here = |args: &[&str]| -> Run {
        let server = stub.addr.to_string();
        Command::new(kuractl_bin())
            .current_dir(dir.path())
            .args(["--server", &server])
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let r = here(&[
        "conf",
        "download",
        "f81d215d8c52266ab70aa5c8d62ca26f16fe7c66",
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        std::fs::read(dir.path().join("20131107_070221_F81D.tgz")).unwrap(),
        archive()
    );
    let r = here(&["conf", "download", "5"]);
    assert_eq!(r.code, Some(0), "{r}");
    let by_hash = dir
        .path()
        .join("D62CA26F16FE7C66F81D215D8C52266AB70AA5C8.tgz");
    assert_eq!(std::fs::read(&by_hash).unwrap(), archive());
    let again = here(&["conf", "download", "5"]);
    assert_eq!(again.code, Some(1), "an existing file is kept: {again}");
    let out = here(&["conf", "download", "5", "-o", "mine.tgz"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        std::fs::read(dir.path().join("mine.tgz")).unwrap(),
        archive()
    );
    let piped = Command::new(kuractl_bin())
        .args([
            "--server",
            &stub.addr.to_string(),
            "conf",
            "download",
            "5",
            "-o",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(piped.stdout, archive(), "-o - writes the archive to stdout");
    let missing = kuractl_at(stub.addr, &["conf", "download", "9"]);
    assert_eq!(missing.code, Some(1), "{missing}");
    assert!(
        missing
            .stderr
            .contains("/conf/download: no configuration with id 9 (404)"),
        "{missing}"
    );

    // Restore: OK, or the server's message with its placed errors.
    let ok = kuractl_at(stub.addr, &["conf", "restore", "5"]);
    assert_eq!(
        (ok.code, ok.stdout.as_str()),
        (Some(0), "restored the configuration of backup id=5\n")
    );
    let bad = kuractl_at(
        stub.addr,
        &[
            "conf",
            "restore",
            "D62CA26F16FE7C66F81D215D8C52266AB70AA5C8",
        ],
    );
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(
        bad.stderr.contains("/conf/restore: configuration rejected")
            && bad
                .stderr
                .contains("\n  vhosts.xml:3: <Listen>: port 99999 out of range"),
        "{bad}"
    );

    // Upload: multipart/form-data with a Content-Length, the file under `confile` or --field.
    for (field, args) in [("confile", &[][..]), ("myconf", &["--field", "myconf"])] {
        let mut all = vec!["conf", "upload", "mine.tgz"];
        all.extend_from_slice(args);
        let r = here(&all);
        assert_eq!(r.code, Some(0), "{r}");
        let req = stub.requests().pop().unwrap();
        assert_eq!(req.target, "/conf/upload");
        assert_eq!(req.headers["content-length"], req.body.len().to_string());
        let boundary = req.headers["content-type"]
            .strip_prefix("multipart/form-data; boundary=")
            .expect("multipart/form-data");
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"mine.tgz\"\r\n\
             Content-Type: application/x-compressed\r\n\r\n"
        );
        let mut want = head.into_bytes();
        want.extend(archive());
        want.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        assert_eq!(req.body, want);
    }
    let absent = here(&["conf", "upload", "absent.tgz"]);
    assert_eq!(absent.code, Some(1), "{absent}");
    assert!(
        absent.stderr.contains("absent.tgz: No such file"),
        "{absent}"
    );
}

/// The configuration history against the real server. Its server side is being
/// written on main; once merged these run as they are.
#[test]
#[ignore = "needs the /conf history server side from main"]
fn conf_history_round_trip_against_kurad() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    let history = |k: &Kurad| -> Vec<Value> {
        let r = kuractl_at(k.manager, &["conf", "history", "--json"]);
        assert_eq!(r.code, Some(0), "{r}");
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["history"].as_array().unwrap().clone()
    };
    let first = history(&k);
    assert_eq!(first.last().unwrap()["type"], "loaded", "{first:?}");
    let id = first.last().unwrap()["id"].as_str().unwrap().to_string();
    let hash = first.last().unwrap()["hash"].as_str().unwrap().to_string();

    // A change reloaded is "modified"; the table shows it last.
    k.write_vhosts(&vhosts_xml(&vhost("a.test", origin.addr, "")));
    assert_eq!(kuractl_at(k.manager, &["reload"]).code, Some(0));
    let table = kuractl_at(k.manager, &["conf", "history"]);
    let last: Vec<&str> = table
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(last[3], "modified", "{table}");

    // The first configuration's archive downloads by id and by hash alike.
    let dir = tempfile::tempdir().unwrap();
    let by_id = dir.path().join("by-id.tgz");
    let by_hash = dir.path().join("by-hash.tgz");
    for (backup, file) in [(&id, &by_id), (&hash, &by_hash)] {
        let r = kuractl_at(
            k.manager,
            &["conf", "download", backup, "-o", file.to_str().unwrap()],
        );
        assert_eq!(r.code, Some(0), "{r}");
    }
    let tgz = std::fs::read(&by_id).unwrap();
    assert_eq!(&tgz[..2], [0x1f, 0x8b], "a gzip archive");
    assert_eq!(tgz, std::fs::read(&by_hash).unwrap());

    // Restore brings b.test back, recorded as "restored".
    let r = kuractl_at(k.manager, &["conf", "restore", &id]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(history(&k).last().unwrap()["type"], "restored");
    let vhosts = kuractl_at(k.manager, &["status"]);
    assert!(
        vhosts.stdout.contains("vhosts: 2 (a.test, b.test)"),
        "{vhosts}"
    );

    // Uploading the archive applies it and is recorded as "uploaded".
    let r = kuractl_at(k.manager, &["conf", "upload", by_id.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(history(&k).last().unwrap()["type"], "uploaded");

    // Unknown backups are kurad's 404, exit 1.
    let r = kuractl_at(k.manager, &["conf", "download", "999999", "-o", "-"]);
    assert_eq!(r.code, Some(1), "{r}");
}
