//! `/monitoring/realtime` and `/monitoring/average`: a known traffic mix gives
//! exact counts, and JSON and XML agree.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn monitoring(k: &Kurad, what: &str, ty: &str) -> CurlResponse {
    curl(
        &format!("http://{}/monitoring/{what}?type={ty}", k.manager),
        &[],
    )
}

/// The attributes of every element named `tag` in an XML document, parsed with quick-xml.
fn xml_attrs(doc: &str, tag: &str) -> Vec<HashMap<String, String>> {
    let mut r = quick_xml::Reader::from_str(doc);
    let mut out = Vec::new();
    loop {
        match r.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == tag.as_bytes() =>
            {
                out.push(
                    e.attributes()
                        .map(|a| {
                            let a = a.unwrap();
                            (
                                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                                a.unescape_value().unwrap().into_owned(),
                            )
                        })
                        .collect(),
                );
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// `(Path, Status)` of each `Host.System.Storage.Disk[]` entry.
fn disk_states(json: &Value) -> Vec<(&str, &str)> {
    json["Host"]["System"]["Storage"]["Disk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["Path"].as_str().unwrap(), d["Status"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_known_mix_gives_exact_counts_in_json_and_xml() {
    let origin = mix_origin();
    // A view over both vhosts (and one that does not exist) sums to the host.
    let view = "  <View Name=\"all\"><Vhost>a.test</Vhost><Vhost>B.test</Vhost><Vhost>ghost</Vhost></View>\n";
    let vhosts = vhosts_xml(&format!(
        "{}{}{view}",
        vhost("a.test", origin.addr, ""),
        vhost("b.test", origin.addr, "")
    ));
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts));
    let (hits, misses, not_found) = (20u64, 5u64, 3u64);
    send_mix(k.http(), "a.test", hits, misses, not_found);
    get(k.http(), "b.test", "/other");
    let total_a = 1 + hits + misses + not_found;

    // The 5-minute window holds only completed minutes: wait for the one with the mix.
    let until = Instant::now() + Duration::from_secs(75);
    let json = loop {
        let r = monitoring(&k, "average", "JSON");
        assert_eq!(r.status, 200, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("valid JSON");
        if v["Host"]["HttpCountSum"]["ClientReqCount"] == total_a + 1 {
            break v;
        }
        assert!(Instant::now() < until, "the minute never completed: {v:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let host = &json["Host"];
    assert_eq!(host["Version"], kura::VERSION);
    assert_eq!(host["State"], "Healthy");
    let sum = &host["HttpCountSum"];
    assert_eq!(sum["ClientResTotalCount"], total_a + 1);
    assert_eq!(sum["ClientRes2xxCount"], 1 + hits + misses + 1);
    assert_eq!(sum["ClientRes4xxCount"], not_found);
    assert_eq!(
        sum["OriginReqCount"],
        1 + misses + not_found + 1,
        "hits never reach the origin"
    );
    assert_eq!(sum["OriginRes4xxCount"], not_found);
    let results = &host["HttpRequestHitSum"];
    assert_eq!(results["TCP_HIT"], hits);
    assert_eq!(results["TCP_MISS"], 1 + misses + not_found + 1);
    assert_eq!(results["TCP_ERROR"], 0);
    let keys: Vec<&String> = results.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.first().map(|s| s.as_str()),
        Some("TCP_NONE"),
        "members in the guide's order"
    );
    // Ratios from the window's totals: 20 hits of 30 requests = 66.67 %.
    assert_eq!(host["RequestHitRatio"], 6667);
    let vh = json["Host"]["VirtualHost"].as_array().unwrap();
    assert_eq!(vh.len(), 2);
    assert_eq!(vh[0]["Name"], "a.test");
    assert_eq!(vh[1]["Name"], "b.test");
    assert_eq!(
        vh[0]["RequestHitRatio"],
        (hits * 10_000 + (total_a / 2)) / total_a
    );
    assert_eq!(vh[1]["RequestHitRatio"], 0);

    // XML carries the same numbers, as attributes.
    let xml = monitoring(&k, "average", "XML");
    assert_eq!(xml.header("content-type"), Some("application/xml"));
    let doc = xml.text();
    let host_x = &xml_attrs(&doc, "Host")[0];
    let sum_x = &xml_attrs(&doc, "HttpCountSum")[0];
    let hit_x = &xml_attrs(&doc, "HttpRequestHitSum")[0];
    for (k, v) in sum.as_object().unwrap() {
        assert_eq!(sum_x[k], v.to_string(), "HttpCountSum@{k}");
    }
    for (k, v) in results.as_object().unwrap() {
        assert_eq!(hit_x[k], v.to_string(), "HttpRequestHitSum@{k}");
    }
    for (k, v) in host
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_i64() || v.is_u64())
    {
        if k != "Uptime" {
            assert_eq!(host_x[k], v.to_string(), "Host@{k}");
        }
    }
    let vh_x = xml_attrs(&doc, "VirtualHost");
    assert_eq!(vh_x.len(), 2);
    assert_eq!(vh_x[0]["Name"], "a.test");
    assert_eq!(
        vh_x[0]["ClientRes4xxCount"],
        vh[0]["ClientRes4xxCount"].to_string()
    );

    // OriginTraffic and ClientTraffic of a.test: totals of the same mix.
    let origin_traffic = &vh[0]["OriginTraffic"];
    assert_eq!(origin_traffic["HttpReqCountSum"], 1 + misses + not_found);
    assert_eq!(
        origin_traffic["Response"]["ResTotal"]["CompletedSum"],
        1 + misses + not_found
    );
    assert_eq!(origin_traffic["Response"]["Res4xx"]["CountSum"], not_found);
    assert!(origin_traffic["Connect"]["Count"].as_u64().unwrap() >= 1);
    let traffic = &vh[0]["ClientTraffic"]["Traffic"][0];
    assert_eq!(traffic["Path"], "/");
    assert_eq!(traffic["HttpReqCountSum"], total_a);
    assert_eq!(
        traffic["Response"]["ResTotal"]["CompletedSum"], total_a,
        "every response was sent to its end"
    );
    assert_eq!(traffic["RequestHitSum"]["TCP_HIT"], hits);
    assert_eq!(traffic["RequestHitRatio"], vh[0]["RequestHitRatio"]);

    let views = json["Host"]["View"].as_array().unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["Name"], "all");
    for k in [
        "RequestHitRatio",
        "ByteHitRatio",
        "ClientReqCount",
        "ClientOutbound",
        "OriginRes4xxCount",
    ] {
        assert_eq!(views[0][k], host[k], "View all = Host for {k}");
    }
    let sums: Vec<String> = xml_attrs(&doc, "HttpReqCount")
        .iter()
        .map(|a| a["Sum"].clone())
        .collect();
    assert_eq!(
        sums[..2],
        [(1 + misses + not_found).to_string(), total_a.to_string()],
        "<HttpReqCount Sum> origin, then client, of a.test"
    );
    let view_x = xml_attrs(&doc, "View");
    assert_eq!(
        view_x[0]["RequestHitRatio"],
        views[0]["RequestHitRatio"].to_string()
    );

    // Response-time quantiles (our addition): ordered, and the same in XML.
    let rt = &host["ResponseTime"]["Client"];
    let q = |k: &str| rt[k].as_i64().unwrap();
    assert!(
        q("P50") >= 0 && q("P50") <= q("P90") && q("P90") <= q("P99") && q("P99") <= q("P999"),
        "{rt}"
    );
    assert!(
        host["ResponseTime"]["Origin"]["P50"].as_i64().unwrap() >= q("P50") / 100,
        "origin quantiles exist"
    );
    // In XML the vhosts' ResponseTime elements come first, the host's last (our addition
    // follows the guide's members), two per block: Client, then Origin.
    let rt_x = xml_attrs(&doc, "ResponseTime");
    assert_eq!(rt_x[0]["Side"], "Client");
    assert_eq!(
        rt_x[0]["P99"],
        vh[0]["ResponseTime"]["Client"]["P99"].to_string(),
        "a.test"
    );
    let host_rt_x = &rt_x[rt_x.len() - 2];
    assert_eq!(host_rt_x["Side"], "Client");
    assert_eq!(host_rt_x["P99"], rt["P99"].to_string(), "host");

    // /metrics: the same totals as monotonic counters, and a valid exposition.
    let metrics = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    let sample = |line_start: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{metrics}"))
    };
    let a = sample;
    assert_eq!(
        a("kura_requests_total{vhost=\"a.test\",side=\"client\"}"),
        total_a as f64
    );
    assert_eq!(
        a("kura_cache_results_total{vhost=\"a.test\",result=\"TCP_HIT\"}"),
        hits as f64
    );
    assert_eq!(
        a("kura_cache_result_bytes_total{vhost=\"a.test\",result=\"TCP_HIT\"}"),
        (hits * 1000) as f64
    );
    assert_eq!(
        a("kura_responses_total{vhost=\"a.test\",side=\"origin\",class=\"4xx\"}"),
        not_found as f64
    );
    assert_eq!(
        a("kura_response_duration_seconds_count{vhost=\"a.test\",side=\"client\"}"),
        total_a as f64
    );
    assert_eq!(
        a("kura_response_duration_seconds_bucket{vhost=\"a.test\",side=\"client\",le=\"+Inf\"}"),
        total_a as f64
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; dev/setup does)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[test]
fn unknown_type_is_a_400_with_a_json_error() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let r = monitoring(&k, "realtime", "YAML");
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], "ERROR");
    let ok = monitoring(&k, "realtime", "json");
    assert_eq!(ok.status, 200);
    let v: Value = serde_json::from_slice(&ok.body).unwrap();
    assert!(v["Host"]["Uptime"].is_u64());
}

