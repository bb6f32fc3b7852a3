//! Test harness: a real kurad process, a scriptable origin, and curl.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// What the origin answers for one request.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
    pub delay: Duration,
    /// Close the connection without answering (an origin that dies mid-request).
    pub reset: bool,
}

pub enum ReplyBody {
    Bytes(Vec<u8>),
    /// `len` bytes of [`pattern`] generated in 64 KiB chunks, without
    /// Content-Length unless `with_length`, `pace` apart (blocking one of the
    /// origin's own threads: a slow origin).
    Generated {
        len: u64,
        with_length: bool,
        pace: Duration,
    },
    /// Bytes `from..to` of a virtual object of [`pattern`] bytes, generated as
    /// they are sent (a 10 GiB object costs no memory), with a Content-Length.
    Pattern {
        from: u64,
        to: u64,
    },
}

/// The byte at offset `at` of a [`ReplyBody::Pattern`] object: a part served
/// from the wrong offset (by any power of two) shows.
pub fn pattern_byte(at: u64) -> u8 {
    (at % 251) as u8
}

/// Bytes `from..to` of a pattern object.
pub fn pattern(from: u64, to: u64) -> Vec<u8> {
    (from..to).map(pattern_byte).collect()
}

/// What an origin that supports ranges (as nginx does) answers for a pattern
/// object of `len` bytes with `etag`: 206 for a satisfiable single range, 416
/// past the end, else 200 with all of it.
pub fn ranged(s: &Seen, len: u64, etag: &str) -> Reply {
    let range = s
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let first: u64 = a.parse().ok()?;
            let last: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().ok()?
            };
            Some((first, last.min(len.saturating_sub(1))))
        });
    let reply = |status: u16, body: ReplyBody| Reply {
        status,
        headers: vec![
            ("etag".into(), etag.into()),
            ("cache-control".into(), "max-age=3600".into()),
            ("accept-ranges".into(), "bytes".into()),
        ],
        body,
        delay: Duration::ZERO,
        reset: false,
    };
    match range {
        Some((first, _)) if first >= len => {
            reply(416, ReplyBody::Bytes(vec![])).header("content-range", &format!("bytes */{len}"))
        }
        Some((first, last)) => reply(
            206,
            ReplyBody::Pattern {
                from: first,
                to: last + 1,
            },
        )
        .header("content-range", &format!("bytes {first}-{last}/{len}")),
        None => reply(200, ReplyBody::Pattern { from: 0, to: len }),
    }
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: ReplyBody::Bytes(body.as_bytes().to_vec()),
            delay: Duration::ZERO,
            reset: false,
        }
    }
    /// No answer: the connection is closed.
    pub fn reset() -> Reply {
        Reply {
            reset: true,
            ..Reply::ok("")
        }
    }
    pub fn status(mut self, s: u16) -> Reply {
        self.status = s;
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

/// A request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    /// The request body.
    pub body: Vec<u8>,
    /// The address the request came from (one per origin connection).
    pub peer: SocketAddr,
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// An HTTP origin on 127.0.0.1:0 that records every request.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _rt: tokio::runtime::Runtime,
}

