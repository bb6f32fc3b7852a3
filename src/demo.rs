//! `kurad demo`: a vhost in front of a built-in origin, memory only, no files
//! and no root needed. The demo configuration goes through the same loader as
//! `/etc/kura`, so it also shows what a minimal configuration looks like.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::proxy::body::Body;

/// One object of the built-in origin.
struct DemoObject {
    path: &'static str,
    cache_control: Option<&'static str>,
    content_type: &'static str,
    body: fn() -> Bytes,
    what: &'static str,
}

fn pattern(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| b"kura-demo-body\n"[i % 15])
            .collect::<Vec<u8>>(),
    )
}

static K1: LazyLock<Bytes> = LazyLock::new(|| pattern(1024));
static K100: LazyLock<Bytes> = LazyLock::new(|| pattern(100 * 1024));
static M10: LazyLock<Bytes> = LazyLock::new(|| pattern(10 << 20));

const OBJECTS: &[DemoObject] = &[
    DemoObject {
        path: "/hello.txt",
        cache_control: Some("max-age=60"),
        content_type: "text/plain",
        body: || Bytes::from_static(b"Hello from the kura demo origin.\n"),
        what: "fresh for 60 s",
    },
    DemoObject {
        path: "/time",
        cache_control: None,
        content_type: "text/plain",
        body: || {
            Bytes::from(format!(
                "origin time: {}\n",
                httpdate::fmt_http_date(SystemTime::now())
            ))
        },
        what: "no cache headers, no validator: fetched each time (RFC 9111) unless <Res2xx> is written",
    },
    DemoObject {
        path: "/1k.bin",
        cache_control: Some("max-age=3600"),
        content_type: "application/octet-stream",
        body: || K1.clone(),
        what: "1 KiB",
    },
    DemoObject {
        path: "/100k.bin",
        cache_control: Some("max-age=3600"),
        content_type: "application/octet-stream",
        body: || K100.clone(),
        what: "100 KiB",
    },
    DemoObject {
        path: "/10m.bin",
        cache_control: Some("max-age=3600"),
        content_type: "application/octet-stream",
        body: || M10.clone(),
        what: "10 MiB",
    },
    DemoObject {
        path: "/no-store.txt",
        cache_control: Some("no-store"),
        content_type: "text/plain",
        body: || {
            Bytes::from(format!(
                "never cached: {}\n",
                httpdate::fmt_http_date(SystemTime::now())
            ))
        },
        what: "Cache-Control: no-store, always a miss",
    },
];

async fn origin(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let mut resp = match OBJECTS.iter().find(|o| o.path == path) {
        Some(o) => {
            let mut r = Response::new(Body::full((o.body)()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(o.content_type),
            );
            if let Some(cc) = o.cache_control {
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, header::HeaderValue::from_static(cc));
            }
            r
        }
        None if path == "/" => {
            let list: String = OBJECTS
                .iter()
                .map(|o| format!("{:<14} {}\n", o.path, o.what))
                .collect();
            Response::new(Body::full(format!("kura demo origin objects:\n{list}")))
        }
        None => {
            let mut r = Response::new(Body::full("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    resp.headers_mut().insert(
        header::SERVER,
        header::HeaderValue::from_static("kura-demo-origin"),
    );
    Ok(resp)
}

/// Starts the built-in origin on an ephemeral loopback port.
pub async fn start_origin() -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(origin))
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The demo's server.xml and vhosts.xml.
pub fn config(listen: SocketAddr, manager_port: u16, origin: SocketAddr) -> (String, String) {
    let server = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Server>
    <Host>
        <Name>kura-demo</Name>
        <Manager Port="{manager_port}" Role="Admin" />
    </Host>
    <Cache>
        <!-- Memory-Only mode: no <Disk> -->
        <Storage />
        <SystemMemoryRatio>10</SystemMemoryRatio>
    </Cache>
</Server>
"#
    );
    let vhosts = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Vhosts>
    <Vhost Name="demo.kura">
        <Alias>localhost</Alias>
        <Alias>*.demo.kura</Alias>
        <Listen>{listen}</Listen>
        <Origin>
            <Address>{origin}</Address>
        </Origin>
    </Vhost>
    <Default>demo.kura</Default>
</Vhosts>
"#
    );
    (server, vhosts)
}

/// What `kurad demo` prints once it serves.
pub fn banner(listen: SocketAddr, manager: SocketAddr, origin: SocketAddr) -> String {
    let objects: String = OBJECTS
        .iter()
        .map(|o| format!("    {:<14} {}\n", o.path, o.what))
        .collect();
    format!(
        "kura demo: vhost demo.kura on http://{listen} in front of a built-in origin on {origin} (memory only)\n\
         Try a miss, then a hit:\n\
         \x20   curl -si http://{listen}/hello.txt    # X-Cache: MISS\n\
         \x20   curl -si http://{listen}/hello.txt    # X-Cache: HIT, Age grows\n\
         Objects:\n{objects}\
         Management API: curl -s http://{manager}/monitoring/vhostslist\n\
         Stop with Ctrl-C.\n"
    )
}