#[test]
fn counts_stay_exact_under_concurrency() {
    let origin = Origin::start(|_| Reply::ok("c").header("cache-control", "max-age=600"));
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let (clients, each) = (64u64, 1000u64);
    let addr = k.http();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = connect(addr);
                for _ in 0..each {
                    assert_eq!(exchange(&mut conn, "a.test", "/c").0, "HTTP/1.1 200 OK");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let until = Instant::now() + Duration::from_secs(75);
    loop {
        let v: Value = serde_json::from_slice(&monitoring(&k, "average", "JSON").body).unwrap();
        let sum = &v["Host"]["HttpCountSum"];
        if sum["ClientReqCount"] == clients * each {
            let hits = &v["Host"]["HttpRequestHitSum"];
            assert_eq!(sum["ClientRes2xxCount"], clients * each);
            assert_eq!(
                hits["TCP_HIT"].as_u64().unwrap() + hits["TCP_MISS"].as_u64().unwrap(),
                clients * each
            );
            assert_eq!(
                origin.count("/c"),
                1,
                "one origin request for 64,000 client requests"
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "totals never reached {}: {v:#}",
            clients * each
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every field the catalog writes is in the spec's chapter 10 inventory, at the
/// JSON path and the XML path the writers use.
#[test]
fn catalog_fields_are_in_the_chapter_10_inventory() {
    use kura::stats::catalog;
    let tsv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/spec/monitoring-fields.tsv"
    ))
    .expect("../shared/spec/monitoring-fields.tsv beside the repository");
    let rows: std::collections::HashSet<(String, String)> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.len() > 2)
        .map(|f| (f[1].to_string(), f[2].to_string()))
        .collect();
    let mut checked = 0;
    let mut expect = |json: String, xml: String| {
        assert!(
            rows.contains(&(json.clone(), xml.clone())),
            "{json} / {xml} is not in monitoring-fields.tsv"
        );
        checked += 1;
    };
    for f in catalog::traffic() {
        expect(format!("Host.{}", f.name), format!("Host@{}", f.name));
        expect(
            format!("Host.VirtualHost[].{}", f.name),
            format!("Host/VirtualHost@{}", f.name),
        );
    }
    for (group, fields) in [
        ("HttpCountSum", catalog::http_count_sum()),
        ("HttpRequestHitSum", catalog::http_request_hit_sum()),
    ] {
        for f in fields {
            expect(
                format!("Host.{group}.{}", f.name),
                format!("Host/{group}@{}", f.name),
            );
        }
    }
    for (group, fields) in catalog::system() {
        if catalog::SYSTEM_ADDITIONS.contains(group) {
            // Ours: the inventory must not have it (else it is the guide's, named its way).
            let prefix = format!("Host.System.{group}");
            assert!(
                !rows.iter().any(|(json, _)| json.starts_with(&prefix)),
                "{prefix} is in the inventory now: follow it, drop it from SYSTEM_ADDITIONS"
            );
            continue;
        }
        for f in fields {
            expect(
                format!("Host.System.{group}.{}", f.name),
                format!("Host/System/{group}@{}", f.name),
            );
        }
    }
    for f in catalog::system_values() {
        expect(
            format!("Host.System.{}", f.name),
            format!("Host/System/{}", f.name),
        );
    }
    for f in catalog::disk() {
        expect(
            format!("Host.System.Storage.Disk[].{}", f.name),
            format!("Host/System/Storage/Disk@{}", f.name),
        );
    }
    for top in ["Version", "Name", "State"] {
        expect(format!("Host.{top}"), format!("Host@{top}"));
    }
    expect(
        "Host.VirtualHost[].Name".into(),
        "Host/VirtualHost@Name".into(),
    );
    assert!(checked > 100, "{checked}");
}

#[test]
fn session_gauges_follow_connections_and_requests_in_flight() {
    let origin = Origin::start(|s| {
        let r = Reply::ok("s").header("cache-control", "no-store");
        if s.path == "/slow" {
            r.delay(Duration::from_millis(2500))
        } else {
            r
        }
    });
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    let addr = k.http();
    let host_realtime = |k: &Kurad| -> Value {
        let v: Value = serde_json::from_slice(&monitoring(k, "realtime", "JSON").body).unwrap();
        v["Host"].clone()
    };
    let realtime = |k: &Kurad| host_realtime(k)["VirtualHost"][0].clone();
    let slow = std::thread::spawn(move || get(addr, "a.test", "/slow"));
    std::thread::sleep(Duration::from_millis(1600));
    let during = realtime(&k);
    assert_eq!(during["ClientActiveSession"], 1, "{during:#}");
    assert_eq!(during["OriginActiveSession"], 1, "{during:#}");
    assert_eq!(during["OriginSession"], 1, "{during:#}");
    assert_eq!(during["ClientSession"], 1, "{during:#}");
    assert_eq!(slow.join().unwrap().status, 200);

    // Two idle keep-alive clients: sessions, but nothing active.
    let mut idle: Vec<_> = (0..2).map(|_| connect(addr)).collect();
    for c in &mut idle {
        assert_eq!(exchange(c, "a.test", "/x").0, "HTTP/1.1 200 OK");
    }
    std::thread::sleep(Duration::from_millis(1300));
    let after = realtime(&k);
    assert_eq!(after["ClientActiveSession"], 0, "{after:#}");
    assert_eq!(after["OriginActiveSession"], 0, "{after:#}");
    assert_eq!(after["ClientSession"], 2, "{after:#}");
    let system = &host_realtime(&k)["System"];
    assert_eq!(system["ServerSocket"]["Total"], 2, "{system:#}");
    // The host's count: both ends of the two idle connections at least.
    assert!(
        system["TCPSocket"]["Established"].as_u64().unwrap() >= 4,
        "{system:#}"
    );
    assert!(
        system["ClientSocket"]["Total"].as_u64().unwrap() >= 1,
        "{system:#}"
    );
    let cpu = &system["CPU"];
    let shares: u64 = [
        "Kernel", "User", "Idle", "Nice", "IOWait", "IRQ", "SoftIRQ", "Steal",
    ]
    .iter()
    .map(|k| cpu[k].as_u64().unwrap())
    .sum();
    assert!(
        (9_990..=10_000).contains(&shares),
        "CPU shares add up to 100.00%: {cpu}"
    );
    // Network traffic (our addition): what /proc/net/dev moved in that second, loopback
    // excluded, so this test's own traffic is not in it; sent packets carry bytes.
    let net = &system["Network"];
    let n = |k: &str| {
        net[k]
            .as_u64()
            .unwrap_or_else(|| panic!("Network.{k}: {net}"))
    };
    assert!(
        n("OutPackets") == 0 || n("Outbound") >= n("OutPackets") * 20,
        "{net}"
    );
    assert!(
        n("InPackets") == 0 || n("Inbound") >= n("InPackets") * 20,
        "{net}"
    );
    assert!(
        system["Mem"]["STON"].as_u64().unwrap() > 1 << 20,
        "kurad's RSS in bytes: {system:#}"
    );
    assert!(
        after["OriginSession"].as_u64().unwrap() >= 1,
        "pooled origin connections stay open: {after:#}"
    );
    let metrics = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "kura_sessions{vhost=\"a.test\",side=\"client\",state=\"open\"} 2"),
        "{metrics}"
    );
    let rss: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss > 1 << 20, "process_resident_memory_bytes {rss}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(realtime(&k)["ClientSession"], 0);
}

