//! One client request: route, look up, fetch or join a fill, answer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use super::answer::{self, Answer};
use super::body::Body;
use super::bypass;
use super::headers;
use super::metered::{self, AccessGuard, Exchanged, Metered, OriginLeg};
use super::origin::{Leg, OriginError, SendBody};
use super::{Runtime, VhostRt};
use crate::cache::fields::Fields;
use crate::cache::fill::{BodyEnd, HeadOutcome};
use crate::cache::policy;
use crate::cache::read::Part;
use crate::cache::store::{FillGuard, Head, Invalidate, Lookup, Object, Store};
use crate::cache::{self, CacheResult};
use crate::config::headers::Side;
use crate::config::origin::HeaderSetting;
use crate::config::{CachingPolicy, ClientPolicy, TtlSource, VaryPolicy};
use crate::stats::counter::Gauge;
use crate::stats::{Counting, GaugeGuard, VhostStats};

static VIA: LazyLock<HeaderValue> = LazyLock::new(|| {
    HeaderValue::from_str(&format!("1.1 kura (kura/{})", crate::VERSION)).expect("ASCII")
});
static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers that belong to one connection and are never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Per-connection facts the handler needs.
pub struct Conn {
    /// The configured listen address the connection arrived on (router key).
    pub listen: SocketAddr,
    /// The client.
    pub peer: SocketAddr,
    /// The local address the client connected to (`s-ip`, `s-port`).
    pub local: SocketAddr,
    /// The connection's id (`session-id`).
    pub id: u64,
    /// The TLS session of an HTTPS connection; `None` for plain HTTP.
    pub tls: Option<super::tls::TlsInfo>,
    /// Requests served on this connection so far, for `<KeepAliveHeader Max>`.
    pub requests: std::sync::atomic::AtomicU32,
    /// Holds the `ClientSession` gauge of the vhost this connection counts for.
    pub session: arc_swap::ArcSwapOption<GaugeGuard>,
    /// Its own origin connection, for `Private` bypassed requests (chapter 8).
    pub private: super::origin::PrivateSlot,
}

/// Serves one request.
pub async fn handle(
    rt: Arc<Runtime>,
    store: &Arc<Store>,
    conn: &Conn,
    req: hyper::Request<Incoming>,
) -> Response<Metered> {
    let started = Instant::now();
    let served = conn
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let (mut parts, body) = req.into_parts();
    // Only origin-form (`/path`) and absolute-form targets name a resource (RFC 9112 3.2).
    if !parts.uri.path().starts_with('/') || parts.uri.path_and_query().is_none() {
        let resp = plain(StatusCode::BAD_REQUEST, "bad request target\n".to_string());
        return resp.map(Metered::uncounted);
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let Some(vhost) = rt.route(conn, host) else {
        let resp = plain(
            StatusCode::NOT_FOUND,
            format!("no virtual host for Host: {host}\n"),
        );
        return resp.map(Metered::uncounted);
    };
    let vhost = vhost.clone();
    if let Some(rules) = &vhost.cfg.headers.modify {
        // Request rules run first: the cache sees the modified request (chapter 6).
        let before = parts.headers.clone();
        let who = headers::Asker {
            ip: conn.peer.ip(),
            request: &before,
            path: parts.uri.path(),
        };
        headers::modify(rules, Side::Request, &who, None, &mut parts.headers);
    }
    if let Some(command) = crate::api::purge::method_command(&parts.method) {
        return purge_method(&rt, store, conn, &parts, command)
            .await
            .map(Metered::uncounted);
    }
    // The connection counts as a session of the vhost its latest request was for.
    let attributed = conn
        .session
        .load()
        .as_ref()
        .is_some_and(|g| g.is_for(&vhost.stats));
    if !attributed {
        conn.session.store(Some(Arc::new(GaugeGuard::new(
            &vhost.stats,
            Gauge::ClientSessions,
        ))));
    }
    let active = GaugeGuard::new(&vhost.stats, Gauge::ClientActive);
    let request = [
        metered::head_bytes(&parts.headers)
            + (parts.method.as_str().len()
                + parts.uri.path_and_query().map_or(1, |p| p.as_str().len())) as u64,
        body.size_hint().exact().unwrap_or(0),
    ];
    let access = AccessGuard::new(&vhost.log, conn, &parts, request, started);
    let who = headers::Asker {
        ip: conn.peer.ip(),
        request: &parts.headers,
        path: parts.uri.path(),
    };
    let bypass = bypass::route(&vhost.cfg.bypass, &parts.method, &who);
    let (mut resp, result, origin) = match bypass {
        None if parts.method == Method::POST => {
            match post_body(&vhost.cfg.caching.post, &parts, body).await {
                Ok(body) => serve_cached(&vhost, store, conn, &parts, Some(body)).await,
                Err(resp) => (resp, CacheResult::Denied, None),
            }
        }
        None => serve_cached(&vhost, store, conn, &parts, None).await,
        Some(leg) => {
            vhost.stats.record_bypass();
            let served = pass(
                &vhost,
                conn,
                &parts,
                Some(body),
                (CacheResult::ClientRefreshMiss, leg),
            )
            .await;
            invalidate_after_unsafe(&vhost, store, &parts, &served.0);
            served
        }
    };
    let client_close = parts
        .headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    rewrite_response(&vhost, conn, &parts, &mut resp);
    set_connection_headers(resp.headers_mut(), &vhost, client_close, served);
    let exchanged = Exchanged {
        counting: match conn.tls {
            None => Counting::Http,
            Some(_) => Counting::Https {
                also_http: vhost.cfg.https_traffic,
            },
        },
        stats: vhost.stats.clone(),
        dir: vhost.dirs.as_ref().map(|t| t.dir_for(parts.uri.path())),
        result,
        request,
        started,
        origin,
        active,
        access,
    };
    Metered::counted(resp, exchanged)
}

/// A response, its result code, and the origin leg when the body streams straight from the origin.
pub(super) type Served = (Response<Body>, CacheResult, Option<OriginLeg>);

/// Reads a POST body for the cache (chapter 4 "POST Request Caching", with
/// `<BypassPostRequest>OFF`): it needs a `Content-Length` (411) no larger than
/// `MaxContentLength` (413), and `<PostRequest>ON` (else 405).
async fn post_body(
    post: &crate::config::PostPolicy,
    parts: &Parts,
    body: Incoming,
) -> Result<Bytes, Response<Body>> {
    use http_body_util::BodyExt;
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let refuse = |status: StatusCode, why: &str| {
        let mut r = plain(status, format!("{why}\n"));
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let Some(length) = length else {
        return Err(refuse(
            StatusCode::LENGTH_REQUIRED,
            "a POST needs a Content-Length here",
        ));
    };
    if !post.cache {
        let mut r = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is neither bypassed nor cached here",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Err(r);
    }
    if length > post.max_body {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the POST body is over MaxContentLength",
        ));
    }
    let limited = http_body_util::Limited::new(body, post.max_body as usize);
    match limited.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "the POST body could not be read",
        )),
    }
}

