//! The configuration lifecycle endpoints (guide chapter 3; upload replies as
//! the 2.5.16 guide gives them): `/conf/latest`, `/conf/history`,
//! `/conf/restore`, `/conf/download`, `/conf/upload[/server.xml|/vhosts.xml]`.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyDataStream, BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{envelope, error, query_param, rejected, reply};
use crate::config::files::{ConfFiles, MAX_ARCHIVE_BYTES, SERVER_XML, VHOSTS_XML};
use crate::config::history::{ConfKind, ConfRecord};
use crate::daemon::{Daemon, DaemonError};
use crate::proxy::body::Body;

/// One history entry as `/conf/history` shows it: every value a string.
fn entry(r: &ConfRecord) -> Value {
    let (date, time) = r.date_and_time();
    json!({
        "id": r.id.to_string(),
        "conf-date": date,
        "conf-time": time,
        "type": r.kind.as_str(),
        "size": r.fingerprint.size.to_string(),
        "hash": r.fingerprint.sha1,
        "ver": r.version,
    })
}

/// `/conf/history` (oldest first, as the guide's example) or `/conf/latest`.
pub fn history(daemon: &Daemon, latest_only: bool) -> Response<Body> {
    let history = daemon.history();
    let records = history.all();
    let shown = if latest_only {
        &records[..records.len().min(1)]
    } else {
        records
    };
    let entries: Vec<Value> = shown.iter().rev().map(entry).collect();
    reply(StatusCode::OK, &json!({ "history": entries }))
}

/// The record `hash=` or else `id=` names (`Err`: the reply saying why not).
fn chosen(
    daemon: &Daemon,
    req: &Request<Incoming>,
    method: &str,
    not_found: StatusCode,
) -> Result<ConfRecord, Box<Response<Body>>> {
    let hash = query_param(req, "hash");
    let id = match query_param(req, "id").map(str::parse::<u32>) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                method,
                "id must be a number",
            )))
        }
        None => None,
    };
    if hash.is_none() && id.is_none() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            method,
            "hash=<SHA-1> or id=<n> is required",
        )));
    }
    daemon.history().find(hash, id).cloned().ok_or_else(|| {
        let what = hash.map_or_else(
            || format!("id {}", id.unwrap_or(0)),
            |h| format!("hash {h}"),
        );
        Box::new(error(
            not_found,
            method,
            format!("no configuration with {what} in the history"),
        ))
    })
}

/// `/conf/download?hash=|id=`: the archive.
pub fn download(daemon: &Daemon, req: &Request<Incoming>) -> Response<Body> {
    let record = match chosen(daemon, req, "download", StatusCode::NOT_FOUND) {
        Ok(r) => r,
        Err(reply) => return *reply,
    };
    let archive = daemon.history().archive(&record);
    match archive {
        Ok(bytes) => Response::builder()
            .header(header::CONTENT_TYPE, "application/x-compressed")
            .header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", record.archive_name()),
            )
            .body(Body::full(Bytes::from(bytes.to_vec())))
            .expect("valid head"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "download",
            format!("cannot read {}: {e}", record.path),
        ),
    }
}

/// `/conf/restore?hash=|id=`: validates the archived configuration and puts it
/// in force as a new `restored` entry. Failures answer 500, as the guide says.
pub async fn restore(daemon: &Arc<Daemon>, req: &Request<Incoming>) -> Response<Body> {
    let record = match chosen(daemon, req, "restore", StatusCode::INTERNAL_SERVER_ERROR) {
        Ok(r) => r,
        Err(reply) => return *reply,
    };
    let archive = daemon.history().archive(&record);
    let bytes = match archive {
        Ok(bytes) => bytes,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "restore",
                format!("cannot read {}: {e}", record.path),
            )
        }
    };
    let applied = match ConfFiles::from_tgz(&bytes) {
        Ok(files) => daemon.replace(files, ConfKind::Restore).await,
        Err(e) => Err(e.into()),
    };
    match applied {
        Ok(summary) => {
            tracing::info!(id = record.id, hash = %record.fingerprint.sha1, "configuration restored");
            reply(
                StatusCode::OK,
                &envelope(
                    "restore",
                    json!({"restored": entry(&record), "reload": summary}),
                ),
            )
        }
        Err(e) => rejected("restore", &e),
    }
}

/// What an upload failed on: the 2.5.16 guide's result codes.
#[derive(Debug, Clone, Copy)]
enum UploadResult {
    /// E0000: applied.
    Applied,
    /// E0001: the request carries no file.
    NoFile,
    /// E0002: the archive cannot be unpacked.
    NotAnArchive,
    /// E0003: the configuration cannot be put in force (files, ports).
    NotLoaded,
    /// E0004: the configuration is invalid.
    Invalid,
}

