//! The agent: one UDP socket on the shared tokio runtime, answering from the
//! stats core through the tree. Requests are decoded in place and answered
//! into a reused buffer; windows are computed once per fold generation and
//! reused, so a walk and a GET within the same second see the same numbers.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::ber::{
    self, DecodeError, ErrorStatus, PduType, Request, ResponseWriter, Value, VarBinds, Version,
};
use super::oid::Oid;
use super::tree::{
    self, Binding, ContentField, DiskSpace, Entity, Missing, Number, Shape, SnmpCounter, Text,
};
use crate::config::history::ConfRecord;
use crate::config::snmp::{Community, SnmpConfig};
use crate::stats::catalog;
use crate::stats::contents::Contents;
use crate::stats::system::SYS_N;
use crate::stats::{Sample, Stats, VhostStats, Window};

/// Default GETBULK reply limit: an Ethernet MTU's UDP payload.
pub const DEFAULT_BULK_BYTES: usize = 1472;

/// A vhost row.
pub struct VhostRow {
    /// Name.
    pub name: String,
    /// Serving (`Status="Active"`).
    pub active: bool,
    /// Its statistics.
    pub stats: Arc<VhostStats>,
}

/// A view row.
#[derive(Debug)]
pub struct ViewRow {
    /// Name.
    pub name: String,
    /// Member vhost names.
    pub members: Vec<String>,
}

/// Everything the agent answers from that changes only on (re)load.
pub struct Model {
    /// `<SNMP>`.
    pub config: SnmpConfig,
    /// `<Host><Name>` or the system host name.
    pub host_name: String,
    /// `<Host><Admin>`.
    pub admin: String,
    /// `sysDescr.0`.
    pub description: String,
    /// Vhosts by `[vhostIndex]`.
    pub vhosts: BTreeMap<u32, VhostRow>,
    /// Views by `[viewIndex]`.
    pub views: BTreeMap<u32, ViewRow>,
    /// Configured disk paths, by `[diskIndex]` - 1.
    pub disks: Vec<PathBuf>,
    /// Configuration records, newest first, at most `ConfCount`.
    pub confs: Vec<ConfRecord>,
    /// The instance space for lookups.
    pub shape: Shape,
}

