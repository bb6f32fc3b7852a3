//! Cache storage (issue 6): real kurad processes with temporary directories as
//! `<Disk>`s, restarted cleanly and with `kill -9`, disks filled past their quota,
//! broken under load, unmounted and mounted, and Memory-Only mode bounded.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A quota (GB) far above what any test stores.
const ROOMY: &str = "1";

/// A server.xml whose `<Storage>` has these attributes and disks (path, Quota GB).
/// Every test disk has a quota: without one a disk takes its file system's free
/// space less a reserve, and on a machine with little free space it would store
/// nothing at all.
fn storage_xml(attrs: &str, disks: &[(&Path, &str)], cache: &str) -> String {
    let disks: String = disks
        .iter()
        .map(|(p, q)| format!("      <Disk Quota=\"{q}\">{}</Disk>\n", p.display()))
        .collect();
    server_xml(cache, "").replace(
        "<Storage />",
        &format!("<Storage {attrs}>\n{disks}    </Storage>"),
    )
}

/// An origin answering every path with `len` bytes derived from the path,
/// cacheable for an hour.
fn origin(len: usize) -> Origin {
    Origin::start(move |s| {
        Reply::ok(&body_of(&s.path, len)).header("cache-control", "max-age=3600")
    })
}

/// The body the origin sends for `path`.
fn body_of(path: &str, len: usize) -> String {
    path.chars().cycle().take(len).collect()
}

/// Starts kurad on a fresh configuration directory.
fn start(server: &str, origin: &Origin) -> Kurad {
    Kurad::start(conf_dir(
        server,
        &vhosts_xml(&vhost("www.test", origin.addr, "")),
    ))
}

/// Every object file under a disk, with its size.
fn object_files(disk: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(disk.join("objects")) else {
        return out;
    };
    for dir in dirs.flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            // A file deleted since the listing is not there any more.
            if let Ok(meta) = f.metadata() {
                out.push((f.path(), meta.len()));
            }
        }
    }
    out
}

/// Waits until `cond` holds (stores happen just after the response).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops kurad with `signal` and waits for it to exit; returns its exit status.
fn stop(mut k: Kurad, signal: &str) -> std::process::ExitStatus {
    k.signal(signal);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = k.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < until, "kurad did not exit on {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn api(k: &Kurad, path: &str) -> Value {
    let r = curl(&format!("http://{}{path}", k.manager), &[]);
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{path}: {}", r.text()))
}

