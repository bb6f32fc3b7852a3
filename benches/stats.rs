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
use kura::stats::dirs::{DirPolicy, DirTable};
use kura::stats::{Counting, Exchange, Stats};

fn main() {
    let stats = Stats::default();
    let v = stats.handles(["bench.kura"]).remove("bench.kura").unwrap();
    let e = Exchange {
        side: Side::Client,
        status: 200,
        parts: [120, 0, 276, 1024],
        completed: true,
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

    // History memory once every ring is full: a year and a day of folds at one-minute
    // steps, with traffic in every step so each sample holds a latency distribution.
    let v = stats.handles(["year.kura"]).remove("year.kura").unwrap();
    let start = 30_000_000 * 60;
    for minute in 0..(366 * 24 * 60 + 24 * 60) {
        for ms in [1u64, 3, 10, 40] {
            v.record(&Exchange {
                time_complete: Duration::from_millis(ms),
                ..e
            });
        }
        v.fold(start + minute * 60);
    }
    println!(
        "history per vhost with every ring full: {} KiB",
        v.history_bytes() / 1024
    );

    // Directory statistics (`<DirDepth>2`, accumulated): finding the directory and
    // recording in it and its two ancestors, on top of the vhost's own recording.
    let table = DirTable::new(
        "dirs.kura",
        DirPolicy {
            depth: 2,
            accum: true,
        },
    );
    let paths: Vec<String> = (0..64)
        .map(|i| format!("/d{}/s{}/f.jpg", i % 8, i))
        .collect();
    let dirs = |n: u64| {
        for i in 0..n {
            table.dir_for(black_box(&paths[(i % 64) as usize])).record(
                black_box(&e),
                CacheResult::Hit,
                1024,
                Counting::Http,
            );
        }
    };
    dirs(1_000_000);
    let t = Instant::now();
    dirs(n / 4);
    println!(
        "directory stats (depth 2, accumulated), 1 thread: {:.1} ns/request",
        t.elapsed().as_nanos() as f64 / (n / 4) as f64
    );
    // A directory's memory once its minute ring is full, traffic in every second.
    for sec in 0..3700 {
        table
            .dir_for("/d0/s0/f.jpg")
            .record(&e, CacheResult::Hit, 1024, Counting::Http);
        table.fold(start + sec);
    }
    println!(
        "history per directory with its rings full: {} KiB ({} directories)",
        table.history_bytes() / 1024 / table.tracked(),
        table.tracked()
    );
}
