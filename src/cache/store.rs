//! The memory store: cached objects in sharded LRU lists bounded in bytes,
//! and the fills in progress, under the same shard lock so a lookup sees
//! either the object or its fill, never neither (no duplicate origin fetch).

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lru::LruCache;
use parking_lot::Mutex;

use super::fill::{BodyEnd, Fill, HeadOutcome};
use super::policy::Freshness;

/// Shards of the store; a power of two well above the core count.
const SHARDS: usize = 64;

/// URLs per shard whose `Vary` fields are remembered (beyond it the oldest are
/// forgotten: their next request is a miss that learns them again).
const VARY_SPECS: usize = 4096;

/// Bodies up to this size are joined into one buffer when stored.
const COALESCE_LIMIT: usize = 1 << 20;

/// A stored response head.
#[derive(Debug)]
pub struct Head {
    /// Origin status.
    pub status: StatusCode,
    /// Origin end-to-end headers (hop-by-hop headers removed); shared, so an
    /// invalidated or extended copy does not copy them.
    pub headers: Arc<HeaderMap>,
    /// When the response arrived.
    pub received_at: Instant,
    /// Lifetime and initial age.
    pub freshness: Freshness,
    /// Request headers named by `Vary`, with the values this response was chosen for.
    pub vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// Purged (chapter 5): the next request fetches it again unconditionally, and
    /// this copy is only a fallback for when the origin fails.
    pub purged: bool,
}

impl Head {
    /// Current age (RFC 9111 4.2.3).
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness.initial_age + now.saturating_duration_since(self.received_at)
    }

    /// Whether the copy is still fresh.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.freshness.lifetime
    }

    /// A copy of this head with another lifetime (expire, expireafter, purge,
    /// or an extension after an origin failure).
    pub fn with_lifetime(&self, lifetime: Duration, purged: bool) -> Head {
        Head {
            status: self.status,
            headers: self.headers.clone(),
            received_at: self.received_at,
            freshness: Freshness {
                lifetime,
                ..self.freshness
            },
            vary: self.vary.clone(),
            purged,
        }
    }

    /// How long it has been stale (zero while fresh).
    pub fn staleness(&self, now: Instant) -> Duration {
        self.age(now).saturating_sub(self.freshness.lifetime)
    }

    /// Whether a request selects this variant (RFC 9111 4.1).
    pub fn vary_matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| request.get(name) == value.as_ref())
    }
}

/// A complete cached response.
#[derive(Debug)]
pub struct Object {
    /// Status, headers and freshness.
    pub head: Arc<Head>,
    /// The body, in one chunk unless it is large.
    pub body: Vec<Bytes>,
    /// Body length in bytes.
    pub len: u64,
    /// Object id (`fileinfo` FID), unique in this process.
    pub id: u64,
    /// Unix second of the last hit (or of storing).
    last_access: AtomicU64,
}

impl Object {
    /// An object with this body and a fresh 200 head (unit tests).
    #[cfg(test)]
    pub fn for_tests(body: Vec<Bytes>) -> Object {
        Object {
            head: tests::head(60),
            len: body.iter().map(|c| c.len() as u64).sum(),
            body,
            id: 0,
            last_access: AtomicU64::new(0),
        }
    }

    /// The same body under a new head (a revalidated or invalidated copy).
    pub fn with_head(&self, head: Head) -> Object {
        Object {
            head: Arc::new(head),
            body: self.body.clone(),
            len: self.len,
            id: self.id,
            last_access: AtomicU64::new(self.last_access()),
        }
    }

    /// Notes a hit at unix second `now` (stored at most once a second, so a hot
    /// object's cache line is not written on every hit).
    pub fn touch(&self, now: u64) {
        if self.last_access.load(Ordering::Relaxed) != now {
            self.last_access.store(now, Ordering::Relaxed);
        }
    }

    /// Unix second of the last hit.
    pub fn last_access(&self) -> u64 {
        self.last_access.load(Ordering::Relaxed)
    }

