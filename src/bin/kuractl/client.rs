//! The management API over HTTP, and what a failed call means for the user:
//! which message and which exit code.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// The largest reply read into memory: configuration archives are the biggest
/// bodies the API sends, and they are far below this.
const MAX_BODY: u64 = 256 << 20;

/// Why a command failed, which decides its exit code.
#[derive(Debug)]
pub enum Failure {
    /// kurad answered with an error status (exit 1).
    Api {
        /// The API path called (without the query), to say which call failed.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The reply's JSON `message`, or its body when it is not JSON.
        message: String,
        /// The reply's `errors` array (placed configuration errors), one per line.
        errors: Vec<String>,
    },
    /// kurad answered 2xx with something kuractl cannot read (exit 1).
    BadReply(String),
    /// A local step failed: a file, a configuration check, an unknown vhost (exit 1).
    Local(String),
    /// kurad could not be reached at all (exit 3).
    Unreachable(String),
}

impl Failure {
    /// The exit code documented in `--help` (`cli::EXIT_CODES`).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Api { .. } | Failure::BadReply(_) | Failure::Local(_) => ExitCode::from(1),
            Failure::Unreachable(_) => ExitCode::from(3),
        }
    }

    /// Writes the failure to stderr.
    pub fn report(&self) {
        match self {
            Failure::Api {
                path,
                status: 501,
                message,
                ..
            } => eprintln!("kuractl: {path}: not in this kurad yet (501): {message}"),
            Failure::Api {
                path,
                status,
                message,
                errors,
            } => {
                eprintln!("kuractl: {path}: {message} ({status})");
                for e in errors {
                    eprintln!("  {e}");
                }
            }
            Failure::BadReply(m) | Failure::Local(m) | Failure::Unreachable(m) => {
                eprintln!("kuractl: {m}")
            }
        }
    }
}

/// A successful reply.
pub struct Reply {
    /// The API path called, for messages about the reply.
    pub path: String,
    /// `Content-Disposition`, when kurad named the body as a file.
    pub disposition: Option<String>,
    /// The body as sent (JSON text, or an archive).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Failure::BadReply(format!("{}: the reply is not JSON ({e})", self.path)))
    }

    /// The body as text, for printing the reply as it is.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection to one kurad's management port.
pub struct Client {
    /// Keeps one connection alive across the calls of a command (`top`).
    agent: ureq::Agent,
    /// `http://host:port`.
    base: String,
}

impl Client {
    /// A client for `base` (`http://host:port`) giving up after `timeout` per call.
    pub fn new(base: String, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            // Error statuses carry kurad's JSON message: read them as replies.
            .http_status_as_error(false)
            // The management port is reached directly; an http_proxy meant for
            // the web must not capture 127.0.0.1:10040.
            .proxy(None)
            .timeout_global(Some(timeout))
            .user_agent(concat!("kuractl/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent, base }
    }

    /// GET `path_and_query`.
    pub fn get(&self, path_and_query: &str) -> Result<Reply, Failure> {
        let url = format!("{}{path_and_query}", self.base);
        self.finish(path_and_query, self.agent.get(&url).call())
    }

    /// POST `body` with `content_type` to `path` (sent with a Content-Length,
    /// which the guide requires of an upload).
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Reply, Failure> {
        let url = format!("{}{path}", self.base);
        let sent = self
            .agent
            .post(&url)
            .header("Content-Type", content_type)
            .send(body);
        self.finish(path, sent)
    }

    /// Reads a reply whole and sorts it into success, kurad's error, or no kurad.
    fn finish(
        &self,
        path_and_query: &str,
        sent: Result<http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, Failure> {
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(p, _)| p)
            .to_string();
        let mut response = sent.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let disposition = response
            .headers()
            .get(http::header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        if (200..300).contains(&status) {
            return Ok(Reply {
                path,
                disposition,
                body,
            });
        }
        let (message, errors) = match serde_json::from_slice::<Value>(&body) {
            Ok(v) => (
                v["message"].as_str().unwrap_or("(no message)").to_string(),
                v["errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Err(_) => (
                String::from_utf8_lossy(&body).trim().to_string(),
                Vec::new(),
            ),
        };
        Err(Failure::Api {
            path,
            status,
            message,
            errors,
        })
    }

    /// A transport error: no reply from kurad.
    fn unreachable(&self, e: ureq::Error) -> Failure {
        let base = &self.base;
        // kurad drops connections from outside <Manager><Allow> without a word,
        // which looks exactly like a closed or refused connection from here.
        Failure::Unreachable(format!(
            "cannot reach kurad at {base}: {e} (is kurad running there, and is this address in <Manager><Allow>?)"
        ))
    }
}