#[test]
fn hwinfo_and_origin_describe_the_machine_and_the_configured_origins() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let a = format!(
        "  <Vhost Name=\"a.test\"><Listen>127.0.0.1:0</Listen><Origin><Address>{}</Address>\
         <Address2>10.9.9.9:8080</Address2><Address2>standby.example</Address2></Origin></Vhost>\n",
        origin.addr
    );
    let vhosts = vhosts_xml(&format!("{a}{}", vhost("b.test", origin.addr, "")));
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts));

    let hw: Value =
        serde_json::from_slice(&curl(&format!("http://{}/monitoring/hwinfo", k.manager), &[]).body)
            .unwrap();
    assert_eq!(hw["method"], "hwinfo");
    let r = &hw["result"];
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(r["CPU"]["ProcCount"], cpus.to_string());
    assert!(r["Memory"].as_str().unwrap().ends_with(" GB"));
    assert!(r["OS"].as_str().unwrap().starts_with("Linux version"));
    for disk in r["Disk"].as_array().unwrap() {
        assert!(
            disk["Total"].as_str().unwrap().parse::<u64>().unwrap() > 0,
            "{disk}"
        );
    }

    let all: Value =
        serde_json::from_slice(&curl(&format!("http://{}/monitoring/origin", k.manager), &[]).body)
            .unwrap();
    let list = all["origin"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["VirtualHost"], "a.test");
    assert_eq!(list[0]["Address"][0][origin.addr.to_string()], "Active");
    assert_eq!(list[0]["Address2"].as_array().unwrap().len(), 2);
    assert_eq!(
        list[0]["Address2"][0]["10.9.9.9:8080"], "Inactive",
        "a standby is in use only while it stands in for a failed address"
    );
    assert_eq!(
        list[0]["ActiveIP"].as_array().unwrap().len(),
        2,
        "IPs, not domains: {}",
        list[0]
    );
    let one = curl(
        &format!("http://{}/monitoring/origin.json?vhost=B.test", k.manager),
        &[],
    );
    let one: Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(one["origin"].as_array().unwrap().len(), 1);
    assert_eq!(one["origin"][0]["VirtualHost"], "b.test");
    assert_eq!(
        curl(
            &format!("http://{}/monitoring/origin?vhost=none", k.manager),
            &[]
        )
        .status,
        404
    );
}

