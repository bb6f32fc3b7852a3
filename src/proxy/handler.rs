//! One client request: route, look up, fetch or join a fill, answer.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use super::body::Body;
use super::metered::{self, AccessGuard, Exchanged, Metered, OriginLeg};
use super::origin::OriginError;
use super::{Runtime, VhostRt};
use crate::cache::fill::{BodyEnd, HeadOutcome};
use crate::cache::policy;
use crate::cache::store::{FillGuard, Head, Lookup, Store};
use crate::cache::{self, CacheResult};
use crate::config::ClientPolicy;
use crate::stats::counter::{Gauge, OriginEvent};
use crate::stats::{GaugeGuard, VhostStats};

static VIA: LazyLock<HeaderValue> = LazyLock::new(|| {
    HeaderValue::from_str(&format!("1.1 kura (kura/{})", crate::VERSION)).expect("ASCII")
});
static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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
    /// Requests served on this connection so far, for `<KeepAliveHeader Max>`.
    pub requests: std::sync::atomic::AtomicU32,
    /// Holds the `ClientSession` gauge of the vhost this connection counts for.
    pub session: arc_swap::ArcSwapOption<GaugeGuard>,
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
    let (parts, body) = req.into_parts();
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
    let Some(vhost) = rt.route(conn.listen, host) else {
        let resp = plain(
            StatusCode::NOT_FOUND,
            format!("no virtual host for Host: {host}\n"),
        );
        return resp.map(Metered::uncounted);
    };
    let vhost = vhost.clone();
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
    let (mut resp, result, origin) = if parts.method == Method::GET || parts.method == Method::HEAD
    {
        serve_cached(&vhost, store, conn, &parts).await
    } else {
        pass(
            &vhost,
            conn,
            &parts,
            Some(body),
            CacheResult::ClientRefreshMiss,
        )
        .await
    };
    let client_close = parts
        .headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    set_connection_headers(resp.headers_mut(), &vhost, client_close, served);
    let exchanged = Exchanged {
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
type Served = (Response<Body>, CacheResult, Option<OriginLeg>);

/// Serves GET/HEAD through the cache.
async fn serve_cached(
    vhost: &Arc<VhostRt>,
    store: &Arc<Store>,
    conn: &Conn,
    parts: &Parts,
) -> Served {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let key = cache::key(&vhost.cache_name, pq);
    let head_only = parts.method == Method::HEAD;
    match store.lookup(&key, &parts.headers, Instant::now()) {
        Lookup::Fresh(obj) => {
            obj.touch(crate::procfs::unix_now());
            let body = if head_only {
                Body::Empty
            } else {
                Body::object(obj.clone())
            };
            // A cached error response is the guide's negative hit.
            let result = if obj.head.status.as_u16() >= 400 {
                CacheResult::NegativeHit
            } else {
                CacheResult::Hit
            };
            (
                respond(&obj.head, result, &vhost.cfg.client, body),
                result,
                None,
            )
        }
        Lookup::Join(fill) => match fill.head().await {
            HeadOutcome::Shared(head) if head.vary_matches(&parts.headers) => match fill.reader() {
                Some(reader) => {
                    let body = if head_only {
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
                None => pass(vhost, conn, parts, None, CacheResult::Miss).await,
            },
            HeadOutcome::Shared(_) | HeadOutcome::Pass => {
                pass(vhost, conn, parts, None, CacheResult::Miss).await
            }
            HeadOutcome::Failed(status) => (
                error_response(status, CacheResult::Error),
                CacheResult::Error,
                None,
            ),
        },
        Lookup::Fetch { fill, stale } => {
            let result = if stale {
                CacheResult::RefreshMiss
            } else {
                CacheResult::Miss
            };
            fetch_and_fill(vhost, store, conn, parts, fill, result).await
        }
    }
}

/// Fetches a missing object as GET, sharing the body with joined clients and storing it.
async fn fetch_and_fill(
    vhost: &Arc<VhostRt>,
    store: &Arc<Store>,
    conn: &Conn,
    parts: &Parts,
    guard: FillGuard,
    result: CacheResult,
) -> Served {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let headers = origin_headers(&parts.headers, conn.peer, true);
    let origin_started = Instant::now();
    let req_head = metered::head_bytes(&headers) + pq.len() as u64;
    let origin_active = GaugeGuard::new(&vhost.stats, Gauge::OriginActive);
    let resp = match vhost.origin.send(Method::GET, pq, headers, None).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(vhost = %vhost.cfg.name, error = %e, "origin request failed");
            record_origin_failure(vhost, &e, (&Method::GET, pq), origin_started);
            let status = e.status();
            guard.fail(status);
            return (
                error_response(status, CacheResult::Error),
                CacheResult::Error,
                None,
            );
        }
    };
    let (mut head_parts, body) = resp.into_parts();
    let leg = OriginLeg {
        status: head_parts.status.as_u16(),
        started: origin_started,
        time_res: origin_started.elapsed(),
        req_head,
        req_body: 0,
        head: metered::head_bytes(&head_parts.headers),
        active: origin_active,
    };
    strip_hop_by_hop(&mut head_parts.headers);
    let decision = policy::storable(
        &parts.method,
        parts.headers.contains_key(header::AUTHORIZATION),
        head_parts.status,
        &head_parts.headers,
        &vhost.cfg.ttl,
        SystemTime::now(),
    );
    let too_big = body
        .size_hint()
        .exact()
        .is_some_and(|n| n > store.max_object());
    let freshness = match decision {
        Ok(f) if !too_big => f,
        other => {
            tracing::debug!(vhost = %vhost.cfg.name, uri = %pq, reason = ?other.err(), too_big, "not stored");
            guard.pass();
            let body = if parts.method == Method::HEAD {
                Body::Empty
            } else {
                Body::Origin(body)
            };
            return (
                finish_response(
                    head_parts.status,
                    head_parts.headers,
                    result,
                    &vhost.cfg.client,
                    None,
                    body,
                ),
                result,
                Some(leg),
            );
        }
    };
    let vary = vary_of(&head_parts.headers, &parts.headers);
    let head = Arc::new(Head {
        status: head_parts.status,
        headers: head_parts.headers,
        received_at: Instant::now(),
        freshness,
        vary,
    });
    guard.fill().set_head(HeadOutcome::Shared(head.clone()));
    let reader = guard.fill().reader();
    tokio::spawn(produce(
        guard,
        head.clone(),
        body,
        vhost.origin.receive_timeout(),
        store.max_object(),
        (vhost.stats.clone(), leg),
    ));
    let body = match reader {
        Some(r) if parts.method != Method::HEAD => Body::Fill(r),
        _ => Body::Empty,
    };
    (
        respond(&head, result, &vhost.cfg.client, body),
        result,
        None,
    )
}

/// Reads the origin body into the fill until it ends, then stores it.
async fn produce(
    mut guard: FillGuard,
    head: Arc<Head>,
    mut body: Incoming,
    receive_timeout: std::time::Duration,
    max_keep: u64,
    (stats, leg): (Arc<VhostStats>, OriginLeg),
) {
    use http_body_util::BodyExt;
    let fill = guard.fill().clone();
    let mut received = 0u64;
    let end = loop {
        if !fill.wait_for_space().await {
            break BodyEnd::Truncated;
        }
        match tokio::time::timeout(receive_timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    received += data.len() as u64;
                    if !fill.push(data, max_keep) {
                        guard.unregister();
                    }
                }
            }
            Ok(None) => break BodyEnd::Complete,
            Ok(Some(Err(_))) | Err(_) => break BodyEnd::Truncated,
        }
    };
    guard.finish(head, end);
    leg.record(&stats, received, end == BodyEnd::Complete);
}

