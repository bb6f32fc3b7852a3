//! The metric catalog: every exported statistic declared once, with its
//! guide name (the JSON member and the XML attribute), unit, and how it is
//! computed from a window. The JSON and XML writers iterate it; SNMP and
//! `/metrics` will too.
//!
//! Value rules (`MONITORING.md`): "(average)" fields are per-second means over
//! the window; `...Sum` groups are totals; times are the mean per response in
//! 0.01 ms; ratios come from the window's totals in 0.01 %; means round half
//! away from zero.

use std::sync::LazyLock;

use super::contents::{Contents, SIZE_CLASSES};
use super::counter::{self, Class, FileIo, Gauge, ObjectEvent, OriginEvent, Part, Side, Stored};
use super::disk::{DiskField, DISK_N};
use super::system::Sys;
use super::Sample;
use crate::cache::CacheResult;

/// How a field is computed from a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Seconds since the daemon (or vhost) started.
    Uptime,
    /// A counter's per-second mean over the window.
    Rate(usize),
    /// A counter's sum over the window.
    Sum(usize),
    /// Mean microseconds per response, in 0.01 ms: `sum / count / 10`.
    MeanTime {
        /// Counter holding the sum of microseconds.
        sum: usize,
        /// Counter holding the number of responses.
        count: usize,
    },
    /// Client requests served from the cache, in 0.01 % of client requests.
    RequestHitRatio,
    /// `(client outbound - origin inbound) / client outbound`, in 0.01 % (may be negative).
    ByteHitRatio,
    /// A counter of a feature kura does not have yet (FUSE file system, DIMS,
    /// compression): present and zero, so NMS templates find every member.
    NotCollected,
    /// A response-time quantile of a side (per mille: 500 = p50, 999 = p99.9), in 0.01 ms.
    Quantile {
        /// Client or origin.
        side: Side,
        /// Quantile in tenths of a percent.
        per_mille: u16,
    },
}

/// One exported statistic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The guide's name: JSON member and XML attribute.
    pub name: String,
    /// Unit as the guide states it.
    pub unit: &'static str,
    /// How it is computed.
    pub source: Source,
}

fn field(name: impl Into<String>, unit: &'static str, source: Source) -> Field {
    Field {
        name: name.into(),
        unit,
        source,
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Origin => "Origin",
        Side::Client => "Client",
    }
}

/// The traffic block shared by `Host` and every `VirtualHost`, in the guide's
/// order: origin side, client side, then the two hit ratios.
pub fn traffic() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        let mut f = vec![field("Uptime", "seconds", Source::Uptime)];
        for side in [Side::Origin, Side::Client] {
            let s = side_name(side);
            // Gauges: the per-second sample's mean over the window (the value, in realtime).
            let (sessions, active) = match side {
                Side::Origin => (Gauge::OriginSessions, Gauge::OriginActive),
                Side::Client => (Gauge::ClientSessions, Gauge::ClientActive),
            };
            f.push(field(
                format!("{s}Session"),
                "count",
                Source::Rate(counter::gauge(sessions)),
            ));
            f.push(field(
                format!("{s}ActiveSession"),
                "count",
                Source::Rate(counter::gauge(active)),
            ));
            f.push(field(
                format!("{s}Inbound"),
                "bytes",
                Source::Rate(counter::inbound(side)),
            ));
            f.push(field(
                format!("{s}Outbound"),
                "bytes",
                Source::Rate(counter::outbound(side)),
            ));
            f.push(field(
                format!("{s}ReqCount"),
                "count",
                Source::Rate(counter::requests(side)),
            ));
            for class in Class::ALL {
                let (c, count) = (class.as_str(), counter::responses(side, class));
                f.push(field(
                    format!("{s}Res{c}Count"),
                    "count",
                    Source::Rate(count),
                ));
                let time = |sum| Source::MeanTime { sum, count };
                f.push(field(
                    format!("{s}Res{c}TimeRes"),
                    "0.01 ms",
                    time(counter::time_res(side, class)),
                ));
                f.push(field(
                    format!("{s}Res{c}TimeComplete"),
                    "0.01 ms",
                    time(counter::time_complete(side, class)),
                ));
            }
        }
        f.push(field("RequestHitRatio", "0.01%", Source::RequestHitRatio));
        f.push(field("ByteHitRatio", "0.01%", Source::ByteHitRatio));
        f
    });
    &FIELDS
}

/// `ResponseTime` (our addition, per side): response-time quantiles of the
/// window from its merged distribution, in 0.01 ms like the guide's times.
pub fn response_time(side: Side) -> &'static [Field] {
    static FIELDS: LazyLock<[Vec<Field>; 2]> = LazyLock::new(|| {
        [Side::Client, Side::Origin].map(|side| {
            [("P50", 500), ("P90", 900), ("P99", 990), ("P999", 999)]
                .into_iter()
                .map(|(n, per_mille)| field(n, "0.01 ms", Source::Quantile { side, per_mille }))
                .collect()
        })
    });
    &FIELDS[side as usize]
}

