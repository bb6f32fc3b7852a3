//! `<PartSize>` (chapter 7): objects fetched from the origin and stored in parts
//! of a fixed size, each a cache object of its own under a part key
//! ([`key::part`]), so a range request of a 10 GiB video fetches and stores the
//! parts it covers, not the file.
//!
//! The part holding the first byte asked for (the anchor) is looked up, joined
//! or fetched before the response head: its `Content-Range` gives the object's
//! length, its headers the response's. The body then sends the parts the
//! answer covers, in order, from a task that looks each one up (or fetches it)
//! as the client reads and checks that it belongs to the same object (place,
//! length, validator). One that does not ends the response early and drops the
//! object's parts, so the next request starts over. An object no larger than a
//! part comes back whole (a 200, or a 206 of all of it) and is stored and served
//! as an ordinary object under the key of part 0.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts as RequestParts;
use http::{Method, StatusCode};
use tokio::sync::mpsc;

use super::body::{Body, BodyError, Parts};
use super::handler::{self, Conn, FetchRequest, Served, View};
use super::origin::Leg;
use super::VhostRt;
use crate::cache::fields::Fields;
use crate::cache::fill::HeadOutcome;
use crate::cache::read::Part;
use crate::cache::store::{FillGuard, Head, Invalidate, Lookup, Object, Store};
use crate::cache::{key, CacheResult};

/// Chunks the part task may run ahead of the client.
const AHEAD: usize = 4;

/// Serves a GET or HEAD on a vhost with `<PartSize>`: `request` is the fetch the
/// client's request makes (its key the base of the part keys), `refresh` a
/// client's `no-cache` that revalidates what it reads.
pub(super) async fn serve(
    vhost: &Arc<VhostRt>,
    store: &Arc<Store>,
    (conn, parts): (&Conn, &RequestParts),
    request: FetchRequest,
    refresh: bool,
) -> Served {
    let cx = PartCx {
        vhost: vhost.clone(),
        store: store.clone(),
        size: vhost.cfg.origin.part_size,
        request,
        refresh,
    };
    let index = first_byte(&parts.headers) / cx.size;
    let (found, result) = cx.resolve(index, parts.method == Method::HEAD).await;
    let result = match result {
        CacheResult::RefreshMiss if refresh => CacheResult::ClientRefreshMiss,
        r => r,
    };
    let head = match found {
        Found::Stored(ref obj) => obj.head.clone(),
        Found::Filling(ref head, _) => head.clone(),
        Found::Answered(served) if served.0.status() == StatusCode::PARTIAL_CONTENT => {
            // A part the cache does not keep (larger than it keeps, or not
            // storable): the client's own request goes to the origin.
            if let (_, _, Some(leg)) = *served {
                leg.record(&vhost.stats, 0, false);
            }
            return handler::pass(vhost, conn, parts, None, (CacheResult::Miss, Leg::Cache)).await;
        }
        Found::Answered(served) => return *served,
    };
    let Some(total) = part_total(&head, index, cx.size) else {
        if index == 0 && !head.headers.contains_key(&header::CONTENT_RANGE) {
            // Small enough to come whole (or an error kept for the URL).
            return match found {
                Found::Stored(obj) => {
                    handler::from_store(vhost, store, &parts.method, &parts.headers, &obj, result)
                }
                Found::Filling(head, body) => (
                    handler::respond(&head, result, &vhost.cfg.client, body),
                    result,
                    None,
                ),
                Found::Answered(served) => *served,
            };
        }
        // A part stored for another object: start over without the cache.
        cx.drop_parts();
        return handler::pass(vhost, conn, parts, None, (CacheResult::Miss, Leg::Cache)).await;
    };
    let object = Identity::of(&head, total);
    let mut headers = head.headers.to_map();
    headers.remove(header::CONTENT_RANGE);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    let whole = Head {
        status: StatusCode::OK,
        headers: Fields::from_map(&headers),
        received_at: head.received_at,
        freshness: head.freshness,
        vary: head.vary.clone(),
        purged: head.purged,
    };
    let view = View {
        head: &whole,
        len: total,
        id: {
            let mut h = DefaultHasher::new();
            cx.request.key.hash(&mut h);
            h.finish()
        },
    };
    handler::answer_from(
        vhost,
        (&parts.method, &parts.headers),
        &view,
        result,
        |plan| {
            // Within a stored anchor (a range inside one part, the common
            // seek): read it straight from the store, as a whole object is.
            let start = index * cx.size;
            let within = |p: &Part| match p {
                Part::Literal(_) => true,
                Part::Body { from, to } => *from >= start && *to <= start + cx.size,
            };
            if let (Found::Stored(obj), true) = (&found, plan.iter().all(within)) {
                let shifted = plan
                    .into_iter()
                    .map(|p| match p {
                        Part::Body { from, to } => Part::Body {
                            from: from - start,
                            to: to - start,
                        },
                        literal => literal,
                    })
                    .collect();
                return Body::Stored(store.reader(obj, shifted));
            }
            let remaining = plan
                .iter()
                .map(|p| match p {
                    Part::Literal(b) => b.len() as u64,
                    Part::Body { from, to } => to - from,
                })
                .sum();
            let (tx, chunks) = mpsc::channel(AHEAD);
            tokio::spawn(send_parts(cx, object, plan, Some((index, found)), tx));
            Body::Parts(Parts { chunks, remaining })
        },
    )
}