/// `(Path, Status)` of each `System.Storage.Disk[]` entry.
fn disk_states(k: &Kurad) -> Vec<(String, String)> {
    let json = api(k, "/monitoring/realtime");
    json["Host"]["System"]["Storage"]["Disk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["Path"].as_str().unwrap().to_string(),
                d["Status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn objects_cached_before_a_restart_or_a_kill_9_are_hits_after_it() {
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(5000);
    let server = storage_xml("", &[(disk.path(), ROOMY)], "");
    let k = start(&server, &origin);
    let paths = ["/a.txt", "/b.txt", "/dir/c.txt"];
    for p in paths {
        assert_eq!(get(k.http(), "www.test", p).text(), body_of(p, 5000));
    }
    eventually("three object files", || {
        object_files(disk.path()).len() == 3
    });
    let info = api(&k, "/monitoring/fileinfo?url=www.test/a.txt");
    let record = &info["result"][0];
    assert_eq!(record["Disk-Index"], 1, "{info}");
    assert!(
        Path::new(record["LocalPath"].as_str().unwrap()).is_file(),
        "{info}"
    );
    assert!(stop(k, "TERM").success());
    assert!(disk.path().join("clean").exists(), "a clean stop is marked");

    let k = start(&server, &origin);
    assert!(
        !disk.path().join("clean").exists(),
        "the mark is taken at start"
    );
    for p in paths {
        let r = get(k.http(), "www.test", p);
        assert_eq!((r.status, r.text()), (200, body_of(p, 5000)));
        assert_eq!(origin.count(p), 1, "{p} served from disk after a restart");
    }
    stop(k, "KILL");
    let k = start(&server, &origin);
    for p in paths {
        assert_eq!(get(k.http(), "www.test", p).text(), body_of(p, 5000));
        assert_eq!(origin.count(p), 1, "{p} served from disk after kill -9");
    }
}

/// After a restart a body is read from its file once, in the memory tier's
/// 1 MiB pieces, and its later hits come from memory.
#[test]
fn a_body_read_from_disk_enters_the_memory_tier_in_whole_pieces() {
    const LEN: usize = 3 << 20;
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(LEN);
    let server = storage_xml("", &[(disk.path(), ROOMY)], "");
    let k = start(&server, &origin);
    let path = "/clip.bin";
    assert_eq!(get(k.http(), "www.test", path).body.len(), LEN);
    eventually("stored", || object_files(disk.path()).len() == 1);
    assert!(stop(k, "TERM").success());
    let k = start(&server, &origin);
    let reads = |k: &Kurad| {
        let disk = disk.path().display();
        metric(k, &format!("kura_disk_reads_total{{disk=\"{disk}\"}}"))
    };
    let before = reads(&k);
    for _ in 0..3 {
        let r = get(k.http(), "www.test", path);
        assert_eq!((r.status, r.text() == body_of(path, LEN)), (200, true));
    }
    assert_eq!(reads(&k) - before, 3, "three 1 MiB reads, then memory");
    assert_eq!(metric(&k, "kura_memory_tier_bodies"), 1);
    assert_eq!(origin.count(path), 1);
}

#[test]
fn a_torn_object_is_never_served_and_is_fetched_again() {
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(100_000);
    let server = storage_xml("", &[(disk.path(), ROOMY)], "");
    let k = start(&server, &origin);
    for p in ["/torn", "/short"] {
        get(k.http(), "www.test", p);
    }
    eventually("two object files", || object_files(disk.path()).len() == 2);
    let path_of = |k: &Kurad, url: &str| {
        let info = api(k, &format!("/monitoring/fileinfo?url=www.test{url}"));
        PathBuf::from(info["result"][0]["LocalPath"].as_str().unwrap())
    };
    let (torn, short) = (path_of(&k, "/torn"), path_of(&k, "/short"));
    // A power loss: no clean-stop mark, a body block that never reached the disk,
    // and a file cut short.
    stop(k, "KILL");
    let mut bytes = std::fs::read(&torn).unwrap();
    bytes[50_000..54_096].fill(0);
    std::fs::write(&torn, bytes).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap();
    f.set_len(60_000).unwrap();
    drop(f);

    let k = start(&server, &origin);
    assert!(
        !short.exists(),
        "a file shorter than its footer says is deleted at start"
    );
    for p in ["/torn", "/short"] {
        let r = get(k.http(), "www.test", p);
        assert_eq!((r.status, r.text()), (200, body_of(p, 100_000)), "{p}");
        assert_eq!(origin.count(p), 2, "{p} fetched again");
    }
    assert!(k.wait_log("torn object"), "{}", k.log());
}

/// A disk and the least memory for bodies (1 % x 1 % of RAM, a few MB): a fill
/// keeps at most a sixteenth of that in memory and writes larger bodies to
/// its disk as they arrive.
fn least_memory(disk: &Path) -> String {
    storage_xml(
        "",
        &[(disk, ROOMY)],
        "<SystemMemoryRatio>1</SystemMemoryRatio><ContentMemoryRatio>1</ContentMemoryRatio>",
    )
}

/// Files in a disk's `tmp/` (objects being written), with their sizes.
fn tmp_files(disk: &Path) -> Vec<u64> {
    std::fs::read_dir(disk.join("tmp"))
        .unwrap()
        .flatten()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .collect()
}

/// An origin sending `len` bytes of [`pattern`] with a Content-Length, in
/// 64 KiB chunks `pace` apart, cacheable for an hour.
fn paced_origin(len: u64, pace: Duration) -> Origin {
    Origin::start(move |_| Reply {
        status: 200,
        headers: vec![("cache-control".into(), "max-age=3600".into())],
        body: ReplyBody::Generated {
            len,
            with_length: true,
            pace,
        },
        delay: Duration::ZERO,
        reset: false,
    })
}

/// `curl` in a thread: (status, body, X-Cache).
fn get_in_background(url: String) -> std::thread::JoinHandle<(u16, Vec<u8>, String)> {
    std::thread::spawn(move || {
        let r = curl(&url, &["-H", "Host: www.test"]);
        let cache = r.header("x-cache").unwrap_or_default().to_string();
        (r.status, r.body, cache)
    })
}

/// A body far larger than the memory for bodies is written to its disk as it
/// arrives: a client joining the fill halfway gets every byte (the start from
/// the file being written), the origin is asked once, kurad's memory does not
/// grow by the body, and the object is a hit after a restart.
#[test]
fn a_body_larger_than_memory_is_written_to_disk_as_it_arrives() {
    const LEN: u64 = 48 << 20;
    let disk = tempfile::tempdir().unwrap();
    // 768 chunks 3 ms apart: the fill takes over 2 s.
    let origin = paced_origin(LEN, Duration::from_millis(3));
    let server = least_memory(disk.path());
    let k = start(&server, &origin);
    let url = format!("http://{}/film.bin", k.http());
    let rss_before = k.peak_rss_kib();
    let first = get_in_background(url.clone());
    eventually("the body written to tmp/ as it arrives", || {
        tmp_files(disk.path())
            .first()
            .is_some_and(|&n| n > LEN / 8 && n < LEN)
    });
    let late = get_in_background(url.clone());
    for (who, client) in [("first", first), ("late", late)] {
        let (status, body, cache) = client.join().unwrap();
        assert_eq!((status, body.len() as u64), (200, LEN), "{who}");
        assert!(body == pattern(0, LEN), "{who}: every byte in order");
        assert_eq!(cache, if who == "first" { "MISS" } else { "HIT" });
    }
    assert_eq!(
        origin.count("/film.bin"),
        1,
        "the late client joined the fill"
    );
    eventually("the object committed", || {
        object_files(disk.path()).iter().any(|(_, n)| *n > LEN)
    });
    assert!(tmp_files(disk.path()).is_empty());
    let grown = k.peak_rss_kib() - rss_before;
    assert!(
        grown < (LEN >> 10) / 4,
        "kurad's peak memory grew by {grown} KiB for a {} KiB body",
        LEN >> 10
    );
    stop(k, "TERM");
    let k = start(&server, &origin);
    let (status, body, cache) = get_in_background(format!("http://{}/film.bin", k.http()))
        .join()
        .unwrap();
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert!(body == pattern(0, LEN));
    assert_eq!(origin.count("/film.bin"), 1);
}

/// A client reading slowly does not hold back a fill written to disk: the
/// object is stored while the client is still reading, and it gets every byte
/// (what it fell behind on, from the file).
#[test]
fn a_slow_client_does_not_hold_back_a_fill_written_to_disk() {
    const LEN: u64 = 32 << 20;
    let disk = tempfile::tempdir().unwrap();
    let origin = paced_origin(LEN, Duration::ZERO);
    let k = start(&least_memory(disk.path()), &origin);
    let url = format!("http://{}/slow-reader.bin", k.http());
    let slow =
        std::thread::spawn(move || curl(&url, &["-H", "Host: www.test", "--limit-rate", "8M"]));
    eventually("stored while the client reads", || {
        object_files(disk.path()).iter().any(|(_, n)| *n > LEN)
    });
    assert!(!slow.is_finished(), "the client was still reading");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == pattern(0, LEN), "every byte in order");
}

#[test]
fn kill_9_during_a_100_mib_fill_leaves_nothing_partial() {
    const LEN: u64 = 100 << 20;
    let disk = tempfile::tempdir().unwrap();
    // 1600 chunks of 64 KiB, 2 ms apart: the fill takes over 3 s.
    let origin = paced_origin(LEN, Duration::from_millis(2));
    // The body is written to disk as it arrives, so the kill finds part of it there.
    let server = least_memory(disk.path());
    let k = start(&server, &origin);
    let url = format!("http://{}/big", k.http());
    let client = std::thread::spawn(move || {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                "-H",
                "Host: www.test",
            ])
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .parse::<u64>()
            .unwrap_or(0)
    });
    eventually("part of the body in tmp/", || {
        tmp_files(disk.path()).first().is_some_and(|&n| n > 0)
    });
    std::thread::sleep(Duration::from_millis(300));
    stop(k, "KILL");
    let partial = tmp_files(disk.path());
    assert!(
        partial.len() == 1 && partial[0] < LEN,
        "a partial file at the kill: {partial:?}"
    );
    let got = client.join().unwrap();
    assert!(
        got < LEN,
        "the kill came during the fill ({got} bytes sent)"
    );

    let k = start(&server, &origin);
    let count = |dir: &str| std::fs::read_dir(disk.path().join(dir)).unwrap().count();
    assert_eq!(count("tmp"), 0, "no partial file is kept");
    assert!(object_files(disk.path()).is_empty());
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "%{http_code}", "-H", "Host: www.test"])
        .arg(format!("http://{}/big", k.http()))
        .output()
        .unwrap();
    let (body, code) = out.stdout.split_at(out.stdout.len() - 3);
    assert_eq!(code, b"200");
    assert_eq!(body.len() as u64, LEN);
    assert!(body == pattern(0, LEN), "the body, byte for byte");
    assert_eq!(origin.count("/big"), 2, "refetched from the origin");
    eventually("the object stored whole", || {
        object_files(disk.path()).iter().any(|(_, n)| *n > LEN)
    });
}