/// `System` groups that are our additions, not the guide's (written after its groups).
pub const SYSTEM_ADDITIONS: &[&str] = &["Network", "Log", "SSL"];

/// The `System` groups in the guide's order, then [`SYSTEM_ADDITIONS`]: each field is the per-second mean
/// of a value sampled from /proc (the value itself, in `realtime`).
pub fn system() -> &'static [(&'static str, Vec<Field>)] {
    static GROUPS: LazyLock<Vec<(&'static str, Vec<Field>)>> = LazyLock::new(|| {
        use Sys::*;
        let group = |name, fields: &[(&str, Sys, &'static str)]| {
            (
                name,
                fields
                    .iter()
                    .map(|(n, v, unit)| field(*n, unit, Source::Rate(*v as usize)))
                    .collect(),
            )
        };
        let pct = "0.01%";
        vec![
            group(
                "CPU",
                &[
                    ("Kernel", CpuKernel, pct),
                    ("User", CpuUser, pct),
                    ("Idle", CpuIdle, pct),
                    ("ProcKernel", CpuProcKernel, pct),
                    ("ProcUser", CpuProcUser, pct),
                    ("Nice", CpuNice, pct),
                    ("IOWait", CpuIoWait, pct),
                    ("IRQ", CpuIrq, pct),
                    ("SoftIRQ", CpuSoftIrq, pct),
                    ("Steal", CpuSteal, pct),
                ],
            ),
            group(
                "Mem",
                &[("Free", MemFree, "bytes"), ("STON", MemProcess, "bytes")],
            ),
            group(
                "ServerSocket",
                &[
                    ("Total", ServerTotal, "count"),
                    ("Established", ServerEstablished, "count"),
                    ("Accepted", ServerAccepted, "count"),
                    ("Closed", ServerClosed, "count"),
                ],
            ),
            group(
                "ClientSocket",
                &[
                    ("Total", ClientTotal, "count"),
                    ("Established", ClientEstablished, "count"),
                    ("Connected", ClientConnected, "count"),
                    ("Closed", ClientClosed, "count"),
                ],
            ),
            group(
                "TCPSocket",
                &[
                    ("Established", TcpEstablished, "count"),
                    ("Timewait", TcpTimewait, "count"),
                    ("Orphan", TcpOrphan, "count"),
                    ("Alloc", TcpAlloc, "count"),
                    ("Mem", TcpMem, "pages"),
                ],
            ),
            group(
                "ServiceAccess",
                &[
                    ("Allow", ServiceAllow, "count"),
                    ("Deny", ServiceDeny, "count"),
                ],
            ),
            group(
                "SystemLoadAverage",
                &[
                    ("Min1", Load1, "0.01"),
                    ("Min5", Load5, "0.01"),
                    ("Min15", Load15, "0.01"),
                ],
            ),
            // Our addition (the guide has no network figures): per-second traffic of
            // every interface but loopback, from /proc/net/dev.
            group(
                "Network",
                &[
                    ("Inbound", NetInBytes, "bytes"),
                    ("Outbound", NetOutBytes, "bytes"),
                    ("InPackets", NetInPackets, "count"),
                    ("OutPackets", NetOutPackets, "count"),
                ],
            ),
            // Our addition: log lines dropped because the log writer's queue was full
            // (a slow or stuck log disk); `/metrics` has the total per log.
            group("Log", &[("Dropped", LogDropped, "count")]),
            // Our addition: client TLS handshakes (completed and failed) per second and
            // open TLS connections; a handshake comes before any vhost is known.
            group(
                "SSL",
                &[
                    ("Handshakes", SslHandshakes, "count"),
                    ("HandshakeErrors", SslHandshakeErrors, "count"),
                    ("Sessions", SslSessions, "count"),
                ],
            ),
        ]
    });
    &GROUPS
}

/// The `System` members that are single values, written right after the `TCPSocket`
/// group as the guide places them (`EQ` and `RQ`, STON's queues, are gaps).
pub fn system_values() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        vec![field(
            "WaitingFiles2Write",
            "count",
            Source::Rate(Sys::WaitingWrites as usize),
        )]
    });
    &FIELDS
}

