//! Cost of a wildcard purge over the memory store (`cargo bench --bench purge`).
//!
//! Stores 100,000 objects of 1 KiB with a typical header set, then times a
//! `purge` of `/1k.bin?*` shard by shard, as `/command/purge` runs it. The
//! end-to-end figure under load comes from `bench/purge.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use kura::cache::fill::BodyEnd;
use kura::cache::key;
use kura::cache::policy::Freshness;
use kura::cache::store::{Head, Invalidate, Lookup, Store};
use kura::config::pattern::UrlPattern;
use kura::config::TtlSource;

const OBJECTS: usize = 100_000;

fn main() {
    let store = Store::new(1 << 31);
    let mut headers = HeaderMap::new();
    for name in [
        "server",
        "date",
        "content-type",
        "last-modified",
        "etag",
        "cache-control",
        "accept-ranges",
    ] {
        headers.insert(
            name,
            HeaderValue::from_static("a value of a typical length"),
        );
    }
    let head = Arc::new(Head {
        status: StatusCode::OK,
        headers: kura::cache::fields::Fields::from_map(&headers),
        received_at: Instant::now(),
        freshness: Freshness {
            lifetime: Duration::from_secs(3600),
            initial_age: Duration::ZERO,
            source: TtlSource::CcMaxAge,
            no_stale: false,
            stale_while_revalidate: None,
            stale_if_error: None,
        },
        vary: Vec::new(),
        purged: false,
    });
    let body = Bytes::from(vec![0u8; 1024]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..OBJECTS {
        let k = key::primary_key("bench.kura", &format!("/1k.bin?i={i}"));
        let lookup = rt.block_on(store.lookup_checked(&k, &HeaderMap::new(), Instant::now()));
        let Lookup::Fetch { fill, .. } = lookup else {
            unreachable!("every key is new");
        };
        fill.fill().push(body.clone());
        fill.finish(head.clone(), BodyEnd::Complete);
    }
    let pattern = UrlPattern::new("/1k.bin?*");
    for action in [Invalidate::Purge, Invalidate::Expire, Invalidate::HardPurge] {
        let t = Instant::now();
        let mut n = 0;
        for shard in 0..Store::SHARDS {
            let select = |k: &str| pattern.matches(key::split(k).1);
            n += store.invalidate(shard, select, action, Instant::now()).0 .0;
        }
        let took = t.elapsed();
        println!(
            "{action:?}: {n} objects in {:.1} ms ({:.0} ns/object)",
            took.as_secs_f64() * 1e3,
            took.as_nanos() as f64 / n.max(1) as f64
        );
    }
}