impl Model {
    /// Builds the model; the walk rows are the existing indexes and, with
    /// `VHostCount`/`ViewCount` N > 0, every index 1..=N (SNMP.md 12).
    pub fn new(
        config: SnmpConfig,
        names: (String, String),
        vhosts: BTreeMap<u32, VhostRow>,
        views: BTreeMap<u32, ViewRow>,
        disks: Vec<PathBuf>,
        confs: Vec<ConfRecord>,
    ) -> Model {
        let rows = |existing: Vec<u32>, padded: u32| {
            let mut v: Vec<u32> = existing.into_iter().chain(1..=padded).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let shape = Shape {
            walk_minutes: [
                0,
                config.global_min,
                config.disk_min,
                config.vhost_min,
                config.view_min,
            ],
            vhosts: rows(vhosts.keys().copied().collect(), config.vhost_count),
            views: rows(views.keys().copied().collect(), config.view_count),
            disks: disks.len() as u32,
            confs: confs.len() as u32,
        };
        let uname = nix::sys::utsname::uname().ok();
        let os = uname.map_or_else(String::new, |u| {
            format!(
                " ({} {} {})",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        });
        Model {
            description: format!("kura {}{os}", crate::VERSION),
            host_name: names.0,
            admin: names.1,
            config,
            vhosts,
            views,
            disks,
            confs,
            shape,
        }
    }
}

/// Windows computed in the current fold generation.
#[derive(Default)]
struct WindowCache {
    /// The generation they belong to.
    generation: u64,
    /// Traffic windows by (entity, index, minute).
    traffic: HashMap<(Entity, u32, u32), Sample>,
    /// System windows by minute.
    system: HashMap<u32, Sample<SYS_N>>,
}

/// The agent's state between requests.
pub struct Agent {
    /// What it answers from; replaced on reload.
    model: Arc<ArcSwap<Model>>,
    /// The stats core.
    stats: Arc<Stats>,
    /// When kurad started (`sysUpTime`, `meta.uptime`).
    started: Instant,
    /// GETBULK reply limit in bytes.
    bulk_bytes: usize,
    /// The reply being built.
    writer: ResponseWriter,
    /// Windows of this second.
    cache: WindowCache,
    /// GETBULK repeater cursors, reused.
    cursors: Vec<Oid>,
    /// The `snmp` group counters, by [`SnmpCounter`] position.
    counters: [u32; SnmpCounter::ALL.len()],
    /// When a dropped request was last logged (rate limit).
    last_drop_log: Option<Instant>,
}

fn window(minute: u32) -> Window {
    match minute {
        0 => Window::LastSecond,
        m => Window::Minutes(m as u8),
    }
}

/// Integer32 saturating instead of wrapping (SNMP.md 9).
fn saturate(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// `sysUpTime`: hundredths of a second, wrapping at 2^32 like every TimeTicks.
pub fn timeticks(elapsed: Duration) -> u32 {
    (elapsed.as_millis() / 10 % (1u128 << 32)) as u32
}

/// Why a request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    /// Not SNMP, or not v1/v2c.
    Malformed(SnmpCounter),
    /// Address outside `<Allow>`.
    Address,
    /// Community not served.
    Community,
}

impl Agent {
    /// An agent answering from `model` and `stats`.
    pub fn new(
        model: Arc<ArcSwap<Model>>,
        stats: Arc<Stats>,
        started: Instant,
        bulk_bytes: usize,
    ) -> Agent {
        Agent {
            model,
            stats,
            started,
            bulk_bytes: bulk_bytes.clamp(484, ber::MAX_DATAGRAM),
            writer: ResponseWriter::default(),
            cache: WindowCache::default(),
            cursors: Vec::new(),
            counters: [0; SnmpCounter::ALL.len()],
            last_drop_log: None,
        }
    }

    /// An agent with the documented `<SNMP>` defaults over no vhosts: the request
    /// path alone, for the codec property tests and the fuzz target.
    pub fn standalone() -> Agent {
        let config = crate::config::load_str(
            std::path::Path::new("(standalone)"),
            "<Server><Host><SNMP Status=\"Active\"/></Host><Cache><Storage/></Cache></Server>",
            "<Vhosts/>",
        )
        .expect("the embedded configuration is valid");
        let model = Model::new(
            config.server.snmp.clone(),
            ("kura".into(), String::new()),
            BTreeMap::new(),
            BTreeMap::new(),
            Vec::new(),
            Vec::new(),
        );
        Agent::new(
            Arc::new(ArcSwap::from_pointee(model)),
            Arc::new(Stats::default()),
            Instant::now(),
            DEFAULT_BULK_BYTES,
        )
    }

    /// Serves `socket` (non-blocking) until the task is aborted.
    ///
    /// The socket is registered for readability only. Registered for writing
    /// too (as `tokio::net::UdpSocket` is), every reply sent gave its
    /// send-buffer space back (at once on loopback), and that writability edge
    /// woke the idle runtime worker parked in `epoll_wait`: about one extra
    /// wake-up per GET. A send that would block waits for writability on a
    /// registration of its own (`send`).
    pub async fn serve(mut self, socket: std::net::UdpSocket) {
        let socket = match register(socket, Interest::READABLE) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "snmp socket cannot be registered");
                return;
            }
        };
        let mut buf = vec![0u8; 65_536];
        loop {
            let mut ready = match socket.readable().await {
                Ok(r) => r,
                // The runtime is shutting down: nothing more will arrive.
                Err(e) => {
                    tracing::debug!(error = %e, "snmp socket closed");
                    return;
                }
            };
            let (n, peer) = match ready.try_io(|s| s.get_ref().recv_from(&mut buf)) {
                Ok(Ok(r)) => r,
                // Nothing waiting after all: readiness is cleared, wait again.
                Err(_would_block) => continue,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "snmp receive failed");
                    continue;
                }
            };
            if let Some(reply) = self.answer(&buf[..n], peer.ip()) {
                if let Err(e) = send(socket.get_ref(), reply, peer).await {
                    tracing::debug!(error = %e, %peer, "snmp send failed");
                }
            }
        }
    }

    fn count(&mut self, c: SnmpCounter) {
        let n = &mut self.counters[c as usize];
        *n = n.wrapping_add(1);
    }

    fn dropped(&mut self, why: Dropped, ip: IpAddr) {
        self.count(match why {
            Dropped::Malformed(c) => c,
            Dropped::Address => SnmpCounter::InBadCommunityUses,
            Dropped::Community => SnmpCounter::InBadCommunityNames,
        });
        let now = Instant::now();
        if self
            .last_drop_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            self.last_drop_log = Some(now);
            tracing::warn!(%ip, reason = ?why, "snmp request dropped (logged at most every 10 s)");
        }
    }

    /// The reply to one datagram from `ip`, if it gets one.
    pub fn answer(&mut self, datagram: &[u8], ip: IpAddr) -> Option<&[u8]> {
        self.count(SnmpCounter::InPkts);
        let req = match ber::decode_request(datagram) {
            Ok(r) => r,
            Err(e) => {
                let c = match e {
                    DecodeError::Version(_) => SnmpCounter::InBadVersions,
                    _ => SnmpCounter::InAsnParseErrs,
                };
                self.dropped(Dropped::Malformed(c), ip);
                return None;
            }
        };
        let model = self.model.load();
        if !model.config.admits(ip) {
            self.dropped(Dropped::Address, ip);
            return None;
        }
        let community = model
            .config
            .communities
            .iter()
            .find(|c| c.name.as_bytes() == req.community);
        if community.is_none() && !model.config.unregistered_allowed {
            self.dropped(Dropped::Community, ip);
            return None;
        }
        let generation = self.stats.generation();
        if self.cache.generation != generation {
            self.cache.traffic.clear();
            self.cache.system.clear();
            self.cache.generation = generation;
        }
        self.count(SnmpCounter::OutPkts);
        let mut cx = Cx {
            model: &model,
            stats: &self.stats,
            cache: &mut self.cache,
            started: self.started,
            counters: &self.counters,
            community,
        };
        let w = &mut self.writer;
        w.begin(&req);
        let outcome = match req.pdu {
            PduType::Get => cx.get(&req, w),
            PduType::GetNext => cx.get_next(&req, w),
            PduType::GetBulk => {
                cx.get_bulk(&req, w, &mut self.cursors, self.bulk_bytes);
                Ok(())
            }
            PduType::Set => Err(match req.version {
                Version::V1 => (ErrorStatus::NoSuchName, 1),
                Version::V2c => (ErrorStatus::NotWritable, 1),
            }),
        };
        let outcome = outcome.and_then(|()| {
            if w.message_len() > ber::MAX_DATAGRAM {
                Err((ErrorStatus::TooBig, 0))
            } else {
                Ok(())
            }
        });
        match outcome {
            Ok(()) => Some(w.finish(&req, ErrorStatus::NoError, 0)),
            Err((status, index)) => {
                w.begin(&req);
                let empty = req.varbinds.is_empty();
                if status == ErrorStatus::TooBig && req.version == Version::V2c {
                    // RFC 3416 4.2.1: tooBig carries no bindings.
                } else {
                    w.push_raw(req.varbinds);
                }
                // A SET of nothing has nothing to refuse.
                let (status, index) = if empty && req.pdu == PduType::Set {
                    (ErrorStatus::NoError, 0)
                } else {
                    (status, index)
                };
                Some(w.finish(&req, status, index))
            }
        }
    }
}