/// `System.Storage.Disk[]` after `Path` and `Status`, one field per [`DiskField`] in
/// [`DiskField::ALL`] order. The guide leaves the counts unmarked; they are read as
/// "(average)" like the other counts, so each is a per-second mean over the window
/// (`IOProgress`, a gauge, the mean of its samples).
pub fn disk() -> &'static [Field; DISK_N] {
    static FIELDS: LazyLock<[Field; DISK_N]> = LazyLock::new(|| {
        DiskField::ALL.map(|d| {
            let (name, unit) = match d {
                DiskField::Reads => ("Read", "count"),
                DiskField::ReadsMerged => ("ReadMerged", "count"),
                DiskField::SectorsRead => ("ReadSectors", "count"),
                DiskField::ReadMillis => ("ReadTime", "ms"),
                DiskField::Writes => ("Write", "count"),
                DiskField::WritesMerged => ("WriteMerged", "count"),
                DiskField::SectorsWritten => ("WriteSectors", "count"),
                DiskField::WriteMillis => ("WriteTime", "ms"),
                DiskField::IoInProgress => ("IOProgress", "count"),
                DiskField::IoMillis => ("IOTime", "ms"),
                DiskField::IoWeightedMillis => ("IOWeightedTime", "ms"),
            };
            field(name, unit, Source::Rate(d as usize))
        })
    });
    &FIELDS
}

/// A member of a nested group (`OriginTraffic`, `ClientTraffic`), as the guide lays
/// them out: JSON nests objects; XML writes a value as an element's text, a pair as
/// `<Name Sum="total">mean</Name>`, and an attribute group as one empty element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// One value: `"Name": v` / `<Name>v</Name>`.
    Value(Field),
    /// Window total and per-second mean: `"NameSum"`, `"Name"` / `<Name Sum="t">m</Name>`.
    Pair {
        /// The guide's name without `Sum`.
        name: String,
        /// The counter summed over the window.
        counter: usize,
    },
    /// A nested group: `"Name": {..}` / `<Name>..</Name>`.
    Group {
        /// Group name.
        name: String,
        /// Its members.
        members: Vec<Member>,
    },
    /// A flat group: `"Name": {..}` / `<Name a=".." .../>`.
    Attrs {
        /// Group name.
        name: String,
        /// Its fields.
        fields: Vec<Field>,
    },
}

fn pair(name: &str, counter: usize) -> Member {
    Member::Pair {
        name: name.to_string(),
        counter,
    }
}

fn value(name: &str, unit: &'static str, source: Source) -> Member {
    Member::Value(field(name, unit, source))
}

/// Request and response sizes and the per-class `Response` groups of one side.
fn exchange_members(side: Side) -> Vec<Member> {
    let mut m = vec![pair("HttpReqCount", counter::requests(side))];
    for (name, p) in [
        ("HttpReqHeaderSize", Part::ReqHeader),
        ("HttpReqBodySize", Part::ReqBody),
        ("HttpResHeaderSize", Part::ResHeader),
        ("HttpResBodySize", Part::ResBody),
    ] {
        m.push(value(name, "bytes", Source::Rate(counter::part(side, p))));
    }
    let mut response: Vec<Member> = Class::ALL
        .iter()
        .map(|&class| {
            let count = counter::responses(side, class);
            let time = |sum| Source::MeanTime { sum, count };
            Member::Group {
                name: format!("Res{}", class.as_str()),
                members: vec![
                    pair("Count", count),
                    pair("Completed", counter::completed(side, class)),
                    value("TimeRes", "0.01 ms", time(counter::time_res(side, class))),
                    value(
                        "TimeComplete",
                        "0.01 ms",
                        time(counter::time_complete(side, class)),
                    ),
                ],
            }
        })
        .collect();
    if side == Side::Origin {
        response.push(pair(
            "ConnectTimeout",
            counter::origin_event(OriginEvent::ConnectFailure),
        ));
        response.push(pair(
            "ReceiveTimeout",
            counter::origin_event(OriginEvent::ReceiveTimeout),
        ));
        response.push(pair("Close", counter::origin_event(OriginEvent::Close)));
    }
    m.push(Member::Group {
        name: "Response".into(),
        members: response,
    });
    m
}

/// `ClientHttpReqBypass` and `ClientHttpReqDenied` of a vhost, before its `OriginTraffic`.
pub fn request_counts() -> &'static [Member] {
    static MEMBERS: LazyLock<Vec<Member>> = LazyLock::new(|| {
        vec![
            pair("ClientHttpReqBypass", counter::BYPASSED),
            pair("ClientHttpReqDenied", counter::result(CacheResult::Denied)),
        ]
    });
    &MEMBERS
}

