//! The SNMP agent through net-snmp's real tools (`snmpwalk`, `snmpbulkwalk`,
//! `snmpget`, `snmpbulkget`, `snmpset`) against a real kurad.

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use kura::snmp::tree::{self, Binding, Entity};
use kura::stats::catalog::{self, Member, Source};
use serde_json::Value;

const ENTERPRISE: &str = ".1.3.6.1.4.1.40001.1";

/// A server.xml with the manager and the agent on ephemeral ports.
fn server(snmp_attrs: &str, snmp_body: &str) -> String {
    server_with_storage(snmp_attrs, snmp_body, "<Storage />")
}

fn server_with_storage(snmp_attrs: &str, snmp_body: &str, storage: &str) -> String {
    format!(
        "<Server>\n  <Host>\n    <Name>kura-snmp-test</Name>\n    <Admin>noc@example.com</Admin>\n    <Manager Port=\"0\" />\n    <SNMP Port=\"0\" Status=\"Active\" {snmp_attrs}>\n{snmp_body}\n    </SNMP>\n  </Host>\n  <Cache>\n    {storage}\n  </Cache>\n</Server>\n"
    )
}

/// Runs a net-snmp tool with numeric OIDs and quick output; returns (stdout, stderr, success).
fn run(tool: &str, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(tool)
        .args(["-On", "-Oq", "-t", "1", "-r", "0"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install net-snmp's snmp package)"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// `OID value` lines as pairs (not the end-of-view or "End of MIB" lines of a walk past the end).
fn rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with('.') && !l.contains("No more variables left"))
        .filter_map(|l| l.split_once(' '))
        .map(|(o, v)| (o.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn walk(tool: &str, version: &str, agent: SocketAddr, extra: &[&str]) -> Vec<(String, String)> {
    let target = agent.to_string();
    let mut args = vec![version, "-c", "public"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&target, ENTERPRISE]);
    let (out, err, ok) = run(tool, &args);
    assert!(ok, "{tool} {version} failed: {err}");
    assert!(!err.contains("not increasing"), "{tool}: {err}");
    rows(&out)
}

/// Every instance `oid-tree.tsv` calls for, expanded independently of the agent's tree:
/// walk minutes 0 (system) and 5 (the rest), the given vhost/view/disk/conf rows.
fn expected_instances(vhosts: &[u32], views: &[u32], disks: u32, confs: u32) -> BTreeSet<String> {
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/oid-tree.tsv"),
    )
    .expect("../shared/spec/oid-tree.tsv");
    let mut out = BTreeSet::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[3] == "OID" {
            continue;
        }
        let template = f[1];
        let mut sets: Vec<String> = vec![String::new()];
        let mut expand = |values: Vec<u32>| {
            sets = sets
                .iter()
                .flat_map(|s| values.iter().map(move |v| format!("{s}.{v}")))
                .collect();
        };
        let base = template.split(".{").next().unwrap();
        for var in template
            .split('{')
            .skip(1)
            .map(|p| p.trim_end_matches(['}', '.']))
        {
            match var {
                "sysMin" => expand(vec![0]),
                "globalMin" if f[0] == "system" => {} // SNMP.md 3
                "globalMin" | "diskMin" | "vhostMin" => expand(vec![5]),
                "vhostIndex" => expand(vhosts.to_vec()),
                "diskIndex" => expand((1..=disks).collect()),
                "confIndex" => expand((1..=confs).collect()),
                other => panic!("unknown variable {other}"),
            }
        }
        for s in &sets {
            out.insert(format!(".{base}{s}"));
            if f[0].starts_with("cache.vhost") {
                // cache.view mirrors cache.vhost under 4.11.1 with [viewIndex].
                let view_base = base.replacen("40001.1.4.3.1", "40001.1.4.11.1", 1);
                let suffix = s.rsplit_once('.').map_or("", |(head, _)| head);
                for v in views {
                    out.insert(format!(".{view_base}{suffix}.{v}"));
                }
            }
        }
    }
    out
}

#[test]
fn walks_return_every_documented_instance_once_in_v1_v2c_and_bulk() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let body = format!(
        "{}{}{}  <View Name=\"ab\"><Vhost>a.test</Vhost><Vhost>b.test</Vhost></View>\n",
        vhost("a.test", origin.addr, ""),
        vhost("b.test", origin.addr, ""),
        vhost("c.test", origin.addr, "")
    );
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let storage = format!(
        "<Storage><Disk>{}</Disk><Disk>{}</Disk></Storage>",
        d1.path().display(),
        d2.path().display()
    );
    let k = Kurad::start(conf_dir(
        &server_with_storage("", "", &storage),
        &vhosts_xml(&body),
    ));
    let agent = k.snmp();
    let v2 = walk("snmpwalk", "-v2c", agent, &[]);
    let oids: Vec<&str> = v2.iter().map(|(o, _)| o.as_str()).collect();
    let got: BTreeSet<String> = oids.iter().map(|s| s.to_string()).collect();
    assert_eq!(got.len(), oids.len(), "every instance once");
    let want = expected_instances(&[1, 2, 3], &[1], 2, 1);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    // Names in load order, and the view.
    let value = |oid: &str| v2.iter().find(|(o, _)| o == oid).map(|(_, v)| v.as_str());
    assert_eq!(value(".1.3.6.1.4.1.40001.1.4.3.1.2.3"), Some("c.test"));
    assert_eq!(value(".1.3.6.1.4.1.40001.1.4.11.1.2.1"), Some("ab"));
    assert_eq!(value(".1.3.6.1.4.1.40001.1.4.2"), Some("3"));
    assert_eq!(value(".1.3.6.1.4.1.40001.1.1.4"), Some("kura-snmp-test"));
    assert_eq!(value(".1.3.6.1.4.1.40001.1.1.7"), Some("noc@example.com"));
    // Disks in <Storage> order, with their state.
    let d2_path = d2.path().display().to_string();
    assert_eq!(value(".1.3.6.1.4.1.40001.1.2.17"), Some("2"));
    assert_eq!(
        value(".1.3.6.1.4.1.40001.1.2.18.1.2.2"),
        Some(d2_path.as_str())
    );
    assert_eq!(value(".1.3.6.1.4.1.40001.1.2.18.1.8.1"), Some("Normal"));
    let total_mb: i64 = value(".1.3.6.1.4.1.40001.1.2.18.1.3.1")
        .unwrap()
        .parse()
        .unwrap();
    assert!(total_mb > 0);
    // v1 and GETBULK walks give the same rows.
    let names = |r: Vec<(String, String)>| r.into_iter().map(|(o, _)| o).collect::<Vec<_>>();
    assert_eq!(names(walk("snmpwalk", "-v1", agent, &[])), oids);
    assert_eq!(names(walk("snmpbulkwalk", "-v2c", agent, &["-Cr50"])), oids);
    // A bare walk (MIB-2) shows the system and snmp groups.
    let (out, _, ok) = run("snmpwalk", &["-v2c", "-c", "public", &agent.to_string()]);
    assert!(ok);
    assert!(
        out.contains(".1.3.6.1.2.1.1.2.0 .1.3.6.1.4.1.40001.1"),
        "{out}"
    );
    assert!(out.contains(".1.3.6.1.2.1.11.1.0 "), "{out}");
}

