//! `/metrics`: Prometheus text exposition (our addition), written from the
//! catalog's counter families and the stats core's cumulative totals.
//!
//! Counters are monotonically increasing `_total`s (as of the last per-second
//! fold), so any window or rate can be derived. Per vhost and side there is a
//! response-duration histogram; its buckets are exact at the core's bucket
//! resolution (a bucket counts under `le` when its lower bound is below it).

use std::fmt::Write as _;

use crate::daemon::Daemon;
use crate::stats::catalog::{self, PROM_BUCKETS};
use crate::stats::counter::{self, Class, Side};
use crate::stats::hist::bucket_floor;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(daemon: &Daemon) -> String {
    let rt = daemon.runtime();
    let vhosts: Vec<_> = rt
        .config
        .vhosts
        .iter()
        .filter_map(|v| daemon.stats.vhost(&v.name))
        .map(|s| (label(&s.name), s.totals()))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP kura_uptime_seconds Seconds since kurad started."
    );
    let _ = writeln!(out, "# TYPE kura_uptime_seconds gauge");
    let _ = writeln!(
        out,
        "kura_uptime_seconds {}",
        daemon.started.elapsed().as_secs()
    );
    for family in catalog::prometheus() {
        let _ = writeln!(out, "# HELP {}_total {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {}_total counter", family.name);
        for (vhost, (counts, _)) in &vhosts {
            for (labels, i, scale) in &family.samples {
                let v = counts[*i] as f64 * scale;
                let _ = writeln!(
                    out,
                    "{}_total{{vhost=\"{vhost}\",{labels}}} {v}",
                    family.name
                );
            }
        }
    }
    let name = "kura_response_duration_seconds";
    let _ = writeln!(out, "# HELP {name} Time until the response was complete.");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (vhost, (counts, hist)) in &vhosts {
        for side in [Side::Client, Side::Origin] {
            let s = if side == Side::Client {
                "client"
            } else {
                "origin"
            };
            let buckets = &hist[side as usize];
            for le in PROM_BUCKETS {
                let le_us = le * 1e6;
                let n: u64 = buckets
                    .iter()
                    .enumerate()
                    .filter(|(b, _)| (bucket_floor(*b) as f64) < le_us)
                    .map(|(_, n)| n)
                    .sum();
                let _ = writeln!(
                    out,
                    "{name}_bucket{{vhost=\"{vhost}\",side=\"{s}\",le=\"{le}\"}} {n}"
                );
            }
            let count = counts[counter::responses(side, Class::Total)];
            let sum = counts[counter::time_complete(side, Class::Total)] as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{vhost=\"{vhost}\",side=\"{s}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{vhost=\"{vhost}\",side=\"{s}\"}} {sum}");
            let _ = writeln!(
                out,
                "{name}_count{{vhost=\"{vhost}\",side=\"{s}\"}} {count}"
            );
        }
    }
    out
}
