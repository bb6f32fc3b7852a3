//! The background work of a vhost's origins: `<Recovery>` probes of excluded IPs,
//! each `<HealthChecker>`, and re-resolving domain addresses.
//!
//! Every task holds only a weak reference to its pool, so a reload that replaces the
//! pool ends them at their next tick. Probes use their own connections, never the
//! request pool, and are not counted as origin sessions.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::header::{HOST, USER_AGENT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Either, Empty};

use super::connect::{ConnInfo, Connector};
use super::table::{OriginEntry, OriginIp, OriginTable};
use super::OriginPool;
use crate::config::origin::Probe;
use crate::log::lines::OriginTransaction;
use crate::log::VhostLog;
use crate::proxy::metered::head_bytes;

/// Which judge a probe reports to.
#[derive(Clone, Copy)]
enum Judge {
    /// Error detection's `<Recovery>`: only excluded IPs are probed.
    Recovery,
    /// The `<HealthChecker>` at this index: every IP is probed.
    Checker(usize),
}

/// Starts the vhost's probes and, when it has domain addresses, its resolver.
pub fn start(pool: &Arc<OriginPool>) {
    let weak = Arc::downgrade(pool);
    if pool.policy.recovery.recovery > 0 {
        tokio::spawn(probe_loop(
            weak.clone(),
            pool.policy.recovery.clone(),
            Judge::Recovery,
        ));
    }
    for (i, checker) in pool.policy.health_checkers.iter().enumerate() {
        tokio::spawn(probe_loop(weak.clone(), checker.clone(), Judge::Checker(i)));
    }
    if pool.table.entries.iter().any(OriginEntry::is_domain) {
        tokio::spawn(resolve_loop(weak, resolve_every(pool.policy.dns_ttl)));
    }
}