    fn charge(&self, key: &str) -> u64 {
        let headers: usize = self
            .head
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        self.len + (headers + key.len() + 256) as u64
    }
}

struct Shard {
    /// Complete objects, least recently used first out.
    objects: LruCache<String, (Arc<Object>, u64)>,
    /// Bytes charged for `objects`.
    bytes: u64,
    /// Fills in progress by key.
    filling: HashMap<String, Arc<Fill>>,
    /// The `Vary` fields of each base key whose responses vary: its variants are
    /// stored under [`super::key::variant`] keys, one per combination of values.
    vary: LruCache<String, Vec<HeaderName>>,
}

/// What a lookup found.
pub enum Lookup {
    /// A fresh object whose variant matches.
    Fresh(Arc<Object>),
    /// Another client is fetching (or revalidating) it: wait for that fill.
    Join {
        /// The fill to wait for.
        fill: Arc<Fill>,
        /// The expired copy being revalidated, if any.
        stale: Option<Arc<Object>>,
    },
    /// Nobody has it: this client fetches it (or revalidates the stale copy).
    Fetch {
        /// The registered fill this client must complete.
        fill: FillGuard,
        /// The expired (or purged) copy of the same variant, if any.
        stale: Option<Arc<Object>>,
    },
}

/// What the purge API does to a matching object (chapter 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidate {
    /// Fetch again on the next request; keep the copy as a fallback.
    Purge,
    /// Expire now: the next request revalidates.
    Expire,
    /// Expire this long from now.
    ExpireAfter(Duration),
    /// Delete.
    HardPurge,
}

/// The memory object store.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    /// Byte budget of each shard.
    shard_capacity: u64,
    /// Largest body kept.
    max_object: u64,
    /// Bumped by [`Store::clear`]: a fill started before a clear does not store
    /// what it fetched, so nothing from before the clear survives it.
    generation: AtomicU64,
}