/// One request's view of the agent.
struct Cx<'a> {
    model: &'a Model,
    stats: &'a Stats,
    cache: &'a mut WindowCache,
    started: Instant,
    counters: &'a [u32; SnmpCounter::ALL.len()],
    community: Option<&'a Community>,
}

/// An error-status and error-index that replace the whole reply.
type PduError = (ErrorStatus, i32);

impl<'a> Cx<'a> {
    fn visible(community: Option<&Community>, oid: &[u32]) -> bool {
        community.is_none_or(|c| c.sees(oid))
    }

    fn get(&mut self, req: &Request<'_>, w: &mut ResponseWriter) -> Result<(), PduError> {
        for (i, oid) in VarBinds::new(req.varbinds).flatten().enumerate() {
            let found = if Self::visible(self.community, oid.as_slice()) {
                tree::tree().get(oid.as_slice(), &self.model.shape)
            } else {
                Err(Missing::Object)
            };
            let value = match found {
                Ok(inst) => self.value(&inst),
                Err(Missing::Object) => Value::NoSuchObject,
                Err(Missing::Instance) => Value::NoSuchInstance,
            };
            if value.is_exception() && req.version == Version::V1 {
                return Err((ErrorStatus::NoSuchName, i as i32 + 1));
            }
            w.push(oid.as_slice(), value);
        }
        Ok(())
    }