impl Origin {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        Self::start_at("127.0.0.1:0".parse().unwrap(), handler)
    }

    /// An origin on `addr` (an address an earlier origin of the test had: a restart).
    pub fn start_at(
        addr: SocketAddr,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen2 = seen.clone();
        rt.spawn(async move {
            while let Ok((s, peer)) = listener.accept().await {
                let (seen, handler) = (seen2.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (seen, handler) = (seen.clone(), handler.clone());
                        async move {
                            let (head, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let req = hyper::Request::from_parts(head, ());
                            let s = Seen {
                                method: req.method().to_string(),
                                path: req
                                    .uri()
                                    .path_and_query()
                                    .map_or("/".into(), |p| p.to_string()),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_string())
                                    })
                                    .collect(),
                                body,
                                peer,
                            };
                            seen.lock().unwrap().push(s.clone());
                            let reply = handler(&s);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            if reply.reset {
                                return Err(std::io::Error::other("reset by the test"));
                            }
                            Ok(render(reply))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Origin {
            addr,
            seen,
            _rt: rt,
        }
    }

    /// Requests the origin received for `path` (path and query).
    pub fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .count()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type Boxed = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn render(reply: Reply) -> hyper::Response<Boxed> {
    let mut b = hyper::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        b = b.header(k, v);
    }
    let body: Boxed = match reply.body {
        ReplyBody::Bytes(v) => Full::new(Bytes::from(v)).boxed(),
        ReplyBody::Pattern { from, to } => {
            b = b.header("content-length", (to - from).to_string());
            let mut at = from;
            let stream = futures_stream(move || {
                let n = (to - at).min(64 * 1024);
                (n > 0).then(|| {
                    at += n;
                    Ok::<_, Infallible>(Frame::data(Bytes::from(pattern(at - n, at))))
                })
            });
            StreamBody::new(stream).boxed()
        }
        ReplyBody::Generated {
            len,
            with_length,
            pace,
        } => {
            if with_length {
                b = b.header("content-length", len.to_string());
            }
            const CHUNK: u64 = 64 * 1024;
            // Every chunk is a slice of this, from its offset's place in the period.
            let period = Bytes::from(pattern(0, CHUNK + 251));
            let mut at = 0;
            let stream = futures_stream(move || {
                if at == len {
                    return None;
                }
                let n = (len - at).min(CHUNK);
                let start = (at % 251) as usize;
                at += n;
                std::thread::sleep(pace);
                let chunk = period.slice(start..start + n as usize);
                Some(Ok::<_, Infallible>(Frame::data(chunk)))
            });
            StreamBody::new(stream).boxed()
        }
    };
    b.body(body).unwrap()
}

/// A stream from a closure, without pulling in the futures crate.
fn futures_stream<T>(
    next: impl FnMut() -> Option<T> + Send + Unpin + 'static,
) -> impl futures_core::Stream<Item = T> + Send {
    struct S<F>(F);
    impl<T, F: FnMut() -> Option<T> + Unpin> futures_core::Stream for S<F> {
        type Item = T;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready((self.get_mut().0)())
        }
    }
    S(next)
}

/// A running kurad with its configuration directory.
pub struct Kurad {
    pub child: Child,
    pub dir: tempfile::TempDir,
    /// Bound address of each configured listen address, as logged.
    pub listening: Arc<Mutex<Vec<(String, SocketAddr)>>>,
    pub manager: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

pub fn kurad_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kurad")
}

pub fn kuractl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kuractl")
}

/// A port for a test to write into a configuration (where port 0 cannot serve:
/// two listens sharing one port). Taken from below the kernel's ephemeral range,
/// so no outgoing connection or port-0 listener of a concurrent test can take it
/// between this check and kurad's bind; free on every address when returned.
pub fn listen_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let below = (low - 10_000)..low;
    // A random start per process, so concurrent test binaries try different ports.
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as usize;
    loop {
        let port = below.start + ((seed + NEXT.fetch_add(1, Ordering::Relaxed)) % 10_000) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
            && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
}

/// Writes a configuration directory.
pub fn conf_dir(server_xml: &str, vhosts_xml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.xml"), server_xml).unwrap();
    std::fs::write(dir.path().join("vhosts.xml"), vhosts_xml).unwrap();
    dir
}

/// A server.xml with the manager on an ephemeral port and `cache` inside `<Cache>`.
pub fn server_xml(cache: &str, vhost_default: &str) -> String {
    format!(
        "<Server>\n  <Host>\n    <Manager Port=\"0\" Role=\"Admin\" />\n  </Host>\n  <Cache>\n    <Storage />\n{cache}\n  </Cache>\n  <VHostDefault>\n{vhost_default}\n  </VHostDefault>\n</Server>\n"
    )
}

/// A `<Vhost>` listening on 127.0.0.1:0 in front of `origin`.
pub fn vhost(name: &str, origin: SocketAddr, extra: &str) -> String {
    format!(
        "  <Vhost Name=\"{name}\">\n    <Listen>127.0.0.1:0</Listen>\n    <Origin><Address>{origin}</Address></Origin>\n{extra}\n  </Vhost>\n"
    )
}

pub fn vhosts_xml(body: &str) -> String {
    format!("<Vhosts>\n{body}</Vhosts>\n")
}

impl Kurad {
    /// Starts kurad on `dir` and waits until its HTTP and manager ports are bound.
    pub fn start(dir: tempfile::TempDir) -> Kurad {
        Self::start_args(dir, &[])
    }

    pub fn start_args(dir: tempfile::TempDir, extra: &[&str]) -> Kurad {
        Self::start_env(dir, extra, &[])
    }