impl Store {
    /// A store holding about `capacity` bytes; objects over 1/16 of it are not kept.
    pub fn new(capacity: u64) -> Arc<Store> {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    objects: LruCache::unbounded(),
                    bytes: 0,
                    filling: HashMap::new(),
                    vary: LruCache::new(NonZeroUsize::new(VARY_SPECS).expect("non-zero")),
                })
            })
            .collect();
        Arc::new(Store {
            shards,
            shard_capacity: (capacity / SHARDS as u64).max(1),
            max_object: capacity / 16,
            generation: AtomicU64::new(0),
        })
    }

    /// Largest body the store keeps.
    pub fn max_object(&self) -> u64 {
        self.max_object
    }

    /// Number of shards, for callers that walk the store shard by shard.
    pub const SHARDS: usize = SHARDS;

    /// The shard of a key: variants of one URL (keys that differ only after the
    /// URL, see [`super::key`]) share a shard, so an exact purge looks in one.
    pub fn shard_of(key: &str) -> usize {
        let mut h = DefaultHasher::new();
        super::key::primary(key).hash(&mut h);
        h.finish() as usize % SHARDS
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[Self::shard_of(key)]
    }

    /// Finds the variant of base key `base` that a request with headers `request`
    /// selects (RFC 9111 4.1).
    pub fn lookup(self: &Arc<Self>, base: &str, request: &HeaderMap, now: Instant) -> Lookup {
        let mut shard = self.shard(base).lock();
        let key: Cow<'_, str> = match shard.vary.peek(base) {
            Some(names) => Cow::Owned(super::key::variant(
                base,
                names.iter().map(|n| request.get(n)),
            )),
            None => Cow::Borrowed(base),
        };
        let key = key.as_ref();
        let mut stale = None;
        if let Some((obj, _)) = shard.objects.get(key) {
            if obj.head.vary_matches(request) {
                if obj.head.is_fresh(now) {
                    return Lookup::Fresh(obj.clone());
                }
                stale = Some(obj.clone());
            }
        }
        if let Some(fill) = shard.filling.get(key) {
            return Lookup::Join {
                fill: fill.clone(),
                stale,
            };
        }
        let fill = Arc::new(Fill::default());
        shard.filling.insert(key.to_string(), fill.clone());
        Lookup::Fetch {
            fill: FillGuard {
                store: self.clone(),
                key: key.to_string(),
                base: base.to_string(),
                fill,
                registered: true,
                generation: self.generation.load(Ordering::Acquire),
            },
            stale,
        }
    }

    /// The stored object of `key` or, failing that, of any variant of its URL,
    /// without counting a use; and whether a fill is in progress.
    pub fn peek(&self, key: &str) -> (Option<Arc<Object>>, bool) {
        let shard = self.shard(key).lock();
        let primary = super::key::primary(key);
        let obj = shard.objects.peek(key).map(|(o, _)| o.clone()).or_else(|| {
            shard
                .objects
                .iter()
                .find(|(k, _)| super::key::primary(k) == primary)
                .map(|(_, (o, _))| o.clone())
        });
        (obj, shard.filling.contains_key(key))
    }

    /// Replaces the stored `old` copy of `key` with `head` over the same body (a
    /// revalidation or an extension) unless it was replaced meanwhile; returns
    /// the new copy either way, for the request that asked.
    pub fn refresh(&self, key: &str, old: &Arc<Object>, head: Head) -> Arc<Object> {
        let new = Arc::new(old.with_head(head));
        let mut shard = self.shard(key).lock();
        if let Some((cur, _)) = shard.objects.peek_mut(key) {
            if Arc::ptr_eq(cur, old) {
                *cur = new.clone();
            }
        }
        new
    }

    /// Applies `action` to the objects of shard `shard` whose key `select` picks;
    /// returns how many objects and body bytes were affected. Objects already
    /// purged (or, for expire, already stale) are not counted again.
    pub fn invalidate(
        &self,
        shard: usize,
        select: impl Fn(&str) -> bool,
        action: Invalidate,
        now: Instant,
    ) -> (usize, u64) {
        let mut shard = self.shards[shard].lock();
        let shard = &mut *shard;
        let mut done = (0, 0);
        let mut gone = Vec::new();
        for (key, (obj, _)) in shard.objects.iter_mut().filter(|(k, _)| select(k)) {
            let Some(change) = invalidated(&obj.head, action, now) else {
                continue;
            };
            done.0 += 1;
            done.1 += obj.len;
            match change {
                Some(head) => *obj = Arc::new(obj.with_head(head)),
                None => gone.push(key.clone()),
            }
        }
        for key in gone {
            if let Some((_, charge)) = shard.objects.pop(&key) {
                shard.bytes -= charge;
            }
        }
        done
    }

    /// Applies `action` to the object stored under exactly `key`, without walking
    /// its shard; returns whether it changed anything.
    pub fn invalidate_key(&self, key: &str, action: Invalidate, now: Instant) -> bool {
        let mut shard = self.shard(key).lock();
        let Some((obj, _)) = shard.objects.peek_mut(key) else {
            return false;
        };
        match invalidated(&obj.head, action, now) {
            None => false,
            Some(Some(head)) => {
                *obj = Arc::new(obj.with_head(head));
                true
            }
            Some(None) => {
                if let Some((_, charge)) = shard.objects.pop(key) {
                    shard.bytes -= charge;
                }
                true
            }
        }
    }

    /// The key a request with headers `request` selects among the variants of `base`.
    pub fn variant_key(&self, base: &str, request: &HeaderMap) -> String {
        let shard = self.shard(base).lock();
        match shard.vary.peek(base) {
            Some(names) => super::key::variant(base, names.iter().map(|n| request.get(n))),
            None => base.to_string(),
        }
    }

    /// Drops every stored object (`/command/cacheclear`); returns how many
    /// objects and bytes were dropped.
    pub fn clear(&self) -> (usize, u64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.retain(|_| false)
    }

    /// Drops objects not hit since unix second `before` (`/command/cleanup?age=`);
    /// returns how many objects and bytes were dropped.
    pub fn drop_idle(&self, before: u64) -> (usize, u64) {
        self.retain(|o| o.last_access() >= before)
    }

    fn retain(&self, keep: impl Fn(&Object) -> bool) -> (usize, u64) {
        let mut dropped = (0, 0);
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let gone: Vec<String> = shard
                .objects
                .iter()
                .filter(|(_, (o, _))| !keep(o))
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                if let Some((_, charge)) = shard.objects.pop(&key) {
                    shard.bytes -= charge;
                    dropped.0 += 1;
                    dropped.1 += charge;
                }
            }
        }
        dropped
    }

    /// Number of stored objects and bytes charged for them.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, u64) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock();
            (n + s.objects.len(), b + s.bytes)
        })
    }

    /// Ends fill `fill` registered under `key`; a stored object goes under the
    /// variant of `base` its head's `Vary` values name.
    fn unregister(
        &self,
        (key, base): (&str, &str),
        fill: &Arc<Fill>,
        stored: Option<Object>,
        generation: u64,
    ) {
        let mut shard = self.shard(key).lock();
        if shard.filling.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
            shard.filling.remove(key);
        }
        let cleared = self.generation.load(Ordering::Acquire) != generation;
        if let Some(obj) = stored.filter(|_| !cleared) {
            let vary = &obj.head.vary;
            let key = if vary.is_empty() {
                shard.vary.pop(base);
                base.to_string()
            } else {
                let names = vary.iter().map(|(n, _)| n.clone()).collect();
                shard.vary.put(base.to_string(), names);
                super::key::variant(base, vary.iter().map(|(_, v)| v.as_ref()))
            };
            let key = key.as_str();
            let charge = obj.charge(key);
            if charge > self.shard_capacity {
                return;
            }
            if let Some((_, old)) = shard.objects.put(key.to_string(), (Arc::new(obj), charge)) {
                shard.bytes -= old;
            }
            shard.bytes += charge;
            while shard.bytes > self.shard_capacity {
                match shard.objects.pop_lru() {
                    Some((_, (_, c))) => shard.bytes -= c,
                    None => break,
                }
            }
        }
    }
}

