//! `/monitoring/realtime` and `/monitoring/average` (guide chapter 10) in
//! JSON and XML, both written from the catalog.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::config::log::MonitoringForm;
use crate::config::DirPolicy;
use crate::daemon::Daemon;
use crate::stats::catalog::{self, Field, Member, Source};
use crate::stats::counter::Side;
use crate::stats::disk::{DiskUsage, DISK_N};
use crate::stats::system::SYS_N;
use crate::stats::{Sample, VhostStats, Window};

/// Reply formats (`?type=JSON|XML`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, the default.
    Json,
    /// XML: scalars as attributes, groups as child elements.
    Xml,
}

impl Format {
    /// Parses the `type` parameter (any case); `None` for anything else.
    pub fn parse(s: Option<&str>) -> Option<Format> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => Some(Format::Json),
            Some("xml") => Some(Format::Xml),
            _ => None,
        }
    }
}

/// One block of values: the host or a vhost.
struct Block {
    /// `VirtualHost` or `View` name, directory path in `dirs`; `None` for the host.
    name: Option<String>,
    window: Sample,
    uptime: u64,
    /// `ClientTraffic`: `<DirDepth>` settings (`None` for depth 0) and one
    /// block per directory, `/` first (empty for the host).
    dirs: (Option<DirPolicy>, Vec<Block>),
    /// `ClientTraffic.HttpsTraffic`: the vhost's `<Stats><HttpsTraffic>` (OFF for views).
    https_traffic: bool,
}

impl Block {
    /// A block without directory statistics: a vhost or view is its own `/`.
    fn new(name: Option<String>, window: Sample, uptime: u64) -> Block {
        let root = match name {
            Some(_) => vec![Block::dir("/".into(), window.clone(), uptime)],
            None => Vec::new(),
        };
        Block {
            dirs: (None, root),
            https_traffic: false,
            name,
            window,
            uptime,
        }
    }

    /// One `ClientTraffic.Traffic[]` entry.
    fn dir(path: String, window: Sample, uptime: u64) -> Block {
        Block {
            name: Some(path),
            window,
            uptime,
            dirs: (None, Vec::new()),
            https_traffic: false,
        }
    }
}

/// One `<Disk>`: its state now and its counters over the window.
struct DiskBlock {
    /// Path, state and space.
    usage: DiskUsage,
    /// Per-second device counters summed over the window.
    window: Sample<DISK_N>,
}

/// Everything one reply shows, gathered at once so every member reads the same window.
struct Snapshot {
    /// Server version.
    version: String,
    /// `<Host><Name>`.
    name: String,
    host: Block,
    system: Sample<SYS_N>,
    /// `System.Storage.Disk[]`, in `<Disk>` order.
    disks: Vec<DiskBlock>,
    vhosts: Vec<Block>,
    views: Vec<Block>,
}

/// A vhost's block, with its directories.
fn vhost_block(s: &VhostStats, window: Window) -> Block {
    let uptime = s.created.elapsed().as_secs();
    let mut block = Block::new(Some(s.name.clone()), s.window(window), uptime);
    block.https_traffic = s.https_traffic.load(std::sync::atomic::Ordering::Relaxed);
    if let Some((policy, dirs)) = s.dir_windows(window) {
        block.dirs = (
            Some(policy),
            dirs.into_iter()
                .map(|(path, w)| Block::dir(path, w, uptime))
                .collect(),
        );
    }
    block
}

/// One line of a vhost's monitoring log (chapter 12): the local time, then its
/// `VirtualHost` entry over the last five minutes, as `/monitoring/average` writes it
/// (JSON compact, or XML with the line breaks taken out). `None` for an unknown vhost.
pub fn vhost_line(daemon: &Daemon, name: &str, form: MonitoringForm) -> Option<String> {
    let block = vhost_block(&*daemon.stats.vhost(name)?, Window::Minutes(5));
    let record = match form {
        MonitoringForm::Json => json_named(&block).to_string(),
        MonitoringForm::Xml => {
            let mut x = String::new();
            xml_named(&mut x, "VirtualHost", &block);
            x.lines().map(str::trim).collect()
        }
    };
    Some(format!(
        "{} {record}",
        chrono::Local::now().format("%Y.%m.%d %H:%M:%S")
    ))
}