#[test]
fn a_disk_stays_within_its_quota_under_ten_times_as_many_unique_objects() {
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(20_000);
    // 2 MB: 1000 objects of 20 kB are ten times that.
    let server = storage_xml("", &[(disk.path(), "0.002")], "");
    let k = start(&server, &origin);
    for i in 0..1000 {
        let r = get(k.http(), "www.test", &format!("/u/{i}"));
        assert_eq!(r.status, 200);
        if i % 10 == 0 {
            get(k.http(), "www.test", "/popular");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let files = object_files(disk.path());
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    eprintln!("{} objects kept, {total} bytes", files.len());
    assert!(total <= 2_000_000, "{total} bytes on a 2 MB quota");
    assert!(files.len() > 50, "the quota is used: {}", files.len());
    // `CacheFileEvent`: what was stored and not evicted is what the disk holds.
    eventually("the evictions counted", || {
        let event = |e: &str| www_total(&k, "kura_cache_object_events", &format!("event=\"{e}\""));
        let (stored, erased) = (event("create"), event("erase"));
        erased > 0 && stored - erased == object_files(disk.path()).len() as u64
    });
    // The scan of one-time objects did not push out the one asked for all along.
    assert_eq!(origin.count("/popular"), 1);
}

/// Bodies being written to a disk as they arrive count against its quota as
/// they grow: older objects are evicted to make room, so the disk never holds
/// more than its quota (give or take a file being unlinked).
#[test]
fn bodies_being_written_count_against_the_quota() {
    const LEN: u64 = 6_000_000;
    const QUOTA: u64 = 50_000_000;
    let disk = tempfile::tempdir().unwrap();
    // `/slow/*` takes about a second (64 KiB every 10 ms), the rest come at once.
    let origin = Origin::start(|s| Reply {
        status: 200,
        headers: vec![("cache-control".into(), "max-age=3600".into())],
        body: ReplyBody::Generated {
            len: LEN,
            with_length: true,
            pace: Duration::from_millis(if s.path.starts_with("/slow/") { 10 } else { 0 }),
        },
        delay: Duration::ZERO,
        reset: false,
    });
    let server = storage_xml(
        "",
        &[(disk.path(), "0.05")],
        "<SystemMemoryRatio>1</SystemMemoryRatio><ContentMemoryRatio>1</ContentMemoryRatio>",
    );
    let k = start(&server, &origin);
    // 42 MB: room for one more, so each new one is admitted (a full cache admits
    // only objects asked for more often than what they would evict).
    for i in 0..7 {
        assert_eq!(
            get(k.http(), "www.test", &format!("/old/{i}")).body.len() as u64,
            LEN
        );
    }
    eventually("7 objects stored", || object_files(disk.path()).len() == 7);
    // Bytes of the files in tmp/ and objects/, each file once: a body committed while
    // the directories are listed moves from tmp/ to objects/ under the same inode.
    let used = || -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut files = std::collections::HashMap::new();
        let tmp = std::fs::read_dir(disk.path().join("tmp"))
            .unwrap()
            .flatten();
        for meta in tmp.filter_map(|f| f.metadata().ok()) {
            files.insert(meta.ino(), meta.len());
        }
        for (path, len) in object_files(disk.path()) {
            if let Ok(meta) = std::fs::metadata(&path) {
                files.insert(meta.ino(), len);
            }
        }
        files.values().sum()
    };
    let http = k.http();
    let most = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|i| s.spawn(move || get(http, "www.test", &format!("/slow/{i}"))))
            .collect();
        let mut most = 0;
        while clients.iter().any(|c| !c.is_finished()) {
            most = most.max(used());
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in clients {
            assert_eq!(c.join().unwrap().body.len() as u64, LEN);
        }
        most
    });
    assert!(
        most <= QUOTA + LEN + 100_000,
        "{most} bytes on the disk while 4 bodies of {LEN} were written (quota {QUOTA})"
    );
    // New objects were stored by evicting old ones (a full cache may also refuse
    // a new object asked for once: TinyLFU admission), and the disk holds what
    // was stored less what was evicted, within its quota.
    eventually("the evictions counted", || {
        let event = |e: &str| www_total(&k, "kura_cache_object_events", &format!("event=\"{e}\""));
        let (stored, erased) = (event("create"), event("erase"));
        stored > 7 && erased > 0 && stored - erased == object_files(disk.path()).len() as u64
    });
    let stored: u64 = object_files(disk.path()).iter().map(|(_, n)| n).sum();
    assert!(
        stored <= QUOTA,
        "{stored} bytes of objects on a quota of {QUOTA}"
    );
}

#[test]
fn a_failing_disk_is_taken_out_and_the_others_keep_serving() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let origin = origin(1000);
    let server = storage_xml(
        "DiskFailSec=\"60\" DiskFailCount=\"2\"",
        &[(d1.path(), ROOMY), (d2.path(), ROOMY)],
        "",
    )
    .replace("</Host>", "<SNMP Port=\"0\" Status=\"Active\" /></Host>");
    let k = start(&server, &origin);
    eventually("both disks Normal", || {
        disk_states(&k).iter().all(|(_, s)| s == "Normal")
    });
    // Writes on disk 1 now fail (its tmp/ is a file), while the directory
    // itself looks fine to `df`.
    std::fs::remove_dir_all(d1.path().join("tmp")).unwrap();
    std::fs::write(d1.path().join("tmp"), "not a directory").unwrap();
    for i in 0..60 {
        let p = format!("/f/{i}");
        assert_eq!(get(k.http(), "www.test", &p).text(), body_of(&p, 1000));
    }
    eventually("disk 1 Invalid, disk 2 Normal", || {
        disk_states(&k)
            .iter()
            .map(|(_, s)| s.as_str())
            .eq(["Invalid", "Normal"])
    });
    // New objects go to disk 2 and are hits.
    let before = object_files(d2.path()).len();
    for i in 100..120 {
        let p = format!("/f/{i}");
        get(k.http(), "www.test", &p);
    }
    eventually("all on disk 2", || {
        object_files(d2.path()).len() == before + 20
    });
    for i in 100..120 {
        let p = format!("/f/{i}");
        assert_eq!(get(k.http(), "www.test", &p).text(), body_of(&p, 1000));
        assert_eq!(origin.count(&p), 1, "{p} is a hit");
    }
    // The NMS sees it too: diskInfoStatus.1 and .2.
    for (index, want) in [(1, "Invalid"), (2, "Normal")] {
        let out = std::process::Command::new("snmpget")
            .args(["-v2c", "-c", "public", "-Oqv"])
            .arg(format!("udp:{}", k.snmp()))
            .arg(format!("1.3.6.1.4.1.40001.1.2.18.1.8.{index}"))
            .output()
            .expect("snmpget (apt-get install snmp)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_matches('"'),
            want
        );
    }
}