/// Forwards a request without the cache.
async fn pass(
    vhost: &Arc<VhostRt>,
    conn: &Conn,
    parts: &Parts,
    body: Option<Incoming>,
    result: CacheResult,
) -> Served {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let headers = origin_headers(&parts.headers, conn.peer, false);
    let body = body.filter(|b| !b.is_end_stream());
    let origin_started = Instant::now();
    let origin_active = GaugeGuard::new(&vhost.stats, Gauge::OriginActive);
    let req_head = metered::head_bytes(&headers) + pq.len() as u64;
    let req_body = body
        .as_ref()
        .and_then(|b| b.size_hint().exact())
        .unwrap_or(0);
    match vhost
        .origin
        .send(parts.method.clone(), pq, headers, body)
        .await
    {
        Ok(resp) => {
            let (mut p, body) = resp.into_parts();
            let leg = OriginLeg {
                status: p.status.as_u16(),
                started: origin_started,
                time_res: origin_started.elapsed(),
                req_head,
                req_body,
                head: metered::head_bytes(&p.headers),
                active: origin_active,
            };
            strip_hop_by_hop(&mut p.headers);
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
            record_origin_failure(vhost, &e, (&parts.method, pq), origin_started);
            (
                error_response(e.status(), CacheResult::Error),
                CacheResult::Error,
                None,
            )
        }
    }
}

/// Counts a failed origin request by the guide's kinds (ConnectTimeout, ReceiveTimeout,
/// Close) and writes its originerror line.
fn record_origin_failure(
    vhost: &VhostRt,
    e: &OriginError,
    (method, uri): (&Method, &str),
    started: Instant,
) {
    let (event, addr, kind) = match e {
        OriginError::Connect { addr, reason } => {
            let kind = if reason.contains("timed out") {
                "Connect-Timeout"
            } else {
                "Connect-Fail"
            };
            (OriginEvent::ConnectFailure, addr, kind)
        }
        OriginError::Timeout { addr, .. } => (OriginEvent::ReceiveTimeout, addr, "Receive-Timeout"),
        OriginError::Http { addr, .. } => (OriginEvent::Close, addr, "ClosedWithoutResponse"),
        OriginError::NoAddress => return,
    };
    vhost.stats.record_origin_event(event, 1);
    crate::log::origin_error(
        &vhost.cfg.name,
        addr,
        (method.as_str(), uri),
        started.elapsed(),
        kind,
    );
}

/// Headers for the origin: the client's end-to-end headers, `Via`, `X-Forwarded-For`.
/// A fetch meant for the cache drops conditionals and ranges: the cache wants the whole object.
fn origin_headers(client: &HeaderMap, peer: SocketAddr, for_cache: bool) -> HeaderMap {
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    h.remove(header::HOST);
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
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    h
}

/// The request header values a response's `Vary` names.
fn vary_of(response: &HeaderMap, request: &HeaderMap) -> Vec<(HeaderName, Option<HeaderValue>)> {
    response
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .map(|n| {
            let v = request.get(&n).cloned();
            (n, v)
        })
        .collect()
}

/// A response from a stored head.
fn respond(head: &Head, result: CacheResult, client: &ClientPolicy, body: Body) -> Response<Body> {
    let age = result.is_hit().then(|| head.age(Instant::now()).as_secs());
    finish_response(head.status, head.headers.clone(), result, client, age, body)
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

/// The answer when the origin failed.
fn error_response(status: StatusCode, result: CacheResult) -> Response<Body> {
    let mut resp = plain(
        status,
        format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    );
    resp.headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(result.x_cache()));
    resp.headers_mut().insert(
        CACHE_STATUS.clone(),
        HeaderValue::from_static(result.cache_status()),
    );
    resp
}