/// A `VirtualHost` or `View` entry.
fn json_named(b: &Block) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), b.name.clone().unwrap_or_default().into());
    json_block(&mut m, b);
    json_traffic_groups(&mut m, b);
    m.insert("ResponseTime".into(), json_response_time(b));
    Value::Object(m)
}

/// A `<VirtualHost>` or `<View>` element.
fn xml_named(x: &mut String, tag: &str, b: &Block) {
    let _ = write!(
        x,
        "  <{tag} Name=\"{}\"",
        escape(b.name.as_deref().unwrap_or(""))
    );
    attrs(x, values(catalog::traffic(), b));
    x.push_str(">\n");
    xml_traffic_groups(x, b);
    xml_response_time(x, b, "    ");
    let _ = writeln!(x, "  </{tag}>");
}

fn snapshot(daemon: &Daemon, window: Window) -> Snapshot {
    let host = Block::new(
        None,
        daemon.stats.host_window(window),
        daemon.started.elapsed().as_secs(),
    );
    let rt = daemon.runtime();
    let vhosts = rt
        .config
        .vhosts
        .iter()
        .filter_map(|v| daemon.stats.vhost(&v.name))
        .map(|s| vhost_block(&s, window))
        .collect();
    let views = rt
        .config
        .views
        .iter()
        .map(|v| {
            Block::new(
                Some(v.name.clone()),
                daemon.stats.view_window(&v.vhosts, window),
                host.uptime,
            )
        })
        .collect();
    Snapshot {
        version: crate::VERSION.to_string(),
        name: rt.config.server.name.clone(),
        system: daemon.stats.system.window(window),
        // A reload between these calls can shorten the list: stop at the first gap.
        disks: (0..daemon.stats.disks.count())
            .map_while(|i| {
                Some(DiskBlock {
                    usage: daemon.stats.disks.usage(i)?,
                    window: daemon.stats.disks.window(i, window)?,
                })
            })
            .collect(),
        host,
        vhosts,
        views,
    }
}

fn values<'a>(fields: &'a [Field], b: &'a Block) -> impl Iterator<Item = (&'a str, i64)> + 'a {
    evaluated(fields, &b.window, b.uptime)
}

fn evaluated<'a, const K: usize>(
    fields: &'a [Field],
    window: &'a Sample<K>,
    uptime: u64,
) -> impl Iterator<Item = (&'a str, i64)> + 'a {
    fields
        .iter()
        .map(move |f| (f.name.as_str(), catalog::evaluate(f.source, window, uptime)))
}

fn json_group<'a>(vals: impl Iterator<Item = (&'a str, i64)>) -> Value {
    Value::Object(vals.map(|(k, v)| (k.to_string(), Value::from(v))).collect())
}

/// `"ResponseTime": {"Client": {"P50": ..}, "Origin": {..}}` (our addition).
fn json_response_time(b: &Block) -> Value {
    let mut m = Map::new();
    for (name, side) in [("Client", Side::Client), ("Origin", Side::Origin)] {
        m.insert(
            name.into(),
            json_group(values(catalog::response_time(side), b)),
        );
    }
    Value::Object(m)
}

/// The traffic block and the groups of one block, as JSON members.
fn json_block(m: &mut Map<String, Value>, b: &Block) {
    for (k, v) in values(catalog::traffic(), b) {
        m.insert(k.into(), v.into());
    }
}