    /// Starts kurad with `extra` arguments and `env` in its environment.
    pub fn start_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &Path)]) -> Kurad {
        let mut cmd = Command::new(kurad_bin());
        cmd.envs(env.iter().copied());
        cmd.arg("--conf-dir").arg(dir.path());
        if !extra.contains(&"--state-dir") {
            cmd.arg("--state-dir").arg(dir.path().join("state"));
        }
        if !extra.contains(&"--log-dir") {
            cmd.arg("--log-dir").arg(dir.path().join("logs"));
        }
        let mut child = cmd
            .args(extra)
            .env("KURA_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kurad");
        let (log, listening, manager) = watch_log(&mut child);
        let manager = manager
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("kurad did not start:\n{}", log.lock().unwrap().join("\n"))
            });
        Kurad {
            child,
            dir,
            listening,
            manager,
            log,
        }
    }

    /// The bound address of the SNMP agent, once it has logged it.
    pub fn snmp(&self) -> SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .listening
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(spec, _)| spec.starts_with("snmp "))
                .map(|(_, a)| *a);
            if let Some(a) = found {
                return a;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no snmp listening line:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bound address of the first HTTP listener.
    pub fn http(&self) -> SocketAddr {
        let l = self.listening.lock().unwrap();
        l.iter()
            .find(|(spec, _)| !spec.contains(' '))
            .expect("an HTTP listener")
            .1
    }

    /// The bound addresses of `service`'s listeners, in the order they were logged.
    pub fn service(&self, service: &str) -> Vec<SocketAddr> {
        let prefix = format!("{service} ");
        let l = self.listening.lock().unwrap();
        l.iter()
            .filter(|(spec, _)| spec.starts_with(&prefix))
            .map(|(_, a)| *a)
            .collect()
    }

    /// The bound addresses of the HTTPS listeners, in the order they were logged.
    pub fn https(&self) -> Vec<SocketAddr> {
        self.service("https")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until the log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn conf_path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_vhosts(&self, text: &str) {
        std::fs::write(self.dir.path().join("vhosts.xml"), text).unwrap();
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }
}

impl Drop for Kurad {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects kurad's log lines; returns them, the listening list and the manager address.
#[allow(clippy::type_complexity)]
pub fn watch_log(
    child: &mut Child,
) -> (
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<Vec<(String, SocketAddr)>>>,
    mpsc::Receiver<SocketAddr>,
) {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let listening: Arc<Mutex<Vec<(String, SocketAddr)>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let (log2, listening2) = (log.clone(), listening.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let field = |k: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .map(|s| s.trim_matches('"').to_string())
                };
                if let (Some(addr), Some(spec)) = (field("addr="), field("spec=")) {
                    let addr: SocketAddr = addr.parse().unwrap();
                    match field("service=").unwrap_or_default().as_str() {
                        "manager" => {
                            let _ = tx.send(addr);
                        }
                        "http" => listening2.lock().unwrap().push((spec, addr)),
                        service => listening2
                            .lock()
                            .unwrap()
                            .push((format!("{service} {spec}"), addr)),
                    }
                }
            }
            log2.lock().unwrap().push(line);
        }
    });
    (log, listening, rx)
}

/// A response as curl saw it.
#[derive(Debug)]
pub struct CurlResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CurlResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

static CURL_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs curl against `url` with extra arguments.
pub fn curl(url: &str, args: &[&str]) -> CurlResponse {
    let n = CURL_SEQ.fetch_add(1, Ordering::Relaxed);
    let hdr: PathBuf = std::env::temp_dir().join(format!("kura-curl-{}-{n}.h", std::process::id()));
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-D"])
        .arg(&hdr)
        .args(args)
        .arg(url)
        .output()
        .expect("curl must be installed (apt-get install curl)");
    let head = std::fs::read_to_string(&hdr).unwrap_or_default();
    let _ = std::fs::remove_file(&hdr);
    // With redirects or 100-continue there may be several heads; keep the last.
    let last = head.trim_end().rsplit("\r\n\r\n").next().unwrap_or("");
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    CurlResponse {
        status,
        headers,
        body: out.stdout,
    }
}

/// curl GET with a Host header.
pub fn get(addr: SocketAddr, host: &str, path: &str) -> CurlResponse {
    curl(
        &format!("http://{addr}{path}"),
        &["-H", &format!("Host: {host}")],
    )
}

