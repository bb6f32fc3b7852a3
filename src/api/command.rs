//! Daemon commands (guide chapters 2 and 3): `/command/restart`,
//! `/command/terminate` and `/command/cacheclear` act only with `key=JUSTDOIT`
//! (without it they answer how to confirm and do nothing, the guide's
//! confirmation step); `/command/cleanup[?age=days]`.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::endpoints::Handler;
use super::{envelope, error, query_param, reply};
use crate::daemon::{Daemon, Stop};
use crate::proxy::body::Body;

/// The confirmation key the guide documents.
pub const CONFIRM_KEY: &str = "JUSTDOIT";

/// How long a stop waits so the reply announcing it reaches the client.
const REPLY_GRACE: Duration = Duration::from_millis(200);

/// Restart, terminate or cache clear, once confirmed.
pub fn confirmed(
    daemon: &Arc<Daemon>,
    handler: Handler,
    req: &Request<Incoming>,
) -> Response<Body> {
    let method = handler.as_str();
    if query_param(req, "key") != Some(CONFIRM_KEY) {
        let path = req.uri().path();
        return reply(
            StatusCode::OK,
            &json!({"version": crate::VERSION, "method": method, "status": "Confirm",
                    "result": format!("nothing done: call {path}?key={CONFIRM_KEY} to {method}")}),
        );
    }
    let stop = match handler {
        Handler::CacheClear => {
            let (count, size) = daemon.store.clear();
            tracing::info!(
                objects = count,
                bytes = size,
                "cache cleared through the management API"
            );
            return reply(
                StatusCode::OK,
                &envelope(method, json!({"Count": count, "Size": size})),
            );
        }
        Handler::Restart => Stop::Restart,
        _ => Stop::Terminate,
    };
    tracing::info!(?stop, "stop requested through the management API");
    let d = daemon.clone();
    tokio::spawn(async move {
        tokio::time::sleep(REPLY_GRACE).await;
        d.request_stop(stop);
    });
    reply(StatusCode::OK, &envelope(method, json!(stop.as_str())))
}

/// `/command/cleanup[?age=days]`: the clean-up, with `age` or else `<Cleanup><Age>`.
pub fn cleanup(daemon: &Daemon, req: &Request<Incoming>) -> Response<Body> {
    let age = match query_param(req, "age").map(str::parse::<u32>) {
        None => daemon.runtime().config.server.cleanup.age_days,
        Some(Ok(days)) => days,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "cleanup",
                "age must be a whole number of days",
            )
        }
    };
    let (count, size, archives) = daemon.cleanup(age);
    reply(
        StatusCode::OK,
        &envelope(
            "cleanup",
            json!({"Count": count, "Size": size, "ConfigArchives": archives}),
        ),
    )
}

/// `/command/mount?disk=` and `/command/unmount?disk=` (chapter 18 Disk
/// Hot-Swap): the path exactly as in `<Disk>`. Mounting deletes what the disk
/// held: its content is invalidated.
pub async fn disk(daemon: &Daemon, req: &Request<Incoming>, handler: Handler) -> Response<Body> {
    let method = handler.as_str();
    let Some(path) = query_param(req, "disk").map(std::path::PathBuf::from) else {
        return error(
            StatusCode::BAD_REQUEST,
            method,
            "disk=<path as in <Disk>> is required",
        );
    };
    let store = daemon.store.clone();
    let target = path.clone();
    let done = tokio::task::spawn_blocking(move || match handler {
        Handler::Mount => store.mount(&target),
        _ => store.unmount(&target),
    })
    .await
    .ok()
    .flatten();
    match done {
        Some(()) => {
            daemon.publish_disk_states();
            tracing::info!(disk = %path.display(), method, "cache disk");
            reply(
                StatusCode::OK,
                &envelope(method, json!(path.display().to_string())),
            )
        }
        None => error(
            StatusCode::NOT_FOUND,
            method,
            format!("no <Disk> is {}", path.display()),
        ),
    }
}