/// The guide places `Storage` right after `Mem`.
fn json_system(sys: &Sample<SYS_N>, disks: &[DiskBlock]) -> Value {
    let mut m = Map::new();
    for (group, fields) in catalog::system() {
        m.insert((*group).into(), json_group(evaluated(fields, sys, 0)));
        if *group == "TCPSocket" {
            for (name, v) in evaluated(catalog::system_values(), sys, 0) {
                m.insert(name.into(), v.into());
            }
        }
        if *group == "Mem" {
            let list = disks
                .iter()
                .map(|d| {
                    let mut e = Map::new();
                    e.insert("Path".into(), d.usage.path.display().to_string().into());
                    e.insert("Status".into(), d.usage.status.into());
                    for (k, v) in evaluated(catalog::disk(), &d.window, 0) {
                        e.insert(k.into(), v.into());
                    }
                    Value::Object(e)
                })
                .collect();
            let mut storage = Map::new();
            storage.insert("Disk".into(), Value::Array(list));
            m.insert("Storage".into(), Value::Object(storage));
        }
    }
    Value::Object(m)
}

fn xml_system(x: &mut String, sys: &Sample<SYS_N>, disks: &[DiskBlock]) {
    x.push_str("  <System>\n");
    for (group, fields) in catalog::system() {
        let _ = write!(x, "    <{group}");
        attrs(x, evaluated(fields, sys, 0));
        x.push_str("/>\n");
        if *group == "TCPSocket" {
            for (name, v) in evaluated(catalog::system_values(), sys, 0) {
                let _ = writeln!(x, "    <{name}>{v}</{name}>");
            }
        }
        if *group == "Mem" {
            if disks.is_empty() {
                x.push_str("    <Storage/>\n");
                continue;
            }
            x.push_str("    <Storage>\n");
            for d in disks {
                let _ = write!(
                    x,
                    "      <Disk Path=\"{}\" Status=\"{}\"",
                    escape(&d.usage.path.display().to_string()),
                    d.usage.status
                );
                attrs(x, evaluated(catalog::disk(), &d.window, 0));
                x.push_str("/>\n");
            }
            x.push_str("    </Storage>\n");
        }
    }
    x.push_str("  </System>\n");
}

/// The whole reply for a window.
pub fn render(daemon: &Daemon, window: Window, format: Format) -> String {
    write(&snapshot(daemon, window), format)
}

fn write(snap: &Snapshot, format: Format) -> String {
    let Snapshot {
        version,
        name,
        host,
        system: sys,
        disks,
        vhosts,
        views,
    } = snap;
    match format {
        Format::Json => {
            let mut h = Map::new();
            h.insert("Version".into(), version.as_str().into());
            h.insert("Name".into(), name.as_str().into());
            h.insert("State".into(), "Healthy".into());
            json_block(&mut h, host);
            h.insert(
                "HttpCountSum".into(),
                json_group(values(catalog::http_count_sum(), host)),
            );
            h.insert(
                "HttpRequestHitSum".into(),
                json_group(values(catalog::http_request_hit_sum(), host)),
            );
            h.insert(
                "FileSystem".into(),
                Value::Object(json_members(catalog::file_system(), host)),
            );
            h.insert("System".into(), json_system(sys, disks));
            // A View has the same members as a VirtualHost (monitoring-fields.tsv).
            let named = |blocks: &[Block]| -> Value { blocks.iter().map(json_named).collect() };
            h.insert("VirtualHost".into(), named(vhosts));
            h.insert("View".into(), named(views));
            h.insert("ResponseTime".into(), json_response_time(host));
            let mut root = Map::new();
            root.insert("Host".into(), Value::Object(h));
            format!("{:#}\n", Value::Object(root))
        }
        Format::Xml => {
            let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let _ = write!(
                x,
                "<Host Version=\"{}\" Name=\"{}\" State=\"Healthy\"",
                crate::VERSION,
                escape(name)
            );
            attrs(&mut x, values(catalog::traffic(), host));
            x.push_str(">\n  <HttpCountSum");
            attrs(&mut x, values(catalog::http_count_sum(), host));
            x.push_str("/>\n  <HttpRequestHitSum");
            attrs(&mut x, values(catalog::http_request_hit_sum(), host));
            x.push_str("/>\n  <FileSystem>\n");
            xml_members(&mut x, catalog::file_system(), host, "    ");
            x.push_str("  </FileSystem>\n");
            xml_system(&mut x, sys, disks);
            for (tag, blocks) in [("VirtualHost", vhosts), ("View", views)] {
                for b in blocks {
                    xml_named(&mut x, tag, b);
                }
            }
            xml_response_time(&mut x, host, "  ");
            x.push_str("</Host>\n");
            x
        }
    }
}