/// The JSON value of each catalog source in one `VirtualHost` object.
fn json_sources(vh: &Value) -> Vec<(Source, i64)> {
    fn members(obj: &Value, list: &[Member], out: &mut Vec<(Source, i64)>) {
        for m in list {
            match m {
                Member::Value(f) => out.push((f.source, obj[&f.name].as_i64().unwrap())),
                Member::Pair { name, counter } => {
                    out.push((
                        Source::Sum(*counter),
                        obj[format!("{name}Sum")].as_i64().unwrap(),
                    ));
                    out.push((Source::Rate(*counter), obj[name].as_i64().unwrap()));
                }
                Member::Group {
                    name,
                    members: inner,
                } => members(&obj[name], inner, out),
                Member::Attrs { name, fields } => {
                    for f in fields {
                        out.push((f.source, obj[name][&f.name].as_i64().unwrap()));
                    }
                }
            }
        }
    }
    let mut out: Vec<(Source, i64)> = catalog::traffic()
        .iter()
        .filter(|f| f.source != Source::Uptime)
        .map(|f| (f.source, vh[&f.name].as_i64().unwrap()))
        .collect();
    members(&vh["OriginTraffic"], catalog::origin_traffic(), &mut out);
    members(
        &vh["ClientTraffic"]["Traffic"][0],
        catalog::client_traffic(),
        &mut out,
    );
    out
}