/// Serves GET/HEAD (and POST with its body, when POSTs are cached) through the cache.
async fn serve_cached(
    vhost: &Arc<VhostRt>,
    store: &Arc<Store>,
    conn: &Conn,
    parts: &Parts,
    post: Option<Bytes>,
) -> Served {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let caching = &vhost.cfg.caching;
    let mut key = cache::key::key(&vhost.cache_name, &caching.key, pq, &parts.headers);
    if let Some(body) = &post {
        let p = &caching.post;
        let excepted = p
            .body_exceptions
            .iter()
            .any(|e| e.matches(pq) || e.matches(parts.uri.path()));
        let keyed = (p.body_sensitive != excepted).then_some(&body[..]);
        key = cache::key::post(key, keyed);
    }
    let now = Instant::now();
    let client_refresh = caching.no_cache_request_expire && policy::client_no_cache(&parts.headers);
    if vhost.cfg.origin.part_size > 0 && post.is_none() {
        let request = FetchRequest::new(vhost, conn, parts, key, None);
        return super::parts::serve(vhost, store, (conn, parts), request, client_refresh).await;
    }
    if client_refresh {
        // The variant this client asked for; others are other clients' business.
        let variant = store.variant_key(&key, &parts.headers);
        store.promote(&variant).await;
        store.invalidate_key(&variant, Invalidate::Expire, now);
    }
    let lookup = store.lookup_checked(&key, &parts.headers, now).await;
    // Built only when the origin is asked: hits never copy the request.
    let request = move || FetchRequest::new(vhost, conn, parts, key, post);
    let answer = |obj: &Arc<Object>, result| {
        from_store(vhost, store, &parts.method, &parts.headers, obj, result)
    };
    match lookup {
        Lookup::Fresh(obj) => {
            obj.touch(crate::procfs::unix_now());
            answer(&obj, CacheResult::of_fresh(obj.head.status))
        }
        Lookup::Join {
            stale: Some(old), ..
        } if serves_stale_now(caching, &old, now) => answer(&old, CacheResult::Hit),
        Lookup::Join { fill, .. } => match fill.head().await {
            HeadOutcome::Shared(head) if head.vary_matches(&parts.headers) => match fill.reader() {
                Some(reader) => {
                    let body = if parts.method == Method::HEAD {
                        Body::Empty
                    } else {
                        Body::Fill(reader)
                    };
                    (
                        respond(&head, CacheResult::Hit, &vhost.cfg.client, body),
                        CacheResult::Hit,
                        None,
                    )
                }
                None => pass(vhost, conn, parts, None, (CacheResult::Miss, Leg::Cache)).await,
            },
            HeadOutcome::Stored(obj, result) => answer(&obj, result),
            HeadOutcome::Shared(_) | HeadOutcome::Pass => {
                pass(vhost, conn, parts, None, (CacheResult::Miss, Leg::Cache)).await
            }
            HeadOutcome::Failed(status) => (
                error_response(status, CacheResult::Error),
                CacheResult::Error,
                None,
            ),
        },
        Lookup::Fetch {
            fill,
            stale: Some(old),
        } if serves_stale_now(caching, &old, now) => {
            // RefreshExpired OFF or stale-while-revalidate: answer now, refresh behind.
            tokio::spawn(fetch(
                vhost.clone(),
                store.clone(),
                request(),
                fill,
                Some(old.clone()),
            ));
            answer(&old, CacheResult::Hit)
        }
        Lookup::Fetch {
            fill,
            stale: Some(old),
        } if origin_busy(vhost) && stale_on_error(&old, Duration::ZERO, now).is_some() => {
            // Overload detection (chapter 4 <OriginBusy>): keep the copy, spare the origin.
            let mut req = request();
            req.key = fill.key().to_string();
            keep_stale(vhost, store, &req, fill, &old, vhost.cfg.ttl.origin_busy)
        }
        Lookup::Fetch { fill, stale } => {
            let (resp, result, leg) =
                fetch(vhost.clone(), store.clone(), request(), fill, stale).await;
            let result = match result {
                CacheResult::RefreshMiss if client_refresh => CacheResult::ClientRefreshMiss,
                r => r,
            };
            (resp, result, leg)
        }
    }
}

/// Whether an expired copy is answered at once while it is refreshed in the
/// background: `<RefreshExpired>OFF`, or within `stale-while-revalidate`.
pub(super) fn serves_stale_now(caching: &CachingPolicy, old: &Object, now: Instant) -> bool {
    let head = &old.head;
    if head.purged {
        return false;
    }
    let within_swr = head
        .freshness
        .stale_while_revalidate
        .is_some_and(|w| head.staleness(now) <= w);
    within_swr || (!caching.refresh_expired && !head.freshness.no_stale)
}

/// Whether the vhost's origin has `<BusySessionCount>` transactions in progress.
fn origin_busy(vhost: &VhostRt) -> bool {
    vhost.stats.gauge(Gauge::OriginActive) >= vhost.cfg.origin.busy_sessions
}