#[test]
fn fileinfo_reports_a_cached_object() {
    let origin = Origin::start(|_| {
        Reply::ok(&"f".repeat(2048))
            .header("cache-control", "max-age=600")
            .header("content-type", "application/octet-stream")
            .header("etag", "\"502dd614:200c2b\"")
            .header("last-modified", "Mon, 22 Nov 2010 20:31:47 GMT")
    });
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "<Alias>alias.test</Alias>")),
    ));
    let info = |url: &str| -> Value {
        serde_json::from_slice(
            &curl(
                &format!("http://{}/monitoring/fileinfo?url={url}", k.manager),
                &[],
            )
            .body,
        )
        .unwrap()
    };
    let before = info("a.test/sample.dat");
    assert_eq!(before["status"], "NOT_CACHED");
    assert_eq!(before["result"].as_array().unwrap().len(), 0);
    get(k.http(), "a.test", "/sample.dat");
    get(k.http(), "a.test", "/sample.dat");
    let v = info("alias.test/sample.dat");
    assert_eq!(v["method"], "fileinfo");
    assert_eq!(v["status"], "OK");
    let r = &v["result"][0];
    assert_eq!(r["URI"], "/sample.dat");
    assert_eq!(r["Size"], 2048);
    assert_eq!(r["ResponseCode"], 200);
    assert_eq!(r["ContentType"], "application/octet-stream");
    assert_eq!(r["CacheControl"], "600");
    assert_eq!(r["ETag"], "502dd614:200c2b");
    assert_eq!(r["State"], "Cached");
    assert_eq!(
        r["LastModifiedTime"].as_str().unwrap().split(',').next(),
        Some("[ 2010.11.22 20:31:47")
    );
    let ttl_left: i64 = r["TTL-Left"]
        .as_str()
        .unwrap()
        .trim_matches(|c| c == '[' || c == ']' || c == ' ')
        .rsplit(", ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&ttl_left), "TTL-Left {ttl_left}");
    assert!(
        r.get("File-Opened ").is_some(),
        "the guide's key, with its trailing space"
    );
    assert_eq!(
        curl(&format!("http://{}/monitoring/fileinfo", k.manager), &[]).status,
        400
    );
    assert_eq!(
        curl(
            &format!(
                "http://{}/monitoring/fileinfo?url=nowhere.test/x",
                k.manager
            ),
            &[]
        )
        .status,
        404
    );
}

