//! `/metrics`: Prometheus text exposition (our addition), written from the
//! catalog's counter families and the stats core's cumulative totals.
//!
//! Counters are monotonically increasing `_total`s (as of the last per-second
//! fold), so any window or rate can be derived. Per vhost and side there is a
//! response-duration histogram; its buckets are exact at the core's bucket
//! resolution (a bucket counts under `le` when its lower bound is below it).
//! Session gauges, the standard `process_*` metrics and network traffic follow.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::cache::disk::Disk;
use crate::daemon::Daemon;
use crate::procfs;
use crate::stats::catalog::{self, PROM_BUCKETS};
use crate::stats::counter::{self, Class, Gauge, Side};
use crate::stats::hist::bucket_floor;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one family: its `# HELP`, `# TYPE` and samples (`(labels, value)`, labels without braces).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn side_label(side: Side) -> &'static str {
    if side == Side::Client {
        "client"
    } else {
        "origin"
    }
}

/// The whole exposition.
pub fn render(daemon: &Daemon) -> String {
    let rt = daemon.runtime();
    let vhosts: Vec<_> = rt
        .config
        .vhosts
        .iter()
        .filter_map(|v| daemon.stats.vhost(&v.name))
        .collect();
    let totals: Vec<_> = vhosts
        .iter()
        .map(|s| (label(&s.name), s.totals()))
        .collect();
    let mut out = String::new();
    let uptime = daemon.started.elapsed().as_secs();
    family(
        &mut out,
        "kura_uptime_seconds",
        "gauge",
        "Seconds since kurad started.",
        [(String::new(), uptime.to_string())],
    );
    for f in catalog::prometheus() {
        let samples = totals.iter().flat_map(|(vhost, (counts, _))| {
            f.samples.iter().map(move |(labels, i, scale)| {
                let sep = if labels.is_empty() { "" } else { "," };
                (
                    format!("vhost=\"{vhost}\"{sep}{labels}"),
                    (counts[*i] as f64 * scale).to_string(),
                )
            })
        });
        family(
            &mut out,
            &format!("{}_total", f.name),
            "counter",
            f.help,
            samples,
        );
    }
    let name = "kura_response_duration_seconds";
    let mut samples = Vec::new();
    for (vhost, (counts, hist)) in &totals {
        for side in [Side::Client, Side::Origin] {
            let s = side_label(side);
            let buckets = &hist[side as usize];
            for le in PROM_BUCKETS {
                let n: u64 = buckets
                    .iter()
                    .enumerate()
                    .filter(|(b, _)| (bucket_floor(*b) as f64) < le * 1e6)
                    .map(|(_, n)| n)
                    .sum();
                samples.push((
                    format!("_bucket{{vhost=\"{vhost}\",side=\"{s}\",le=\"{le}\"}}"),
                    n.to_string(),
                ));
            }
            let count = counts[counter::responses(side, Class::Total)];
            let sum = counts[counter::time_complete(side, Class::Total)] as f64 / 1e6;
            samples.push((
                format!("_bucket{{vhost=\"{vhost}\",side=\"{s}\",le=\"+Inf\"}}"),
                count.to_string(),
            ));
            samples.push((
                format!("_sum{{vhost=\"{vhost}\",side=\"{s}\"}}"),
                sum.to_string(),
            ));
            samples.push((
                format!("_count{{vhost=\"{vhost}\",side=\"{s}\"}}"),
                count.to_string(),
            ));
        }
    }
    let _ = writeln!(out, "# HELP {name} Time until the response was complete.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (suffix, value) in samples {
        let _ = writeln!(out, "{name}{suffix} {value}");
    }
    let sessions = vhosts.iter().flat_map(|s| {
        let vhost = label(&s.name);
        [
            (Side::Client, "open", Gauge::ClientSessions),
            (Side::Client, "active", Gauge::ClientActive),
            (Side::Origin, "open", Gauge::OriginSessions),
            (Side::Origin, "active", Gauge::OriginActive),
        ]
        .map(|(side, state, g)| {
            (
                format!(
                    "vhost=\"{vhost}\",side=\"{}\",state=\"{state}\"",
                    side_label(side)
                ),
                s.gauge(g).to_string(),
            )
        })
    });
    family(
        &mut out,
        "kura_sessions",
        "gauge",
        "Open (and active: with a request in progress) connections.",
        sessions,
    );
    let mut names: Vec<&String> = rt.pools.keys().collect();
    names.sort();
    let origins = names.into_iter().flat_map(|name| {
        let pool = &rt.pools[name];
        pool.table.entries.iter().flat_map(move |e| {
            let address = label(&e.address.authority());
            e.ips().into_iter().map(move |ip| {
                (
                    format!(
                        "vhost=\"{}\",address=\"{address}\",ip=\"{}\",standby=\"{}\"",
                        label(name),
                        ip.addr,
                        e.standby
                    ),
                    u8::from(ip.usable()).to_string(),
                )
            })
        })
    });
    family(
        &mut out,
        "kura_origin_up",
        "gauge",
        "1 while an origin IP is usable, 0 while error detection or a health checker excludes it.",
        origins,
    );
    storage(&mut out, daemon);
    let [user, system] = procfs::process_cpu_ticks();
    let cpu = (user + system) as f64 / procfs::clock_ticks_per_second() as f64;
    family(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of kurad.",
        [(String::new(), cpu.to_string())],
    );
    let rss = procfs::kib_field(&procfs::read("/proc/self/status"), "VmRSS:");
    family(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of kurad.",
        [(String::new(), rss.to_string())],
    );
    let start = procfs::unix_now().saturating_sub(uptime);
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of kurad (unix seconds).",
        [(String::new(), start.to_string())],
    );
    let dropped: Vec<(String, String)> = daemon
        .logs
        .sinks()
        .iter()
        .map(|s| {
            let log = format!("log=\"{}\"", s.kind.as_str());
            let labels = match &s.vhost {
                Some(v) => format!("{log},vhost=\"{}\"", label(v)),
                None => log,
            };
            (labels, s.dropped.load(Ordering::Relaxed).to_string())
        })
        .collect();
    family(
        &mut out,
        "kura_log_dropped_lines_total",
        "counter",
        "Log lines dropped because the log writer's queue was full.",
        dropped,
    );
    let access = &crate::stats::system::CONNECTIONS;
    family(
        &mut out,
        "kura_service_access_total",
        "counter",
        "Client connections let through (allow) or refused (deny) by <ServiceAccess>.",
        [
            ("allow", &access.service_allowed),
            ("deny", &access.service_denied),
        ]
        .map(|(result, n)| {
            (
                format!("result=\"{result}\""),
                n.load(Ordering::Relaxed).to_string(),
            )
        }),
    );
    let net = procfs::network_bytes();
    let per_dev = |pick: fn(&(String, u64, u64)) -> u64| {
        net.iter()
            .map(move |d| (format!("device=\"{}\"", label(&d.0)), pick(d).to_string()))
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "kura_network_receive_bytes_total",
        "counter",
        "Bytes received by each network interface.",
        per_dev(|d| d.1),
    );
    family(
        &mut out,
        "kura_network_transmit_bytes_total",
        "counter",
        "Bytes sent by each network interface.",
        per_dev(|d| d.2),
    );
    out
}

