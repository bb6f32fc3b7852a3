//! The management port (guide chapters 2 and 3): ACL by client address,
//! roles, JSON replies in the guide's envelope.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::Role;
use crate::daemon::Daemon;
use crate::proxy::body::Body;
use crate::stats::Window;
use endpoints::{Handler, Route};

pub mod command;
pub mod conf;
pub mod endpoints;
pub mod fileinfo;
pub mod inventory;
pub mod metrics;
pub mod monitoring;
pub mod origin;
pub mod purge;

/// Accepts management connections; addresses outside every `<Allow>` are
/// disconnected without a reply, as the guide says.
pub async fn serve(daemon: Arc<Daemon>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "manager accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if daemon
            .runtime()
            .config
            .server
            .manager
            .role_of(peer.ip())
            .is_none()
        {
            tracing::warn!(client = %peer.ip(), "manager connection refused by <Allow>");
            continue;
        }
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let d = d.clone();
                async move { Ok::<_, Infallible>(admit(&d, peer, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Answers a request with the role `<Allow>` gives its address now: read for every
/// request, so a reload that narrows `<Allow>` reaches open keep-alive connections too.
/// An address no longer allowed gets a 403 and the connection is closed.
async fn admit(daemon: &Arc<Daemon>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let Some(role) = daemon.runtime().config.server.manager.role_of(peer.ip()) else {
        tracing::warn!(client = %peer.ip(), "manager request refused by <Allow>");
        let mut r = error(
            StatusCode::FORBIDDEN,
            "",
            format!("{} is no longer in <Manager><Allow>", peer.ip()),
        );
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return r;
    };
    route(daemon, role, peer, req).await
}

/// The value of query parameter `name` (any case), as written.
fn query_param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// `/monitoring/ssl`: the suites `<Https CipherSuite="expr">` makes kura offer, TLS 1.3's
/// first (always on), as `openssl ciphers -v` lists them; the same error as the
/// configuration when it offers no TLS 1.2 suite.
fn ssl_suites(expr: &str) -> Result<Value, String> {
    let selection = crate::config::ciphers::select(expr);
    selection.offered()?;
    let suites = crate::config::ciphers::TLS13
        .iter()
        .chain(selection.supported())
        .map(|s| json!({"Name": s.name, "Ver": s.ver, "Kx": s.kx, "Au": s.au, "Enc": s.enc, "Mac": s.mac}))
        .collect();
    Ok(Value::Array(suites))
}

/// The guide's reply envelope.
fn envelope(method: &str, result: Value) -> Value {
    json!({"version": crate::VERSION, "method": method, "status": "OK", "result": result})
}

fn reply(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = text_reply(format!("{v:#}\n"), "application/json");
    *r.status_mut() = status;
    r
}

/// The API's JSON error reply (also the service ports' refused purge methods).
pub(crate) fn error(
    status: StatusCode,
    method: &str,
    message: impl Into<String>,
) -> Response<Body> {
    reply(
        status,
        &json!({"version": crate::VERSION, "method": method, "status": "ERROR", "code": status.as_u16(), "message": message.into()}),
    )
}

async fn route(
    daemon: &Arc<Daemon>,
    role: Role,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path();
    let endpoint = match endpoints::route(req.method(), path) {
        Route::Found(e) => e,
        Route::WrongMethod => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "",
                format!("{} is not served on {path}", req.method()),
            )
        }
        Route::Unknown => return error(StatusCode::NOT_FOUND, "", format!("no such API: {path}")),
    };
    let method = endpoint.handler.as_str();
    if role < endpoint.role {
        return error(
            StatusCode::UNAUTHORIZED,
            method,
            format!("{path} needs the {:?} role", endpoint.role),
        );
    }
    match endpoint.handler {
        Handler::Later(capability) => error(
            StatusCode::NOT_IMPLEMENTED,
            method,
            format!(
                "{path} belongs to {}, which kura does not have yet",
                capability.as_str()
            ),
        ),
        Handler::HwInfo => reply(StatusCode::OK, &envelope("hwinfo", inventory::hwinfo())),
        Handler::CpuInfo => reply(
            StatusCode::OK,
            &envelope("cpuinfo", inventory::hwinfo()["CPU"].clone()),
        ),
        Handler::ConfLatest | Handler::ConfHistory => {
            conf::history(daemon, endpoint.handler == Handler::ConfLatest)
        }
        Handler::ConfDownload => conf::download(daemon, &req),
        Handler::ConfRestore => conf::restore(daemon, &req).await,
        Handler::ConfUpload => conf::upload(daemon, req).await,
        Handler::Restart | Handler::Terminate | Handler::CacheClear => {
            command::confirmed(daemon, endpoint.handler, &req)
        }
        Handler::Cleanup => command::cleanup(daemon, &req),
        Handler::Purge => purge::command(daemon, req).await,
        Handler::PurgeMethod => {
            let Some(command) = purge::method_command(req.method()) else {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    method,
                    format!("{} is not a purge method", req.method()),
                );
            };
            let target = purge::method_target(req.headers(), req.uri());
            let config = daemon.runtime().config.clone();
            purge::execute(
                &daemon.store,
                &config,
                command,
                &[target],
                &daemon.purge_host,
            )
            .await
        }
        Handler::ConfFile => {
            let name = path.trim_start_matches("/conf/");
            match daemon.runtime().config.files.get(name) {
                Some(text) => text_reply(text.to_string(), "application/xml"),
                None => error(
                    StatusCode::NOT_FOUND,
                    method,
                    format!("{name} cannot be read"),
                ),
            }
        }
        Handler::SvcFile => {
            let name = path.trim_start_matches("/conf/");
            let Some(vhost) = query_param(&req, "vhost") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    method,
                    "vhost=<vhost name> is required",
                );
            };
            let rt = daemon.runtime();
            let Some(v) = rt
                .config
                .vhosts
                .iter()
                .find(|v| v.name.eq_ignore_ascii_case(vhost))
            else {
                return error(StatusCode::NOT_FOUND, method, format!("no vhost {vhost}"));
            };
            // A vhost without the file has no such rules: an empty list, not an error.
            let text = rt
                .config
                .files
                .get(&format!("svc/{}/{name}", v.name))
                .unwrap_or_default();
            text_reply(text.to_string(), "text/plain; charset=utf-8")
        }
        Handler::FileInfo => {
            let Some(url) = query_param(&req, "url") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "fileinfo",
                    "url=<vhost>/<path> is required",
                );
            };
            let rt = daemon.runtime();
            match fileinfo::locate(&rt.config, url) {
                Some((cache_name, path)) => {
                    let key = crate::cache::key::primary_key(&cache_name, &path);
                    daemon.store.warm(&key).await;
                    let found = daemon.store.peek(&key);
                    reply(StatusCode::OK, &fileinfo::reply(&path, found))
                }
                None => error(
                    StatusCode::NOT_FOUND,
                    "fileinfo",
                    format!("no vhost for {url}"),
                ),
            }
        }
        Handler::Ssl => {
            let expr = query_param(&req, "ciphersuite").map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            });
            match ssl_suites(expr.as_deref().unwrap_or("ALL")) {
                Ok(result) => reply(StatusCode::OK, &envelope("ssl", result)),
                Err(why) => error(StatusCode::BAD_REQUEST, "ssl", why),
            }
        }
        Handler::Origin => {
            let rt = daemon.runtime();
            match origin::monitoring(&rt, query_param(&req, "vhost")) {
                Some(v) => reply(StatusCode::OK, &v),
                None => error(StatusCode::NOT_FOUND, "origin", "no such vhost"),
            }
        }
        Handler::DnsList => reply(StatusCode::OK, &origin::dns_list(&daemon.runtime())),
        Handler::ResetOrigin => {
            let rt = daemon.runtime();
            match origin::reset(&rt, query_param(&req, "vhost")) {
                Some(names) => reply(StatusCode::OK, &envelope(method, json!(names))),
                None => error(StatusCode::NOT_FOUND, method, "no such vhost"),
            }
        }
        Handler::Mount | Handler::Unmount => command::disk(daemon, &req, endpoint.handler).await,
        Handler::Metrics => text_reply(metrics::render(daemon), metrics::CONTENT_TYPE),
        Handler::LogTrace => {
            let name = path.trim_start_matches("/monitoring/logtrace/");
            let Some(kind) = crate::log::LogKind::parse(name) else {
                return error(StatusCode::NOT_FOUND, method, format!("no log {name}"));
            };
            let vhost = query_param(&req, "vhost");
            if kind.per_vhost() && vhost.is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    method,
                    format!("the {name} log belongs to a vhost: vhost=<vhost name> is required"),
                );
            }
            let Some(sink) = daemon.logs.sink(kind, vhost) else {
                return error(
                    StatusCode::NOT_FOUND,
                    method,
                    format!("no vhost {}", vhost.unwrap_or("")),
                );
            };
            // `follow=OFF` (our addition): the recent lines only, like `tail` without `-f`.
            let follow =
                !query_param(&req, "follow").is_some_and(|f| f.eq_ignore_ascii_case("off"));
            let mut r = Response::new(logtrace(&sink, follow));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Handler::Realtime | Handler::Average => {
            // `realtime.xml` and friends say the format in the path.
            let ty = query_param(&req, "type").or_else(|| {
                path.rsplit_once('.')
                    .map(|(_, ext)| ext)
                    .filter(|e| ["xml", "json"].contains(e))
            });
            let Some(format) = monitoring::Format::parse(ty) else {
                return error(StatusCode::BAD_REQUEST, method, "type must be JSON or XML");
            };
            // `minutes=m` (our addition) reads the window SNMP's minute variable m reads.
            let minutes = match query_param(&req, "minutes") {
                None if endpoint.handler == Handler::Realtime => 0,
                None => 5,
                Some(m) => match m.parse::<u8>() {
                    Ok(m) if m <= 60 => m,
                    _ => return error(StatusCode::BAD_REQUEST, method, "minutes must be 0 to 60"),
                },
            };
            let window = match minutes {
                0 => Window::LastSecond,
                m => Window::Minutes(m),
            };
            let ct = if format == monitoring::Format::Xml {
                "application/xml"
            } else {
                "application/json"
            };
            text_reply(monitoring::render(daemon, window, format), ct)
        }
        Handler::Version => reply(StatusCode::OK, &envelope("version", json!(crate::VERSION))),
        Handler::VhostsList => {
            let rt = daemon.runtime();
            let names: Vec<&str> = rt.config.vhosts.iter().map(|v| v.name.as_str()).collect();
            reply(StatusCode::OK, &envelope("vhostslist", json!(names)))
        }
        Handler::Reload => {
            tracing::info!(client = %peer.ip(), "reload requested through the management API");
            match daemon.reload().await {
                Ok(s) => reply(StatusCode::OK, &envelope("reload", json!(s))),
                Err(e) => rejected("reload", &e),
            }
        }
    }
}