#[test]
fn every_vhost_column_at_every_minute_equals_the_json_api() {
    let origin = mix_origin();
    let body = vhost("a.test", origin.addr, "") + &vhost("b.test", origin.addr, "");
    let k = Kurad::start(conf_dir(&server("", ""), &vhosts_xml(&body)));
    let agent = k.snmp().to_string();
    let (hits, misses, not_found) = (20u64, 5u64, 3u64);
    send_mix(k.http(), "a.test", hits, misses, not_found);
    let total = 1 + hits + misses + not_found;
    let base = format!("{ENTERPRISE}.4.3.1.11.11.10");
    let get_one = |oid: &str| {
        let (out, err, ok) = run("snmpget", &["-v2c", "-c", "public", &agent, oid]);
        assert!(ok, "{err}");
        rows(&out)[0].1.clone()
    };
    // Wait until the minute with the mix has completed.
    let until = Instant::now() + Duration::from_secs(75);
    while get_one(&format!("{base}.9.60.1")) != total.to_string() {
        assert!(Instant::now() < until, "the minute never completed");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The known mix, exactly, through snmpget.
    let hit_count = format!("{ENTERPRISE}.4.3.1.11.11.14.1.1.1");
    assert_eq!(
        get_one(&hit_count),
        hits.to_string(),
        "requestHitCount.TCP_HIT"
    );
    assert_eq!(
        get_one(&format!("{base}.44.1.1")),
        not_found.to_string(),
        "res4xxCount"
    );
    assert_eq!(
        get_one(&format!("{base}.24.1.1")),
        (1 + hits + misses).to_string(),
        "res2xxCount"
    );
    assert_eq!(
        get_one(&format!("{ENTERPRISE}.4.1.11.2.1")),
        ((hits * 10_000 + total / 2) / total).to_string(),
        "host request hit ratio"
    );

    let columns: Vec<&tree::Column> = tree::tree()
        .columns
        .iter()
        .filter(|c| {
            matches!(
                c.binding,
                Binding::Traffic {
                    entity: Entity::Vhost,
                    ..
                }
            ) && c.vars.len() == 2 // `contents` has no minute
        })
        .collect();
    let mut compared = 0;
    for minute in 0..=60u32 {
        // One GET of every vhost-1 column at this minute, between two equal JSON reads.
        let (json, snmp) = loop {
            let read = || {
                let r = curl(
                    &format!(
                        "http://{}/monitoring/average?type=JSON&minutes={minute}",
                        k.manager
                    ),
                    &[],
                );
                let mut v: Value = serde_json::from_slice(&r.body).unwrap();
                let mut vh = v["Host"]["VirtualHost"][0].take();
                vh["Uptime"] = Value::Null;
                vh
            };
            let before = read();
            let oids: Vec<String> = columns
                .iter()
                .map(|c| format!(".{}.{minute}.1", c.oid))
                .collect();
            // net-snmp sends at most 128 names a request.
            let mut got = Vec::new();
            for chunk in oids.chunks(100) {
                let mut args = vec!["-v2c", "-c", "public", agent.as_str()];
                args.extend(chunk.iter().map(String::as_str));
                let (out, err, ok) = run("snmpget", &args);
                assert!(ok, "{err}");
                got.extend(rows(&out));
            }
            if read() == before {
                break (before, got);
            }
        };
        assert_eq!(json["Name"], "a.test");
        let sources = json_sources(&json);
        for (c, (_, value)) in columns.iter().zip(&snmp) {
            let Binding::Traffic { source, div, .. } = c.binding else {
                unreachable!()
            };
            let got: i64 = value
                .parse()
                .unwrap_or_else(|_| panic!("{}: {value}", c.name));
            if source == Source::NotCollected {
                assert_eq!(got, 0, "{}", c.name);
                continue;
            }
            let Some((_, want)) = sources.iter().find(|(s, _)| *s == source) else {
                continue; // A figure JSON does not show (e.g. per-second connects).
            };
            if div == 1 {
                assert_eq!(got, *want, "{} at minute {minute}", c.name);
            } else {
                assert!(
                    (got * div - want).abs() * 2 <= div,
                    "{} at minute {minute}: {got} vs {want}",
                    c.name
                );
            }
            compared += 1;
        }
    }
    assert!(compared >= 61 * 100, "only {compared} comparisons");
}

#[test]
fn v1_and_v2c_errors_and_set_refusal() {
    let k = Kurad::start(conf_dir(&server("", ""), &vhosts_xml("")));
    let agent = k.snmp().to_string();
    let v2 = |tool: &str, oid: &str| run(tool, &["-v2c", "-c", "public", &agent, oid]);
    let v1 = |tool: &str, oid: &str| run(tool, &["-v1", "-c", "public", &agent, oid]);
    // No such object / instance.
    assert!(v2("snmpget", ".1.3.6.1.4.1.40001.1.9.9")
        .0
        .contains("No Such Object"));
    assert!(v2("snmpget", ".1.3.6.1.4.1.40001.1.1.3.0")
        .0
        .contains("No Such Instance"));
    assert!(v2("snmpget", ".1.3.6.1.4.1.40001.1.2.1.61")
        .0
        .contains("No Such Instance"));
    // Minute 60 exists: cpuTotal over the last hour, a whole percent.
    let cpu = rows(&v2("snmpget", ".1.3.6.1.4.1.40001.1.2.1.60").0);
    let pct: i64 = cpu[0].1.parse().expect("an INTEGER");
    assert!((0..=100).contains(&pct), "{pct}");
    let (_, err, _) = v1("snmpget", ".1.3.6.1.4.1.40001.1.9.9");
    assert!(err.contains("noSuchName"), "{err}");
    // The end of the MIB view.
    assert!(v2("snmpgetnext", ".1.3.6.1.4.1.40001.2")
        .0
        .contains("No more variables left"));
    let (_, err, _) = v1("snmpgetnext", ".1.3.6.1.4.1.40001.2");
    assert!(err.contains("noSuchName"), "{err}");
    // SET is refused and changes nothing.
    let set = |v: &str| {
        run(
            "snmpset",
            &[
                v,
                "-c",
                "public",
                &agent,
                ".1.3.6.1.4.1.40001.1.1.4",
                "s",
                "evil",
            ],
        )
    };
    assert!(set("-v2c").1.contains("notWritable"), "{:?}", set("-v2c"));
    assert!(set("-v1").1.contains("noSuchName"), "{:?}", set("-v1"));
    assert!(v2("snmpget", ".1.3.6.1.4.1.40001.1.1.4")
        .0
        .contains("kura-snmp-test"));
}

/// A GETBULK request, hand-encoded.
fn bulk_request(
    request_id: i32,
    non_repeaters: i32,
    max_repetitions: i32,
    oids: &[&[u32]],
) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if body.len() < 128 {
            out.push(body.len() as u8);
        } else {
            out.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
        }
        out.extend_from_slice(body);
        out
    }
    let int = |v: i32| {
        let b = v.to_be_bytes();
        tlv(0x02, &b)
    };
    let mut vbs = Vec::new();
    for oid in oids {
        let mut enc = vec![(oid[0] * 40 + oid[1]) as u8];
        for &x in &oid[2..] {
            let mut chunk = vec![(x & 0x7F) as u8];
            let mut x = x >> 7;
            while x > 0 {
                chunk.insert(0, 0x80 | (x & 0x7F) as u8);
                x >>= 7;
            }
            enc.extend(chunk);
        }
        vbs.extend(tlv(0x30, &[tlv(0x06, &enc), vec![0x05, 0]].concat()));
    }
    let pdu = tlv(
        0xA5,
        &[
            int(request_id),
            int(non_repeaters),
            int(max_repetitions),
            tlv(0x30, &vbs),
        ]
        .concat(),
    );
    tlv(0x30, &[int(1), tlv(0x04, b"public"), pdu].concat())
}