#[test]
fn every_disk_failing_with_selfkill_stops_kurad_with_an_error() {
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(100);
    let server = storage_xml(
        "DiskFailCount=\"1\" OnCrash=\"selfkill\"",
        &[(disk.path(), ROOMY)],
        "",
    );
    let mut k = start(&server, &origin);
    std::fs::remove_dir_all(disk.path().join("tmp")).unwrap();
    for i in 0..3 {
        let p = format!("/s/{i}");
        assert_eq!(
            get(k.http(), "www.test", &p).status,
            200,
            "served meanwhile"
        );
    }
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = k.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "kurad kept running:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "systemd restarts a failed kurad");
}

#[test]
fn unmount_takes_a_disk_out_and_mount_puts_it_back_empty() {
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(1000);
    let server = storage_xml("", &[(disk.path(), ROOMY)], "");
    let k = start(&server, &origin);
    get(k.http(), "www.test", "/m");
    eventually("stored", || object_files(disk.path()).len() == 1);
    let target = disk.path().display().to_string();
    let r = api(&k, &format!("/command/unmount?disk={target}"));
    assert_eq!(r["result"], target, "{r}");
    eventually("Unmounted", || disk_states(&k)[0].1 == "Unmounted");
    get(k.http(), "www.test", "/m");
    assert_eq!(origin.count("/m"), 2, "its content is gone from the cache");
    assert_eq!(
        curl(
            &format!("http://{}/command/mount?disk=/nowhere", k.manager),
            &[]
        )
        .status,
        404
    );
    api(&k, &format!("/command/mount?disk={target}"));
    eventually("Normal", || disk_states(&k)[0].1 == "Normal");
    assert!(
        object_files(disk.path()).is_empty(),
        "mounting invalidates the old content"
    );
    get(k.http(), "www.test", "/m");
    get(k.http(), "www.test", "/m");
    assert_eq!(origin.count("/m"), 3, "cached again");
}

#[test]
fn memory_only_mode_stays_within_its_memory() {
    let origin = origin(1 << 20);
    // 1% of RAM, half of it for bodies.
    let k = start(
        &server_xml("<SystemMemoryRatio>1</SystemMemoryRatio>", ""),
        &origin,
    );
    let budget_mib = ram_bytes() / (1 << 20) / 100 / 2;
    // Three times the budget in unique 1 MiB objects.
    for i in 0..budget_mib * 3 {
        assert_eq!(get(k.http(), "www.test", &format!("/mem/{i}")).status, 200);
    }
    let peak = k.peak_rss_kib() / 1024;
    eprintln!("peak RSS {peak} MiB for a {budget_mib} MiB body budget");
    assert!(peak < budget_mib + 128, "{peak} MiB");
}

/// One disk and 1 % of RAM: the memory tier takes bodies of a few MB at most,
/// so a 5 MB body is streamed from its file; a 5 kB one enters the tier.
fn small_memory_tier(disk: &Path) -> String {
    storage_xml(
        "",
        &[(disk, ROOMY)],
        "<SystemMemoryRatio>1</SystemMemoryRatio>",
    )
}

#[test]
fn bodies_read_from_disk_serve_whole_and_in_ranges() {
    const LEN: usize = 5_000_000;
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(LEN);
    let server = small_memory_tier(disk.path());
    let k = start(&server, &origin);
    let big = "/video.bin";
    assert_eq!(get(k.http(), "www.test", big).body.len(), LEN);
    eventually("stored", || object_files(disk.path()).len() == 1);
    stop(k, "TERM");
    let k = start(&server, &origin);
    let want = body_of(big, LEN);
    let url = format!("http://{}{big}", k.http());
    for _ in 0..2 {
        let whole = curl(&url, &["-H", "Host: www.test"]);
        assert_eq!((whole.status, whole.text() == want), (200, true));
    }
    let r = curl(&url, &["-H", "Host: www.test", "-r", "4000000-4000009"]);
    assert_eq!(
        (r.status, r.text()),
        (206, want[4_000_000..4_000_010].to_string())
    );
    let multi = curl(&url, &["-H", "Host: www.test", "-r", "0-4,4999995-4999999"]);
    assert_eq!(multi.status, 206);
    let text = multi.text();
    assert!(
        text.contains(&want[..5]) && text.contains(&want[4_999_995..]),
        "{text}"
    );
    assert!(text.contains("Content-Range: bytes 4999995-4999999/5000000"));
    assert_eq!(origin.count(big), 1, "all from the disk");
    let metrics = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(
        value("kura_disk_read_bytes_total") >= 2 * LEN as u64,
        "read twice from the file (too big for the memory tier):\n{metrics}"
    );
    assert!(value("kura_disk_reads_total") >= 2 * (LEN as u64).div_ceil(256 * 1024));
    assert_eq!(value("kura_disk_objects"), 1);
    assert_eq!(value("kura_disk_up"), 1);
}