    /// The binding after `after`: its name in `out` and its value, or endOfMibView.
    fn next_value(&mut self, after: &[u32], out: &mut Oid) -> Value<'a> {
        let community = self.community;
        match tree::tree().next(after, &self.model.shape, out, |o| {
            Self::visible(community, o)
        }) {
            Some(inst) => self.value(&inst),
            None => {
                *out = Oid::from_slice(after).unwrap_or_else(Oid::empty);
                Value::EndOfMibView
            }
        }
    }

    fn get_next(&mut self, req: &Request<'_>, w: &mut ResponseWriter) -> Result<(), PduError> {
        let mut out = Oid::empty();
        for (i, oid) in VarBinds::new(req.varbinds).flatten().enumerate() {
            let value = self.next_value(oid.as_slice(), &mut out);
            if value.is_exception() && req.version == Version::V1 {
                return Err((ErrorStatus::NoSuchName, i as i32 + 1));
            }
            w.push(out.as_slice(), value);
        }
        Ok(())
    }

    /// GETBULK (RFC 3416 4.2.3): whole bindings up to `limit` bytes, never tooBig.
    fn get_bulk(
        &mut self,
        req: &Request<'_>,
        w: &mut ResponseWriter,
        cursors: &mut Vec<Oid>,
        limit: usize,
    ) {
        let total = VarBinds::new(req.varbinds).count();
        let non_repeaters = usize::try_from(req.non_repeaters.max(0))
            .unwrap_or(0)
            .min(total);
        let max_repetitions = req.max_repetitions.max(0) as u32;
        let mut out = Oid::empty();
        // Pushes one binding unless it would overflow the limit.
        let fits = |w: &mut ResponseWriter, name: &[u32], value: Value<'_>| {
            let before = w.bindings_len();
            w.push(name, value);
            if w.message_len() > limit {
                w.truncate_bindings(before);
                return false;
            }
            true
        };
        cursors.clear();
        for (i, oid) in VarBinds::new(req.varbinds).flatten().enumerate() {
            if i < non_repeaters {
                let value = self.next_value(oid.as_slice(), &mut out);
                if !fits(w, out.as_slice(), value) {
                    return;
                }
            } else {
                cursors.push(oid);
            }
        }
        for _ in 0..max_repetitions {
            if cursors.is_empty() {
                return;
            }
            let mut all_ended = true;
            for c in cursors.iter_mut() {
                let value = self.next_value(c.as_slice(), &mut out);
                all_ended &= value == Value::EndOfMibView;
                if !fits(w, out.as_slice(), value) {
                    return;
                }
                *c = out;
            }
            if all_ended {
                return;
            }
        }
    }

    fn traffic(&mut self, entity: Entity, index: u32, minute: u32) -> Option<&Sample> {
        let key = (entity, index, minute);
        if !self.cache.traffic.contains_key(&key) {
            let w = window(minute);
            let s = match entity {
                Entity::Host => self.stats.sum_counts(None, w),
                Entity::Vhost => self.model.vhosts.get(&index)?.stats.counts(w),
                Entity::View => self
                    .stats
                    .sum_counts(Some(&self.model.views.get(&index)?.members), w),
            };
            self.cache.traffic.insert(key, s);
        }
        self.cache.traffic.get(&key)
    }

    fn value(&mut self, inst: &tree::Instance<'_>) -> Value<'a> {
        let minute = inst.minute.unwrap_or(0);
        let index = inst.index.unwrap_or(0);
        let m = self.model;
        let entity_name = || match inst.column.binding {
            Binding::Text(Text::EntityName) if inst.column.section.starts_with("cache.view") => {
                m.views.get(&index).map(|v| v.name.as_str())
            }
            _ => m.vhosts.get(&index).map(|v| v.name.as_str()),
        };
        let conf = m.confs.get(index.saturating_sub(1) as usize);
        let usage = match inst.column.binding {
            Binding::Text(Text::DiskStatus)
            | Binding::Number(Number::DiskMb(_) | Number::DiskUseRatio(_)) => {
                self.stats.disks.usage(index.saturating_sub(1) as usize)
            }
            _ => None,
        };
        let int = |v: i64| Value::Integer(saturate(v));
        match inst.column.binding {
            Binding::Traffic {
                entity,
                source,
                div,
            } => {
                let Some(sample) = self.traffic(entity, index, minute) else {
                    return Value::Integer(0); // A padded row (SNMP.md 12).
                };
                int(catalog::evaluate_in(source, sample, 0, div))
            }
            Binding::System { source, div } => {
                let stats = self.stats;
                let sample = self
                    .cache
                    .system
                    .entry(minute)
                    .or_insert_with(|| stats.system.window(window(minute)));
                int(catalog::evaluate_in(source, sample, 0, div))
            }
            Binding::Contents { entity, field } => {
                let snapshot = self.stats.contents.get();
                let contents = match entity {
                    Entity::Host => Some(snapshot.host),
                    Entity::Vhost => m
                        .vhosts
                        .get(&index)
                        .and_then(|v| snapshot.vhosts.get(&v.name))
                        .copied(),
                    Entity::View => m.views.get(&index).map(|v| {
                        let mut sum = Contents::default();
                        for c in v.members.iter().filter_map(|n| snapshot.vhosts.get(n)) {
                            sum.merge(c);
                        }
                        sum
                    }),
                };
                let Some(c) = contents else {
                    return Value::Integer(0); // A padded row (SNMP.md 12).
                };
                let v = match field {
                    ContentField::MemoryKb => c.memory / 1024,
                    ContentField::Files => c.files,
                    ContentField::SizeMb => c.bytes >> 20,
                    ContentField::SizeClass(i) => c.by_size[i],
                };
                int(i64::try_from(v).unwrap_or(i64::MAX))
            }
            Binding::DiskPerf(field) => {
                let disk = index.saturating_sub(1) as usize;
                match self.stats.disks.window(disk, window(minute)) {
                    Some(s) => int(catalog::evaluate_in(
                        catalog::disk()[field].source,
                        &s,
                        0,
                        1,
                    )),
                    None => Value::Integer(0),
                }
            }
            Binding::SysUpTime => Value::TimeTicks(timeticks(self.started.elapsed())),
            Binding::SysObjectId => Value::ObjectId(tree::ENTERPRISE),
            Binding::Snmp(c) => Value::Counter32(self.counters[c as usize]),
            Binding::Text(t) => Value::Str(
                match t {
                    Text::Manufacture | Text::Software => "kura",
                    Text::Version => crate::VERSION,
                    Text::HostName => &m.host_name,
                    Text::State => "Healthy",
                    Text::Admin => &m.admin,
                    Text::Description => &m.description,
                    Text::Location => "",
                    Text::EntityName => entity_name().unwrap_or(""),
                    Text::EntityStatus => {
                        if inst.column.section.starts_with("cache.view") {
                            if m.views.contains_key(&index) {
                                "Healthy"
                            } else {
                                ""
                            }
                        } else {
                            match m.vhosts.get(&index) {
                                Some(v) if v.active => "Healthy",
                                Some(_) => "Inactive",
                                None => "",
                            }
                        }
                    }
                    Text::DiskPath => m
                        .disks
                        .get(index.saturating_sub(1) as usize)
                        .and_then(|p| p.to_str())
                        .unwrap_or(""),
                    Text::DiskStatus => usage.as_ref().map_or("", |u| u.status),
                    Text::ConfHash => conf.map_or("", |c| c.fingerprint.sha1.as_str()),
                    Text::ConfPath => conf.map_or("", |c| c.path.as_str()),
                    Text::ConfVersion => conf.map_or("", |c| c.version.as_str()),
                }
                .as_bytes(),
            ),
            Binding::Number(n) => int(match n {
                Number::Uptime => self.started.elapsed().as_secs() as i64,
                Number::EntityUptime => m.vhosts.get(&index).map_or_else(
                    || self.started.elapsed().as_secs() as i64,
                    |v| v.stats.created.elapsed().as_secs() as i64,
                ),
                Number::VhostCount => m.vhosts.len() as i64,
                Number::VhostIndexMax => m.vhosts.keys().last().copied().unwrap_or(0).into(),
                Number::ViewCount => m.views.len() as i64,
                Number::ViewIndexMax => m.views.keys().last().copied().unwrap_or(0).into(),
                Number::DiskCount => m.disks.len() as i64,
                Number::DiskMb(space) => usage.as_ref().map_or(0, |u| {
                    let bytes = match space {
                        DiskSpace::Total => u.total_bytes,
                        DiskSpace::Used => u.used_bytes,
                        DiskSpace::Free => u.free_bytes,
                    };
                    ((bytes + (1 << 19)) >> 20) as i64
                }),
                // As df's Use%: used of what users can have (used + available).
                Number::DiskUseRatio(div) => usage.as_ref().map_or(0, |u| {
                    let whole = i128::from(u.used_bytes + u.free_bytes).max(1) * i128::from(div);
                    let used = i128::from(u.used_bytes) * 10_000;
                    ((2 * used + whole) / (2 * whole)) as i64
                }),
                Number::MemTotalKb => (crate::procfs::physical_memory() / 1024) as i64,
                Number::ConfId => conf.map_or(0, |c| c.id.into()),
                Number::ConfTime => conf.map_or(0, |c| c.time as i64),
                Number::ConfType => conf.map_or(0, |c| c.kind as i64),
                Number::ConfSize => conf.map_or(0, |c| c.fingerprint.size as i64),
                Number::Services => 72,
                Number::AuthenTraps => 2,
            }),
        }
    }
}