/// Every chapter 10 field of the inventory is either written (as in the golden
/// reply, which has a vhost and a view) or listed in docs/monitoring-gaps.tsv with
/// a status and a reason; and no listed gap is written already.
#[test]
fn every_chapter_10_field_is_written_or_a_documented_gap() {
    let root = env!("CARGO_MANIFEST_DIR");
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/tests/golden/monitoring-average.json")).unwrap(),
    )
    .unwrap();
    let mut written = std::collections::HashSet::new();
    fn walk(v: &Value, path: String, out: &mut std::collections::HashSet<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                walk(
                    x,
                    if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    },
                    out,
                )
            }),
            Value::Array(a) => a.iter().for_each(|x| walk(x, format!("{path}[]"), out)),
            _ => {}
        }
        out.insert(path);
    }
    walk(&golden, String::new(), &mut written);
    let gaps_text = std::fs::read_to_string(format!("{root}/docs/monitoring-gaps.tsv")).unwrap();
    let gaps: Vec<Vec<&str>> = gaps_text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    for g in &gaps {
        assert!(
            g.len() == 3 && ["n/a", "pending"].contains(&g[1]) && g[2].len() > 10,
            "gap rows need a status and a reason: {g:?}"
        );
        assert!(
            !written.iter().any(|w| w.starts_with(g[0])),
            "{} is written now: remove it from the gaps",
            g[0]
        );
    }
    let inventory =
        std::fs::read_to_string(format!("{root}/../shared/spec/monitoring-fields.tsv")).unwrap();
    let mut missing = Vec::new();
    for row in inventory.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        let (section, path) = (f[0], f[1]);
        let chapter10 = ["Host", "System", "VirtualHost", "View"]
            .iter()
            .any(|s| section.starts_with(s));
        if !chapter10 || path.ends_with(".*") {
            continue;
        }
        if !written.contains(path) && !gaps.iter().any(|g| path.starts_with(g[0])) {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "neither written nor a documented gap:\n{}",
        missing.join("\n")
    );

    // The XML reply has every written field at the inventory's XML path.
    let xml =
        std::fs::read_to_string(format!("{root}/tests/golden/monitoring-average.xml")).unwrap();
    let mut xml_paths = std::collections::HashSet::new();
    let mut stack: Vec<String> = Vec::new();
    let mut reader = quick_xml::Reader::from_str(&xml);
    loop {
        let event = reader.read_event().unwrap();
        let (start, empty) = match &event {
            quick_xml::events::Event::Start(e) => (Some(e.clone()), false),
            quick_xml::events::Event::Empty(e) => (Some(e.clone()), true),
            quick_xml::events::Event::End(_) => {
                stack.pop();
                (None, false)
            }
            quick_xml::events::Event::Eof => break,
            _ => (None, false),
        };
        if let Some(e) = start {
            stack.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            let path = stack.join("/");
            for a in e.attributes() {
                xml_paths.insert(format!(
                    "{path}@{}",
                    String::from_utf8_lossy(a.unwrap().key.as_ref())
                ));
            }
            xml_paths.insert(path);
            if empty {
                stack.pop();
            }
        }
    }
    let mut misplaced = Vec::new();
    for row in inventory.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        let (section, path, xml_path) = (f[0], f[1], f[2]);
        let chapter10 = ["Host", "System", "VirtualHost", "View"]
            .iter()
            .any(|s| section.starts_with(s));
        if chapter10
            && written.contains(path)
            && !xml_path.contains('*')
            && !xml_paths.contains(xml_path)
        {
            misplaced.push(format!("{path} -> {xml_path}"));
        }
    }
    assert!(
        misplaced.is_empty(),
        "written in JSON but not at the inventory's XML path:\n{}",
        misplaced.join("\n")
    );
}