/// `VirtualHost.Memory`, `SecuredMemory` and `VirtualHost.Disk` (after `FileSystem`):
/// what the store holds for the vhost, gauges of its counts: body bytes in memory
/// (Memory-Only objects and the memory tier), body bytes in all (`TotalSize`),
/// objects per size class (`Distribution`); and as per-second means like every
/// count, body bytes swapped out of the memory tier (`SecuredMemory`) and the file
/// I/O of its objects (`Create` .. `WriteSize`).
pub fn stored() -> &'static [Member] {
    static MEMBERS: LazyLock<Vec<Member>> = LazyLock::new(|| {
        let level = |l| Source::Rate(counter::stored(l));
        let io = FileIo::ALL.map(|e| {
            let unit = match e {
                FileIo::ReadSize | FileIo::WriteSize => "bytes",
                _ => "count",
            };
            value(e.as_str(), unit, Source::Rate(counter::file_io(e)))
        });
        vec![
            value("Memory", "bytes", level(Stored::Memory)),
            value(
                "SecuredMemory",
                "bytes",
                Source::Rate(counter::SECURED_MEMORY),
            ),
            Member::Group {
                name: "Disk".into(),
                members: [value("TotalSize", "bytes", level(Stored::Bytes))]
                    .into_iter()
                    .chain(io)
                    .chain([Member::Attrs {
                        name: "Distribution".into(),
                        fields: (0..SIZE_CLASSES)
                            .map(|i| {
                                let n = Contents::class_name(i);
                                field(n, "count", Source::Rate(counter::stored_class(i)))
                            })
                            .collect(),
                    }])
                    .collect(),
            },
        ]
    });
    &MEMBERS
}

/// `VirtualHost.CacheFileEvent`: objects stored (`Create`), bodies swapped out
/// of the memory tier (`Swap`), objects evicted or cleaned up (`Erase`),
/// purged (`Purge`) and expired (`Expire`), per-second means like every count.
pub fn cache_file_events() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        ObjectEvent::ALL
            .map(|e| field(e.as_str(), "count", Source::Rate(counter::object_event(e))))
            .into()
    });
    &FIELDS
}

/// `VirtualHost.File`, gauges: the objects the store holds for the vhost
/// (`Total`), its object files open for reading (`Opened`), and its objects
/// with the fills in progress (`Instance`); JSON `FileTotal` .., XML
/// `<File Total=".." Opened=".." Instance=".."/>`.
pub fn files() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        let level = |l| Source::Rate(counter::stored(l));
        vec![
            field("Total", "count", level(Stored::Files)),
            field("Opened", "count", level(Stored::Opened)),
            field("Instance", "count", level(Stored::Instances)),
        ]
    });
    &FIELDS
}

/// `VirtualHost.OriginTraffic`.
pub fn origin_traffic() -> &'static [Member] {
    static MEMBERS: LazyLock<Vec<Member>> = LazyLock::new(|| {
        let connects = counter::origin_event(OriginEvent::Connect);
        let mut m = exchange_members(Side::Origin);
        m.push(Member::Group {
            name: "Connect".into(),
            members: vec![
                value("Count", "count", Source::Sum(connects)),
                value(
                    "AvgConnTime",
                    "0.01 ms",
                    Source::MeanTime {
                        sum: counter::origin_event(OriginEvent::ConnectMicros),
                        count: connects,
                    },
                ),
            ],
        });
        m
    });
    &MEMBERS
}

/// One `ClientTraffic.Traffic[]` entry after its `RequestHitRatio` and `Path`: with
/// `<DirDepth>` 0 (the only depth collected yet) the one entry is the whole vhost.
pub fn client_traffic() -> &'static [Member] {
    static MEMBERS: LazyLock<Vec<Member>> = LazyLock::new(|| {
        let mut m = exchange_members(Side::Client);
        // HTTPS traffic (`<Stats><HttpsTraffic>` decides whether it is in the HTTP figures too).
        m.push(Member::Attrs {
            name: "SSL".into(),
            fields: vec![
                field("RecvSize", "bytes", Source::Rate(counter::ssl_inbound())),
                field("SendSize", "bytes", Source::Rate(counter::ssl_outbound())),
            ],
        });
        let per_code = |source: fn(usize) -> Source| -> Vec<Field> {
            CacheResult::ALL
                .iter()
                .map(|r| field(r.as_str(), "count", source(counter::result(*r))))
                .collect()
        };
        m.push(Member::Attrs {
            name: "RequestHit".into(),
            fields: per_code(Source::Rate),
        });
        m.push(Member::Attrs {
            name: "RequestHitSum".into(),
            fields: per_code(Source::Sum),
        });
        m
    });
    &MEMBERS
}

/// `FileSystem` of the host and of each vhost: File I/O through the FUSE file
/// system of chapter 17, which kura does not provide (zero, present).
pub fn file_system() -> &'static [Member] {
    static MEMBERS: LazyLock<Vec<Member>> = LazyLock::new(|| {
        [
            ("RequestHitRatio", "0.01%"),
            ("ByteHitRatio", "0.01%"),
            ("Outbound", "bytes"),
            ("Session", "count"),
        ]
        .into_iter()
        .map(|(n, unit)| value(n, unit, Source::NotCollected))
        .collect()
    });
    &MEMBERS
}

