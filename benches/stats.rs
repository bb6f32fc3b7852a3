//! Cost of recording one request in the stats core (`cargo bench --bench stats`).
//!
//! Prints nanoseconds per recorded request (one client exchange + its result
//! code), single-threaded and with two threads on the same vhost. Compare with
//! the CPU time per 1 KiB hit that `../shared/bench/peers.sh` reports.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kura::cache::CacheResult;
use kura::stats::counter::Side;
use kura::stats::{Exchange, Stats};

fn main() {
    let stats = Stats::default();
    let v = stats.handles(["bench.kura"]).remove("bench.kura").unwrap();
    let e = Exchange {
        side: Side::Client,
        status: 200,
        inbound: 120,
        outbound: 1300,
        time_res: Duration::from_micros(40),
        time_complete: Duration::from_micros(55),
    };
    let n = 20_000_000u64;
    let once = |v: &kura::stats::VhostStats| {
        for _ in 0..n {
            v.record(black_box(&e));
            v.record_result(black_box(CacheResult::Hit), black_box(1024));
        }
    };
    once(&v);
    let t = Instant::now();
    once(&v);
    let single = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let v = Arc::clone(&v);
            s.spawn(move || once(&v));
        }
    });
    let two = t.elapsed().as_nanos() as f64 / n as f64;
    println!("stats record (exchange + result), 1 thread:  {single:.1} ns/request");
    println!("stats record (exchange + result), 2 threads: {two:.1} ns/request (wall time per request per thread)");
}