fn exchange(agent: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    s.send_to(msg, agent).unwrap();
    let mut buf = vec![0u8; 65_536];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

#[test]
fn getbulk_edge_cases_and_size_limit() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let body: String = (0..6)
        .map(|i| vhost(&format!("v{i}.test"), origin.addr, ""))
        .collect();
    let k = Kurad::start(conf_dir(&server("", ""), &vhosts_xml(&body)));
    let agent = k.snmp();
    let target = agent.to_string();
    let lines = |args: &[&str]| {
        let mut a = vec!["-v2c", "-c", "public"];
        a.extend_from_slice(args);
        let (out, err, ok) = run("snmpbulkget", &a);
        assert!(ok, "{err}");
        rows(&out)
    };
    // Non-repeaters beyond the bindings (net-snmp's tools refuse to send it): every
    // binding is a non-repeater.
    let reply = exchange(
        agent,
        &bulk_request(
            42,
            5,
            10,
            &[&[1, 3, 6, 1, 2, 1, 1], &[1, 3, 6, 1, 4, 1, 40001, 1, 1]],
        ),
    )
    .unwrap();
    let (_, msg) = snmp_parser::parse_snmp_v2c(&reply).expect("a well-formed reply");
    let names: Vec<String> = msg.vars_iter().map(|v| v.oid.to_id_string()).collect();
    assert_eq!(names, ["1.3.6.1.2.1.1.1.0", "1.3.6.1.4.1.40001.1.1.1"]);
    // max-repetitions 0: the non-repeaters only.
    let r = lines(&[
        "-Cn1",
        "-Cr0",
        &target,
        ".1.3.6.1.2.1.1",
        ".1.3.6.1.4.1.40001.1.1",
    ]);
    assert_eq!(r.len(), 1, "{r:?}");
    // Repeaters walk on from each binding.
    let r = lines(&[
        "-Cn0",
        "-Cr3",
        &target,
        ".1.3.6.1.2.1.1",
        ".1.3.6.1.4.1.40001.1.1",
    ]);
    assert_eq!(r.len(), 6, "{r:?}");
    assert_eq!(r[1].0, ".1.3.6.1.4.1.40001.1.1.1");
    assert_eq!(r[2].0, ".1.3.6.1.2.1.1.2.0");
    // Huge max-repetitions: whole bindings up to 1472 bytes, never tooBig.
    let reply = exchange(
        agent,
        &bulk_request(42, 0, i32::MAX, &[&[1, 3, 6, 1, 4, 1, 40001, 1]]),
    )
    .unwrap();
    assert!(
        reply.len() <= 1472 && reply.len() > 1300,
        "{} bytes",
        reply.len()
    );
    let (_, msg) = snmp_parser::parse_snmp_v2c(&reply).expect("a well-formed reply");
    assert!(msg.vars_iter().count() > 20);
    let r = lines(&["-Cn0", "-Cr100000", &target, ENTERPRISE]);
    assert!(r.len() > 20 && r.len() < 100, "{} bindings", r.len());
    // Past the end: endOfMibView for each repetition that has nothing left, then stop.
    let (out, err, ok) = run(
        "snmpbulkget",
        &[
            "-v2c",
            "-c",
            "public",
            "-Cn0",
            "-Cr5",
            &target,
            ".1.3.6.1.4.1.40001.2",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.matches("No more variables left").count(), 1, "{out}");
}

#[test]
fn vhost_count_pads_and_indexes_survive_reload_and_restart() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let names_col = ".1.3.6.1.4.1.40001.1.4.3.1.2";
    let names = |agent: SocketAddr| -> Vec<(String, String)> {
        let (out, err, ok) = run(
            "snmpwalk",
            &["-v2c", "-c", "public", &agent.to_string(), names_col],
        );
        assert!(ok, "{err}");
        rows(&out)
            .into_iter()
            .map(|(o, v)| (o.trim_start_matches(names_col).to_string(), v))
            .collect()
    };
    let row = |i: &str, n: &str| (format!(".{i}"), n.to_string());
    let vhosts = |list: &[(&str, &str)]| {
        vhosts_xml(
            &list
                .iter()
                .map(|(n, extra)| {
                    vhost(n, origin.addr, "").replacen(
                        &format!("Name=\"{n}\""),
                        &format!("Name=\"{n}\" {extra}"),
                        1,
                    )
                })
                .collect::<String>(),
        )
    };
    let dir = conf_dir(
        &server("VHostCount=\"5\"", ""),
        &vhosts(&[
            ("a.test", ""),
            ("b.test", ""),
            ("c.test", "StaticIndex=\"4\""),
        ]),
    );
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().to_str().unwrap().to_string();
    let k = Kurad::start_args(dir, &["--state-dir", &state]);
    assert_eq!(
        names(k.snmp()),
        [
            row("1", "a.test"),
            row("2", "b.test"),
            row("3", ""),
            row("4", "c.test"),
            row("5", "")
        ]
    );
    // a deleted and d added in one reload: d takes the freed index 1.
    k.write_vhosts(&vhosts(&[
        ("b.test", ""),
        ("c.test", "StaticIndex=\"4\""),
        ("d.test", ""),
    ]));
    let r = curl(&format!("http://{}/conf/reload", k.manager), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let after_reload = [
        row("1", "d.test"),
        row("2", "b.test"),
        row("3", ""),
        row("4", "c.test"),
        row("5", ""),
    ];
    assert_eq!(names(k.snmp()), after_reload);
    // A restart (same state directory, vhosts in another order) keeps every index.
    let conf = k.conf_path().to_path_buf();
    let copy = tempfile::tempdir().unwrap();
    for f in ["server.xml", "vhosts.xml"] {
        std::fs::copy(conf.join(f), copy.path().join(f)).unwrap();
    }
    drop(k);
    std::fs::write(
        copy.path().join("vhosts.xml"),
        vhosts(&[
            ("c.test", "StaticIndex=\"4\""),
            ("b.test", ""),
            ("d.test", ""),
        ]),
    )
    .unwrap();
    let k = Kurad::start_args(copy, &["--state-dir", &state]);
    assert_eq!(names(k.snmp()), after_reload);
    // meta.conf: the start, the reload and the restart, newest first.
    let (out, _, _) = run(
        "snmpwalk",
        &[
            "-v2c",
            "-c",
            "public",
            &k.snmp().to_string(),
            ".1.3.6.1.4.1.40001.1.1.10.3",
        ],
    );
    let types: Vec<String> = rows(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(types[..3], ["1", "2", "1"]);
}

#[test]
fn communities_allow_deny_and_ranges() {
    let communities = "      <Community Name=\"only\" OID=\"Allow\">\n        <OID>1.3.6.1.4.1.40001.1.4.2</OID>\n        <OID>1.3.6.1.4.1.40001.1.1.3-4</OID>\n      </Community>\n      <Community Name=\"most\" OID=\"Deny\">\n        <OID>1.3.6.1.4.1.40001.1.4.3.1.11.11.10.1-61</OID>\n      </Community>";
    let origin = Origin::start(|_| Reply::ok("x"));
    let k = Kurad::start(conf_dir(
        &server("UnregisteredCommunity=\"Deny\"", communities),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let agent = k.snmp().to_string();
    let walk_as = |c: &str, from: &str| {
        let (out, err, _) = run("snmpwalk", &["-v2c", "-c", c, &agent, from]);
        (rows(&out), err)
    };
    let (r, _) = walk_as("only", ENTERPRISE);
    let oids: Vec<&str> = r.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        oids,
        [
            ".1.3.6.1.4.1.40001.1.1.3",
            ".1.3.6.1.4.1.40001.1.1.4",
            ".1.3.6.1.4.1.40001.1.4.2"
        ]
    );
    let (out, _, _) = run(
        "snmpget",
        &["-v2c", "-c", "only", &agent, ".1.3.6.1.4.1.40001.1.1.1"],
    );
    assert!(
        out.contains("No Such Object"),
        "a hidden OID does not exist: {out}"
    );
    // Client HTTP columns 1-61 are hidden; the rest of the client subtree is not.
    let client = format!("{ENTERPRISE}.4.3.1.11.11");
    let (r, _) = walk_as("most", &client);
    assert!(
        r.iter()
            .any(|(o, _)| o.starts_with(&format!("{client}.11."))),
        "{r:?}"
    );
    assert!(
        !r.iter()
            .any(|(o, _)| o.starts_with(&format!("{client}.10."))),
        "{r:?}"
    );
    let (out, _, _) = run(
        "snmpget",
        &["-v2c", "-c", "most", &agent, &format!("{client}.10.9.5.1")],
    );
    assert!(out.contains("No Such Object"), "{out}");
    // Unregistered communities are dropped: no reply at all.
    let (_, err, ok) = run(
        "snmpget",
        &["-v2c", "-c", "public", &agent, ".1.3.6.1.2.1.1.5.0"],
    );
    assert!(!ok && err.contains("Timeout"), "{err}");
    let (out, _, _) = run(
        "snmpget",
        &["-v2c", "-c", "only", &agent, ".1.3.6.1.4.1.40001.1.4.2"],
    );
    assert!(out.trim().ends_with(" 1"), "{out}");
}

#[test]
fn allow_list_drops_other_addresses_and_garbage_is_counted_not_answered() {
    let k = Kurad::start(conf_dir(
        &server("", "      <Allow>127.0.0.2</Allow>"),
        &vhosts_xml(""),
    ));
    let agent = k.snmp();
    let (_, err, ok) = run(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.to_string(),
            ".1.3.6.1.2.1.1.5.0",
        ],
    );
    assert!(
        !ok && err.contains("Timeout"),
        "127.0.0.1 is not allowed: {err}"
    );
    assert!(k.wait_log("snmp request dropped"));

    let k = Kurad::start(conf_dir(&server("", ""), &vhosts_xml("")));
    let agent = k.snmp();
    for garbage in [
        &b"\x30\x03\x02\x01"[..],
        b"hello",
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
    ] {
        assert_eq!(exchange(agent, garbage), None, "no reply to garbage");
    }
    let (out, _, _) = run(
        "snmpget",
        &[
            "-v2c",
            "-c",
            "public",
            &agent.to_string(),
            ".1.3.6.1.2.1.11.6.0",
        ],
    );
    assert!(out.trim().ends_with(" 3"), "snmpInASNParseErrs: {out}");
}

#[test]
fn queued_requests_from_several_pollers_are_all_answered_to_their_senders() {
    let k = Kurad::start(conf_dir(&server("", ""), &vhosts_xml("")));
    let agent = k.snmp();
    let pollers: Vec<UdpSocket> = (0..3)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(700)))
                .unwrap();
            s
        })
        .collect();
    let id = |poller: usize, n: i32| 100 * poller as i32 + n;
    // Sent back to back before any reply is read, so they queue in the agent's
    // socket; garbage among them is dropped alone.
    for n in 0..8 {
        for (p, s) in pollers.iter().enumerate() {
            let request = bulk_request(id(p, n), 0, 1, &[&[1, 3, 6, 1, 2, 1, 1]]);
            s.send_to(&request, agent).unwrap();
            if n == 3 {
                s.send_to(b"garbage", agent).unwrap();
            }
        }
    }
    let mut buf = vec![0u8; 65_536];
    for (p, s) in pollers.iter().enumerate() {
        let mut answered = Vec::new();
        while let Ok(n) = s.recv(&mut buf) {
            let (_, msg) = snmp_parser::parse_snmp_v2c(&buf[..n]).expect("a well-formed reply");
            let snmp_parser::SnmpPdu::Generic(pdu) = &msg.pdu else {
                panic!("not a response: {:?}", msg.pdu)
            };
            answered.push(pdu.req_id as i32);
        }
        let sent: Vec<i32> = (0..8).map(|n| id(p, n)).collect();
        assert_eq!(
            answered, sent,
            "poller {p} gets each of its replies once, in order"
        );
    }
}