/// `VirtualHost.Session`: the session gauges again, as the guide groups them.
pub fn session() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        [
            ("Client", Gauge::ClientSessions),
            ("ActiveClient", Gauge::ClientActive),
            ("Origin", Gauge::OriginSessions),
            ("ActiveOrigin", Gauge::OriginActive),
        ]
        .into_iter()
        .map(|(n, g)| field(n, "count", Source::Rate(counter::gauge(g))))
        .collect()
    });
    &FIELDS
}

/// `VirtualHost.Dims` and `VirtualHost.Compression`: conversions kura does not do
/// yet (chapters 16 and 6); zero, present.
pub fn conversions() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        [
            ("Requests", "count"),
            ("Converted", "count"),
            ("Failed", "count"),
            ("AvgSrcSize", "bytes"),
            ("AvgDestSize", "bytes"),
            ("AvgTime", "ms"),
        ]
        .into_iter()
        .map(|(n, unit)| field(n, unit, Source::NotCollected))
        .collect()
    });
    &FIELDS
}

/// `HttpCountSum`: request and response counts over the window.
pub fn http_count_sum() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        let mut f = Vec::new();
        for side in [Side::Origin, Side::Client] {
            let s = side_name(side);
            f.push(field(
                format!("{s}ReqCount"),
                "count",
                Source::Sum(counter::requests(side)),
            ));
            for class in Class::ALL {
                let name = format!("{s}Res{}Count", class.as_str());
                f.push(field(
                    name,
                    "count",
                    Source::Sum(counter::responses(side, class)),
                ));
            }
        }
        f
    });
    &FIELDS
}

/// `HttpRequestHitSum`: client requests per result code over the window.
pub fn http_request_hit_sum() -> &'static [Field] {
    static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
        CacheResult::ALL
            .iter()
            .map(|r| field(r.as_str(), "count", Source::Sum(counter::result(*r))))
            .collect()
    });
    &FIELDS
}