/// Whether an expired copy may stand in for a failed origin (RFC 9111 4.2.4,
/// RFC 5861 `stale-if-error`); `Some(extension)` says for how long it is kept.
fn stale_on_error(old: &Object, extension: Duration, now: Instant) -> Option<Duration> {
    let f = &old.head.freshness;
    match f.stale_if_error {
        // The window counts from the true expiry: no extension, each request retries.
        Some(window) => (old.head.staleness(now) <= window).then_some(Duration::ZERO),
        None if f.no_stale => None,
        None => Some(extension),
    }
}

/// Answers from a stored object: whole, 304, ranges or 416.
pub(super) fn from_store(
    vhost: &VhostRt,
    store: &Store,
    method: &Method,
    request: &HeaderMap,
    obj: &Arc<Object>,
    result: CacheResult,
) -> Served {
    let view = View {
        head: &obj.head,
        len: obj.len,
        id: obj.id,
    };
    answer_from(vhost, (method, request), &view, result, |parts| {
        Body::Stored(store.reader(obj, parts))
    })
}

/// What a stored answer is made from: a whole object, or a partitioned one
/// (`<PartSize>`) seen whole.
pub(super) struct View<'a> {
    /// The head the client's answer is made from.
    pub head: &'a Head,
    /// Body length.
    pub len: u64,
    /// A number for the multipart boundary.
    pub id: u64,
}

/// Answers `method` with `request` headers from `view`: whole, 304, ranges or 416;
/// `body` makes the body that sends the given parts of the object.
pub(super) fn answer_from(
    vhost: &VhostRt,
    (method, request): (&Method, &HeaderMap),
    view: &View<'_>,
    result: CacheResult,
    body: impl FnOnce(VecDeque<Part>) -> Body,
) -> Served {
    let client = &vhost.cfg.client;
    let head = view.head;
    let answer = answer::decide(method, request, head, view.len);
    let result = match (&answer, result) {
        (Answer::NotModified, CacheResult::Hit) => CacheResult::ImsHit,
        (_, r) => r,
    };
    let age = Some(head.age(Instant::now()).as_secs());
    let head_only = method == Method::HEAD;
    let resp = match answer {
        Answer::Full => {
            let body = if head_only {
                Body::Empty
            } else {
                body(VecDeque::from([Part::Body {
                    from: 0,
                    to: view.len,
                }]))
            };
            respond(head, result, client, body)
        }
        Answer::NotModified => {
            let mut headers = HeaderMap::new();
            for name in answer::NOT_MODIFIED_FIELDS {
                for v in head.headers.get_all(&name) {
                    headers.append(name.clone(), v);
                }
            }
            finish_response(
                StatusCode::NOT_MODIFIED,
                headers,
                result,
                client,
                age,
                Body::Empty,
            )
        }
        Answer::Unsatisfiable => {
            let mut headers = head.headers.to_map();
            headers.remove(header::CONTENT_LENGTH);
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", view.len)).expect("ASCII"),
            );
            finish_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                result,
                client,
                age,
                Body::Empty,
            )
        }
        Answer::Partial(ranges) => {
            let mut headers = head.headers.to_map();
            headers.remove(header::CONTENT_LENGTH);
            let parts = if let [(first, last)] = ranges[..] {
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {first}-{last}/{}", view.len))
                        .expect("ASCII"),
                );
                VecDeque::from([Part::Body {
                    from: first,
                    to: last + 1,
                }])
            } else {
                multipart(&mut headers, view, &ranges)
            };
            let body = if head_only { Body::Empty } else { body(parts) };
            finish_response(
                StatusCode::PARTIAL_CONTENT,
                headers,
                result,
                client,
                age,
                body,
            )
        }
    };
    (resp, result, None)
}

/// A `multipart/byteranges` body (RFC 9110 14.6); sets the Content-Type.
fn multipart(headers: &mut HeaderMap, view: &View<'_>, ranges: &[(u64, u64)]) -> VecDeque<Part> {
    let boundary = format!("KURA_BYTERANGES_{:016x}", view.id);
    let part_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            .expect("ASCII"),
    );
    let mut body = VecDeque::new();
    for &(first, last) in ranges {
        body.push_back(Part::Literal(Bytes::from(format!(
            "\r\n--{boundary}\r\n{part_type}Content-Range: bytes {first}-{last}/{}\r\n\r\n",
            view.len
        ))));
        body.push_back(Part::Body {
            from: first,
            to: last + 1,
        });
    }
    body.push_back(Part::Literal(Bytes::from(format!(
        "\r\n--{boundary}--\r\n"
    ))));
    body
}

/// What a fetch for the cache needs from the client request; owned, so a
/// background refresh can outlive it.
#[derive(Clone)]
pub(super) struct FetchRequest {
    /// The cache key: the base key, then the variant the lookup chose.
    pub(super) key: String,
    /// Path and query sent to the origin.
    pub(super) pq: String,
    /// The client's headers.
    pub(super) headers: HeaderMap,
    /// The client, for `X-Forwarded-For`.
    pub(super) peer: SocketAddr,
    /// The client connection's id, for the origin log's `session-id`.
    pub(super) session: u64,
    /// Whether the client came over TLS, for `X-Forwarded-Proto`.
    pub(super) https: bool,
    /// HEAD: the client gets no body.
    pub(super) head_only: bool,
    /// A cached POST's body: the fetch is that POST.
    pub(super) post: Option<Bytes>,
    /// `<PartSize>`: the first and last byte of the part fetched. Only a 206 of
    /// exactly that start is stored (as a 200 keeping its `Content-Range`),
    /// and for part 0 also a whole answer.
    pub(super) part: Option<(u64, u64)>,
}