/// `realtime` is exactly the last completed second: a burst sent inside one wall-clock
/// second shows up whole, counts and byte totals, in JSON and XML alike.
#[test]
fn realtime_shows_exactly_the_last_second() {
    let origin = Origin::start(|s| match s.path.as_str() {
        "/hit" => Reply::ok(&"h".repeat(1000)).header("cache-control", "max-age=600"),
        _ => Reply::ok("miss").header("cache-control", "no-store"),
    });
    let k = Kurad::start(conf_dir(
        &server_xml("", ""),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    get(k.http(), "a.test", "/hit");
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    for _attempt in 0..5 {
        // Start 100 ms into a second, so the burst and the fold are well apart.
        let now = unix();
        std::thread::sleep(
            Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()))
                + Duration::from_millis(100),
        );
        let second = unix().as_secs();
        let mut conn = connect(k.http());
        for _ in 0..10 {
            assert_eq!(exchange(&mut conn, "a.test", "/hit").1, "HIT");
        }
        for i in 0..3 {
            assert_eq!(exchange(&mut conn, "a.test", &format!("/m{i}")).1, "MISS");
        }
        drop(conn);
        if unix().as_secs() != second {
            continue; // the burst straddled a second: try again
        }
        let now = unix();
        std::thread::sleep(
            Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()))
                + Duration::from_millis(400),
        );
        let json: Value = serde_json::from_slice(&monitoring(&k, "realtime", "JSON").body).unwrap();
        let xml = monitoring(&k, "realtime", "XML").text();
        let host = &json["Host"];
        assert_eq!(host["HttpCountSum"]["ClientReqCount"], 13, "{host:#}");
        assert_eq!(host["HttpRequestHitSum"]["TCP_HIT"], 10);
        assert_eq!(host["HttpRequestHitSum"]["TCP_MISS"], 3);
        assert_eq!(
            host["ClientReqCount"], 13,
            "over one second the mean is the total"
        );
        assert_eq!(host["OriginReqCount"], 3);
        let traffic = &host["VirtualHost"][0]["ClientTraffic"]["Traffic"][0];
        assert_eq!(
            traffic["HttpResBodySize"],
            10 * 1000 + 3 * 4,
            "body bytes sent in that second"
        );
        assert_eq!(
            host["VirtualHost"][0]["OriginTraffic"]["HttpResBodySize"],
            3 * 4
        );
        let host_x = &xml_attrs(&xml, "Host")[0];
        for key in [
            "ClientReqCount",
            "ClientOutbound",
            "OriginInbound",
            "RequestHitRatio",
            "ByteHitRatio",
        ] {
            assert_eq!(host_x[key], host[key].to_string(), "{key}");
        }
        return;
    }
    panic!("no attempt fitted a burst into one second");
}