#[test]
fn reload_applies_snmp_settings() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let vhosts = vhosts_xml(&vhost("a.test", origin.addr, ""));
    let k = Kurad::start(conf_dir(&server("VHostMin=\"5\"", ""), &vhosts));
    let agent = k.snmp().to_string();
    let next = || {
        run(
            "snmpgetnext",
            &[
                "-v2c",
                "-c",
                "public",
                &agent,
                ".1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9",
            ],
        )
        .0
    };
    assert!(
        next().starts_with(".1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9.5.1 "),
        "{}",
        next()
    );
    let server_path = k.conf_path().join("server.xml");
    std::fs::write(&server_path, server("VHostMin=\"1\"", "")).unwrap();
    assert_eq!(
        curl(&format!("http://{}/conf/reload", k.manager), &[]).status,
        200
    );
    assert!(
        next().starts_with(".1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9.1.1 "),
        "{}",
        next()
    );
    std::fs::write(
        &server_path,
        server("", "").replace("Status=\"Active\"", "Status=\"Inactive\""),
    )
    .unwrap();
    assert_eq!(
        curl(&format!("http://{}/conf/reload", k.manager), &[]).status,
        200
    );
    let (_, err, ok) = run(
        "snmpget",
        &["-v2c", "-c", "public", &agent, ".1.3.6.1.2.1.1.5.0"],
    );
    assert!(!ok && err.contains("Timeout"), "the agent stopped: {err}");
}

