//! kuractl tested as a user runs it: the real binary against a real kurad and
//! origin (and, for what kurad never sends, a stub server), reading stdout,
//! stderr and the exit code.

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
fn purge_expire_and_hardpurge_print_what_they_did() {
    let origin = mix_origin();
    let k = two_vhosts(&origin);
    let a = k.http();
    // One vhost listens per address: send a.test's request to its own.
    get(a, "a.test", "/hit");
    let purged = kuractl_at(k.manager, &["purge", "a.test/hit", "/nothing"]);
    assert_eq!(purged.code, Some(0), "{purged}");
    assert!(
        purged.stdout.starts_with("purged 1 objects (1000B) in "),
        "{purged}"
    );
    get(a, "a.test", "/hit");
    let after = kuractl_at(k.manager, &["expire", "--after", "60", "a.test/hit"]);
    assert!(
        after.stdout.starts_with("set to expire 1 objects"),
        "{after}"
    );
    let expired = kuractl_at(k.manager, &["expire", "a.test/*"]);
    assert!(expired.stdout.starts_with("expired 1 objects"), "{expired}");
    let odd = kuractl_at(
        k.manager,
        &["hardpurge", "http://a.test/a b&c", "a.test/hit"],
    );
    assert_eq!(odd.code, Some(0), "{odd}");
    assert!(odd.stdout.starts_with("hard-purged 1 objects"), "{odd}");
    assert_eq!(
        origin.count("/hit"),
        2,
        "the purge made the second GET a miss"
    );
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

/// A management port answering whatever a test wants, for replies kurad
/// never sends. Replies are chunked, as a streaming server's are.
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

/// An archive's bytes: binary, with NULs, CR LFs and high bytes.
fn archive() -> Vec<u8> {
    let mut a = vec![0x1f, 0x8b, 0x08, 0x00, b'\r', b'\n', 0xff];
    a.extend((0..=255u8).cycle().take(70_000));
    a
}

/// What kurad itself never sends, so only a stub can: a download whose
/// Content-Disposition tries to leave the directory, in two chunks of binary.
#[test]
fn a_download_is_written_under_its_bare_file_name() {
    let stub = Stub::start(|req| {
        if req.target == "/conf/upload" {
            let ok =
                br#"{"version":"0.1.0","method":"uploadconfig","status":"OK","result":"E0000"}"#;
            return (
                200,
                vec![("Content-Type", "application/json".into())],
                ok.to_vec(),
            );
        }
        let headers = vec![
            ("Content-Type", "application/x-compressed".to_string()),
            (
                "Content-Disposition",
                "attachment; filename=\"../../20131107_070221_F81D.tgz\"".to_string(),
            ),
        ];
        (200, headers, archive())
    });
    let dir = tempfile::tempdir().unwrap();
    let r: Run = Command::new(kuractl_bin())
        .current_dir(dir.path())
        .args(["--server", &stub.addr.to_string(), "conf", "download", "5"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        std::fs::read(dir.path().join("20131107_070221_F81D.tgz")).unwrap(),
        archive()
    );
    assert_eq!(stub.requests()[0].target, "/conf/download?id=5");

    // The upload's multipart body byte for byte, under the --field name.
    std::fs::write(dir.path().join("mine.tgz"), archive()).unwrap();
    let r: Run = Command::new(kuractl_bin())
        .current_dir(dir.path())
        .args(["--server", &stub.addr.to_string()])
        .args(["conf", "upload", "mine.tgz", "--field", "myconf"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, Some(0), "{r}");
    let req = stub.requests().pop().unwrap();
    assert_eq!(req.target, "/conf/upload");
    assert_eq!(req.headers["content-length"], req.body.len().to_string());
    let boundary = req.headers["content-type"]
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart/form-data");
    let mut want = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"myconf\"; filename=\"mine.tgz\"\r\n\
         Content-Type: application/x-compressed\r\n\r\n"
    )
    .into_bytes();
    want.extend(archive());
    want.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    assert_eq!(req.body, want);
}

/// The configuration history commands against the real server: the table,
/// downloads (named by kurad's Content-Disposition, never over an existing
/// file unless -o says so), restore, upload of an archive and of a directory,
/// and kurad's errors with their placed lines.
#[test]
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

    // A change reloaded is "modified"; the table shows it last, one word per column.
    k.write_vhosts(&vhosts_xml(&vhost("a.test", origin.addr, "")));
    assert_eq!(kuractl_at(k.manager, &["reload"]).code, Some(0));
    let table = kuractl_at(k.manager, &["conf", "history"]);
    let lines: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["ID", "DATE", "TIME", "TYPE", "SIZE", "HASH", "VER"]
    );
    let newest = &history(&k)[1];
    let cells: Vec<&str> = [
        "id",
        "conf-date",
        "conf-time",
        "type",
        "size",
        "hash",
        "ver",
    ]
    .iter()
    .map(|f| newest[f].as_str().unwrap())
    .collect();
    assert_eq!(lines.last().unwrap(), &cells, "{table}");
    assert_eq!(cells[3], "modified");
    let latest = kuractl_at(k.manager, &["conf", "history", "--latest"]);
    assert_eq!(latest.stdout.lines().count(), 2, "{latest}");

    // Downloads: kurad's DATE_TIME_HASH.tgz name by default, by id or by hash alike.
    let dir = tempfile::tempdir().unwrap();
    let here = |args: &[&str]| -> Run {
        Command::new(kuractl_bin())
            .current_dir(dir.path())
            .args(["--server", &k.manager.to_string()])
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    assert_eq!(here(&["conf", "download", &id]).code, Some(0));
    let named: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(named.len(), 1);
    assert!(named[0].ends_with(&format!("_{hash}.tgz")), "{named:?}");
    let again = here(&["conf", "download", &hash.to_lowercase()]);
    assert_eq!(again.code, Some(1), "an existing file is kept: {again}");
    let by_hash = dir.path().join("by-hash.tgz");
    let r = here(&["conf", "download", &hash, "-o", by_hash.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r}");
    let tgz = std::fs::read(dir.path().join(&named[0])).unwrap();
    assert_eq!(&tgz[..2], [0x1f, 0x8b], "a gzip archive");
    assert_eq!(tgz, std::fs::read(&by_hash).unwrap());
    let piped = Command::new(kuractl_bin())
        .args([
            "--server",
            &k.manager.to_string(),
            "conf",
            "download",
            &id,
            "-o",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(piped.stdout, tgz, "-o - writes the archive to stdout");
    let missing = kuractl_at(k.manager, &["conf", "download", "999999", "-o", "-"]);
    assert_eq!(missing.code, Some(1), "{missing}");
    assert!(missing.stderr.contains("(404)"), "{missing}");

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
    let r = kuractl_at(k.manager, &["conf", "upload", by_hash.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(history(&k).last().unwrap()["type"], "uploaded");

    // A directory is packed and uploaded; a broken one is refused with its place.
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("server.xml"), server_xml("", "")).unwrap();
    let one = vhosts_xml(&vhost("solo.test", origin.addr, ""));
    std::fs::write(conf.path().join("vhosts.xml"), &one).unwrap();
    let dir_arg = conf.path().to_str().unwrap();
    let r = kuractl_at(k.manager, &["conf", "upload", dir_arg]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(kuractl_at(k.manager, &["status"])
        .stdout
        .contains("vhosts: 1 (solo.test)"));
    std::fs::write(
        conf.path().join("vhosts.xml"),
        one.replace("127.0.0.1:0", "127.0.0.1:99999"),
    )
    .unwrap();
    let bad = kuractl_at(k.manager, &["conf", "upload", dir_arg]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(
        bad.stderr
            .contains("vhosts.xml:3: <Listen>: port 99999 out of range"),
        "{bad}"
    );
    assert!(kuractl_at(k.manager, &["status"])
        .stdout
        .contains("vhosts: 1 (solo.test)"));
}