/// `System.Storage.Disk[]` lists every `<Disk>` in file order with its path and state;
/// a missing directory is `Invalid`, not a configuration error; a reload keeps the list
/// in step with the file.
#[test]
fn configured_disks_are_listed_in_order_with_their_state() {
    let origin = Origin::start(|_| Reply::ok("x"));
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let missing = d1.path().join("not-there");
    let storage = |paths: &[&std::path::Path]| {
        let disks: String = paths
            .iter()
            .map(|p| format!("      <Disk>{}</Disk>\n", p.display()))
            .collect();
        server_xml("", "").replace("<Storage />", &format!("<Storage>\n{disks}    </Storage>"))
    };
    let k = Kurad::start(conf_dir(
        &storage(&[d1.path(), d2.path(), &missing]),
        &vhosts_xml(&vhost("a.test", origin.addr, "")),
    ));
    // Let the sampler run a couple of seconds, so the counters come from it.
    std::thread::sleep(Duration::from_millis(2500));
    let json: Value = serde_json::from_slice(&monitoring(&k, "realtime", "JSON").body).unwrap();
    let disks = json["Host"]["System"]["Storage"]["Disk"]
        .as_array()
        .unwrap();
    let shown = disk_states(&json);
    let path = |p: &std::path::Path| p.display().to_string();
    assert_eq!(
        shown,
        [
            (path(d1.path()).as_str(), "Normal"),
            (path(d2.path()).as_str(), "Normal"),
            (path(&missing).as_str(), "Invalid"),
        ]
    );
    let members: Vec<&str> = disks[0]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            assert!(k == "Path" || k == "Status" || v.is_u64(), "{k}: {v}");
            k.as_str()
        })
        .collect();
    assert_eq!(
        members,
        [
            "Path",
            "Status",
            "Read",
            "ReadMerged",
            "ReadSectors",
            "ReadTime",
            "Write",
            "WriteMerged",
            "WriteSectors",
            "WriteTime",
            "IOProgress",
            "IOTime",
            "IOWeightedTime"
        ]
    );
    // System's `<Disk Path=..>`, not the vhosts' `<Disk>` (what each holds).
    let disks = |doc: &str| -> Vec<HashMap<String, String>> {
        xml_attrs(doc, "Disk")
            .into_iter()
            .filter(|d| d.contains_key("Path"))
            .collect()
    };
    let xml = disks(&monitoring(&k, "realtime", "XML").text());
    assert_eq!(xml.len(), 3);
    assert_eq!(xml[2]["Path"], path(&missing));
    assert_eq!(xml[2]["Status"], "Invalid");

    // The directory appears: on the next sample it is Normal. A reload drops d1.
    std::fs::create_dir(&missing).unwrap();
    std::fs::write(
        k.conf_path().join("server.xml"),
        storage(&[&missing, d2.path()]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    k.signal("HUP");
    assert!(k.wait_log("generation=1"), "{}", k.log());
    let json: Value = serde_json::from_slice(&monitoring(&k, "realtime", "JSON").body).unwrap();
    assert_eq!(
        disk_states(&json),
        [
            (path(&missing).as_str(), "Normal"),
            (path(d2.path()).as_str(), "Normal"),
        ]
    );
}

/// `(Path, HttpReqCount Sum)` of every `<Traffic>` in `<ClientTraffics>`, in document order.
fn xml_dir_counts(doc: &str) -> Vec<(String, u64)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(doc);
    let (mut out, mut in_path, mut counting) = (Vec::new(), false, false);
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) if e.name().as_ref() == b"Path" => in_path = true,
            Event::Text(t) if in_path => {
                out.push((t.unescape().unwrap().into_owned(), 0));
                (in_path, counting) = (false, true);
            }
            // The first one after a <Path> is that directory's (OriginTraffic has one too).
            Event::Start(e) if e.name().as_ref() == b"HttpReqCount" && counting => {
                let sum = e.try_get_attribute("Sum").unwrap().expect("Sum");
                out.last_mut().unwrap().1 = sum.unescape_value().unwrap().parse().unwrap();
                counting = false;
            }
            Event::Eof => return out,
            _ => {}
        }
    }
}