impl FetchRequest {
    /// The fetch of `key` for a client's request (`post`: its body, when POSTs
    /// are cached).
    fn new(vhost: &VhostRt, conn: &Conn, parts: &Parts, key: String, post: Option<Bytes>) -> Self {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        FetchRequest {
            key,
            pq: if vhost.cfg.origin.whole_client_request {
                pq.to_string()
            } else {
                cache::key::url(&vhost.cfg.caching.key, pq).into_owned()
            },
            headers: parts.headers.clone(),
            peer: conn.peer,
            session: conn.id,
            https: conn.tls.is_some(),
            head_only: parts.method == Method::HEAD,
            post,
            part: None,
        }
    }

    /// The client's method (GET, HEAD or a cached POST).
    fn method(&self) -> &'static Method {
        static HEAD: Method = Method::HEAD;
        static GET: Method = Method::GET;
        static POST: Method = Method::POST;
        match (self.head_only, &self.post) {
            (true, _) => &HEAD,
            (false, None) => &GET,
            (false, Some(_)) => &POST,
        }
    }
}

/// Fetches an object for the cache as GET; with a `stale` copy, revalidates it
/// (conditionally unless it was purged) and keeps it when the origin fails.
pub(super) async fn fetch(
    vhost: Arc<VhostRt>,
    store: Arc<Store>,
    mut req: FetchRequest,
    guard: FillGuard,
    stale: Option<Arc<Object>>,
) -> Served {
    // The variant the lookup chose: where a revalidated copy goes back.
    req.key = guard.key().to_string();
    let caching = &vhost.cfg.caching;
    let ttl = &vhost.cfg.ttl;
    let mut headers = origin_headers(&vhost, Leg::Cache, &req.headers, req.peer, req.https, true);
    if !caching.key.accept_encoding {
        headers.remove(header::ACCEPT_ENCODING);
    }
    // A POST is sent again whole; a GET revalidates unless the copy was purged.
    let conditional = stale
        .as_ref()
        .filter(|o| !o.head.purged && req.post.is_none());
    if let Some(old) = conditional {
        let etag = vhost.cfg.origin.original_etag;
        for (validator, condition) in [
            (header::ETAG, header::IF_NONE_MATCH),
            (header::LAST_MODIFIED, header::IF_MODIFIED_SINCE),
        ] {
            if validator == header::ETAG && !etag {
                continue;
            }
            if let Some(v) = old.head.headers.get(&validator) {
                headers.insert(condition, v);
            }
        }
    }
    if vhost.cfg.origin.full_range_init && req.post.is_none() {
        // `<FullRangeInit>`: a range from 0 gets the original past modules that
        // rewrite plain GETs (chapter 7).
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-"));
    }
    if let Some((first, last)) = req.part {
        let range = format!("bytes={first}-{last}");
        headers.insert(header::RANGE, HeaderValue::from_str(&range).expect("ASCII"));
    }
    modify_origin_request(&vhost, (&req.headers, req.peer), &req.pq, &mut headers);
    let sent = Sent::of(&headers);
    let origin_started = Instant::now();
    let req_head = metered::head_bytes(&headers) + req.pq.len() as u64;
    let origin_active = GaugeGuard::new(&vhost.stats, Gauge::OriginActive);
    let (method, body) = match &req.post {
        Some(b) => (Method::POST, SendBody::Buffered(b.clone())),
        None => (Method::GET, SendBody::Empty),
    };
    let resp = match vhost
        .origin
        .send(Leg::Cache, method.clone(), &req.pq, headers, body)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(vhost = %vhost.cfg.name, error = %e, "origin request failed");
            let extension = match e {
                OriginError::Connect { .. } | OriginError::NoAddress => ttl.connect_timeout,
                _ => ttl.receive_timeout,
            };
            let Some(old) = &stale else {
                return origin_failed(&vhost, guard, e.status(), extension);
            };
            if let Some(ext) = stale_on_error(old, extension, Instant::now()) {
                return keep_stale(&vhost, &store, &req, guard, old, ext);
            }
            // The copy may not be served stale, but it stays: the next request
            // revalidates it instead of meeting a remembered error.
            guard.fail(e.status());
            let mut resp = error_response(e.status(), CacheResult::Error);
            // RFC 9211: the request went forward to revalidate a stale copy.
            resp.headers_mut().insert(
                CACHE_STATUS.clone(),
                HeaderValue::from_static("kura; fwd=stale; detail=origin-error"),
            );
            return (resp, CacheResult::Error, None);
        }
    };
    let (mut head_parts, body) = resp.into_parts();
    let log = origin_log(
        &vhost,
        (&method, &req.pq),
        (&sent, req_head),
        &head_parts,
        ("", req.session),
    );
    if head_parts.status == StatusCode::PARTIAL_CONTENT {
        whole_range_as_ok(&mut head_parts);
    }
    let not_the_part = req
        .part
        .is_some_and(|part| !super::parts::accept(&head_parts, part));
    let call = origin_call(&vhost, (&method, &req.pq), &head_parts);
    let leg = OriginLeg {
        log,
        call,
        status: head_parts.status.as_u16(),
        started: origin_started,
        time_res: origin_started.elapsed(),
        req_head,
        req_body: 0,
        head: metered::head_bytes(&head_parts.headers),
        active: origin_active,
    };
    strip_hop_by_hop(&mut head_parts.headers);
    if vhost.cfg.headers.standard_only {
        headers::keep_standard(&mut head_parts.headers);
    }
    let status = head_parts.status;
    if let Some(old) = &stale {
        if status == StatusCode::NOT_MODIFIED && conditional.is_some() {
            leg.record(&vhost.stats, 0, true);
            let obj = revalidated(&vhost, &store, &req, old, &head_parts.headers);
            guard.serve_stored(obj.clone(), CacheResult::RefreshHit);
            return from_store(
                &vhost,
                &store,
                req.method(),
                &req.headers,
                &obj,
                CacheResult::RefreshHit,
            );
        }
        let extension = match status.as_u16() {
            400..=499 if caching.ttl_extension_4xx => Some(ttl.res4xx),
            500..=599 if caching.ttl_extension_5xx => Some(ttl.res5xx),
            _ => None,
        };
        if let Some(ext) = extension {
            if let Some(ext) = stale_on_error(old, ext, Instant::now()) {
                leg.record(&vhost.stats, 0, true);
                return keep_stale(&vhost, &store, &req, guard, old, ext);
            }
            // The extension keeps the copy, but it may not be served stale: the
            // client gets the origin's error, which is not stored over the copy.
            guard.pass();
            let head = (status, head_parts.headers);
            return relay(&vhost, &req, head, body, CacheResult::RefreshMiss, leg);
        }
    }
    let result = if stale.is_some() {
        CacheResult::RefreshMiss
    } else {
        CacheResult::Miss
    };
    let facts = policy::RequestFacts {
        method: &method,
        path: req.pq.split('?').next().unwrap_or("/"),
        authorization: req.headers.contains_key(header::AUTHORIZATION),
        vary_star_matters: caching.vary != VaryPolicy::Only(Vec::new()),
    };
    // A part is stored as a 200 that keeps its `Content-Range`.
    let kept_status = match status {
        StatusCode::PARTIAL_CONTENT if req.part.is_some() => StatusCode::OK,
        s => s,
    };
    let decision = policy::storable(
        facts,
        kept_status,
        &mut head_parts.headers,
        ttl,
        SystemTime::now(),
    );
    let too_big = body
        .size_hint()
        .exact()
        .is_some_and(|n| n > store.max_object());
    let freshness = match decision {
        Ok(f) if !too_big && !not_the_part => f,
        other => {
            tracing::debug!(vhost = %vhost.cfg.name, uri = %req.pq, reason = ?other.err(), too_big, not_the_part, "not stored");
            if stale.is_some() {
                // The new response replaces the stored one, even when it is not kept.
                store.invalidate_key(&req.key, Invalidate::HardPurge, Instant::now());
            }
            guard.pass();
            return relay(
                &vhost,
                &req,
                (status, head_parts.headers),
                body,
                result,
                leg,
            );
        }
    };
    let vary = vary_of(&caching.vary, &head_parts.headers, &req.headers);
    let head = Arc::new(Head {
        status: kept_status,
        headers: Fields::from_map(&head_parts.headers),
        received_at: Instant::now(),
        freshness,
        vary,
        purged: false,
    });
    guard.fill().set_head(HeadOutcome::Shared(head.clone()));
    let reader = guard.fill().reader();
    tokio::spawn(produce(
        guard,
        head.clone(),
        body,
        vhost.origin.receive_timeout(Leg::Cache),
        (vhost.stats.clone(), leg),
    ));
    let body = match reader {
        Some(r) if !req.head_only => Body::Fill(r),
        _ => Body::Empty,
    };
    (
        respond(&head, result, &vhost.cfg.client, body),
        result,
        None,
    )
}