/// What `action` does to an object with `head`: `None` when it is already so
/// (not counted again), `Some(None)` to delete it, `Some(Some(head))` to replace its head.
fn invalidated(head: &Head, action: Invalidate, now: Instant) -> Option<Option<Head>> {
    match action {
        Invalidate::HardPurge => Some(None),
        Invalidate::Purge if head.purged => None,
        Invalidate::Purge => Some(Some(head.with_lifetime(Duration::ZERO, true))),
        Invalidate::Expire if !head.is_fresh(now) => None,
        Invalidate::Expire => Some(Some(head.with_lifetime(Duration::ZERO, head.purged))),
        Invalidate::ExpireAfter(d) => {
            Some(Some(head.with_lifetime(head.age(now) + d, head.purged)))
        }
    }
}

/// The right and duty to complete one registered fill. Dropping it unfinished
/// fails the fill, so waiting clients are never left hanging.
pub struct FillGuard {
    store: Arc<Store>,
    /// The key the fill is registered under (a variant key when the URL varies).
    key: String,
    /// The request's base key (without variant).
    base: String,
    fill: Arc<Fill>,
    /// Whether the fill is still advertised to new clients.
    registered: bool,
    /// The store's clear generation when the fill began.
    generation: u64,
}

impl FillGuard {
    /// The key this fill is registered under: the stored copy's key when it revalidates.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fill clients stream from.
    pub fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// Stops advertising the fill; clients already joined keep streaming.
    pub fn unregister(&mut self) {
        if self.registered {
            self.store
                .unregister((&self.key, &self.base), &self.fill, None, self.generation);
            self.registered = false;
        }
    }

    /// The response will not be shared: joined clients fetch it themselves.
    pub fn pass(mut self) {
        self.fill.set_head(HeadOutcome::Pass);
        self.unregister();
    }