/// `n / d` rounded to the nearest integer, halves away from zero; 0 when `d` is 0.
fn round_div(n: i128, d: i128) -> i64 {
    if d == 0 {
        return 0;
    }
    let q = (2 * n.abs() + d.abs()) / (2 * d.abs());
    let q = if (n < 0) != (d < 0) { -q } else { q };
    q.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// A field's value over `window`; `uptime` is in seconds.
pub fn evaluate<const K: usize>(source: Source, window: &Sample<K>, uptime: u64) -> i64 {
    evaluate_in(source, window, uptime, 1)
}

/// A field's value over `window` in units `div` times the catalog's (SNMP's
/// `(100%)` rows are the 0.01 % figures in whole percent, memory in KB is bytes
/// in 1024s), rounded once from the exact fraction.
pub fn evaluate_in<const K: usize>(
    source: Source,
    window: &Sample<K>,
    uptime: u64,
    div: i64,
) -> i64 {
    let (n, d) = fraction(source, window, uptime);
    round_div(n, d * i128::from(div))
}

/// A field's exact value as `numerator / denominator`.
fn fraction<const K: usize>(source: Source, window: &Sample<K>, uptime: u64) -> (i128, i128) {
    let c = |i: usize| i128::from(window.counts[i]);
    match source {
        Source::Uptime => (i128::from(uptime), 1),
        Source::Rate(i) => (c(i), i128::from(window.seconds)),
        Source::Sum(i) => (c(i), 1),
        Source::MeanTime { sum, count } => (c(sum), c(count) * 10),
        Source::RequestHitRatio => {
            let hits: i128 = CacheResult::ALL
                .iter()
                .filter(|r| r.is_hit())
                .map(|r| c(counter::result(*r)))
                .sum();
            let all: i128 = CacheResult::ALL
                .iter()
                .map(|r| c(counter::result(*r)))
                .sum();
            (hits * 10_000, all)
        }
        Source::NotCollected => (0, 1),
        Source::Quantile { side, per_mille } => {
            let h = &window.hist[side as usize];
            if h.count() == 0 {
                return (0, 1);
            }
            let micros = h.to_hdr().value_at_quantile(f64::from(per_mille) / 1000.0);
            (i128::from(micros), 10)
        }
        Source::ByteHitRatio => {
            let out = c(counter::outbound(Side::Client));
            ((out - c(counter::inbound(Side::Origin))) * 10_000, out)
        }
    }
}

/// An SNMP `portbypass.*` row of a side: the relays' bytes, sessions, closes (by the
/// side that closed first) and, for the origin, failed connects.
fn port_bypass_row(side: Side, row: &str) -> Option<Source> {
    use counter::PortBypassEvent as E;
    let ev = |e| counter::port_bypass(e);
    let (inbound, outbound, closed) = match side {
        Side::Client => (E::ClientIn, E::ClientOut, E::ClientClosed),
        Side::Origin => (E::OriginIn, E::OriginOut, E::OriginClosed),
    };
    Some(match row {
        "inbound" => Source::Rate(ev(inbound)),
        "outbound" => Source::Rate(ev(outbound)),
        "sessionAverage" => Source::Rate(counter::gauge(Gauge::PortBypassSessions)),
        "closedAverage" => Source::Rate(ev(closed)),
        "closedCount" => Source::Sum(ev(closed)),
        "connectTimeoutAverage" if side == Side::Origin => Source::Rate(ev(E::ConnectFailure)),
        "connectTimeoutCount" if side == Side::Origin => Source::Sum(ev(E::ConnectFailure)),
        _ => return None,
    })
}

/// The SNMP column of a traffic figure (`oid-tree.tsv` rows under `cache.host.traffic`,
/// `cache.vhost.traffic` and, by the guide's rule, `cache.view`): `group` is what follows
/// `traffic` in the section (`""`, `origin`, `client`, `filesystem`, `dims`,
/// `compression`), `name` the row's name. The same counters and [`Source`]s as the
/// JSON/XML fields, so one window gives one number everywhere. `None`: not a known row.
pub fn snmp_traffic(group: &str, name: &str) -> Option<Source> {
    let side = match group {
        "" => {
            return match name {
                "requestHitRatio" => Some(Source::RequestHitRatio),
                "bytesHitRatio" => Some(Source::ByteHitRatio),
                _ => None,
            }
        }
        // File I/O (FUSE, chapter 17), DIMS and compression: features kura does not have.
        "filesystem" | "dims" | "compression" => return Some(Source::NotCollected),
        "origin" => Side::Origin,
        "client" => Side::Client,
        _ => return None,
    };
    let (sessions, active) = match side {
        Side::Origin => (Gauge::OriginSessions, Gauge::OriginActive),
        Side::Client => (Gauge::ClientSessions, Gauge::ClientActive),
    };
    // Everything kura carries is HTTP, so the side totals and `http.*` are the same figures.
    let http = name.strip_prefix("http.").unwrap_or(name);
    if let Some(row) = name.strip_prefix("portbypass.") {
        return port_bypass_row(side, row);
    }
    match name {
        "ssl.inbound" if side == Side::Client => return Some(Source::Rate(counter::ssl_inbound())),
        "ssl.outbound" if side == Side::Client => {
            return Some(Source::Rate(counter::ssl_outbound()))
        }
        _ => {}
    }
    if let Some((kind, code)) = name.split_once(".TCP_") {
        let r = *CacheResult::ALL
            .iter()
            .find(|r| r.as_str().strip_prefix("TCP_") == Some(code))?;
        return match kind {
            "requestHitAverage" => Some(Source::Rate(counter::result(r))),
            "requestHitCount" => Some(Source::Sum(counter::result(r))),
            _ => None,
        };
    }
    let event = |e| counter::origin_event(e);
    let simple = match http {
        "inbound" => Source::Rate(counter::inbound(side)),
        "outbound" => Source::Rate(counter::outbound(side)),
        "sessionAverage" => Source::Rate(counter::gauge(sessions)),
        "activesessionAverage" => Source::Rate(counter::gauge(active)),
        "reqHeaderSize" => Source::Rate(counter::part(side, Part::ReqHeader)),
        "reqBodySize" => Source::Rate(counter::part(side, Part::ReqBody)),
        "resHeaderSize" => Source::Rate(counter::part(side, Part::ResHeader)),
        "resBodySize" => Source::Rate(counter::part(side, Part::ResBody)),
        "reqAverage" => Source::Rate(counter::requests(side)),
        "reqCount" => Source::Sum(counter::requests(side)),
        "reqDeniedAverage" if side == Side::Client => {
            Source::Rate(counter::result(CacheResult::Denied))
        }
        "reqDeniedCount" if side == Side::Client => {
            Source::Sum(counter::result(CacheResult::Denied))
        }
        "connectTimeoutAverage" if side == Side::Origin => {
            Source::Rate(event(OriginEvent::ConnectFailure))
        }
        "connectTimeoutCount" if side == Side::Origin => {
            Source::Sum(event(OriginEvent::ConnectFailure))
        }
        "receiveTimeoutAverage" if side == Side::Origin => {
            Source::Rate(event(OriginEvent::ReceiveTimeout))
        }
        "receiveTimeoutCount" if side == Side::Origin => {
            Source::Sum(event(OriginEvent::ReceiveTimeout))
        }
        "connectAverage" if side == Side::Origin => Source::Rate(event(OriginEvent::Connect)),
        "connectCount" if side == Side::Origin => Source::Sum(event(OriginEvent::Connect)),
        "connectTime" if side == Side::Origin => Source::MeanTime {
            sum: event(OriginEvent::ConnectMicros),
            count: event(OriginEvent::Connect),
        },
        // Resolution is timed inside the connect (docs/monitoring-gaps.tsv, AvgDNSQueryTime).
        "dnsQueryTime" if side == Side::Origin => Source::NotCollected,
        "closeAverage" if side == Side::Origin => Source::Rate(event(OriginEvent::Close)),
        "closeCount" if side == Side::Origin => Source::Sum(event(OriginEvent::Close)),
        _ => {
            // http.res<Class><Measure>: resTotalAverage, res2xxTimeRes, res5xxCompleteCount, ...
            let rest = http.strip_prefix("res")?;
            let class = *Class::ALL.iter().find(|c| rest.starts_with(c.as_str()))?;
            let measure = &rest[class.as_str().len()..];
            let count = counter::responses(side, class);
            let completed = counter::completed(side, class);
            return Some(match measure {
                "Average" => Source::Rate(count),
                "Count" => Source::Sum(count),
                "CompleteAverage" => Source::Rate(completed),
                "CompleteCount" => Source::Sum(completed),
                "TimeRes" => Source::MeanTime {
                    sum: counter::time_res(side, class),
                    count,
                },
                "TimeComplete" => Source::MeanTime {
                    sum: counter::time_complete(side, class),
                    count,
                },
                _ => return None,
            });
        }
    };
    Some(simple)
}

/// The SNMP column of a `system` or `global` row whose value is a sampled
/// system figure (`oid-tree.tsv` name), as a per-second mean over the window.
/// `None`: not a sampled figure (counts, tables, and what `snmp::tree` binds itself).
pub fn snmp_system(name: &str) -> Option<Source> {
    use Sys::*;
    let v = match name {
        "cpuTotal" => CpuTotal,
        "cpuKernel" => CpuKernel,
        "cpuUser" => CpuUser,
        "cpuIdle" => CpuIdle,
        "memUse" => MemUsed,
        "memFree" => MemFree,
        "memSTON" => MemProcess,
        "memUseRatio" => MemUseRatio,
        "memSTONRatio" => MemProcessRatio,
        "cpuProcKernel" => CpuProcKernel,
        "cpuProcUser" => CpuProcUser,
        "sysLoadAverage" => Load1,
        "sysLoadAverage5" => Load5,
        "sysLoadAverage15" => Load15,
        "cpuNice" => CpuNice,
        "cpuIOWait" => CpuIoWait,
        "cpuIRQ" => CpuIrq,
        "cpuSoftIRQ" => CpuSoftIrq,
        "cpuSteal" => CpuSteal,
        "TCPSocket.Established" => TcpEstablished,
        "TCPSocket.Timewait" => TcpTimewait,
        "TCPSocket.Orphan" => TcpOrphan,
        "TCPSocket.Alloc" => TcpAlloc,
        "TCPSocket.Mem" => TcpMem,
        "ServerSocket.Total" => ServerTotal,
        "ServerSocket.Established" => ServerEstablished,
        "ServerSocket.Accepted" => ServerAccepted,
        "ServerSocket.Closed" => ServerClosed,
        "ClientSocket.Total" => ClientTotal,
        "ClientSocket.Established" => ClientEstablished,
        "ClientSocket.Accepted" => ClientConnected,
        "ClientSocket.Closed" => ClientClosed,
        "ServiceAccess.Allow" => ServiceAllow,
        "ServiceAccess.Deny" => ServiceDeny,
        "waitingFiles2Write" => WaitingWrites,
        // STON's event queues: see docs/snmp-gaps.tsv.
        "EQ" | "RQ" => return Some(Source::NotCollected),
        _ => return None,
    };
    Some(Source::Rate(v as usize))
}

/// One Prometheus counter family: cumulative totals of raw counters, labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct PromFamily {
    /// Metric name without the `_total` suffix (`kura_requests`).
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// `(labels, counter, scale)`: each sample is `counter * scale`; labels exclude `vhost`.
    pub samples: Vec<(String, usize, f64)>,
}

