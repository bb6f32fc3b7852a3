//! `/command/purge`, `expire`, `expireafter`, `hardpurge` (chapter 5) as GET or
//! POST forms, and the `PURGE`/`EXPIRE`/`HARDPURGE` methods.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{error, reply};
use crate::cache::purge::{self, Command, Outcome, PurgeError};
use crate::cache::store::Store;
use crate::config::Config;
use crate::proxy::body::Body;

/// Largest POST form read.
const MAX_FORM: usize = 64 * 1024;

/// The command an extended HTTP method names, if any.
pub fn method_command(method: &Method) -> Option<Command> {
    match method.as_str() {
        "PURGE" => Some(Command::Purge),
        "EXPIRE" => Some(Command::Expire),
        "HARDPURGE" => Some(Command::HardPurge),
        _ => None,
    }
}

/// The target of a purge method: the `Host` (without port) and the request target.
pub fn method_target(headers: &http::HeaderMap, uri: &http::Uri) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{host}{target}")
}

/// `sec=` and `url=` of a query or form. `url=` takes the rest of the string, so
/// a target's own query string (`url=/a.jsp?x=1&y=2`) survives; that is why the
/// guide asks for `sec` first.
fn params(raw: &str) -> (Option<&str>, Option<String>) {
    let mut sec = None;
    let mut rest = raw;
    while !rest.is_empty() {
        if let Some(url) = rest.strip_prefix("url=") {
            return (sec, Some(url.to_string()));
        }
        let (item, tail) = rest.split_once('&').unwrap_or((rest, ""));
        if let Some(v) = item.strip_prefix("sec=") {
            sec = Some(v);
        }
        rest = tail;
    }
    (sec, None)
}

/// The targets of a `url=` value: split on `|`, then each percent-decoded (so an
/// encoded `%7C` stays inside its target).
pub fn targets(url: &str) -> Vec<String> {
    url.split('|')
        .map(|t| {
            percent_encoding::percent_decode_str(t)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Runs a purge-family command and builds the guide's reply.
pub async fn execute(
    store: &Arc<Store>,
    config: &Config,
    command: Command,
    targets: &[String],
    last_host: &parking_lot::Mutex<Option<String>>,
) -> Response<Body> {
    let name = command.as_str();
    match purge::run(store, config, command, targets, last_host).await {
        Ok(out) => {
            let status = if out.count == 0 {
                StatusCode::from_u16(out.no_target_status).unwrap_or(StatusCode::OK)
            } else {
                StatusCode::OK
            };
            reply(status, &envelope(name, &out))
        }
        Err(e) => {
            let status = match e {
                PurgeError::NoTarget | PurgeError::NoHost(_) => StatusCode::BAD_REQUEST,
                PurgeError::UnknownHost(_) => StatusCode::NOT_FOUND,
                PurgeError::RootForbidden(..) => StatusCode::FORBIDDEN,
            };
            error(status, name, e.to_string())
        }
    }
}

fn envelope(name: &str, out: &Outcome) -> Value {
    json!({
        "version": crate::VERSION,
        "method": name,
        "status": "OK",
        "result": {"Count": out.count, "Size": out.size, "Time": out.time_ms},
    })
}

/// `/command/<name>` on the management port, GET or POST.
pub async fn command(daemon: &crate::daemon::Daemon, req: Request<Incoming>) -> Response<Body> {
    let name = req.uri().path().trim_start_matches("/command/").to_string();
    let raw = if req.method() == Method::POST {
        match Limited::new(req.into_body(), MAX_FORM).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &name,
                    format!("cannot read the form: {e}"),
                )
            }
        }
    } else {
        req.uri().query().unwrap_or("").to_string()
    };
    let (sec, url) = params(raw.trim());
    let command = match name.as_str() {
        "purge" => Command::Purge,
        "expire" => Command::Expire,
        "hardpurge" => Command::HardPurge,
        _ => match sec.map(str::parse::<u64>) {
            None => Command::ExpireAfter(Duration::from_secs(86_400)),
            Some(Ok(s)) if s > 0 => Command::ExpireAfter(Duration::from_secs(s)),
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &name,
                    "sec must be a whole number of seconds above 0",
                )
            }
        },
    };
    let Some(url) = url else {
        return error(
            StatusCode::BAD_REQUEST,
            &name,
            PurgeError::NoTarget.to_string(),
        );
    };
    let config = daemon.runtime().config.clone();
    execute(
        &daemon.store,
        &config,
        command,
        &targets(&url),
        &daemon.purge_host,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_takes_the_rest_and_sec_must_come_first() {
        assert_eq!(
            params("sec=60&url=example.com/a.jsp?x=1&y=2"),
            (Some("60"), Some("example.com/a.jsp?x=1&y=2".to_string()))
        );
        assert_eq!(
            params("url=example.com/a?sec=5"),
            (None, Some("example.com/a?sec=5".to_string()))
        );
        assert_eq!(
            targets("example.com/a%20b.jpg|/c%7Cd.jpg"),
            ["example.com/a b.jpg", "/c|d.jpg"]
        );
        assert_eq!(params("x=1"), (None, None));
    }
}