#[test]
fn snmp_contents_count_what_the_cache_holds() {
    let sizes = [("/small", 500), ("/mid", 5000), ("/big", 2_000_000)];
    let origin = Origin::start(move |s| {
        let len = sizes
            .iter()
            .find(|(p, _)| *p == s.path)
            .map_or(1, |(_, n)| *n);
        Reply::ok(&"x".repeat(len)).header("cache-control", "max-age=3600")
    });
    let server =
        server_xml("", "").replace("</Host>", "<SNMP Port=\"0\" Status=\"Active\" /></Host>");
    let k = start(&server, &origin);
    for (p, _) in sizes {
        get(k.http(), "www.test", p);
    }
    let contents = "1.3.6.1.4.1.40001.1.4.1.10";
    let vhost = "1.3.6.1.4.1.40001.1.4.3.1.10";
    let query = |oids: &[String]| -> Vec<u64> {
        let out = std::process::Command::new("snmpget")
            .args(["-v2c", "-c", "public", "-Oqv"])
            .arg(format!("udp:{}", k.snmp()))
            .args(oids)
            .output()
            .expect("snmpget (apt-get install snmp)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().parse().unwrap_or(u64::MAX))
            .collect()
    };
    // memory KB, files, size MB, and the classes under 1 KB, 8 KB and 2 MB.
    let columns = [1, 2, 3, 10, 13, 21];
    let want = [2_005_500 / 1024, 3, 2_005_500 >> 20, 1, 1, 1];
    eventually("published within a second", || {
        query(&columns.map(|c| format!("{contents}.{c}"))) == want
    });
    let per_vhost = query(&columns.map(|c| format!("{vhost}.{c}.1")));
    assert_eq!(per_vhost, want, "the only vhost holds it all");
    let classes = query(
        &(10..36)
            .map(|c| format!("{contents}.{c}"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        classes.iter().sum::<u64>(),
        3,
        "one class per object: {classes:?}"
    );
    // The same counts in the vhost's JSON statistics, in bytes (realtime: the last second).
    let realtime = |format: &str| {
        curl(
            &format!("http://{}/monitoring/realtime?type={format}", k.manager),
            &[],
        )
        .text()
    };
    let mut vhost = serde_json::Value::Null;
    eventually("FileTotal in realtime", || {
        let reply: serde_json::Value = serde_json::from_str(&realtime("json")).unwrap();
        vhost = reply["Host"]["VirtualHost"][0].clone();
        vhost["FileTotal"] == 3
    });
    assert_eq!(vhost["Memory"], 2_005_500, "{vhost:#}");
    assert_eq!(vhost["Disk"]["TotalSize"], 2_005_500);
    let distribution = vhost["Disk"]["Distribution"].as_object().unwrap();
    assert_eq!(distribution.len(), 26);
    for (class, n) in distribution {
        let want = u64::from(["U1K", "U8K", "U2M"].contains(&class.as_str()));
        assert_eq!(n.as_u64(), Some(want), "{class}");
    }
    let xml = realtime("xml");
    assert!(
        xml.contains("<File Total=\"3\" Opened=\"0\" Instance=\"3\"/>"),
        "{xml}"
    );
    assert!(xml.contains("<TotalSize>2005500</TotalSize>"), "{xml}");
}

/// `<PartSize>1</PartSize>`: objects in parts of 1 MiB.
const PARTS: &str = "<OriginOptions><PartSize>1</PartSize></OriginOptions>";
const PART: u64 = 1 << 20;

/// Starts kurad with one disk and `<PartSize>` on www.test.
fn start_parted(disk: &Path, origin: &Origin) -> Kurad {
    let server = storage_xml("", &[(disk, ROOMY)], "");
    Kurad::start(conf_dir(
        &server,
        &vhosts_xml(&vhost("www.test", origin.addr, PARTS)),
    ))
}

/// GET `path` of www.test with curl's extra `args` (a range: `-r a-b`).
fn fetch(k: &Kurad, path: &str, args: &[&str]) -> CurlResponse {
    let host = ["-H", "Host: www.test"];
    let args: Vec<&str> = host.iter().chain(args).copied().collect();
    curl(&format!("http://{}{path}", k.http()), &args)
}

/// The `Range` of each origin request for `path`, in order.
fn origin_ranges(origin: &Origin, path: &str) -> Vec<String> {
    origin
        .requests()
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.headers.get("range").cloned().unwrap_or_default())
        .collect()
}

/// The origin's range request for part `index`.
fn part_range(index: u64) -> String {
    format!("bytes={}-{}", index * PART, (index + 1) * PART - 1)
}

/// A range of a 10 GiB object fetches and stores the 1 MiB part that holds it,
/// not the object; a range across two parts adds only the second.
#[test]
fn part_size_fetches_and_stores_only_the_parts_a_range_covers() {
    const LEN: u64 = 10 << 30;
    let disk = tempfile::tempdir().unwrap();
    let origin = Origin::start(|s| ranged(s, LEN, "\"v1\""));
    let k = start_parted(disk.path(), &origin);
    let (first, last) = (5_000_000_000u64, 5_000_000_999u64);
    let r = fetch(&k, "/big.bin", &["-r", &format!("{first}-{last}")]);
    assert_eq!(r.status, 206, "{}", k.log());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {first}-{last}/{LEN}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(r.body == pattern(first, last + 1), "the bytes asked for");
    let holding = first / PART;
    assert_eq!(origin_ranges(&origin, "/big.bin"), [part_range(holding)]);

    let again = fetch(&k, "/big.bin", &["-r", &format!("{first}-{last}")]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert!(again.body == r.body);
    // Across the end of that part: only the next one is fetched.
    let edge = (holding + 1) * PART;
    let across = fetch(
        &k,
        "/big.bin",
        &["-r", &format!("{}-{}", edge - 100, edge + 99)],
    );
    assert_eq!(across.status, 206);
    assert!(across.body == pattern(edge - 100, edge + 100));
    assert_eq!(
        origin_ranges(&origin, "/big.bin"),
        [part_range(holding), part_range(holding + 1)]
    );
    eventually("two part files", || object_files(disk.path()).len() == 2);
    let stored: u64 = object_files(disk.path()).iter().map(|f| f.1).sum();
    assert!(
        stored < 2 * PART + 8192,
        "{stored} bytes on disk for 2 parts"
    );
    // Past the end: the origin's 416, nothing stored.
    let past = fetch(&k, "/big.bin", &["-r", &format!("{LEN}-")]);
    assert_eq!(past.status, 416);
}

/// Clients arriving together for the same object share each part's fill: the
/// origin sees every part once, and each client gets the whole object.
#[test]
fn concurrent_clients_share_the_part_fetches() {
    const LEN: u64 = 4 * PART;
    let origin = Origin::start(|s| ranged(s, LEN, "\"v1\"").delay(Duration::from_millis(200)));
    let disk = tempfile::tempdir().unwrap();
    let k = start_parted(disk.path(), &origin);
    let bodies: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| fetch(&k, "/shared.bin", &[]).body))
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for body in bodies {
        assert!(body == pattern(0, LEN), "{} bytes", body.len());
    }
    let parts: Vec<String> = (0..4).map(part_range).collect();
    assert_eq!(origin_ranges(&origin, "/shared.bin"), parts);
}

/// Parts the cache may not keep (`no-store`): each request goes to the origin
/// as the client made it, and gets what it asked for.
#[test]
fn parts_that_may_not_be_stored_pass_the_client_request() {
    const LEN: u64 = 3 * PART;
    let origin = Origin::start(|s| {
        let mut r = ranged(s, LEN, "\"v1\"");
        r.headers.retain(|(k, _)| k != "cache-control");
        r.header("cache-control", "no-store")
    });
    let disk = tempfile::tempdir().unwrap();
    let k = start_parted(disk.path(), &origin);
    let range = fetch(&k, "/live.bin", &["-r", "100-199"]);
    assert_eq!(range.status, 206, "{}", k.log());
    assert!(range.body == pattern(100, 200));
    let whole = fetch(&k, "/live.bin", &[]);
    assert_eq!((whole.status, whole.header("x-cache")), (200, Some("MISS")));
    assert!(whole.body == pattern(0, LEN));
    // Each: the part fetch that found out, then the client's own request.
    assert_eq!(
        origin_ranges(&origin, "/live.bin"),
        [
            part_range(0),
            "bytes=100-199".into(),
            part_range(0),
            String::new()
        ]
    );
    assert!(object_files(disk.path()).is_empty());
}

/// A whole GET of a 5 MB object comes from its five parts in order; afterwards
/// every range is a hit, also after a restart; a purge drops every part; an
/// object smaller than a part is stored whole.
#[test]
fn a_partitioned_object_is_served_whole_from_its_parts_and_after_a_restart() {
    const LEN: u64 = 5_000_000;
    let disk = tempfile::tempdir().unwrap();
    let origin = Origin::start(|s| match s.path.as_str() {
        "/small.txt" => ranged(s, 500, "\"s\""),
        _ => ranged(s, LEN, "\"v1\""),
    });
    let k = start_parted(disk.path(), &origin);
    let whole = fetch(&k, "/video.mp4", &[]);
    assert_eq!(whole.status, 200, "{}", k.log());
    assert_eq!(whole.header("content-length"), Some("5000000"));
    assert_eq!(whole.header("content-range"), None);
    assert!(whole.body == pattern(0, LEN), "{} bytes", whole.body.len());
    let parts: Vec<String> = (0..LEN.div_ceil(PART)).map(part_range).collect();
    assert_eq!(origin_ranges(&origin, "/video.mp4"), parts);

    let check = |k: &Kurad| {
        let r = fetch(k, "/video.mp4", &[]);
        assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
        assert!(r.body == pattern(0, LEN));
        let tail = fetch(k, "/video.mp4", &["-H", "Range: bytes=-100"]);
        assert_eq!(tail.status, 206);
        assert_eq!(
            tail.header("content-range"),
            Some(format!("bytes {}-{}/{LEN}", LEN - 100, LEN - 1).as_str())
        );
        assert!(tail.body == pattern(LEN - 100, LEN));
        let multi = fetch(k, "/video.mp4", &["-r", "0-9,2000000-2000009"]);
        assert_eq!(multi.status, 206);
        assert!(multi
            .header("content-type")
            .unwrap()
            .starts_with("multipart/byteranges"));
        let body = multi.body;
        for (a, b) in [(0, 10), (2_000_000, 2_000_010)] {
            let want = pattern(a, b);
            assert!(
                body.windows(10).any(|w| w == want),
                "bytes {a}-{b} in the parts"
            );
        }
        let head = fetch(k, "/video.mp4", &["-I"]);
        assert_eq!(head.header("content-length"), Some("5000000"));
        let revalidated = fetch(k, "/video.mp4", &["-H", "If-None-Match: \"v1\""]);
        assert_eq!(revalidated.status, 304);
        assert_eq!(origin_ranges(&origin, "/video.mp4"), parts, "all hits");
    };
    check(&k);
    eventually("five part files", || object_files(disk.path()).len() == 5);

    // Smaller than a part: asked for part 0, the 206 of all of it is the
    // object, sent whole to the client that missed (as any miss is).
    let small = fetch(&k, "/small.txt", &["-r", "10-19"]);
    assert_eq!(small.status, 200, "{}", k.log());
    assert!(small.body == pattern(0, 500));
    let small = fetch(&k, "/small.txt", &["-r", "10-19"]);
    assert_eq!((small.status, small.header("x-cache")), (206, Some("HIT")));
    assert!(small.body == pattern(10, 20));
    assert_eq!(origin_ranges(&origin, "/small.txt"), [part_range(0)]);

    assert!(stop(k, "TERM").success());
    let k = start_parted(disk.path(), &origin);
    check(&k);

    let purged = api(&k, "/command/purge?url=www.test/video.mp4");
    assert_eq!(purged["result"]["Count"], 5, "{purged}");
    assert!(fetch(&k, "/video.mp4", &[]).body == pattern(0, LEN));
    assert_eq!(origin_ranges(&origin, "/video.mp4").len(), 10);
}

/// A part of another version (the ETag changed at the origin between two
/// parts) is never spliced in: the response is cut short, the parts are
/// dropped, and the next request gets the new version whole.
#[test]
fn a_part_of_another_version_cuts_the_response_and_drops_the_parts() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    const LEN: u64 = 3 * PART;
    let version = Arc::new(AtomicU64::new(1));
    let v = version.clone();
    let origin = Origin::start(move |s| {
        let etag = format!("\"v{}\"", v.load(Ordering::SeqCst));
        ranged(s, LEN, &etag)
    });
    let disk = tempfile::tempdir().unwrap();
    let k = start_parted(disk.path(), &origin);
    assert_eq!(fetch(&k, "/f.bin", &["-r", "0-99"]).status, 206);
    version.store(2, Ordering::SeqCst);
    let cut = fetch(&k, "/f.bin", &[]);
    assert_eq!(cut.header("etag"), Some("\"v1\""), "the head is part 0's");
    assert!(
        (cut.body.len() as u64) < LEN,
        "{} bytes: the response must not end as if complete",
        cut.body.len()
    );
    assert!(k.wait_log("partitioned object cut short"), "{}", k.log());
    let fresh = fetch(&k, "/f.bin", &[]);
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("etag"), Some("\"v2\""));
    assert!(fresh.body == pattern(0, LEN));
}

