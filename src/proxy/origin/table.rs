//! The IP table of a vhost's origins (guide chapter 7, "Origin Address Use Policy"):
//! every `<Address>`/`<Address2>` with the IPs it stands for, the health of each IP,
//! and the choice of IPs for a request.
//!
//! Exclusion and recovery work per IP. An address written as an IP is that IP for
//! ever (TTL 0); a domain is resolved again and again, each IP it returns staying
//! usable for `<DnsMaxTTL>` after it was last seen, and the last IP never dropped.
//! A standby `<Address2>` stands in for each `<Address>` that has no usable IP.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use parking_lot::RwLock;

use crate::config::origin::{BalanceMode, OriginPolicy};
use crate::config::value::OriginAddress;

/// Consecutive results of one judge (error detection or one health checker) for one IP.
#[derive(Default)]
pub struct Verdict {
    /// Failures in a row.
    pub failures: AtomicU32,
    /// Successes in a row while excluded.
    pub successes: AtomicU32,
    /// Excluded by this judge.
    pub excluded: AtomicBool,
}

impl Verdict {
    /// Counts a failure; true when it excludes the IP now.
    pub fn fail(&self, exclusion: u32) -> bool {
        self.successes.store(0, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        exclusion > 0 && n >= exclusion && !self.excluded.swap(true, Ordering::Relaxed)
    }

    /// Counts a success; true when it brings the IP back now (`recovery` successes
    /// in a row; 0 never recovers).
    pub fn succeed(&self, recovery: u32) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        if !self.excluded.load(Ordering::Relaxed) {
            return false;
        }
        let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if recovery > 0 && n >= recovery {
            self.reset();
            return true;
        }
        false
    }