/// Registers `socket` with the runtime for `interest` only.
fn register(
    socket: std::net::UdpSocket,
    interest: Interest,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    // SAFETY: the `AsyncFd` owns the socket, so its descriptor stays open and
    // refers to the same socket for as long as the registration exists.
    Ok(unsafe { AsyncFd::register_with_interest(socket, interest) }?)
}

/// Sends `reply` to `peer`; when the send buffer is full, waits until it has
/// room (a registration for writability lives only that long).
async fn send(socket: &std::net::UdpSocket, reply: &[u8], peer: SocketAddr) -> io::Result<()> {
    loop {
        match socket.send_to(reply, peer) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let writable = register(socket.try_clone()?, Interest::WRITABLE)?;
                writable.writable().await?.clear_ready();
            }
            sent => return sent.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeticks_wrap_at_two_to_the_32() {
        assert_eq!(timeticks(Duration::from_millis(12_340)), 1_234);
        let wrap = Duration::from_millis((1u64 << 32) * 10);
        assert_eq!(timeticks(wrap), 0);
        assert_eq!(timeticks(wrap + Duration::from_millis(50)), 5);
    }

    #[test]
    fn integers_saturate() {
        assert_eq!(saturate(i64::MAX), i32::MAX);
        assert_eq!(saturate(-5_000_000_000), i32::MIN);
        assert_eq!(saturate(-7), -7);
    }
}