/// Sends an origin response on to the client without storing it.
fn relay(
    vhost: &VhostRt,
    req: &FetchRequest,
    (status, headers): (StatusCode, HeaderMap),
    body: Incoming,
    result: CacheResult,
    leg: OriginLeg,
) -> Served {
    let body = if req.head_only {
        Body::Empty
    } else {
        Body::Origin(body)
    };
    let resp = finish_response(status, headers, result, &vhost.cfg.client, None, body);
    (resp, result, Some(leg))
}

/// A 304 from the origin: the stored headers updated with the new ones
/// (RFC 9111 4.3.4) and the lifetime grown per `<TTL>`.
fn revalidated(
    vhost: &VhostRt,
    store: &Store,
    req: &FetchRequest,
    old: &Arc<Object>,
    fresh: &HeaderMap,
) -> Arc<Object> {
    let mut headers = old.head.headers.to_map();
    for name in fresh.keys() {
        if matches!(
            *name,
            header::CONTENT_LENGTH | header::CONTENT_ENCODING | header::CONTENT_RANGE
        ) {
            continue;
        }
        headers.remove(name);
        for v in fresh.get_all(name) {
            headers.append(name.clone(), v.clone());
        }
    }
    let facts = policy::RequestFacts {
        method: &Method::GET,
        path: req.pq.split('?').next().unwrap_or("/"),
        authorization: req.headers.contains_key(header::AUTHORIZATION),
        vary_star_matters: true,
    };
    let ttl = &vhost.cfg.ttl;
    let status = old.head.status;
    let head = |freshness, headers| Head {
        status,
        headers: Fields::from_map(&headers),
        received_at: Instant::now(),
        freshness,
        vary: old.head.vary.clone(),
        purged: false,
    };
    match policy::storable(facts, status, &mut headers, ttl, SystemTime::now()) {
        Ok(mut f) => {
            f.lifetime = policy::grown(old.head.freshness.lifetime, f, status, ttl);
            store.refresh(&req.key, old, head(f, headers))
        }
        Err(_) => {
            // No longer storable: this client gets it once, the copy is dropped.
            store.invalidate_key(&req.key, Invalidate::HardPurge, Instant::now());
            Arc::new(old.with_head(head(old.head.freshness, headers)))
        }
    }
}

/// Keeps an expired copy for `extension` more and answers with it (`TCP_REF_FAIL_HIT`).
fn keep_stale(
    vhost: &VhostRt,
    store: &Store,
    req: &FetchRequest,
    guard: FillGuard,
    old: &Arc<Object>,
    extension: Duration,
) -> Served {
    let result = CacheResult::RefFailHit;
    let now = Instant::now();
    let lifetime = if extension.is_zero() {
        old.head.freshness.lifetime
    } else {
        old.head.age(now) + extension
    };
    let obj = store.refresh(&req.key, old, old.head.with_lifetime(lifetime, false));
    guard.serve_stored(obj.clone(), result);
    from_store(vhost, store, req.method(), &req.headers, &obj, result)
}