    /// Forgets everything (`/command/resetorigin`).
    pub fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.successes.store(0, Ordering::Relaxed);
        self.excluded.store(false, Ordering::Relaxed);
    }

    fn copy_from(&self, other: &Verdict) {
        for (a, b) in [
            (&self.failures, &other.failures),
            (&self.successes, &other.successes),
        ] {
            a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.excluded
            .store(other.excluded.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// One origin IP.
pub struct OriginIp {
    /// Where to connect.
    pub addr: SocketAddr,
    /// When a resolved IP stops being usable; `None` for an IP written in the configuration.
    expires: RwLock<Option<Instant>>,
    /// Request-path error detection (`<Exclusion>`, `<Recovery>`).
    pub errors: Verdict,
    /// One verdict per `<HealthChecker>`, in configuration order.
    pub checks: Vec<Verdict>,
    /// Requests in progress to it.
    pub in_flight: AtomicUsize,
    /// Connections open to it.
    pub open: Arc<AtomicUsize>,
}

impl OriginIp {
    fn new(addr: SocketAddr, expires: Option<Instant>, checkers: usize) -> OriginIp {
        OriginIp {
            addr,
            expires: RwLock::new(expires),
            errors: Verdict::default(),
            checks: (0..checkers).map(|_| Verdict::default()).collect(),
            in_flight: AtomicUsize::new(0),
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether no judge excludes it.
    pub fn usable(&self) -> bool {
        !self.errors.excluded.load(Ordering::Relaxed)
            && self
                .checks
                .iter()
                .all(|c| !c.excluded.load(Ordering::Relaxed))
    }

    /// Seconds of TTL left (0 for a configured IP), as `/monitoring/origin` shows.
    pub fn ttl_left(&self, now: Instant) -> u64 {
        self.expires
            .read()
            .map_or(0, |e| e.saturating_duration_since(now).as_secs())
    }

    /// Whether it has a connection open and idle (for `<BalanceMode>Session`).
    fn has_idle(&self) -> bool {
        self.open.load(Ordering::Relaxed) > self.in_flight.load(Ordering::Relaxed)
    }
}

/// One `<Address>` or `<Address2>`.
pub struct OriginEntry {
    /// As configured.
    pub address: OriginAddress,
    /// `Host` header sent with requests to it.
    pub host: HeaderValue,
    /// Whether it is an `<Address2>`.
    pub standby: bool,
    /// The IPs it stands for (empty for a domain not resolved yet).
    ips: RwLock<Vec<Arc<OriginIp>>>,
}

impl OriginEntry {
    /// Its IPs.
    pub fn ips(&self) -> Vec<Arc<OriginIp>> {
        self.ips.read().clone()
    }

    /// Whether it has a usable IP (an unresolved domain counts as usable: it has
    /// not failed yet).
    pub fn usable(&self) -> bool {
        let ips = self.ips.read();
        ips.is_empty() || ips.iter().any(|ip| ip.usable())
    }

    /// Whether it is a domain no resolution has answered yet.
    pub fn is_unresolved(&self) -> bool {
        self.is_domain() && self.ips.read().is_empty()
    }

    /// Whether its host must be resolved.
    pub fn is_domain(&self) -> bool {
        !self.address.is_ip
    }

    /// Takes a resolution of its domain: known IPs are refreshed, new ones added (born
    /// excluded when the domain is: the guide keeps an excluded domain excluded until
    /// one of its IPs recovers), and IPs past their TTL removed, never the last one.
    pub fn resolved(&self, addrs: &[SocketAddr], ttl: Duration, checkers: usize) {
        let now = Instant::now();
        let expires = Some(now + ttl);
        let mut ips = self.ips.write();
        let domain_excluded = !ips.is_empty() && ips.iter().all(|ip| !ip.usable());
        for a in addrs {
            match ips.iter().find(|ip| ip.addr == *a) {
                Some(ip) => *ip.expires.write() = expires,
                None => {
                    let ip = OriginIp::new(*a, expires, checkers);
                    if domain_excluded {
                        ip.errors.excluded.store(true, Ordering::Relaxed);
                    }
                    ips.push(Arc::new(ip));
                }
            }
        }
        let live = |ip: &Arc<OriginIp>| ip.expires.read().is_none_or(|e| e > now);
        if ips.iter().any(live) {
            ips.retain(live);
        } else if let Some(newest) = ips.iter().max_by_key(|ip| *ip.expires.read()).cloned() {
            *ips = vec![newest];
        }
    }
}

/// The origins of one vhost and their health.
pub struct OriginTable {
    /// `<Address>`es, then `<Address2>`es.
    pub entries: Vec<OriginEntry>,
    /// `<BalanceMode>`.
    balance: BalanceMode,
    /// Round-robin position.
    next: AtomicUsize,
}

/// What a request's choice of IP depends on.
#[derive(Debug, Clone, Copy)]
pub enum Balance<'a> {
    /// `<BalanceMode>` (`Hash` hashes this URL).
    Url(&'a str),
    /// `OriginAffinity`: this client's requests stay on one IP while it is usable.
    Client(IpAddr),
}

/// An IP chosen for a request, with the `Host` header of its address.
#[derive(Clone)]
pub struct Target {
    /// The IP.
    pub ip: Arc<OriginIp>,
    /// `Host` for it.
    pub host: HeaderValue,
    /// Index of its address in [`OriginTable::entries`].
    pub entry: usize,
}

impl OriginTable {
    /// The table for `policy`, keeping the health of IPs that `previous` (the table of
    /// the configuration before a reload) knew under the same address.
    pub fn new(policy: &OriginPolicy, vhost: &str, previous: Option<&OriginTable>) -> Self {
        let checkers = policy.health_checkers.len();
        let entries = policy
            .addresses
            .iter()
            .map(|a| (a, false))
            .chain(policy.standby.iter().map(|a| (a, true)))
            .map(|(address, standby)| {
                let host = HeaderValue::from_str(&address.host_header(vhost))
                    .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
                let ips = match address.ip_addr() {
                    Some(a) => vec![Arc::new(OriginIp::new(a, None, checkers))],
                    None => Vec::new(),
                };
                let entry = OriginEntry {
                    address: address.clone(),
                    host,
                    standby,
                    ips: RwLock::new(ips),
                };
                if let Some(old) =
                    previous.and_then(|p| p.entries.iter().find(|e| e.address == *address))
                {
                    entry.adopt(old);
                }
                entry
            })
            .collect();
        OriginTable {
            entries,
            balance: policy.balance,
            next: AtomicUsize::new(0),
        }
    }

    /// The IPs a request may use, in the order to try them: the usable IPs of usable
    /// `<Address>`es, plus one usable standby per `<Address>` that has none.
    pub fn usable(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for (entry, e) in self.in_use() {
            let ips = e.ips.read();
            targets.extend(ips.iter().filter(|ip| ip.usable()).map(|ip| Target {
                ip: ip.clone(),
                host: e.host.clone(),
                entry,
            }));
        }
        targets
    }

    /// Judges `ip` with `judge` (a verdict's `fail` or `succeed`) and, when that moved
    /// the IP out of service or back, writes it to the originerror log. Returns
    /// what `judge` returned (its verdict changed).
    pub fn judge(&self, vhost: &str, ip: &OriginIp, judge: impl FnOnce() -> bool) -> bool {
        let was = ip.usable();
        let changed = judge();
        if changed && ip.usable() != was {
            let in_service: Vec<SocketAddr> = self.usable().iter().map(|t| t.ip.addr).collect();
            crate::log::origin_service(vhost, ip.addr, !was, &in_service);
        }
        changed
    }

    /// The addresses in use, with their index: every usable `<Address>`, and as many
    /// usable `<Address2>`es, in order, as there are `<Address>`es without a usable IP
    /// (entries hold the `<Address>`es first).
    fn in_use(&self) -> impl Iterator<Item = (usize, &OriginEntry)> {
        let mut down = self
            .entries
            .iter()
            .filter(|e| !e.standby && !e.usable())
            .count();
        self.entries.iter().enumerate().filter(move |(_, e)| {
            let standing_in = e.standby && down > 0 && e.usable();
            if standing_in {
                down -= 1;
            }
            standing_in || (!e.standby && e.usable())
        })
    }

    /// Whether an address is in use (a standby only while it stands in for a failed one).
    pub fn is_in_use(&self, entry: &OriginEntry) -> bool {
        self.in_use().any(|(_, e)| std::ptr::eq(e, entry))
    }

    /// Orders `targets` by `<BalanceMode>`, or by the client for `OriginAffinity`:
    /// the first is the choice, the rest the failover order.
    pub fn order(&self, mut targets: Vec<Target>, balance: Balance<'_>) -> Vec<Target> {
        let n = targets.len();
        if n < 2 {
            return targets;
        }
        let url = match balance {
            Balance::Url(url) => url,
            Balance::Client(ip) => {
                let key = ip.to_string();
                let first = (0..n)
                    .max_by_key(|&i| rendezvous(&key, targets[i].ip.addr))
                    .unwrap_or(0);
                targets.rotate_left(first);
                return targets;
            }
        };
        let first = match self.balance {
            BalanceMode::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            BalanceMode::Session => {
                let start = self.next.load(Ordering::Relaxed) % n;
                match (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| targets[i].ip.has_idle())
                {
                    Some(i) => i,
                    None => self.next.fetch_add(1, Ordering::Relaxed) % n,
                }
            }
            BalanceMode::Hash => (0..n)
                .max_by_key(|&i| rendezvous(url, targets[i].ip.addr))
                .unwrap_or(0),
        };
        targets.rotate_left(first);
        targets
    }

    /// `/command/resetorigin`: every IP usable again (written to the originerror log
    /// of `vhost` like a recovery), every count zero.
    pub fn reset(&self, vhost: &str) {
        for e in &self.entries {
            for ip in e.ips() {
                self.judge(vhost, &ip, || {
                    ip.errors.reset();
                    ip.checks.iter().for_each(Verdict::reset);
                    true
                });
            }
        }
    }
}

impl OriginEntry {
    /// Takes over the IPs and verdicts of the same address in an older table.
    fn adopt(&self, old: &OriginEntry) {
        let mut ips = self.ips.write();
        let old_ips = old.ips();
        if self.is_domain() {
            let checkers = ips.first().map_or(0, |ip| ip.checks.len());
            *ips = old_ips
                .iter()
                .map(|o| {
                    let ip = OriginIp::new(o.addr, *o.expires.read(), checkers);
                    copy_verdicts(&ip, o);
                    Arc::new(ip)
                })
                .collect();
        } else if let (Some(ip), Some(o)) = (ips.first(), old_ips.first()) {
            copy_verdicts(ip, o);
        }
    }
}

/// Copies error detection, and the health checks when both have the same checkers.
fn copy_verdicts(ip: &OriginIp, old: &OriginIp) {
    ip.errors.copy_from(&old.errors);
    if ip.checks.len() == old.checks.len() {
        for (a, b) in ip.checks.iter().zip(&old.checks) {
            a.copy_from(b);
        }
    }
}

/// Rendezvous hashing weight of `url` on `addr` (FNV-1a over both).
fn rendezvous(url: &str, addr: SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    for b in url.bytes().chain(ip).chain(addr.port().to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short suffixes; finish with a multiply-xorshift.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::origin_address;

    fn policy(addresses: &[&str], standby: &[&str], balance: BalanceMode) -> OriginPolicy {
        let cfg = crate::config::load_str(
            std::path::Path::new("/nonexistent"),
            "<Server><VHostDefault><OriginOptions><Exclusion>2</Exclusion></OriginOptions></VHostDefault></Server>",
            "<Vhosts><Vhost Name=\"a\"><Origin><Address>127.0.0.1:1</Address></Origin></Vhost></Vhosts>",
        )
        .expect("config");
        let mut p = cfg.vhosts[0].origin.clone();
        p.addresses = addresses
            .iter()
            .map(|a| origin_address(a).unwrap())
            .collect();
        p.standby = standby.iter().map(|a| origin_address(a).unwrap()).collect();
        p.balance = balance;
        p
    }

    fn ports(t: &[Target]) -> Vec<u16> {
        t.iter().map(|t| t.ip.addr.port()).collect()
    }

    #[test]
    fn a_standby_replaces_each_failed_address_and_leaves_when_it_recovers() {
        let p = policy(
            &["10.0.0.1:1", "10.0.0.1:2"],
            &["10.0.0.1:3", "10.0.0.1:4"],
            BalanceMode::RoundRobin,
        );
        let t = OriginTable::new(&p, "a", None);
        assert_eq!(ports(&t.usable()), [1, 2]);
        let first = &t.entries[0].ips()[0];
        assert!(!first.errors.fail(2));
        assert!(first.errors.fail(2), "the second failure in a row excludes");
        assert_eq!(ports(&t.usable()), [2, 3]);
        assert!(t.is_in_use(&t.entries[2]) && !t.is_in_use(&t.entries[3]));
        assert!(!first.errors.succeed(5) && !first.errors.succeed(5));
        t.reset("a");
        assert_eq!(ports(&t.usable()), [1, 2]);
    }

    #[test]
    fn hash_keeps_an_url_on_its_origin_and_moves_only_the_lost_origins_urls() {
        let p = policy(
            &["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3"],
            &[],
            BalanceMode::Hash,
        );
        let t = OriginTable::new(&p, "a", None);
        let urls: Vec<String> = (0..300).map(|i| format!("/obj/{i}")).collect();
        let before: Vec<u16> = urls
            .iter()
            .map(|u| ports(&t.order(t.usable(), Balance::Url(u)))[0])
            .collect();
        for port in [1, 2, 3] {
            let share = before.iter().filter(|&&p| p == port).count();
            assert!(
                (60..=140).contains(&share),
                "port {port} got {share} of 300"
            );
        }
        let again: Vec<u16> = urls
            .iter()
            .map(|u| ports(&t.order(t.usable(), Balance::Url(u)))[0])
            .collect();
        assert_eq!(before, again);
        let second = &t.entries[1].ips()[0];
        second.errors.fail(1);
        second.errors.fail(2);
        let after: Vec<u16> = urls
            .iter()
            .map(|u| ports(&t.order(t.usable(), Balance::Url(u)))[0])
            .collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b, "an URL of a healthy origin moved");
            } else {
                assert_ne!(*a, 2);
            }
        }
    }

    #[test]
    fn a_domain_keeps_its_last_ip_and_new_ips_of_an_excluded_domain_start_excluded() {
        let p = policy(&["origin.example:80"], &[], BalanceMode::RoundRobin);
        let t = OriginTable::new(&p, "a", None);
        let e = &t.entries[0];
        let a1: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let a2: SocketAddr = "10.0.0.2:80".parse().unwrap();
        e.resolved(&[a1], Duration::ZERO, 0);
        e.resolved(&[], Duration::ZERO, 0);
        assert_eq!(e.ips().len(), 1, "the last IP is never dropped");
        e.ips()[0].errors.fail(1);
        e.ips()[0].errors.fail(2);
        assert!(!e.usable());
        e.resolved(&[a1, a2], Duration::from_secs(60), 0);
        assert_eq!(e.ips().len(), 2);
        assert!(
            !e.usable(),
            "a new IP of an excluded domain is excluded too"
        );
    }
}