fn json_members(members: &[Member], b: &Block) -> Map<String, Value> {
    let eval = |source| catalog::evaluate(source, &b.window, b.uptime);
    let mut m = Map::new();
    for member in members {
        match member {
            Member::Value(f) => {
                m.insert(f.name.clone(), eval(f.source).into());
            }
            Member::Pair { name, counter } => {
                m.insert(format!("{name}Sum"), eval(Source::Sum(*counter)).into());
                m.insert(name.clone(), eval(Source::Rate(*counter)).into());
            }
            Member::Group { name, members } => {
                m.insert(name.clone(), Value::Object(json_members(members, b)));
            }
            Member::Attrs { name, fields } => {
                m.insert(name.clone(), json_group(values(fields, b)));
            }
        }
    }
    m
}

fn xml_members(x: &mut String, members: &[Member], b: &Block, indent: &str) {
    let eval = |source| catalog::evaluate(source, &b.window, b.uptime);
    for member in members {
        match member {
            Member::Value(f) => {
                let _ = writeln!(x, "{indent}<{0}>{1}</{0}>", f.name, eval(f.source));
            }
            Member::Pair { name, counter } => {
                let (sum, mean) = (eval(Source::Sum(*counter)), eval(Source::Rate(*counter)));
                let _ = writeln!(x, "{indent}<{name} Sum=\"{sum}\">{mean}</{name}>");
            }
            Member::Group { name, members } => {
                let _ = writeln!(x, "{indent}<{name}>");
                xml_members(x, members, b, &format!("{indent}  "));
                let _ = writeln!(x, "{indent}</{name}>");
            }
            Member::Attrs { name, fields } => {
                let _ = write!(x, "{indent}<{name}");
                attrs(x, values(fields, b));
                x.push_str("/>\n");
            }
        }
    }
}

/// `ClientTraffic`'s `Depth` and `Accum` as the guide prints them.
/// A setting as the guide writes it.
fn on_off(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}

fn dir_settings(b: &Block) -> (u32, &'static str) {
    match b.dirs.0 {
        Some(p) => (p.depth, on_off(p.accum)),
        None => (0, "OFF"),
    }
}

/// `OriginTraffic` and `ClientTraffic` of a vhost or view; `ClientTraffic`
/// has one entry per directory (`/` alone without `<DirDepth>`).
fn json_traffic_groups(m: &mut Map<String, Value>, b: &Block) {
    m.insert(
        "FileSystem".into(),
        Value::Object(json_members(catalog::file_system(), b)),
    );
    m.extend(json_members(catalog::stored(), b));
    m.insert("Session".into(), json_group(values(catalog::session(), b)));
    m.insert("Dims".into(), json_group(values(catalog::conversions(), b)));
    m.insert(
        "Compression".into(),
        json_group(values(catalog::conversions(), b)),
    );
    for (name, v) in values(catalog::files(), b) {
        m.insert(format!("File{name}"), v.into());
    }
    m.insert(
        "CacheFileEvent".into(),
        json_group(values(catalog::cache_file_events(), b)),
    );
    m.extend(json_members(catalog::request_counts(), b));
    m.insert(
        "OriginTraffic".into(),
        Value::Object(json_members(catalog::origin_traffic(), b)),
    );
    let traffic: Vec<Value> = b
        .dirs
        .1
        .iter()
        .map(|d| {
            let mut entry = Map::new();
            entry.insert(
                "RequestHitRatio".into(),
                catalog::evaluate(Source::RequestHitRatio, &d.window, d.uptime).into(),
            );
            entry.insert("Path".into(), d.name.clone().unwrap_or_default().into());
            entry.extend(json_members(catalog::client_traffic(), d));
            Value::Object(entry)
        })
        .collect();
    let (depth, accum) = dir_settings(b);
    let mut ct = Map::new();
    ct.insert("Depth".into(), depth.into());
    ct.insert("Accum".into(), accum.into());
    ct.insert("HttpsTraffic".into(), on_off(b.https_traffic).into());
    ct.insert("TrafficCount".into(), traffic.len().into());
    ct.insert("Traffic".into(), Value::Array(traffic));
    m.insert("ClientTraffic".into(), Value::Object(ct));
}