/// Copies the files of `from` into `to` (one level of directories, as `objects/XX/`).
fn copy_objects(from: &Path, to: &Path) {
    for dir in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(dir.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
            std::fs::copy(f.path(), target.join(f.file_name())).unwrap();
        }
    }
}

/// `<SyncStale>`: purges answered just before a `kill -9` hold after it even
/// when the disk never saw them (the object files are put back as they were
/// before the purges, as if the disk thread had not got to them); with
/// `<SyncStale>OFF` the old copies come back.
#[test]
fn purges_made_before_a_kill_9_hold_after_it_through_the_stale_log() {
    for sync in [true, false] {
        let (disk, state, before) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let origin = origin(5000);
        let cache = if sync {
            ""
        } else {
            "<SyncStale>OFF</SyncStale>"
        };
        let server = storage_xml("", &[(disk.path(), ROOMY)], cache);
        let state_arg = ["--state-dir", state.path().to_str().unwrap()];
        let start = || {
            let vhosts = vhosts_xml(&vhost("www.test", origin.addr, ""));
            Kurad::start_args(conf_dir(&server, &vhosts), &state_arg)
        };
        let stale_log = state.path().join("stale.log");
        let k = start();
        for p in ["/a.txt", "/b.txt", "/c.txt"] {
            get(k.http(), "www.test", p);
        }
        eventually("three object files", || {
            object_files(disk.path()).len() == 3
        });
        copy_objects(&disk.path().join("objects"), before.path());
        for call in ["hardpurge?url=www.test/a.txt", "purge?url=www.test/b.txt"] {
            let done = api(&k, &format!("/command/{call}"));
            assert_eq!(done["result"]["Count"], 1, "{done}");
        }
        if sync {
            let log = std::fs::read_to_string(&stale_log).unwrap();
            assert_eq!(log.lines().count(), 2, "{log}");
        } else {
            assert!(!stale_log.exists());
        }
        stop(k, "KILL");
        std::fs::remove_dir_all(disk.path().join("objects")).unwrap();
        copy_objects(before.path(), &disk.path().join("objects"));

        let k = start();
        for p in ["/a.txt", "/b.txt", "/c.txt"] {
            assert_eq!(get(k.http(), "www.test", p).text(), body_of(p, 5000));
        }
        let fetched = |p| origin.count(p);
        if sync {
            assert!(k.wait_log("stale.log applied again"), "{}", k.log());
            assert_eq!(
                [fetched("/a.txt"), fetched("/b.txt"), fetched("/c.txt")],
                [2, 2, 1],
                "the purged objects are fetched again, the other is a hit"
            );
            assert_eq!(std::fs::metadata(&stale_log).unwrap().len(), 0);
            api(&k, "/command/expire?url=www.test/c.txt");
            assert!(std::fs::metadata(&stale_log).unwrap().len() > 0);
            assert!(stop(k, "TERM").success());
            assert_eq!(
                std::fs::metadata(&stale_log).unwrap().len(),
                0,
                "a clean stop empties it"
            );
        } else {
            assert_eq!(
                [fetched("/a.txt"), fetched("/b.txt")],
                [1, 1],
                "without the log the old copies come back"
            );
        }
    }
}