/// The `/metrics` counter families (our addition): the raw counters as
/// monotonically increasing `_total`s, so any window or rate can be derived.
pub fn prometheus() -> &'static [PromFamily] {
    static FAMILIES: LazyLock<Vec<PromFamily>> = LazyLock::new(|| {
        let sides = [Side::Client, Side::Origin];
        let lower = |s: Side| side_name(s).to_ascii_lowercase();
        let per_side = |f: fn(Side) -> usize| -> Vec<(String, usize, f64)> {
            sides
                .iter()
                .map(|s| (format!("side=\"{}\"", lower(*s)), f(*s), 1.0))
                .collect()
        };
        let per_class = |f: fn(Side, Class) -> usize, scale: f64| -> Vec<(String, usize, f64)> {
            sides
                .iter()
                .flat_map(|s| {
                    Class::ALL[1..].iter().map(move |c| {
                        (
                            format!("side=\"{}\",class=\"{}\"", lower(*s), c.as_str()),
                            f(*s, *c),
                            scale,
                        )
                    })
                })
                .collect()
        };
        let per_result = |f: fn(CacheResult) -> usize| -> Vec<(String, usize, f64)> {
            CacheResult::ALL
                .iter()
                .map(|r| (format!("result=\"{}\"", r.as_str()), f(*r), 1.0))
                .collect()
        };
        let per_op = |ops: &[(FileIo, &str)]| -> Vec<(String, usize, f64)> {
            ops.iter()
                .map(|(e, op)| (format!("op=\"{op}\""), counter::file_io(*e), 1.0))
                .collect()
        };
        vec![
            PromFamily {
                name: "kura_requests",
                help:
                    "Requests received from clients (side=client) or sent to origins (side=origin).",
                samples: per_side(counter::requests),
            },
            PromFamily {
                name: "kura_received_bytes",
                help: "Bytes received from clients or from origins.",
                samples: per_side(counter::inbound),
            },
            PromFamily {
                name: "kura_sent_bytes",
                help: "Bytes sent to clients or to origins.",
                samples: per_side(counter::outbound),
            },
            PromFamily {
                name: "kura_responses",
                help: "Responses by status class.",
                samples: per_class(counter::responses, 1.0),
            },
            PromFamily {
                name: "kura_response_head_seconds",
                help: "Sum of the time until the response head, by status class.",
                samples: per_class(counter::time_res, 1e-6),
            },
            PromFamily {
                name: "kura_response_complete_seconds",
                help: "Sum of the time until the response was complete, by status class.",
                samples: per_class(counter::time_complete, 1e-6),
            },
            PromFamily {
                name: "kura_cache_results",
                help: "Client requests by cache result code.",
                samples: per_result(counter::result),
            },
            PromFamily {
                name: "kura_cache_result_bytes",
                help: "Body bytes sent to clients by cache result code.",
                samples: per_result(counter::result_bytes),
            },
            PromFamily {
                name: "kura_cache_file_operations",
                help: "Operations on the vhost's object files on the cache disks.",
                samples: per_op(&[
                    (FileIo::Create, "create"),
                    (FileIo::Open, "open"),
                    (FileIo::Delete, "delete"),
                    (FileIo::ReadCount, "read"),
                    (FileIo::WriteCount, "write"),
                ]),
            },
            PromFamily {
                name: "kura_cache_object_events",
                help: "Objects stored, swapped out of memory, evicted, purged and expired.",
                samples: ObjectEvent::ALL
                    .iter()
                    .map(|e| {
                        let event = e.as_str().to_ascii_lowercase();
                        (format!("event=\"{event}\""), counter::object_event(*e), 1.0)
                    })
                    .collect(),
            },
            PromFamily {
                name: "kura_cache_swapped_bytes",
                help: "Body bytes swapped out of the memory tier to make room (SecuredMemory).",
                samples: vec![(String::new(), counter::SECURED_MEMORY, 1.0)],
            },
            PromFamily {
                name: "kura_cache_file_bytes",
                help: "Bytes read from and written to the vhost's object files.",
                samples: per_op(&[(FileIo::ReadSize, "read"), (FileIo::WriteSize, "write")]),
            },
        ]
    });
    &FAMILIES
}

/// Upper bounds (seconds) of the `kura_response_duration_seconds` histogram buckets.
pub const PROM_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_div(5, 2), 3);
        assert_eq!(round_div(-5, 2), -3);
        assert_eq!(round_div(4, 3), 1);
        assert_eq!(round_div(1, 0), 0);
    }

    #[test]
    fn traffic_block_has_the_guide_names_in_order() {
        let names: Vec<&str> = traffic().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            &names[..5],
            [
                "Uptime",
                "OriginSession",
                "OriginActiveSession",
                "OriginInbound",
                "OriginOutbound",
            ]
        );
        assert!(names.contains(&"ClientRes5xxTimeComplete"));
        assert_eq!(names.last(), Some(&"ByteHitRatio"));
        assert_eq!(names.len(), 1 + 2 * (2 + 3 + 15) + 2);
    }
}