/// What the issue promises an operator: with the committed `mibs/KURA-MIB.txt` on the
/// MIB path, `snmpwalk -m +KURA-MIB ... kura` resolves the root by name and prints a name
/// for every row the numeric walk returns.
#[test]
fn snmpwalk_with_the_mib_prints_names() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let k = Kurad::start(conf_dir(
        &server("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let agent = k.snmp().to_string();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mib_dirs = format!(
        "+{}:{}",
        root.join("mibs").display(),
        root.join("tests/mibs").display()
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("snmpwalk")
        .env("SNMPCONFPATH", home.path())
        .env_remove("MIBS")
        .env_remove("MIBDIRS")
        .args(["-M", &mib_dirs, "-m", "+KURA-MIB", "-v2c", "-c", "public"])
        .args(["-t", "1", "-r", "0", &agent, "kura"])
        .output()
        .expect("snmpwalk (install net-snmp's snmp package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Debian ships net-snmp's default modules (SNMPv2-MIB, IF-MIB...) in a non-free
    // package, so net-snmp complains about its own modules here; about ours, or about
    // the walk itself, it must say nothing.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("MIB search path:"))
        .filter(|l| {
            l.contains("KURA")
                || l.contains("kura")
                || l.contains("Timeout")
                || l.contains("increasing")
        })
        .collect();
    assert!(out.status.success() && complaints.is_empty(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The walk ends past our subtree: net-snmp prints that as a last, named line.
    let named: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.contains("No more variables left"))
        .collect();
    let unnamed: Vec<&&str> = named
        .iter()
        .filter(|l| !l.starts_with("KURA-MIB::kura"))
        .collect();
    assert!(
        unnamed.is_empty(),
        "rows without a KURA-MIB name: {unnamed:?}"
    );
    let numeric = walk("snmpwalk", "-v2c", k.snmp(), &[]);
    assert_eq!(named.len(), numeric.len(), "one line per row");
    assert!(
        named
            .iter()
            .any(|l| l.starts_with("KURA-MIB::kuraVhostClientHttpReqCount.5.1 = INTEGER: ")),
        "{}",
        &stdout[..stdout.len().min(2000)]
    );
}

#[test]
fn meta_conf_shows_the_same_history_as_conf_history() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let one = vhosts_xml(&vhost("a.test", origin.addr, ""));
    let k = Kurad::start(conf_dir(&server("", ""), &one));
    k.write_vhosts(&vhosts_xml(&format!(
        "{}{}",
        vhost("a.test", origin.addr, ""),
        vhost("b.test", origin.addr, "")
    )));
    let api = |p: &str| curl(&format!("http://{}{p}", k.manager), &[]);
    assert_eq!(api("/conf/reload").status, 200);
    assert_eq!(api("/conf/restore?id=1").status, 200);
    let history: Value = serde_json::from_slice(&api("/conf/history").body).unwrap();
    let history = history["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    // meta.conf column c, row i (1 = the configuration in force).
    let (out, err, ok) = run(
        "snmpwalk",
        &[
            "-v2c",
            "-c",
            "public",
            &k.snmp().to_string(),
            &format!("{ENTERPRISE}.1.10"),
        ],
    );
    assert!(ok, "{err}");
    let rows = rows(&out);
    let cell = |c: u32, i: usize| {
        let oid = format!("{ENTERPRISE}.1.10.{c}.{i}");
        rows.iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {oid} in {rows:?}"))
    };
    for (i, entry) in history.iter().rev().enumerate() {
        let i = i + 1;
        assert_eq!(cell(1, i), entry["id"].as_str().unwrap(), "ID.{i}");
        let kind = ["loaded", "modified", "uploaded", "restored"]
            .iter()
            .position(|t| entry["type"] == *t)
            .unwrap()
            + 1;
        assert_eq!(cell(3, i), kind.to_string(), "Type.{i}");
        assert_eq!(cell(4, i), entry["size"].as_str().unwrap(), "Size.{i}");
        assert_eq!(cell(5, i), entry["hash"].as_str().unwrap(), "Hash.{i}");
        assert!(cell(6, i).ends_with(".tgz"), "Path.{i}: {}", cell(6, i));
        assert_eq!(cell(7, i), entry["ver"].as_str().unwrap(), "Ver.{i}");
    }
    assert_eq!(cell(3, 1), "4", "the configuration in force was restored");
}