/// The origin failed and no stored copy may stand in: the error is answered, and
/// kept for `<TTL><ConnectTimeout>` (or `ReceiveTimeout`) seconds so a dead
/// origin is not asked again by every client (chapter 4).
fn origin_failed(vhost: &VhostRt, guard: FillGuard, status: StatusCode, keep: Duration) -> Served {
    let resp = error_response(status, CacheResult::Error);
    if keep.is_zero() {
        guard.fail(status);
        return (resp, CacheResult::Error, None);
    }
    let text = error_text(status);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let head = Arc::new(Head {
        status,
        headers: Fields::from_map(&headers),
        received_at: Instant::now(),
        freshness: policy::Freshness {
            lifetime: keep,
            initial_age: Duration::ZERO,
            source: TtlSource::ResCode,
            no_stale: true,
            stale_while_revalidate: None,
            stale_if_error: None,
        },
        vary: Vec::new(),
        purged: false,
    });
    tracing::debug!(vhost = %vhost.cfg.name, status = status.as_u16(), ?keep, "origin error kept");
    guard.fill().set_head(HeadOutcome::Shared(head.clone()));
    guard.fill().push(Bytes::from(text));
    guard.finish(head, BodyEnd::Complete);
    (resp, CacheResult::Error, None)
}
/// Reads the origin body into the fill until it ends, then stores it.
async fn produce(
    mut guard: FillGuard,
    head: Arc<Head>,
    mut body: Incoming,
    receive_timeout: std::time::Duration,
    (stats, leg): (Arc<VhostStats>, OriginLeg),
) {
    use http_body_util::BodyExt;
    let fill = guard.fill().clone();
    let declared = body.size_hint().exact().unwrap_or(0);
    let mut received = 0u64;
    let end = loop {
        if !fill.wait_for_space().await {
            break BodyEnd::Truncated;
        }
        match tokio::time::timeout(receive_timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    received += data.len() as u64;
                    guard.make_room(received.max(declared)).await;
                    fill.push(data);
                }
            }
            Ok(None) => break BodyEnd::Complete,
            Ok(Some(Err(_))) => {
                leg.closed_when_downloading(received);
                break BodyEnd::Truncated;
            }
            Err(_) => break BodyEnd::Truncated,
        }
    };
    guard.finish(head, end);
    leg.record(&stats, received, end == BodyEnd::Complete);
}

/// Forwards a request without the cache.
pub(super) async fn pass(
    vhost: &Arc<VhostRt>,
    conn: &Conn,
    parts: &Parts,
    body: Option<Incoming>,
    (result, leg): (CacheResult, Leg),
) -> Served {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = origin_headers(
        vhost,
        leg,
        &parts.headers,
        conn.peer,
        conn.tls.is_some(),
        false,
    );
    modify_origin_request(vhost, (&parts.headers, conn.peer), pq, &mut headers);
    let facts = Sent::of(&headers);
    let body = body.filter(|b| !b.is_end_stream());
    let origin_started = Instant::now();
    let origin_active = GaugeGuard::new(&vhost.stats, Gauge::OriginActive);
    let req_head = metered::head_bytes(&headers) + pq.len() as u64;
    let req_body = body
        .as_ref()
        .and_then(|b| b.size_hint().exact())
        .unwrap_or(0);
    let body = body.map_or(SendBody::Empty, SendBody::Client);
    let sent = match leg {
        Leg::Bypass { private: true, .. } => {
            let pool = &vhost.origin;
            let request = (parts.method.clone(), pq);
            pool.send_private(&conn.private, conn.peer.ip(), request, headers, body)
                .await
        }
        _ => {
            let pool = &vhost.origin;
            pool.send(leg, parts.method.clone(), pq, headers, body)
                .await
        }
    };
    match sent {
        Ok(resp) => {
            let (mut p, body) = resp.into_parts();
            let reqinfo = match leg {
                Leg::Bypass { private: true, .. } => "PrivateBypass",
                Leg::Bypass { .. } => "Bypass",
                Leg::Cache => "",
            };
            let log = origin_log(
                vhost,
                (&parts.method, pq),
                (&facts, req_head),
                &p,
                (reqinfo, conn.id),
            );
            let call = origin_call(vhost, (&parts.method, pq), &p);
            let leg = OriginLeg {
                log,
                call,
                status: p.status.as_u16(),
                started: origin_started,
                time_res: origin_started.elapsed(),
                req_head,
                req_body,
                head: metered::head_bytes(&p.headers),
                active: origin_active,
            };
            strip_hop_by_hop(&mut p.headers);
            if vhost.cfg.headers.standard_only {
                headers::keep_standard(&mut p.headers);
            }
            let body = if parts.method == Method::HEAD {
                Body::Empty
            } else {
                Body::Origin(body)
            };
            (
                finish_response(p.status, p.headers, result, &vhost.cfg.client, None, body),
                result,
                Some(leg),
            )
        }
        Err(e) => {
            tracing::warn!(vhost = %vhost.cfg.name, error = %e, "origin request failed");
            (
                error_response(e.status(), CacheResult::Error),
                CacheResult::Error,
                None,
            )
        }
    }
}

/// `PURGE`, `EXPIRE`, `HARDPURGE` on a service port (chapter 5 "HTTP Method"):
/// with `<Manager HttpMethod="ON">` only a client the manager's `<Allow>` admits
/// as Admin may send them.
async fn purge_method(
    rt: &Runtime,
    store: &Arc<Store>,
    conn: &Conn,
    parts: &Parts,
    command: crate::cache::purge::Command,
) -> Response<Body> {
    let manager = &rt.config.server.manager;
    if manager.http_method_acl
        && manager.role_of(conn.peer.ip()) != Some(crate::config::Role::Admin)
    {
        return crate::api::error(
            StatusCode::FORBIDDEN,
            command.as_str(),
            format!(
                "{} is only allowed from the manager's Admin addresses",
                parts.method
            ),
        );
    }
    let target = crate::api::purge::method_target(&parts.headers, &parts.uri);
    let last_host = parking_lot::Mutex::new(None);
    crate::api::purge::execute(store, &rt.config, command, &[target], &last_host).await
}

