//! The agent's lifecycle in the daemon: its socket follows `<SNMP Status Port>`,
//! its model follows every (re)load, its indexes live in the state directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::net::UdpSocket;
use tokio::task::JoinHandle;

use super::agent::{Agent, Model, VhostRow, ViewRow};
use super::index::IndexMap;
use crate::config::history::ConfRecord;
use crate::config::snmp::SnmpConfig;
use crate::config::{Config, VhostStatus};
use crate::proxy::Runtime;
use crate::stats::Stats;

/// A bound agent socket and its task.
struct Running {
    /// The configured address.
    spec: SocketAddr,
    /// The answering task.
    task: JoinHandle<()>,
}

/// A socket bound for a configuration that is not in force yet.
pub struct Prepared {
    /// The configured address.
    spec: SocketAddr,
    /// The socket.
    socket: UdpSocket,
}

/// The SNMP agent of a daemon.
pub struct Service {
    /// What the agent answers from.
    model: Arc<ArcSwap<Model>>,
    /// `[vhostIndex]` assignment.
    vhost_index: Mutex<IndexMap>,
    /// `[viewIndex]` assignment.
    view_index: Mutex<IndexMap>,
    /// The running socket, when `Status="Active"`.
    running: Mutex<Option<Running>>,
    /// The stats core.
    stats: Arc<Stats>,
    /// When kurad started.
    started: Instant,
    /// GETBULK reply limit.
    bulk_bytes: usize,
}

impl Service {
    /// A service keeping its files in `state_dir` (in memory only when `None`).
    pub fn new(
        state_dir: Option<&Path>,
        stats: Arc<Stats>,
        started: Instant,
        bulk_bytes: usize,
        config: &SnmpConfig,
    ) -> Service {
        let file = |name: &str| state_dir.map(|d| d.join(name));
        Service {
            model: Arc::new(ArcSwap::from_pointee(Model::new(
                config.clone(),
                (String::new(), String::new()),
                BTreeMap::new(),
                BTreeMap::new(),
                Vec::new(),
                Vec::new(),
            ))),
            vhost_index: Mutex::new(IndexMap::load(file("snmp-vhost-index"))),
            view_index: Mutex::new(IndexMap::load(file("snmp-view-index"))),
            running: Mutex::new(None),
            stats,
            started,
            bulk_bytes,
        }
    }

    /// Binds the socket `config` needs when it differs from the running one.
    pub async fn prepare(&self, config: &Config) -> std::io::Result<Option<Prepared>> {
        let snmp = &config.server.snmp;
        let running = self.running.lock().as_ref().map(|r| r.spec);
        if !snmp.active || running == Some(snmp.bind) {
            return Ok(None);
        }
        let socket = UdpSocket::bind(snmp.bind)?;
        socket.set_nonblocking(true)?;
        Ok(Some(Prepared {
            spec: snmp.bind,
            socket,
        }))
    }

    /// Puts `rt` in force for the agent: rebuilds the model (`confs`: the
    /// configuration history, newest first) and swaps the socket for `prepared`
    /// (or stops it when inactive).
    pub fn commit(&self, rt: &Runtime, confs: &[ConfRecord], prepared: Option<Prepared>) {
        self.install(rt, confs);
        let mut running = self.running.lock();
        if !rt.config.server.snmp.active {
            if let Some(r) = running.take() {
                r.task.abort();
                tracing::info!(spec = %r.spec, "snmp agent stopped");
            }
            return;
        }
        if let Some(p) = prepared {
            if let Some(old) = running.take() {
                old.task.abort();
            }
            let bound = p.socket.local_addr().unwrap_or(p.spec);
            tracing::info!(service = "snmp", spec = %p.spec, addr = %bound, "listening");
            let agent = Agent::new(
                self.model.clone(),
                self.stats.clone(),
                self.started,
                self.bulk_bytes,
            );
            *running = Some(Running {
                spec: p.spec,
                task: tokio::spawn(agent.serve(p.socket)),
            });
        }
    }

    fn install(&self, rt: &Runtime, confs: &[ConfRecord]) {
        let config = &rt.config;
        let vhost_rows = self.vhost_index.lock().assign(
            &config
                .vhosts
                .iter()
                .map(|v| (v.name.clone(), v.static_index))
                .collect::<Vec<_>>(),
        );
        let view_rows = self.view_index.lock().assign(
            &config
                .views
                .iter()
                .map(|v| (v.name.clone(), None))
                .collect::<Vec<_>>(),
        );
        let vhosts = vhost_rows
            .into_iter()
            .filter_map(|(i, name)| {
                let v = config.vhosts.iter().find(|v| v.name == name)?;
                let stats = rt.stats.iter().find(|s| s.name == name)?.clone();
                Some((
                    i,
                    VhostRow {
                        active: v.status != VhostStatus::Inactive,
                        name,
                        stats,
                    },
                ))
            })
            .collect();
        let views = view_rows
            .into_iter()
            .filter_map(|(i, name)| {
                let v = config.views.iter().find(|v| v.name == name)?;
                Some((
                    i,
                    ViewRow {
                        name,
                        members: v.vhosts.clone(),
                    },
                ))
            })
            .collect();
        let confs = confs[..confs.len().min(config.server.snmp.conf_count as usize)].to_vec();
        self.model.store(Arc::new(Model::new(
            config.server.snmp.clone(),
            (config.server.name.clone(), config.server.admin.clone()),
            vhosts,
            views,
            config
                .server
                .storage
                .disks
                .iter()
                .map(|d| d.path.clone())
                .collect(),
            confs,
        )));
    }
}