/// `<Stats><DirDepth>` splits `ClientTraffic` by directory; `<DirDepthAccum>` adds each
/// directory's traffic into its parents, so `/` is then the whole vhost (guide chapter 10).
#[test]
fn directory_statistics_follow_dir_depth_and_accum() {
    let origin = Origin::start(|_| Reply::ok("x").header("cache-control", "max-age=600"));
    let stats = |depth: u32, accum: &str| {
        format!(
            "    <Stats><DirDepth>{depth}</DirDepth><DirDepthAccum>{accum}</DirDepthAccum></Stats>"
        )
    };
    let vhosts = vhosts_xml(&format!(
        "{}{}{}",
        vhost("flat.test", origin.addr, &stats(1, "OFF")),
        vhost("accum.test", origin.addr, &stats(2, "ON")),
        vhost("root.test", origin.addr, ""),
    ));
    let k = Kurad::start(conf_dir(&server_xml("", ""), &vhosts));
    let paths = [
        "/img/1.jpg",
        "/img/1.jpg",
        "/img/1.jpg",
        "/img/sub/2.jpg?v=1",
        "/img/sub/2.jpg?v=2",
        "/css/x.css",
        "/index.html",
    ];
    for host in ["flat.test", "accum.test", "root.test"] {
        for p in paths {
            get(k.http(), host, p);
        }
    }
    let until = Instant::now() + Duration::from_secs(75);
    let url = |ty: &str| {
        format!(
            "http://{}/monitoring/average?type={ty}&minutes=2",
            k.manager
        )
    };
    let json = loop {
        let v: Value = serde_json::from_slice(&curl(&url("JSON"), &[]).body).unwrap();
        if v["Host"]["HttpCountSum"]["ClientReqCount"] == 3 * paths.len() as u64 {
            break v;
        }
        assert!(Instant::now() < until, "the minute never completed");
        std::thread::sleep(Duration::from_millis(500));
    };
    let dirs = |i: usize| -> (Value, Vec<(String, u64)>) {
        let ct = &json["Host"]["VirtualHost"][i]["ClientTraffic"];
        let list = ct["Traffic"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["Path"].as_str().unwrap().to_string(),
                    t["HttpReqCountSum"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>();
        assert_eq!(ct["TrafficCount"], list.len());
        (
            serde_json::json!([
                ct["Depth"],
                ct["Accum"],
                json["Host"]["VirtualHost"][i]["Name"]
            ]),
            list,
        )
    };
    let owned = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    };
    let flat = owned(&[("/", 1), ("/css/", 1), ("/img/", 5)]);
    let accum = owned(&[("/", 7), ("/css/", 1), ("/img/", 5), ("/img/sub/", 2)]);
    let root = owned(&[("/", 7)]);
    assert_eq!(
        dirs(0),
        (serde_json::json!([1, "OFF", "flat.test"]), flat.clone())
    );
    assert_eq!(
        dirs(1),
        (serde_json::json!([2, "ON", "accum.test"]), accum.clone())
    );
    assert_eq!(
        dirs(2),
        (serde_json::json!([0, "OFF", "root.test"]), root.clone())
    );

    // The XML of the same window lists the same directories in the same order.
    let xml = curl(&url("XML"), &[]).text();
    let all: Vec<(String, u64)> = [flat, accum, root].concat();
    assert_eq!(xml_dir_counts(&xml), all);
    let settings: Vec<(String, String)> = xml_attrs(&xml, "ClientTraffics")
        .into_iter()
        .map(|a| (a["Depth"].clone(), a["Accum"].clone()))
        .collect();
    assert_eq!(
        settings,
        [("1", "OFF"), ("2", "ON"), ("0", "OFF")].map(|(d, a)| (d.to_string(), a.to_string()))
    );
}