/// A successful unsafe request invalidates the stored copies of its target and of
/// the `Location`/`Content-Location` it names on the same host (RFC 9111 4.4).
fn invalidate_after_unsafe(vhost: &VhostRt, store: &Store, parts: &Parts, resp: &Response<Body>) {
    if parts.method.is_safe() || !(resp.status().is_success() || resp.status().is_redirection()) {
        return;
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let mut targets = vec![parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string())];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let same_host = match v.split_once("://") {
            None => v.starts_with('/').then_some(v),
            Some((_, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                (Some(authority) == host).then_some(if path.is_empty() { "/" } else { path })
            }
        };
        targets.extend(same_host.map(str::to_string));
    }
    let now = Instant::now();
    for t in targets {
        let url = cache::key::url(&vhost.cfg.caching.key, &t);
        let primary = cache::key::primary_key(&vhost.cache_name, &url);
        store.invalidate(
            Store::shard_of(&primary),
            |k| cache::key::primary(k) == primary,
            Invalidate::HardPurge,
            now,
        );
    }
}

/// What the origin log needs of a request before it is sent away.
struct Sent {
    /// `Range` sent.
    range: Option<String>,
    /// Whether compressed content was accepted.
    accept_encoding: bool,
}

impl Sent {
    fn of(headers: &HeaderMap) -> Sent {
        let text = |h| headers.get(h).and_then(|v| v.to_str().ok());
        Sent {
            range: text(header::RANGE).map(str::to_string),
            accept_encoding: text(header::ACCEPT_ENCODING)
                .is_some_and(|v| v.contains("gzip") || v.contains("deflate")),
        }
    }
}

/// What an originerror warning about an exchange whose response head arrived would
/// name, kept only when `<OriginErrorLog Warning="ON">` wants warnings.
fn origin_call(
    vhost: &VhostRt,
    (method, uri): (&Method, &str),
    resp: &http::response::Parts,
) -> Option<Box<metered::OriginCall>> {
    if !crate::log::origin_warnings_wanted() {
        return None;
    }
    let info = resp.extensions.get::<super::origin::connect::ConnInfo>();
    Some(Box::new(metered::OriginCall {
        vhost: vhost.cfg.name.clone(),
        origin: info
            .and_then(|i| i.peer)
            .map_or_else(|| "-".to_string(), |a| a.to_string()),
        method: method.clone(),
        uri: uri.to_string(),
        content_length: resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
    }))
}