/// Sends one GET on `s` and reads the response; returns (status line, X-Cache, body).
pub fn exchange(s: &mut BufReader<TcpStream>, host: &str, path: &str) -> (String, String, String) {
    write!(s.get_mut(), "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut status = String::new();
    s.read_line(&mut status).unwrap();
    let (mut len, mut x_cache) = (0usize, String::new());
    loop {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if let Some(v) = lower.strip_prefix("x-cache:") {
            x_cache = v.trim().to_uppercase();
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (
        status.trim().to_string(),
        x_cache,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

pub fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

/// An origin for the known traffic mix: `/hit` is cacheable (1000 bytes), `/nf` a
/// 404 and anything else a miss, both `no-store`.
pub fn mix_origin() -> Origin {
    Origin::start(|s| match s.path.as_str() {
        "/hit" => Reply::ok(&"h".repeat(1000)).header("cache-control", "max-age=600"),
        "/nf" => Reply::ok("nope")
            .status(404)
            .header("cache-control", "no-store"),
        _ => Reply::ok("miss").header("cache-control", "no-store"),
    })
}

/// The known mix against a [`mix_origin`]: one miss fills the cache, then `hits`
/// hits, `misses` misses and `not_found` 404s (1 + hits + misses + not_found requests).
pub fn send_mix(http: SocketAddr, host: &str, hits: u64, misses: u64, not_found: u64) {
    let mut urls = vec!["/hit".to_string()];
    urls.extend((0..hits).map(|_| "/hit".to_string()));
    urls.extend((0..misses).map(|i| format!("/m{i}")));
    urls.extend((0..not_found).map(|_| "/nf".to_string()));
    for u in &urls {
        assert!(get(http, host, u).status > 0);
    }
}

/// A client that GETs one URL in a loop until stopped, counting the answers
/// `ok` accepts and those it does not (reload, upload and restore tests run
/// one through every change to prove no request fails meanwhile).
pub struct ClientLoop {
    /// Tells the loop to finish.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The looping thread; returns (accepted, failed).
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl ClientLoop {
    pub fn start(
        addr: SocketAddr,
        host: &str,
        path: &str,
        ok: impl Fn(&CurlResponse) -> bool + Send + 'static,
    ) -> ClientLoop {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, host, path) = (stop.clone(), host.to_string(), path.to_string());
        let thread = std::thread::spawn(move || {
            let (mut good, mut bad) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                if ok(&get(addr, &host, &path)) {
                    good += 1;
                } else {
                    bad += 1;
                }
            }
            (good, bad)
        });
        ClientLoop { stop, thread }
    }

    /// Stops the loop: (accepted, failed) answers.
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A test CA and the certificates it signs, made with the openssl CLI in a temporary directory.
pub struct TestCa {
    pub dir: tempfile::TempDir,
}

impl TestCa {
    /// A new self-signed CA (`ca.pem`, `ca.key`).
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=kura test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        TestCa { dir }
    }

    /// The CA certificate, for `curl --cacert` and `<CA>`.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes a `good` OCSP response for `cert` (signed by the CA) to `<cert>.ocsp`.
    pub fn staple(&self, cert: &Path) {
        let d = self.dir.path();
        let serial = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        let serial = String::from_utf8_lossy(&serial.stdout);
        let serial = serial.trim().trim_start_matches("serial=");
        std::fs::write(
            d.join("index.txt"),
            format!("V\t301231235959Z\t\t{serial}\tunknown\t/CN=x\n"),
        )
        .unwrap();
        let cert = cert.display().to_string();
        openssl(
            d,
            &[
                "ocsp", "-issuer", "ca.pem", "-cert", &cert, "-reqout", "req.der",
            ],
        );
        let out = format!("{cert}.ocsp");
        openssl(
            d,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-rsigner",
                "ca.pem",
                "-rkey",
                "ca.key",
                "-CA",
                "ca.pem",
                "-reqin",
                "req.der",
                "-respout",
                &out,
                "-ndays",
                "1",
            ],
        );
    }

    /// Signs a leaf `<file>.pem` + `<file>.key` with subject `CN=cn` for `dns` names;
    /// `rsa` makes an RSA 2048 key (the guide's), else ECDSA P-256.
    pub fn leaf(&self, file: &str, cn: &str, dns: &[&str], rsa: bool) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let san: Vec<String> = dns.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            d.join(format!("{file}.ext")),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
        .unwrap();
        let (key, csr) = (format!("{file}.key"), format!("{file}.csr"));
        let mut req = vec!["req", "-new", "-nodes", "-keyout", &key, "-out", &csr];
        let subj = format!("/CN={cn}");
        req.extend(["-subj", &subj]);
        if rsa {
            req.extend(["-newkey", "rsa:2048"]);
        } else {
            req.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        }
        openssl(d, &req);
        let (pem, ext) = (format!("{file}.pem"), format!("{file}.ext"));
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ],
        );
        (d.join(pem), d.join(key))
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An `<Https>` block serving `cert`/`key` (and `ca` as the chain) with extra attributes.
pub fn https_block(attrs: &str, cert: &Path, key: &Path, ca: Option<&Path>) -> String {
    let ca = ca.map_or(String::new(), |c| format!("<CA>{}</CA>", c.display()));
    format!(
        "  <Https {attrs}><Cert>{}</Cert><Key>{}</Key>{ca}</Https>\n",
        cert.display(),
        key.display()
    )
}

/// A server.xml like [`server_xml`] with `https` blocks in `<Server>`.
pub fn server_xml_https(https: &str, vhost_default: &str) -> String {
    server_xml("", vhost_default).replace("</Server>", &format!("{https}</Server>"))
}

/// `kurad check` of the configuration in `dir`: success, and what it printed
/// (stdout, then stderr).
pub fn kurad_check(dir: &Path) -> (bool, String) {
    let out = Command::new(kurad_bin())
        .args(["check", "--conf-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// libfaketime, which sets kurad's wall clock where a test wants it (`LD_PRELOAD`).
pub fn libfaketime() -> &'static Path {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists())
    .expect(
        "libfaketime is needed for the tests that move kurad's clock (apt-get install faketime)",
    )
}