    /// The stored copy answers (after a revalidation or an origin failure): joined
    /// clients serve `obj` with `result`; nothing new is stored.
    pub fn serve_stored(mut self, obj: Arc<Object>, result: super::CacheResult) {
        self.fill.set_head(HeadOutcome::Stored(obj, result));
        self.unregister();
    }

    /// The origin failed before answering.
    pub fn fail(mut self, status: StatusCode) {
        self.fill.set_head(HeadOutcome::Failed(status));
        self.unregister();
    }

    /// Ends the body; a complete, retained body is stored under the key.
    pub fn finish(mut self, head: Arc<Head>, end: BodyEnd) {
        let stored = self.fill.finish(end).map(|chunks| {
            let len = chunks.iter().map(|c| c.len() as u64).sum();
            let body = if chunks.len() > 1 && len as usize <= COALESCE_LIMIT {
                vec![Bytes::from(chunks.concat())]
            } else {
                chunks
            };
            static NEXT_ID: AtomicU64 = AtomicU64::new(1);
            let now = crate::procfs::unix_now();
            Object {
                head,
                body,
                len,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                last_access: AtomicU64::new(now),
            }
        });
        if self.registered || stored.is_some() {
            self.store
                .unregister((&self.key, &self.base), &self.fill, stored, self.generation);
        }
        self.registered = false;
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        if self.registered {
            self.fill
                .set_head(HeadOutcome::Failed(StatusCode::BAD_GATEWAY));
            self.fill.finish(BodyEnd::Truncated);
            self.store
                .unregister((&self.key, &self.base), &self.fill, None, self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn head(lifetime: u64) -> Arc<Head> {
        Arc::new(Head {
            status: StatusCode::OK,
            headers: Arc::default(),
            received_at: Instant::now(),
            freshness: Freshness {
                lifetime: Duration::from_secs(lifetime),
                initial_age: Duration::ZERO,
                source: crate::config::TtlSource::ResCode,
                no_stale: false,
                stale_while_revalidate: None,
                stale_if_error: None,
            },
            vary: Vec::new(),
            purged: false,
        })
    }

    fn fetch(store: &Arc<Store>, key: &str) -> FillGuard {
        match store.lookup(key, &HeaderMap::new(), Instant::now()) {
            Lookup::Fetch { fill, .. } => fill,
            _ => panic!("expected a miss for {key}"),
        }
    }

    #[test]
    fn second_lookup_joins_then_hits() {
        let store = Store::new(1 << 20);
        let g = fetch(&store, "k");
        assert!(matches!(
            store.lookup("k", &HeaderMap::new(), Instant::now()),
            Lookup::Join { .. }
        ));
        g.fill()
            .push(Bytes::from_static(b"body"), store.max_object());
        g.finish(head(60), BodyEnd::Complete);
        match store.lookup("k", &HeaderMap::new(), Instant::now()) {
            Lookup::Fresh(o) => assert_eq!(o.body.concat(), b"body"),
            _ => panic!("expected a hit"),
        }
    }

    #[test]
    fn dropped_guard_fails_the_fill_and_frees_the_key() {
        let store = Store::new(1 << 20);
        let g = fetch(&store, "k");
        let fill = g.fill().clone();
        drop(g);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(rt.block_on(fill.head()), HeadOutcome::Failed(_)));
        fetch(&store, "k");
    }

    #[test]
    fn lru_keeps_the_byte_budget() {
        let store = Store::new(64 * 20_000);
        for i in 0..2000 {
            let key = format!("k{i}");
            let g = fetch(&store, &key);
            g.fill()
                .push(Bytes::from(vec![0u8; 1000]), store.max_object());
            g.finish(head(60), BodyEnd::Complete);
        }
        let (n, bytes) = store.usage();
        assert!(bytes <= 64 * 20_000, "{bytes}");
        assert!(n > 500 && n < 2000, "{n}");
    }
}