fn xml_traffic_groups(x: &mut String, b: &Block) {
    x.push_str("    <FileSystem>\n");
    xml_members(x, catalog::file_system(), b, "      ");
    x.push_str("    </FileSystem>\n");
    xml_members(x, catalog::stored(), b, "    ");
    for (name, fields) in [
        ("Session", catalog::session()),
        ("Dims", catalog::conversions()),
        ("Compression", catalog::conversions()),
        ("File", catalog::files()),
        ("CacheFileEvent", catalog::cache_file_events()),
    ] {
        let _ = write!(x, "    <{name}");
        attrs(x, values(fields, b));
        x.push_str("/>\n");
    }
    xml_members(x, catalog::request_counts(), b, "    ");
    x.push_str("    <OriginTraffic>\n");
    xml_members(x, catalog::origin_traffic(), b, "      ");
    x.push_str("    </OriginTraffic>\n");
    let (depth, accum) = dir_settings(b);
    let _ = writeln!(
        x,
        "    <ClientTraffics Depth=\"{depth}\" Accum=\"{accum}\" HttpsTraffic=\"{}\">\n      <TrafficCount>{}</TrafficCount>",
        on_off(b.https_traffic),
        b.dirs.1.len()
    );
    for d in &b.dirs.1 {
        let ratio = catalog::evaluate(Source::RequestHitRatio, &d.window, d.uptime);
        let _ = writeln!(
            x,
            "      <Traffic RequestHitRatio=\"{ratio}\">\n        <Path>{}</Path>",
            escape(d.name.as_deref().unwrap_or("/"))
        );
        xml_members(x, catalog::client_traffic(), d, "        ");
        x.push_str("      </Traffic>\n");
    }
    x.push_str("    </ClientTraffics>\n");
}

/// `<ResponseTime Side="Client" P50=".." .../>` for each side (our addition).
fn xml_response_time(x: &mut String, b: &Block, indent: &str) {
    for (name, side) in [("Client", Side::Client), ("Origin", Side::Origin)] {
        let _ = write!(x, "{indent}<ResponseTime Side=\"{name}\"");
        attrs(x, values(catalog::response_time(side), b));
        x.push_str("/>\n");
    }
}