/// Per-disk cache figures: one row per family, read from each [`Disk`].
type DiskFigure = (&'static str, &'static str, &'static str, fn(&Disk) -> u64);

/// The disk families, in output order.
const DISK_FIGURES: [DiskFigure; 9] = [
    (
        "kura_disk_up",
        "gauge",
        "1 while a cache disk is in service (Normal).",
        |d| u64::from(d.is_normal()),
    ),
    (
        "kura_disk_capacity_bytes",
        "gauge",
        "Bytes of objects a cache disk may hold (Quota, or the file system less a reserve).",
        |d| d.capacity(),
    ),
    (
        "kura_disk_objects",
        "gauge",
        "Objects stored on a cache disk.",
        |d| d.objects.load(Ordering::Relaxed),
    ),
    (
        "kura_disk_object_bytes",
        "gauge",
        "Bytes of the object files on a cache disk.",
        |d| d.bytes.load(Ordering::Relaxed),
    ),
    (
        "kura_disk_writes_total",
        "counter",
        "Object files written to a cache disk.",
        |d| d.counters.writes.load(Ordering::Relaxed),
    ),
    (
        "kura_disk_written_bytes_total",
        "counter",
        "Bytes of object files written to a cache disk.",
        |d| d.counters.written_bytes.load(Ordering::Relaxed),
    ),
    (
        "kura_disk_reads_total",
        "counter",
        "Body reads from a cache disk (up to 256 KiB each).",
        |d| d.counters.reads.load(Ordering::Relaxed),
    ),
    (
        "kura_disk_read_bytes_total",
        "counter",
        "Body bytes read from a cache disk.",
        |d| d.counters.read_bytes.load(Ordering::Relaxed),
    ),
    (
        "kura_disk_errors_total",
        "counter",
        "I/O errors of a cache disk (DiskFailCount counts them within DiskFailSec).",
        |d| d.counters.errors.load(Ordering::Relaxed),
    ),
];

/// The cache disks and the memory tier.
fn storage(out: &mut String, daemon: &Daemon) {
    let disks = daemon.store.disks();
    for (name, kind, help, read) in DISK_FIGURES {
        let samples = disks.iter().map(|d| {
            (
                format!("disk=\"{}\"", label(&d.path.display().to_string())),
                read(d).to_string(),
            )
        });
        family(out, name, kind, help, samples);
    }
    let (objects, bytes) = daemon.store.usage();
    family(
        out,
        "kura_cache_objects",
        "gauge",
        "Objects in the cache (memory and disks).",
        [(String::new(), objects.to_string())],
    );
    family(
        out,
        "kura_cache_cold_objects",
        "gauge",
        "Cached objects whose head is only in their file (<Indexing>Disk); 0 with <Indexing>Memory.",
        [(String::new(), daemon.store.cold_objects().to_string())],
    );
    family(
        out,
        "kura_cache_bytes",
        "gauge",
        "Bytes the cached objects take: memory in Memory-Only mode, object files with disks.",
        [(String::new(), bytes.to_string())],
    );
    family(
        out,
        "kura_cache_waiting_writes",
        "gauge",
        "Objects whose file is being written to a cache disk (WaitingFiles2Write).",
        [(
            String::new(),
            crate::stats::system::WAITING_WRITES
                .load(Ordering::Relaxed)
                .to_string(),
        )],
    );
    if let Some((bodies, bytes)) = daemon.store.memory_tier() {
        family(
            out,
            "kura_memory_tier_bodies",
            "gauge",
            "Bodies of disk objects held in memory.",
            [(String::new(), bodies.to_string())],
        );
        family(
            out,
            "kura_memory_tier_bytes",
            "gauge",
            "Bytes of disk objects' bodies held in memory.",
            [(String::new(), bytes.to_string())],
        );
    }
}