impl UploadResult {
    fn code(self) -> &'static str {
        match self {
            UploadResult::Applied => "E0000",
            UploadResult::NoFile => "E0001",
            UploadResult::NotAnArchive => "E0002",
            UploadResult::NotLoaded => "E0003",
            UploadResult::Invalid => "E0004",
        }
    }
}

/// `POST /conf/upload`: a whole configuration as a tgz; `/conf/upload/server.xml`
/// and `/conf/upload/vhosts.xml`: one XML file replacing the one in force.
/// The file is the multipart field `<Manager UploadMultipartName>` or, without
/// multipart, the request body. Invalid uploads change nothing.
pub async fn upload(daemon: &Arc<Daemon>, req: Request<Incoming>) -> Response<Body> {
    let single = req
        .uri()
        .path()
        .strip_prefix("/conf/upload/")
        .filter(|f| [SERVER_XML, VHOSTS_XML].contains(f))
        .map(str::to_string);
    let field = daemon.runtime().config.server.manager.upload_field.clone();
    let file = match uploaded_file(req, &field).await {
        Ok(Some(f)) if !f.is_empty() => f,
        Ok(_) => {
            return upload_failed(
                UploadResult::NoFile,
                format!("no file: send it as the multipart field \"{field}\" or as the body"),
                Vec::new(),
            )
        }
        Err(e) => return upload_failed(UploadResult::NoFile, e, Vec::new()),
    };
    let files = match &single {
        Some(name) => match String::from_utf8(file.to_vec()) {
            Ok(text) => Ok(daemon.runtime().config.files.with(name, text)),
            Err(_) => Err(format!("{name} is not UTF-8 text")),
        },
        None => ConfFiles::from_tgz(&file).map_err(|e| e.to_string()),
    };
    let files = match files {
        Ok(f) => f,
        Err(message) => return upload_failed(UploadResult::NotAnArchive, message, Vec::new()),
    };
    match daemon.replace(files, ConfKind::Upload).await {
        Ok(summary) => {
            let hash = daemon
                .history()
                .all()
                .first()
                .map(|r| r.fingerprint.sha1.clone());
            reply(
                StatusCode::OK,
                &json!({"version": crate::VERSION, "method": "uploadconfig", "status": "OK",
                        "result": UploadResult::Applied.code(), "hash": hash, "reload": summary}),
            )
        }
        Err(e) => {
            let result = match e {
                DaemonError::Config(_) => UploadResult::Invalid,
                DaemonError::Archive(_) => UploadResult::NotAnArchive,
                DaemonError::Bind { .. } | DaemonError::Install(_) | DaemonError::Logs(_) => {
                    UploadResult::NotLoaded
                }
            };
            tracing::error!("upload rejected; the previous configuration keeps serving:\n{e}");
            upload_failed(
                result,
                "configuration rejected; the previous configuration keeps serving".into(),
                e.to_string().lines().map(str::to_string).collect(),
            )
        }
    }
}

/// The upload failure reply: 500 with the guide's `Fail` and result code, plus
/// our `code`, `message` and `errors`.
fn upload_failed(result: UploadResult, message: String, errors: Vec<String>) -> Response<Body> {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"version": crate::VERSION, "method": "uploadconfig", "status": "Fail",
                "result": result.code(), "code": 500, "message": message, "errors": errors}),
    )
}

/// The uploaded file: the multipart field `field`, or the whole body.
async fn uploaded_file(req: Request<Incoming>, field: &str) -> Result<Option<Bytes>, String> {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| ct.to_ascii_lowercase().starts_with("multipart/"))
        .map(|ct| multer::parse_boundary(ct).map_err(|e| format!("Content-Type: {e}")))
        .transpose()?;
    let Some(boundary) = boundary else {
        let body = Limited::new(req.into_body(), MAX_ARCHIVE_BYTES as usize)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        return Ok(Some(body.to_bytes()));
    };
    let limits = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_ARCHIVE_BYTES + 64 * 1024));
    let stream = BodyDataStream::new(req.into_body());
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, limits);
    while let Some(part) = multipart
        .next_field()
        .await
        .map_err(|e| format!("multipart: {e}"))?
    {
        if part.name() == Some(field) {
            return part
                .bytes()
                .await
                .map(Some)
                .map_err(|e| format!("multipart field \"{field}\": {e}"));
        }
    }
    Ok(None)
}