fn attrs<'a>(x: &mut String, vals: impl Iterator<Item = (&'a str, i64)>) {
    for (k, v) in vals {
        let _ = write!(x, " {k}=\"{v}\"");
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheResult;
    use crate::stats::counter::{self, Class, FileIo, Gauge, ObjectEvent};
    use crate::stats::hist::{self, Snapshot as Dist};
    use crate::stats::system::Sys;

    /// Five minutes of a small site: 3,000 client requests, 2,000 of them hits.
    fn five_minutes() -> Sample {
        let mut s = Sample::empty(1_800_000_000);
        s.seconds = 300;
        let c = &mut s.counts;
        let side = |c: &mut [u64],
                    side: Side,
                    req: u64,
                    inb: u64,
                    outb: u64,
                    classes: [u64; 4],
                    us: u64| {
            c[counter::requests(side)] = req;
            c[counter::inbound(side)] = inb;
            c[counter::outbound(side)] = outb;
            for (class, n) in Class::ALL
                .into_iter()
                .zip(std::iter::once(req).chain(classes))
            {
                c[counter::responses(side, class)] = n;
                c[counter::completed(side, class)] = n - n / 50;
                c[counter::time_res(side, class)] = n * us;
                c[counter::time_complete(side, class)] = n * us * 3;
            }
        };
        side(
            c,
            Side::Client,
            3000,
            1_200_000,
            30_000_000,
            [2800, 100, 80, 20],
            450,
        );
        side(
            c,
            Side::Origin,
            970,
            9_500_000,
            400_000,
            [900, 40, 10, 20],
            12_000,
        );
        use crate::stats::counter::{OriginEvent, Part};
        for (side, parts) in [
            (Side::Client, [1_000_000, 200_000, 900_000, 29_100_000]),
            (Side::Origin, [400_000, 0, 300_000, 9_200_000]),
        ] {
            for (p, v) in Part::ALL.into_iter().zip(parts) {
                c[counter::part(side, p)] = v;
            }
        }
        for (e, n) in [
            (OriginEvent::ConnectFailure, 3),
            (OriginEvent::ReceiveTimeout, 2),
            (OriginEvent::Close, 1),
            (OriginEvent::Connect, 50),
            (OriginEvent::ConnectMicros, 50 * 800),
        ] {
            c[counter::origin_event(e)] = n;
        }
        for (r, n, bytes) in [
            (CacheResult::Hit, 2000, 20_000_000),
            (CacheResult::RefreshHit, 50, 500_000),
            (CacheResult::NegativeHit, 30, 3_000),
            (CacheResult::Miss, 870, 9_000_000),
            (CacheResult::RefreshMiss, 30, 300_000),
            (CacheResult::Error, 20, 2_000),
        ] {
            c[counter::result(r)] = n;
            c[counter::result_bytes(r)] = bytes;
        }
        for (g, per_second) in [
            (Gauge::ClientSessions, 12),
            (Gauge::ClientActive, 3),
            (Gauge::OriginSessions, 4),
            (Gauge::OriginActive, 1),
        ] {
            c[counter::gauge(g)] = per_second * 300;
        }
        // The store held the guide's 45,725 small files and 3 larger ones all along.
        let mut stored = crate::stats::contents::Contents::default();
        for (len, n, in_memory) in [(700, 45_725, 700), (5_000, 2, 0), (3 << 20, 1, 1 << 20)] {
            for _ in 0..n {
                stored.count(len, in_memory, true);
            }
        }
        // The guide's sample: 15 files open, 12 fills in progress.
        stored.opened = 15;
        stored.fills = 12;
        for (i, level) in counter::stored_levels(&stored).into_iter().enumerate() {
            c[counter::stored_level(i)] = level * 300;
        }
        // In 5 minutes: 3 files written and a head rewritten, 1 deleted; per second
        // 10 files opened and 9 reads of 735,726 bytes (the guide's sample).
        for (e, total) in [
            (FileIo::Create, 3),
            (FileIo::Open, 3000),
            (FileIo::Delete, 1),
            (FileIo::ReadCount, 2700),
            (FileIo::ReadSize, 735_726 * 300),
            (FileIo::WriteCount, 4),
            (FileIo::WriteSize, 157_145 * 300),
        ] {
            c[counter::file_io(e)] = total;
        }
        // Per second: 2 objects stored, 1 evicted; 300 purged once in 5 minutes.
        for (e, total) in [
            (ObjectEvent::Create, 600),
            (ObjectEvent::Erase, 300),
            (ObjectEvent::Purge, 300),
            (ObjectEvent::Expire, 0),
        ] {
            c[counter::object_event(e)] = total;
        }
        let dense = |values: &[(u64, u64)]| {
            let mut d = vec![0u64; hist::BUCKETS];
            for (us, n) in values {
                d[hist::bucket_of(*us)] += n;
            }
            d
        };
        let zero = vec![0u64; hist::BUCKETS];
        s.hist = [
            Dist::delta(&dense(&[(200, 2000), (1_500, 900), (40_000, 100)]), &zero),
            Dist::delta(&dense(&[(12_000, 900), (90_000, 70)]), &zero),
        ];
        s
    }

    fn system() -> Sample<SYS_N> {
        let mut s = Sample::empty(1_800_000_000);
        s.seconds = 300;
        for (v, per_second) in [
            (Sys::CpuKernel, 800),
            (Sys::CpuUser, 1200),
            (Sys::CpuIdle, 7900),
            (Sys::CpuProcKernel, 300),
            (Sys::CpuProcUser, 500),
            (Sys::CpuSoftIrq, 100),
            (Sys::MemFree, 8 << 30),
            (Sys::MemProcess, 96 << 20),
            (Sys::ServerTotal, 12),
            (Sys::ServerEstablished, 12),
            (Sys::ServerAccepted, 2),
            (Sys::ServerClosed, 2),
            (Sys::ClientTotal, 4),
            (Sys::ClientEstablished, 4),
            (Sys::TcpEstablished, 40),
            (Sys::TcpTimewait, 7),
            (Sys::TcpAlloc, 52),
            (Sys::TcpMem, 9),
            (Sys::ServiceAllow, 60),
            (Sys::ServiceDeny, 2),
            (Sys::Load1, 42),
            (Sys::Load5, 35),
            (Sys::Load15, 30),
            (Sys::NetInBytes, 1_250_000),
            (Sys::NetOutBytes, 52_000_000),
            (Sys::NetInPackets, 9_000),
            (Sys::NetOutPackets, 36_000),
        ] {
            s.counts[v as usize] = per_second * 300;
        }
        s
    }

    /// The guide's two example disks (chapter 10), each second of the five minutes alike.
    fn disks() -> Vec<DiskBlock> {
        [
            ("/cache1", [23, 0, 344, 117, 24, 93, 936, 256, 0, 173, 373]),
            ("/cache2", [27, 1, 488, 144, 24, 86, 880, 254, 0, 189, 380]),
        ]
        .into_iter()
        .map(|(path, per_second)| {
            let mut window = Sample::empty(1_800_000_000);
            window.seconds = 300;
            window.counts = per_second.map(|v| v * 300);
            DiskBlock {
                usage: DiskUsage {
                    path: path.into(),
                    total_bytes: 1 << 40,
                    used_bytes: 1 << 39,
                    free_bytes: 1 << 38,
                    status: "Normal",
                },
                window,
            }
        })
        .collect()
    }

    fn fixed() -> Snapshot {
        let block =
            |name: Option<&str>| Block::new(name.map(str::to_string), five_minutes(), 86_400);
        Snapshot {
            version: "0.1.0".into(),
            name: "edge-01".into(),
            host: block(None),
            system: system(),
            disks: disks(),
            vhosts: vec![block(Some("www.example.com"))],
            views: vec![block(Some("all"))],
        }
    }

    /// The JSON and XML of a fixed snapshot, reviewed against chapter 10; set
    /// KURA_BLESS=1 to rewrite them after a deliberate change.
    #[test]
    fn golden_json_and_xml() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        for (format, file) in [
            (Format::Json, "monitoring-average.json"),
            (Format::Xml, "monitoring-average.xml"),
        ] {
            let got = write(&fixed(), format);
            let path = dir.join(file);
            if std::env::var_os("KURA_BLESS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &got).unwrap();
            }
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                got == want,
                "{file} differs from the golden file; review, then rerun with KURA_BLESS=1"
            );
        }
    }
}