/// The memory tier over the disks is counted per vhost: `Memory` is the vhost's
/// bodies in it, and a body pushed out to make room (its object stays on disk)
/// is a `CacheFileEvent.Swap` and its bytes `SecuredMemory`. Every body enters
/// the tier when it is stored, so what is in it plus what was swapped out is
/// every body stored.
#[test]
fn bodies_swapped_out_of_the_memory_tier_are_counted_per_vhost() {
    const LEN: u64 = 8_000;
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(LEN as usize);
    let k = start(&least_memory(disk.path()), &origin);
    // The tier is 1 % x 1 % of RAM (as kurad reads it): store three times that.
    let objects = (3 * ram_bytes() / 10_000 / LEN).max(500);
    let work = tempfile::tempdir().unwrap();
    fetch_all(&k, work.path(), (0..objects).map(|i| format!("/o{i}")));
    eventually("every object stored", || {
        object_files(disk.path()).len() as u64 == objects
    });
    // (swaps, their bytes, bytes in the tier) from one `/metrics` read; the
    // totals are added once a second, the tier's gauge is live.
    let tier = || {
        let text = curl(&format!("http://{}/metrics", k.manager), &[]).text();
        let value = |prefix: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        };
        (
            value("kura_cache_object_events_total{vhost=\"www.test\",event=\"swap\"}"),
            value("kura_cache_swapped_bytes_total{vhost=\"www.test\"}"),
            value("kura_memory_tier_bytes"),
        )
    };
    eventually("every body stored entered the tier", || {
        let (_, swapped, in_tier) = tier();
        in_tier + swapped == objects * LEN
    });
    let (swaps, swapped, in_tier) = tier();
    assert!(
        swaps > 0,
        "{objects} bodies of {LEN} bytes overflow the tier"
    );
    assert_eq!(swapped, swaps * LEN, "each swap is one body's bytes");
    eventually("the vhost's Memory is its bodies in the tier", || {
        let v = api(&k, "/monitoring/realtime");
        v["Host"]["VirtualHost"][0]["Memory"].as_u64() == Some(in_tier)
    });
    let xml = curl(
        &format!("http://{}/monitoring/average?type=xml", k.manager),
        &[],
    )
    .text();
    assert!(xml.contains("<SecuredMemory>"), "{xml}");
    assert!(xml.contains("Swap=\""), "{xml}");
}

/// The `/metrics` total of `family` for www.test with `label`.
fn www_total(k: &Kurad, family: &str, label: &str) -> u64 {
    metric(k, &format!("{family}_total{{vhost=\"www.test\",{label}}}"))
}

/// A vhost's file I/O on the disks (`VirtualHost.Disk.Create` .. `WriteSize`, and
/// `/metrics` totals): a fill writes one file, a hit read from it opens it and
/// reads its body, an expire rewrites its head, a hard purge deletes it.
#[test]
fn a_vhosts_file_io_is_counted() {
    const LEN: usize = 5_000_000;
    let disk = tempfile::tempdir().unwrap();
    let origin = origin(LEN);
    let server = small_memory_tier(disk.path());
    let k = start(&server, &origin);
    let totals = |k: &Kurad| -> [u64; 7] {
        let (ops, bytes) = ("kura_cache_file_operations", "kura_cache_file_bytes");
        [
            (ops, "op=\"create\""),
            (ops, "op=\"open\""),
            (ops, "op=\"delete\""),
            (ops, "op=\"read\""),
            (bytes, "op=\"read\""),
            (ops, "op=\"write\""),
            (bytes, "op=\"write\""),
        ]
        .map(|(family, label)| www_total(k, family, label))
    };
    let events = |k: &Kurad| {
        ["create", "erase", "purge", "expire"]
            .map(|e| www_total(k, "kura_cache_object_events", &format!("event=\"{e}\"")))
    };
    assert_eq!(get(k.http(), "www.test", "/video.bin").body.len(), LEN);
    eventually("stored", || object_files(disk.path()).len() == 1);
    let file_len = object_files(disk.path())[0].1;
    eventually("the write counted", || {
        totals(&k) == [1, 0, 0, 0, 0, 1, file_len]
    });
    eventually("the object counted", || events(&k) == [1, 0, 0, 0]);
    assert_eq!(get(k.http(), "www.test", "/video.bin").body.len(), LEN);
    eventually("the read counted", || {
        let t = totals(&k);
        t[1] == 1 && t[3] > 0 && t[4] == LEN as u64
    });
    api(&k, "/command/expire?url=www.test/video.bin");
    eventually("the head rewrite counted", || totals(&k)[5] == 2);
    api(&k, "/command/hardpurge?url=www.test/video.bin");
    eventually("the deletion counted", || totals(&k)[2] == 1);
    eventually("the expiry and the purge counted", || {
        events(&k) == [1, 0, 1, 1]
    });
    eventually("the file deleted", || object_files(disk.path()).is_empty());
}

/// `FileOpened` counts a vhost's object files open for reading (a slow client
/// reading a body from its file holds it open), `FileInstance` its objects and
/// its fills in progress (a slow origin).
#[test]
fn open_files_and_fills_in_progress_are_counted() {
    // Larger than the socket buffers hold, so a slow client keeps the file open;
    // with 10 % of RAM it is kept on disk but not in the memory tier.
    const LEN: usize = 40_000_000;
    let disk = tempfile::tempdir().unwrap();
    let origin = Origin::start(|s| match s.path.as_str() {
        "/slow.bin" => Reply::ok("slow")
            .header("cache-control", "max-age=3600")
            .delay(Duration::from_secs(3)),
        p => Reply::ok(&body_of(p, LEN)).header("cache-control", "max-age=3600"),
    });
    let server = storage_xml(
        "",
        &[(disk.path(), ROOMY)],
        "<SystemMemoryRatio>10</SystemMemoryRatio>",
    );
    let k = start(&server, &origin);
    let files = |k: &Kurad| {
        let v = api(k, "/monitoring/realtime");
        let vhost = &v["Host"]["VirtualHost"][0];
        ["FileTotal", "FileOpened", "FileInstance"].map(|f| vhost[f].as_i64().unwrap())
    };
    assert_eq!(get(k.http(), "www.test", "/video.bin").body.len(), LEN);
    eventually("stored", || files(&k) == [1, 0, 1]);
    std::thread::scope(|s| {
        let url = format!("http://{}/video.bin", k.http());
        let slow_reader = [
            "-H",
            "Host: www.test",
            "--limit-rate",
            "1M",
            "--max-time",
            "6",
        ];
        s.spawn(move || curl(&url, &slow_reader));
        let filler = s.spawn(|| get(k.http(), "www.test", "/slow.bin"));
        eventually("one file open, one fill in progress", || {
            files(&k) == [1, 1, 2]
        });
        assert_eq!(filler.join().unwrap().text(), "slow");
    });
    eventually("the file closed, the fill stored", || {
        files(&k) == [2, 0, 2]
    });
}