/// A log's recent lines, then (with `follow`) each new line as it is written,
/// until the client goes away. A follower too slow for the log skips lines and is
/// told how many.
fn logtrace(sink: &crate::log::Sink, follow: bool) -> Body {
    use tokio::sync::broadcast::error::RecvError;
    let (recent, mut live) = sink.follow();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        for line in recent {
            if tx
                .send(bytes::Bytes::from(format!("{line}\n")))
                .await
                .is_err()
            {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            let chunk = tokio::select! {
                line = live.recv() => match line {
                    Ok(line) => format!("{line}\n"),
                    Err(RecvError::Lagged(n)) => format!("# {n} lines skipped (this reader was too slow)\n"),
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            };
            if tx.send(bytes::Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    Body::Stream(rx)
}

/// 500 for a configuration that was not put in force (reload, restore): every
/// error on its own line, `file:line: <Element>: message`.
fn rejected(method: &str, e: &crate::daemon::DaemonError) -> Response<Body> {
    tracing::error!("{method} rejected; the previous configuration keeps serving:\n{e}");
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"version": crate::VERSION, "method": method, "status": "ERROR", "code": 500,
                "message": "configuration rejected; the previous configuration keeps serving",
                "errors": e.to_string().lines().collect::<Vec<_>>()}),
    )
}

/// A reply whose body is `text` as it is.
fn text_reply(text: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}