/// The origin log line of a transaction whose response head arrived, when the vhost
/// writes one (`<Log><Origin>`; a loopback origin only with `Local`).
fn origin_log(
    vhost: &VhostRt,
    (method, uri): (&Method, &str),
    (sent, req_head): (&Sent, u64),
    resp: &http::response::Parts,
    (reqinfo, session): (&'static str, u64),
) -> Option<(
    Arc<crate::log::writer::Sink>,
    crate::log::lines::OriginTransaction,
)> {
    let info = resp.extensions.get::<super::origin::connect::ConnInfo>();
    let peer = info.and_then(|i| i.peer);
    if !vhost.log.wants_origin_line(peer) {
        return None;
    }
    let text = |h| {
        resp.headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let tcount = info.map_or(0, |i| i.next_transaction());
    let t = crate::log::lines::OriginTransaction {
        connection: (info.map_or(0, |i| i.id), tcount),
        local: info.and_then(|i| i.local).map(|a| a.ip()),
        method: method.to_string(),
        domain: info.map(|i| i.domain.clone()).unwrap_or_default(),
        uri: uri.to_string(),
        origin: peer,
        status: resp.status.as_u16(),
        range: sent.range.clone(),
        content_length: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        heads: (req_head, metered::head_bytes(&resp.headers)),
        // Only a connection's first transaction paid for connecting.
        connect: info
            .filter(|_| tcount == 1)
            .map_or(Duration::ZERO, |i| i.connect),
        reqinfo,
        accept_encoding: sent.accept_encoding,
        cache_control: text(header::CACHE_CONTROL),
        content_encoding: text(header::CONTENT_ENCODING),
        session,
        ..Default::default()
    };
    Some((vhost.log.sinks.origin.clone(), t))
}

/// A 206 whose `Content-Range` is the whole object (`bytes 0-(n-1)/n`, the answer to
/// `<FullRangeInit>`'s `bytes=0-`) is the object: 200 with its length. Any other 206
/// stays one, and is not stored.
fn whole_range_as_ok(head: &mut http::response::Parts) {
    let whole = head
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes 0-"))
        .and_then(|v| v.split_once('/'))
        .and_then(|(last, total)| Some((last.parse::<u64>().ok()?, total.parse::<u64>().ok()?)))
        .filter(|(last, total)| last + 1 == *total)
        .map(|(_, total)| total);
    if let Some(total) = whole {
        head.status = StatusCode::OK;
        head.headers.remove(header::CONTENT_RANGE);
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    }
}

/// Headers for the origin: the client's end-to-end headers, `Via`, `X-Forwarded-For`,
/// `<Host>`/`<UserAgent>`/`<XFFClientIPOnly>` as configured (chapter 7), on a bypass
/// only where their `Bypass` attribute says so (chapter 8), and `X-Forwarded-Proto`
/// (kura's own: a client's is replaced, it would lie). A fetch meant for the cache
/// drops conditionals and ranges: the cache wants the whole object.
fn origin_headers(
    vhost: &VhostRt,
    leg: Leg,
    client: &HeaderMap,
    peer: SocketAddr,
    https: bool,
    for_cache: bool,
) -> HeaderMap {
    let (policy, bypass) = (&vhost.cfg.origin, &vhost.cfg.bypass);
    let applies = |on_bypass: bool| leg == Leg::Cache || on_bypass;
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    // Without a `Host` here the origin pool sends its address's (chapter 2's table).
    match &policy.host {
        HeaderSetting::Fixed(v) if applies(bypass.host) => {
            h.insert(header::HOST, v.clone());
        }
        HeaderSetting::Client => {}
        _ if !applies(bypass.host) => {}
        _ => {
            h.remove(header::HOST);
        }
    }
    // The client's User-Agent goes on unless one is configured (kura's default; the
    // guide's would replace every visitor's with the product name).
    if let HeaderSetting::Fixed(v) = &policy.user_agent {
        if applies(bypass.user_agent) {
            h.insert(header::USER_AGENT, v.clone());
        }
    }
    if for_cache {
        for n in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::RANGE,
            header::IF_RANGE,
        ] {
            h.remove(n);
        }
    }
    h.append(header::VIA, VIA.clone());
    let ip = peer.ip().to_string();
    let prev = h
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let xff = match (
        prev.is_empty(),
        policy.xff_client_ip_only && applies(bypass.xff),
    ) {
        (true, _) => ip,
        (false, true) => prev.split(',').next().unwrap_or("").trim().to_string(),
        (false, false) => format!("{prev}, {ip}"),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    let proto = if https { "https" } else { "http" };
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    h
}

/// `<OriginOptions><ModifyHeader>`: the `$ORGREQ` rules, run on the origin request as
/// it is about to be sent (conditionals included, so `If-Modified-Since, unset` works).
fn modify_origin_request(
    vhost: &VhostRt,
    (client, peer): (&HeaderMap, SocketAddr),
    path_and_query: &str,
    request: &mut HeaderMap,
) {
    if let Some(rules) = &vhost.cfg.headers.origin {
        let who = headers::Asker {
            ip: peer.ip(),
            request: client,
            path: path_and_query.split('?').next().unwrap_or(path_and_query),
        };
        headers::modify(rules, Side::OriginRequest, &who, None, request);
    }
}

/// The request header values a response's `Vary` names, as far as `<VaryHeader>`
/// honours them.
fn vary_of(
    policy: &VaryPolicy,
    response: &HeaderMap,
    request: &HeaderMap,
) -> Vec<(HeaderName, Option<HeaderValue>)> {
    response
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| match policy {
            VaryPolicy::Rfc | VaryPolicy::All => true,
            VaryPolicy::Only(list) => list.iter().any(|l| l == n.as_str()),
        })
        .map(|n| {
            let v = request.get(&n).cloned();
            (n, v)
        })
        .collect()
}

/// A response from a stored head.
pub(super) fn respond(
    head: &Head,
    result: CacheResult,
    client: &ClientPolicy,
    body: Body,
) -> Response<Body> {
    let age = result.is_hit().then(|| head.age(Instant::now()).as_secs());
    finish_response(
        head.status,
        head.headers.to_map(),
        result,
        client,
        age,
        body,
    )
}

/// Applies the vhost's header policy and the cache status headers.
fn finish_response(
    status: StatusCode,
    mut headers: HeaderMap,
    result: CacheResult,
    client: &ClientPolicy,
    age: Option<u64>,
    body: Body,
) -> Response<Body> {
    if !client.server_header {
        headers.remove(header::SERVER);
    }
    // Targeted fields were for this cache (RFC 9213 2.1).
    headers.remove(&policy::CDN_CACHE_CONTROL);
    headers.remove(&policy::SURROGATE_CONTROL);
    if !client.etag_header {
        headers.remove(header::ETAG);
    }
    if client.via_header {
        headers.append(header::VIA, VIA.clone());
    }
    match age {
        Some(a) if client.age_header => {
            headers.insert(header::AGE, HeaderValue::from(a));
        }
        _ if !client.age_header => {
            headers.remove(header::AGE);
        }
        _ => {}
    }
    headers.insert(X_CACHE.clone(), HeaderValue::from_static(result.x_cache()));
    headers.insert(
        CACHE_STATUS.clone(),
        HeaderValue::from_static(result.cache_status()),
    );
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// `expires.txt` and the response rules of `headers.txt`, just before the
/// response leaves (chapter 6).
fn rewrite_response(vhost: &VhostRt, conn: &Conn, parts: &Parts, resp: &mut Response<Body>) {
    let policy = &vhost.cfg.headers;
    let status = resp.status();
    if let Some(rules) = &policy.expires {
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            headers::refresh_expires(
                rules,
                parts.uri.path(),
                resp.headers_mut(),
                SystemTime::now(),
            );
        }
    }
    if let Some(rules) = &policy.modify {
        let who = headers::Asker {
            ip: conn.peer.ip(),
            request: &parts.headers,
            path: parts.uri.path(),
        };
        let status = Some(status.as_u16());
        headers::modify(rules, Side::Response, &who, status, resp.headers_mut());
    }
}

/// `Connection` and `Keep-Alive` per chapter 6 "Session Management".
fn set_connection_headers(
    headers: &mut HeaderMap,
    vhost: &VhostRt,
    client_close: bool,
    served: u32,
) {
    let client = &vhost.cfg.client;
    let max = client.keep_alive_max;
    let exhausted = max > 0 && served >= max;
    if client_close || client.connection_close || exhausted {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return;
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    if client.keep_alive_header {
        // Without Max the value never changes: it is built once per configuration.
        let v = if max > 0 {
            let timeout = client.keep_alive.as_secs();
            HeaderValue::from_str(&format!("timeout={timeout}, max={}", max - served + 1)).ok()
        } else {
            Some(vhost.keep_alive_value.clone())
        };
        if let Some(v) = v {
            headers.insert(header::HeaderName::from_static("keep-alive"), v);
        }
    }
}

/// A short text response made by kura itself.
fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(Body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The text of an error kura answers itself.
fn error_text(status: StatusCode) -> String {
    format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

/// The answer when the origin failed.
pub(super) fn error_response(status: StatusCode, result: CacheResult) -> Response<Body> {
    let mut resp = plain(status, error_text(status));
    resp.headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(result.x_cache()));
    resp.headers_mut().insert(
        CACHE_STATUS.clone(),
        HeaderValue::from_static(result.cache_status()),
    );
    resp
}