/// Bytes of RAM as kurad reads it (`MemTotal`).
fn ram_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// The value of `/metrics` series `series` (its name and labels as written).
fn metric(k: &Kurad, series: &str) -> u64 {
    let text = curl(&format!("http://{}/metrics", k.manager), &[]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Fetches `paths` from www.test through one curl (one connection).
fn fetch_all(k: &Kurad, dir: &Path, paths: impl Iterator<Item = String>) {
    let requests: String = paths
        .map(|p| format!("url = \"http://{}{p}\"\noutput = \"/dev/null\"\n", k.http()))
        .collect();
    let config = dir.join("curl.conf");
    std::fs::write(&config, requests).unwrap();
    let fetched = std::process::Command::new("curl")
        .args(["-s", "-f", "-H", "Host: www.test", "-K"])
        .arg(&config)
        .status()
        .unwrap();
    assert!(fetched.success());
}

/// `<Indexing>Disk` (chapter 18): memory keeps the heads of as many objects as
/// the memory for bodies holds at 1 KiB a head (1 % x 1 % of RAM here); the
/// others are cold, their heads only in their files. Three times that many
/// objects on a quota for about two times: cold objects are evicted first,
/// every object on disk is counted, and after a restart (everything cold) a
/// cold object is a hit read from its file; purges reach cold objects.
#[test]
fn disk_indexing_keeps_the_heads_of_cold_objects_in_their_files() {
    const LEN: usize = 1000;
    let heads = ram_bytes() / 10_000 / 1024;
    let objects = 3 * heads;
    let disk = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let origin = origin(LEN);
    // A file is the body, a head record of about 200 bytes and the footer.
    let quota = format!("{:.6}", (2 * heads * (LEN as u64 + 300)) as f64 / 1e9);
    let server = storage_xml(
        "",
        &[(disk.path(), &quota)],
        "<SystemMemoryRatio>1</SystemMemoryRatio><ContentMemoryRatio>1</ContentMemoryRatio>\
         <Indexing>Disk</Indexing>",
    );
    let k = start(&server, &origin);
    fetch_all(&k, work.path(), (0..objects).map(|i| format!("/o{i}")));
    // Asked for a second time, the last third is admitted over the first
    // objects (TinyLFU refused them while they had been asked for once).
    fetch_all(
        &k,
        work.path(),
        (2 * heads..objects).map(|i| format!("/o{i}")),
    );
    let event = |e: &str| www_total(&k, "kura_cache_object_events", &format!("event=\"{e}\""));
    eventually("the last third stored", || {
        (2 * heads..objects).all(|i| origin.count(&format!("/o{i}")) <= 2)
            && event("create") - event("erase") == object_files(disk.path()).len() as u64
            && event("erase") > 0
    });
    let files = object_files(disk.path());
    let on_disk: u64 = files.iter().map(|(_, n)| n).sum();
    let cold = metric(&k, "kura_cache_cold_objects");
    let indexed = metric(&k, "kura_cache_objects");
    eprintln!("{objects} stored, {} kept ({on_disk} bytes on a {quota} GB quota), {cold} cold, {heads} heads", files.len());
    assert!(on_disk <= (quota.parse::<f64>().unwrap() * 1e9) as u64);
    assert_eq!(indexed, files.len() as u64, "every file is indexed");
    assert!(cold > 0, "more objects than heads in memory");
    assert!(
        indexed - cold <= heads,
        "{} heads in memory",
        indexed - cold
    );
    let last = format!("/o{}", objects - 1);
    let asked = origin.count(&last);
    assert_eq!(get(k.http(), "www.test", &last).text(), body_of(&last, LEN));
    assert_eq!(origin.count(&last), asked, "{last} is kept");

    // After a restart every object is cold: served from its file all the same.
    assert!(stop(k, "TERM").success());
    let k = start(&server, &origin);
    assert_eq!(metric(&k, "kura_cache_cold_objects"), indexed);
    // The last objects were stored last: kept.
    let sample: Vec<String> = (objects - 3..objects).map(|i| format!("/o{i}")).collect();
    for p in &sample {
        let asked = origin.count(p);
        assert_eq!(get(k.http(), "www.test", p).text(), body_of(p, LEN));
        assert_eq!(
            origin.count(p),
            asked,
            "{p} read from its file, not fetched"
        );
    }
    let cold_after = metric(&k, "kura_cache_cold_objects");
    assert!(cold_after < indexed, "asked-for objects are whole again");

    // Purges reach cold objects: an exact purge, then an expire of them all.
    let target = sample.last().unwrap().clone();
    // Least recently used first: the first object stored went.
    get(k.http(), "www.test", "/o0");
    assert_eq!(
        origin.count("/o0"),
        2,
        "the first object stored was evicted"
    );
    let cold_one = format!("/o{}", objects - 10);
    let purged = api(&k, &format!("/command/purge?url=www.test{cold_one}"));
    assert_eq!(purged["result"]["Count"], 1, "{purged}");
    let asked = origin.count(&cold_one);
    assert_eq!(
        get(k.http(), "www.test", &cold_one).text(),
        body_of(&cold_one, LEN)
    );
    assert_eq!(
        origin.count(&cold_one),
        asked + 1,
        "a purged cold object is fetched again"
    );
    let expired = api(&k, "/command/expire?url=www.test/*");
    assert_eq!(
        expired["result"]["Count"].as_u64(),
        Some(indexed),
        "{expired}"
    );
    let asked = origin.count(&target);
    get(k.http(), "www.test", &target);
    assert_eq!(
        origin.count(&target),
        asked + 1,
        "an expired cold object is revalidated"
    );
    let hard = api(&k, "/command/hardpurge?url=www.test/*");
    assert_eq!(hard["result"]["Count"].as_u64(), Some(indexed), "{hard}");
    eventually("every file deleted", || {
        object_files(disk.path()).is_empty()
    });
    assert_eq!(metric(&k, "kura_cache_objects"), 0);
}