/// The first byte a request asks for: the start of its first range when that
/// is `N-` or `N-M`; else 0 (a suffix range needs the length, which any part
/// tells).
fn first_byte(request: &HeaderMap) -> u64 {
    request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .and_then(|v| v.split(',').next())
        .and_then(|r| r.split_once('-'))
        .and_then(|(first, _)| first.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether an origin response to the fetch of the part `first..=last` is that
/// part, to be stored: a 206 of exactly it, or of all that is left of the object
/// past `first` (stored as a 200 that keeps its `Content-Range`). An origin that
/// sends less than it was asked for is not stored. Part 0 may also come whole: a
/// small object, an origin that ignores ranges, or an error for the URL.
pub(super) fn accept(head: &http::response::Parts, (first, last): (u64, u64)) -> bool {
    match head.status {
        StatusCode::PARTIAL_CONTENT => content_range(
            head.headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok()),
        )
        .is_some_and(|(start, end, length)| start == first && end == last.min(length - 1)),
        // Past the end (or an empty object): nothing to keep.
        StatusCode::RANGE_NOT_SATISFIABLE => false,
        _ => first == 0,
    }
}

/// A `Content-Range: bytes first-last/length`.
pub(super) fn content_range(value: Option<&str>) -> Option<(u64, u64, u64)> {
    let (range, length) = value?.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let length: u64 = length.trim().parse().ok()?;
    (first <= last && last < length).then_some((first, last, length))
}

/// The object's length when `head` is a stored part `index` of parts of `size`
/// bytes: a 200 keeping the `Content-Range` of exactly that part.
fn part_total(head: &Head, index: u64, size: u64) -> Option<u64> {
    let (first, last, length) = content_range(head.headers.get_str(&header::CONTENT_RANGE))?;
    let start = index * size;
    (head.status == StatusCode::OK && first == start && last == (start + size).min(length) - 1)
        .then_some(length)
}

/// What every part of one object has in common with the anchor.
struct Identity {
    /// The object's length.
    length: u64,
    /// Its validator: the `ETag`, else the `Last-Modified` date (nginx's slice
    /// module checks the ETag alone; an origin without one is checked by date).
    validator: Option<(header::HeaderName, HeaderValue)>,
}

impl Identity {
    fn of(head: &Head, length: u64) -> Identity {
        let validator = [header::ETAG, header::LAST_MODIFIED]
            .into_iter()
            .find_map(|name| Some((name.clone(), head.headers.get(&name)?)));
        Identity { length, validator }
    }

    /// Whether `head` is part `index` of this object.
    fn owns(&self, head: &Head, index: u64, size: u64) -> bool {
        part_total(head, index, size) == Some(self.length)
            && self
                .validator
                .as_ref()
                .is_none_or(|(name, value)| head.headers.get(name).as_ref() == Some(value))
    }
}

/// A part in the cache or on its way from the origin.
enum Found {
    /// Stored: read from the store.
    Stored(Arc<Object>),
    /// Arriving from the origin: its head, and its body from the part's first byte.
    Filling(Arc<Head>, Body),
    /// Neither (an origin error, an answer that is not kept): the response the
    /// fetch made.
    Answered(Box<Served>),
}

/// What looking up and fetching the parts of one request needs.
struct PartCx {
    /// The vhost (its origin, policies and statistics).
    vhost: Arc<VhostRt>,
    /// Where the parts are stored.
    store: Arc<Store>,
    /// `<PartSize>` in bytes.
    size: u64,
    /// The client's request as a fetch; its key is the base of the part keys.
    request: FetchRequest,
    /// Revalidate each part read (a client's `no-cache` with `<NoCacheRequestExpire>`).
    refresh: bool,
}

impl PartCx {
    /// Finds part `index`: stored, being filled, or fetched now.
    async fn resolve(&self, index: u64, head_only: bool) -> (Found, CacheResult) {
        let (store, headers) = (&self.store, &self.request.headers);
        let key = key::part(&self.request.key, self.size, index);
        let now = Instant::now();
        if self.refresh {
            let variant = store.variant_key(&key, headers);
            store.promote(&variant).await;
            store.invalidate_key(&variant, Invalidate::Expire, now);
        }
        let caching = &self.vhost.cfg.caching;
        match store.lookup_checked(&key, headers, now).await {
            Lookup::Fresh(obj) => {
                obj.touch(crate::procfs::unix_now());
                let result = CacheResult::of_fresh(obj.head.status);
                (Found::Stored(obj), result)
            }
            Lookup::Join {
                stale: Some(old), ..
            } if handler::serves_stale_now(caching, &old, now) => {
                (Found::Stored(old), CacheResult::Hit)
            }
            Lookup::Join { fill, .. } => match fill.head().await {
                HeadOutcome::Shared(head) if head.vary_matches(headers) => match fill.reader() {
                    Some(reader) => {
                        let body = if head_only {
                            Body::Empty
                        } else {
                            Body::Fill(reader)
                        };
                        (Found::Filling(head, body), CacheResult::Hit)
                    }
                    None => {
                        self.fetch(index, store.unshared_fill(&key), None, head_only)
                            .await
                    }
                },
                HeadOutcome::Stored(obj, result) => (Found::Stored(obj), result),
                HeadOutcome::Shared(_) | HeadOutcome::Pass => {
                    self.fetch(index, store.unshared_fill(&key), None, head_only)
                        .await
                }
                HeadOutcome::Failed(status) => {
                    let result = CacheResult::Error;
                    let resp = handler::error_response(status, result);
                    (Found::Answered(Box::new((resp, result, None))), result)
                }
            },
            Lookup::Fetch {
                fill,
                stale: Some(old),
            } if handler::serves_stale_now(caching, &old, now) => {
                // Answered now, refreshed behind, as a whole object would be.
                let request = self.part_request(index, false);
                let (vhost, store) = (self.vhost.clone(), self.store.clone());
                tokio::spawn(handler::fetch(
                    vhost,
                    store,
                    request,
                    fill,
                    Some(old.clone()),
                ));
                (Found::Stored(old), CacheResult::Hit)
            }
            Lookup::Fetch { fill, stale } => self.fetch(index, fill, stale, head_only).await,
        }
    }

    /// Fetches part `index` through `guard` (revalidating `stale`).
    async fn fetch(
        &self,
        index: u64,
        guard: FillGuard,
        stale: Option<Arc<Object>>,
        head_only: bool,
    ) -> (Found, CacheResult) {
        let fill = guard.fill().clone();
        let request = self.part_request(index, head_only);
        let (vhost, store) = (self.vhost.clone(), self.store.clone());
        let served = handler::fetch(vhost, store, request, guard, stale).await;
        let result = served.1;
        // Every way through `fetch` has told the fill how it ended.
        let found = match fill.head().await {
            HeadOutcome::Shared(head) => Found::Filling(head, served.0.into_body()),
            HeadOutcome::Stored(obj, _) => Found::Stored(obj),
            HeadOutcome::Pass | HeadOutcome::Failed(_) => Found::Answered(Box::new(served)),
        };
        (found, result)
    }

    /// The fetch of part `index`.
    fn part_request(&self, index: u64, head_only: bool) -> FetchRequest {
        let first = index * self.size;
        FetchRequest {
            key: key::part(&self.request.key, self.size, index),
            head_only,
            part: Some((first, first + self.size - 1)),
            ..self.request.clone()
        }
    }

    /// Drops every stored part of the object (they are of different versions).
    fn drop_parts(&self) {
        let prefix = key::parts_prefix(&self.request.key, self.size);
        let shard = Store::shard_of(&self.request.key);
        let select = |k: &str| k.starts_with(&prefix);
        self.store
            .invalidate(shard, select, Invalidate::HardPurge, Instant::now());
    }
}

/// Why sending a part stopped.
enum Stop {
    /// The client went away.
    Gone,
    /// The body cannot go on.
    Failed(BodyError),
}

/// Sends `plan` (literals, and body ranges in the object's bytes) part by part;
/// `anchor` is part `.0`, already found.
async fn send_parts(
    cx: PartCx,
    object: Identity,
    plan: VecDeque<Part>,
    mut anchor: Option<(u64, Found)>,
    tx: mpsc::Sender<Result<Bytes, BodyError>>,
) {
    for piece in plan {
        let (mut from, to) = match piece {
            Part::Literal(b) => {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
                continue;
            }
            Part::Body { from, to } => (from, to),
        };
        while from < to {
            let index = from / cx.size;
            let start = index * cx.size;
            let end = to.min(start + cx.size);
            let found = match anchor.take() {
                Some((i, found)) if i == index => found,
                _ => cx.resolve(index, false).await.0,
            };
            let owned = match &found {
                Found::Stored(obj) => object.owns(&obj.head, index, cx.size),
                Found::Filling(head, _) => object.owns(head, index, cx.size),
                Found::Answered(_) => false,
            };
            let sent = if owned {
                send_part(&cx.store, found, (from - start, end - start), &tx).await
            } else {
                let why = match found {
                    Found::Answered(served) => {
                        if let (_, _, Some(leg)) = *served {
                            leg.record(&cx.vhost.stats, 0, false);
                        }
                        "the origin did not send it"
                    }
                    _ => {
                        cx.drop_parts();
                        "it is of another version of the object"
                    }
                };
                tracing::warn!(vhost = %cx.vhost.cfg.name, uri = %cx.request.pq, index, why, "partitioned object cut short");
                Err(Stop::Failed(BodyError::Part { index, why }))
            };
            match sent {
                Ok(()) => from = end,
                Err(Stop::Gone) => return,
                Err(Stop::Failed(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }
}

/// Sends bytes `skip..stop` of a part.
async fn send_part(
    store: &Store,
    found: Found,
    (skip, stop): (u64, u64),
    tx: &mpsc::Sender<Result<Bytes, BodyError>>,
) -> Result<(), Stop> {
    let send = |chunk: Bytes| async move { tx.send(Ok(chunk)).await.map_err(|_| Stop::Gone) };
    match found {
        Found::Stored(obj) => {
            let range = VecDeque::from([Part::Body {
                from: skip,
                to: stop,
            }]);
            let mut reader = store.reader(&obj, range);
            while let Some(chunk) = std::future::poll_fn(|c| reader.poll_chunk(c)).await {
                send(chunk.map_err(|e| Stop::Failed(BodyError::Disk(e)))?).await?;
            }
            Ok(())
        }
        Found::Filling(_, mut body) => {
            use http_body_util::BodyExt;
            let mut at = 0u64;
            while at < stop {
                let frame = match body.frame().await {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return Err(Stop::Failed(e)),
                    None => return Err(Stop::Failed(BodyError::Truncated)),
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let (first, next) = (at, at + data.len() as u64);
                at = next;
                if next > skip {
                    let from = skip.saturating_sub(first) as usize;
                    let to = (stop.min(next) - first) as usize;
                    send(data.slice(from..to)).await?;
                }
            }
            Ok(())
        }
        Found::Answered(_) => Err(Stop::Failed(BodyError::Truncated)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, range: Option<&str>) -> http::response::Parts {
        let mut r = http::Response::builder().status(status);
        if let Some(range) = range {
            r = r.header(header::CONTENT_RANGE, range);
        }
        r.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_part_asked_for_is_kept() {
        let part = (1 << 20, (2 << 20) - 1);
        assert!(accept(
            &answer(206, Some("bytes 1048576-2097151/5000000")),
            part
        ));
        // The last part: what is left of the object.
        assert!(accept(
            &answer(206, Some("bytes 1048576-1999999/2000000")),
            part
        ));
        // Less than asked (an origin that caps ranges), or another place.
        assert!(!accept(
            &answer(206, Some("bytes 1048576-1572863/5000000")),
            part
        ));
        assert!(!accept(&answer(206, Some("bytes 0-1048575/5000000")), part));
        // Whole or an error: only for part 0.
        assert!(!accept(&answer(200, None), part));
        assert!(accept(&answer(200, None), (0, (1 << 20) - 1)));
        assert!(accept(&answer(404, None), (0, (1 << 20) - 1)));
        assert!(!accept(
            &answer(416, Some("bytes */100")),
            (0, (1 << 20) - 1)
        ));
    }
}