/// How often domains are resolved: the guide's 1 to 10 seconds, within the TTL.
fn resolve_every(ttl: Duration) -> Duration {
    (ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Runs one judge every `probe.cycle` until the pool is gone.
async fn probe_loop(pool: Weak<OriginPool>, probe: Probe, judge: Judge) {
    let mut ticker = tokio::time::interval(probe.cycle.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let targets: Vec<(Arc<OriginIp>, HeaderValue, String)> = pool
            .table
            .entries
            .iter()
            .flat_map(|e| {
                e.ips().into_iter().map(|ip| {
                    let a = &e.address;
                    let url = format!("{}://{}{}{}", a.scheme(), ip.addr, a.path, probe.uri);
                    (ip, e.host.clone(), url)
                })
            })
            .filter(|(ip, ..)| match judge {
                Judge::Recovery => ip
                    .errors
                    .excluded
                    .load(std::sync::atomic::Ordering::Relaxed),
                Judge::Checker(_) => true,
            })
            .collect();
        let vhost = pool.vhost.clone();
        let table = Arc::downgrade(&pool.table);
        let log = probe.log.then(|| pool.log.clone());
        drop(pool);
        let mut probes = tokio::task::JoinSet::new();
        for (ip, host, uri) in targets {
            let (probe, vhost, table) = (probe.clone(), vhost.clone(), table.clone());
            let log = log.clone();
            probes.spawn(async move {
                let started = std::time::Instant::now();
                let outcome = probe_once(&probe, &table, host, &uri).await;
                if let (Some(log), Ok(answer)) = (&log, &outcome) {
                    write_probe_line(log, judge, (&uri, started), answer);
                }
                let outcome = outcome.map(|a| a.status);
                // A reload that replaced the table carried the IP's health over already.
                if let Some(table) = table.upgrade() {
                    judge_outcome(&table, &ip, &probe, outcome, &vhost, judge);
                }
            });
        }
        while probes.join_next().await.is_some() {}
    }
}

/// Records a probe's outcome for `ip` and logs a change of state.
fn judge_outcome(
    table: &OriginTable,
    ip: &OriginIp,
    probe: &Probe,
    outcome: Result<u16, String>,
    vhost: &str,
    judge: Judge,
) {
    let (verdict, by) = match judge {
        Judge::Recovery => (&ip.errors, "recovery".to_string()),
        Judge::Checker(i) => (&ip.checks[i], format!("health checker {}", i + 1)),
    };
    let origin = &ip.addr;
    match outcome {
        Ok(status) if probe.accepts(status) => {
            if table.judge(vhost, ip, || verdict.succeed(probe.recovery)) {
                tracing::info!(vhost, %origin, by, "origin recovered");
            }
        }
        Ok(status) => {
            if table.judge(vhost, ip, || verdict.fail(probe.exclusion)) {
                tracing::warn!(vhost, %origin, by, status, "origin excluded");
            }
        }
        Err(reason) => {
            if table.judge(vhost, ip, || verdict.fail(probe.exclusion)) {
                tracing::warn!(vhost, %origin, by, reason, "origin excluded");
            }
        }
    }
}

/// What a probe got.
struct Answer {
    /// The status.
    status: u16,
    /// The connection's facts.
    info: Option<ConnInfo>,
    /// Request and response head bytes.
    heads: (u64, u64),
    /// Body bytes read (none for `<Recovery>`).
    bytes: u64,
    /// Time to the response head.
    first_byte: Duration,
}

/// The probe's origin log line (`Log="ON"`), `cs-reqinfo` naming the judge.
fn write_probe_line(
    log: &VhostLog,
    judge: Judge,
    (url, started): (&str, std::time::Instant),
    a: &Answer,
) {
    let peer = a.info.as_ref().and_then(|i| i.peer);
    if !log.wants_origin_line(peer) {
        return;
    }
    let taken = started.elapsed();
    let connect = a.info.as_ref().map_or(Duration::ZERO, |i| i.connect);
    let t = OriginTransaction {
        connection: a
            .info
            .as_ref()
            .map_or((0, 0), |i| (i.id, i.next_transaction())),
        local: a.info.as_ref().and_then(|i| i.local).map(|l| l.ip()),
        method: "GET".into(),
        domain: a
            .info
            .as_ref()
            .map(|i| i.domain.clone())
            .unwrap_or_default(),
        uri: url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().map(|p| p.to_string()))
            .unwrap_or_default(),
        origin: peer,
        status: a.status,
        heads: a.heads,
        bytes: a.bytes,
        taken,
        connect,
        first_byte: a.first_byte.saturating_sub(connect),
        complete: taken.saturating_sub(a.first_byte),
        reqinfo: match judge {
            Judge::Recovery => "Recovery",
            Judge::Checker(_) => "HealthChecker",
        },
        ..OriginTransaction::default()
    };
    log.sinks
        .origin
        .send(crate::log::lines::origin(chrono::Local::now(), &t));
}

/// One probe: a GET of `url` (an IP's), on a connection of its own, within the
/// probe's timeout. A `<HealthChecker>` reads the whole body; `<Recovery>` stops at
/// the status.
async fn probe_once(
    probe: &Probe,
    table: &Weak<OriginTable>,
    host: HeaderValue,
    url: &str,
) -> Result<Answer, String> {
    let client = super::client(
        Connector::new(probe.timeout, None, table.clone()),
        Duration::ZERO,
    );
    let req = Request::get(url)
        .header(HOST, host)
        .header(
            USER_AGENT,
            concat!("kura/", env!("CARGO_PKG_VERSION"), " probe"),
        )
        .body(Either::Right(Either::Left(Empty::new())))
        .map_err(|e| e.to_string())?;
    let req_head = head_bytes(req.headers()) + url.len() as u64;
    let started = std::time::Instant::now();
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| super::source_chain(&e))?;
        let first_byte = started.elapsed();
        let status = resp.status().as_u16();
        let info = resp.extensions().get::<ConnInfo>().cloned();
        let res_head = head_bytes(resp.headers());
        let bytes = if probe.whole_body {
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| super::source_chain(&e))?;
            body.to_bytes().len() as u64
        } else {
            0
        };
        Ok(Answer {
            status,
            info,
            heads: (req_head, res_head),
            bytes,
            first_byte,
        })
    };
    tokio::time::timeout(probe.timeout, exchange)
        .await
        .map_err(|_| format!("no complete answer within {:?}", probe.timeout))?
}

/// Re-resolves the pool's domain addresses every `every` until the pool is gone.
async fn resolve_loop(pool: Weak<OriginPool>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        for e in pool.table.entries.iter().filter(|e| e.is_domain()) {
            resolve(&pool, e).await;
        }
    }
}

/// Resolves domain addresses that have no IP yet (the first requests after a start).
pub async fn resolve_unresolved(pool: &OriginPool) {
    for e in pool.table.entries.iter().filter(|e| e.is_unresolved()) {
        resolve(pool, e).await;
    }
}

/// Resolves one domain address into its entry.
async fn resolve(pool: &OriginPool, entry: &OriginEntry) {
    let a = &entry.address;
    match tokio::net::lookup_host((a.host.as_str(), a.port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            entry.resolved(
                &addrs,
                pool.policy.dns_ttl,
                pool.policy.health_checkers.len(),
            );
        }
        Err(e) => {
            tracing::warn!(vhost = %pool.vhost, domain = %a.host, error = %e, "origin domain not resolved");
        }
    }
}
