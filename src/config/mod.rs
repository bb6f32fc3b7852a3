//! Configuration: `server.xml` + `vhosts.xml` (+ `svc/<vhost>/*.txt`), read
//! into typed settings with `<VHostDefault>` inheritance and placed errors.
//!
//! Precedence for every vhost setting: the `<Vhost>` element, then
//! `<VHostDefault>`, then the guide's documented default from the element
//! table, except where kura deliberately differs (documented on the field).

pub mod access;
pub mod bypass;
mod caching;
pub mod ciphers;
pub mod error;
pub mod files;
pub mod headers;
pub mod history;
pub mod https;
pub mod log;
pub mod model;
pub mod node;
pub mod origin;
pub mod pattern;
pub mod schema;
pub mod snmp;
pub mod value;
pub mod xml;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors};
pub use files::{ConfFiles, Fingerprint};
pub use model::*;
use node::{Node, Unused};
use value::Listen;
use xml::{ConfFile, Element};

/// The default configuration directory.
pub const DEFAULT_CONF_DIR: &str = "/etc/kura";

/// Default management port (chapter 2).
pub const DEFAULT_MANAGER_PORT: u16 = 10040;

/// Whether an address is loopback (IPv4-mapped IPv6 included).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// Reads and validates the configuration files in `dir`.
pub fn load_dir(dir: &Path) -> Result<Config, ConfigErrors> {
    load_files(dir, ConfFiles::read_dir(dir)?)
}

/// Validates configuration text: just the two XML files (an embedded default, tests).
pub fn load_str(
    conf_dir: &Path,
    server_xml: &str,
    vhosts_xml: &str,
) -> Result<Config, ConfigErrors> {
    load_files(conf_dir, ConfFiles::from_xml(server_xml, vhosts_xml))
}

/// Validates a configuration snapshot; `conf_dir` is where its files are said to be.
pub fn load_files(conf_dir: &Path, files: ConfFiles) -> Result<Config, ConfigErrors> {
    let server_xml = files.server_xml();
    let vhosts_xml = files.vhosts_xml();
    let server_root = xml::parse(ConfFile::Server, server_xml)?;
    let vhosts_root = xml::parse(ConfFile::Vhosts, vhosts_xml)?;
    let mut cx = Cx::default();
    for (root, want) in [(&server_root, "Server"), (&vhosts_root, "Vhosts")] {
        if root.name != want {
            cx.errors.push(ConfigError::at(
                root.loc,
                &root.name,
                format!("the root element must be <{want}>"),
            ));
        }
    }
    cx.errors.extend(schema::validate(&server_root));
    cx.errors.extend(schema::validate(&vhosts_root));

    let server = read_server(&mut cx, &server_root);
    let defaults = server_root.children_named("VHostDefault").next();
    if let Some(d) = defaults {
        d.used.set(true);
    }
    // Read <VHostDefault> on its own too, so its values are checked (and marked
    // as read) even when no vhost inherits them.
    read_vhost(&mut cx, None, defaults, "(VHostDefault)", None);
    let mut vhosts = Vec::new();
    for el in vhosts_root.children_named("Vhost") {
        let name = Node::new(Some(el), None, "Vhosts/Vhost").attr("Name");
        match name {
            Some(n) if !n.raw.trim().is_empty() => {
                let v = read_vhost(&mut cx, Some(el), defaults, n.raw.trim(), Some(&files));
                vhosts.push((Arc::new(v), el));
            }
            _ => cx.errors.push(ConfigError::at(
                el.loc,
                "Vhost",
                "missing Name attribute".into(),
            )),
        }
    }
    let default_vhost = Node::new(Some(&vhosts_root), None, "Vhosts")
        .child("Default")
        .value()
        .map(|v| (v.raw.trim().to_ascii_lowercase(), v));
    bypass::check_ports(&mut cx, &vhosts);
    check_names(
        &mut cx,
        &vhosts,
        default_vhost.as_ref().map(|(n, v)| (n.as_str(), *v)),
    );
    let vhosts: Vec<Arc<VhostConfig>> = vhosts.into_iter().map(|(v, _)| v).collect();

    let views = read_views(&mut cx, &vhosts_root);
    let mut not_implemented = Vec::new();
    node::unused(&server_root, &mut not_implemented);
    not_implemented.append(&mut cx.partial);
    node::unused(&vhosts_root, &mut not_implemented);
    if cx.errors.is_empty() {
        svc_files(conf_dir, &files, &vhosts, &mut not_implemented);
    }
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| match &e.place {
            error::Place::Line(l) => (l.file as u8, l.line),
            _ => (u8::MAX, 0),
        });
        return Err(ConfigErrors(cx.errors));
    }
    Ok(Config {
        server,
        vhosts,
        default_vhost: default_vhost.map(|(n, _)| n),
        views,
        not_implemented,
        files,
    })
}

/// Collects errors while reading, so one `check` reports all of them.
#[derive(Default)]
struct Cx {
    /// Every error found so far.
    errors: Vec<ConfigError>,
    /// Settings that are read but whose feature is only partly there; they join the
    /// not-implemented report, because the `used` marks alone would hide them.
    partial: Vec<Unused>,
}

impl Cx {
    /// The parsed value, or `fallback` after recording the error.
    fn ok<T>(&mut self, r: Result<T, ConfigError>, fallback: T) -> T {
        r.unwrap_or_else(|e| {
            self.errors.push(e);
            fallback
        })
    }

    /// Parses a setting that has a documented default; `fallback` only covers errors.
    fn get<T>(
        &mut self,
        v: Option<node::Value<'_>>,
        f: impl FnOnce(&str) -> Result<T, String>,
        fallback: T,
    ) -> T {
        match v {
            Some(v) => self.ok(v.parse(f), fallback),
            None => fallback,
        }
    }
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn read_server(cx: &mut Cx, root: &Element) -> ServerSettings {
    let server = Node::new(Some(root), None, "Server");
    let host = server.child("Host");
    let name = host
        .child("Name")
        .value()
        // The table's default is the words "system name": only a written name counts.
        .filter(|v| v.loc.is_some())
        .map(|v| v.raw.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(system_hostname);
    let manager = host.child("Manager");
    let port = cx.get(
        manager.attr("Port"),
        value::int_in(0u16, u16::MAX),
        DEFAULT_MANAGER_PORT,
    );
    let role = cx.get(manager.attr("Role"), Role::parse, Role::Admin);
    let upload_field = cx.get(
        manager.attr("UploadMultipartName"),
        |s| match s.trim() {
            "" => Err("the multipart field name cannot be empty".to_string()),
            name => Ok(name.to_string()),
        },
        "confile".to_string(),
    );
    let mut allow = Vec::new();
    for el in manager.list("Allow") {
        let n = Node::new(Some(el), None, "Server/Host/Manager/Allow");
        let Some(v) = n.value() else { continue };
        let rule = cx.ok(
            v.parse(value::ip_rule),
            value::IpRule::Single(Ipv4Addr::LOCALHOST.into()),
        );
        let r = cx.get(n.attr("Role"), Role::parse, role);
        allow.push((rule, r));
    }
    // Loopback unless some <Allow> admits a remote address (see ARCHITECTURE.md).
    let remote = allow.iter().any(|(rule, _)| !rule.is_loopback_only());
    let bind_ip: IpAddr = if remote {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    };

    let cache = server.child("Cache");
    let storage = read_storage(
        cx,
        &cache.child("Storage"),
        (&cache.child("SyncStale"), &cache.child("Indexing")),
    );
    let cleanup = read_cleanup(cx, &cache.child("Cleanup"));
    let mut listen_ips = Vec::new();
    for el in cache.list("Listen") {
        let v = Node::new(Some(el), None, "Server/Cache/Listen").value();
        if let Some(v) = v {
            let ip = cx.get(
                Some(v),
                |s| {
                    s.parse::<IpAddr>()
                        .map_err(|_| format!("\"{s}\" is not an IP address"))
                },
                Ipv4Addr::UNSPECIFIED.into(),
            );
            listen_ips.push(ip);
        }
    }
    let system_ratio = cx.get(
        cache.child("SystemMemoryRatio").value(),
        value::int_in(1u64, 100),
        100,
    );
    let content_ratio = cx.get(
        cache.child("ContentMemoryRatio").value(),
        value::int_in(1u64, 100),
        50,
    );
    let config_history_days = cx.get(
        cache.child("ConfigHistory").value(),
        value::int_in(0u32, 36_500),
        30,
    );
    let admin = host
        .child("Admin")
        .value()
        .map(|v| v.raw.trim().to_string())
        .unwrap_or_default();
    ServerSettings {
        https: https::read(cx, &server, root),
        logs: log::read_global(cx, &cache),
        name,
        admin,
        snmp: snmp::read_snmp(cx, &host),
        service_access: access::read(cx, &host),
        manager: ManagerConfig {
            bind: SocketAddr::new(bind_ip, port),
            role,
            allow,
            upload_field,
            http_method_acl: cx.get(manager.attr("HttpMethod"), value::on_off, true),
        },
        listen_ips,
        cache_memory_bytes: crate::procfs::physical_memory() / 100 * system_ratio / 100
            * content_ratio,
        storage,
        cleanup,
        config_history_days,
        purge_hard: cx.get(
            cache.child("Purge").value(),
            |s| match s.trim().to_ascii_lowercase().as_str() {
                "normal" => Ok(false),
                "hard" => Ok(true),
                _ => Err(format!("unknown value \"{s}\" (Normal or Hard)")),
            },
            false,
        ),
    }
}

/// `<Storage>`: its failure policy and the `<Disk>` directories in file order;
/// `<SyncStale>` and `<Indexing>`.
fn read_storage(
    cx: &mut Cx,
    storage: &Node<'_>,
    (sync_stale, indexing): (&Node<'_>, &Node<'_>),
) -> StorageConfig {
    let elements = storage.list("Disk");
    let mut disks: Vec<DiskConfig> = Vec::new();
    for el in &elements {
        let n = Node::new(Some(el), None, "Server/Cache/Storage/Disk");
        let path = PathBuf::from(el.text.trim());
        // A relative path would depend on kurad's working directory.
        if !path.is_absolute() {
            let problem = if el.text.trim().is_empty() {
                "the directory path is empty".to_string()
            } else {
                format!("\"{}\" is not an absolute directory path", el.text.trim())
            };
            cx.errors.push(n.error(problem));
            continue;
        }
        // One directory cannot hold two caches.
        if disks.iter().any(|d| d.path == path) {
            cx.errors
                .push(n.error(format!("{} is listed twice", path.display())));
            continue;
        }
        let quota = cx.get(n.attr("Quota"), |s| value::gigabytes(s).map(Some), None);
        disks.push(DiskConfig { path, quota });
    }
    StorageConfig {
        disks,
        fail_window: Duration::from_secs(cx.get(
            storage.attr("DiskFailSec"),
            value::int_in(1u64, 86_400),
            60,
        )),
        fail_count: cx.get(
            storage.attr("DiskFailCount"),
            value::int_in(1u32, 1_000_000),
            10,
        ),
        on_crash: cx.get(
            storage.attr("OnCrash"),
            |s| match s.trim().to_ascii_lowercase().as_str() {
                "hang" => Ok(OnCrash::Hang),
                "bypass" => Ok(OnCrash::Bypass),
                "selfkill" => Ok(OnCrash::SelfKill),
                _ => Err(format!("unknown value \"{s}\" (hang, bypass or selfkill)")),
            },
            OnCrash::Hang,
        ),
        sync_stale: cx.get(sync_stale.value(), value::on_off, true),
        indexing: cx.get(
            indexing.value(),
            |s| match s.trim().to_ascii_lowercase().as_str() {
                "memory" => Ok(Indexing::Memory),
                "disk" => Ok(Indexing::Disk),
                _ => Err(format!("unknown value \"{s}\" (Memory or Disk)")),
            },
            Indexing::Memory,
        ),
    }
}

/// `<Cleanup><Time><Age>`.
fn read_cleanup(cx: &mut Cx, cleanup: &Node<'_>) -> CleanupConfig {
    CleanupConfig {
        minute_of_day: cx.get(cleanup.child("Time").value(), value::time_of_day, 120),
        age_days: cx.get(cleanup.child("Age").value(), value::int_in(0u32, 36_500), 0),
    }
}

/// Reads one vhost; with `own == None` it reads `<VHostDefault>` alone.
fn read_vhost(
    cx: &mut Cx,
    own: Option<&Element>,
    defaults: Option<&Element>,
    name: &str,
    files: Option<&ConfFiles>,
) -> VhostConfig {
    let vhost = Node::new(own, None, "Vhosts/Vhost");
    let options = group(own, defaults, "Options");
    let origin_options = group(own, defaults, "OriginOptions");

    let status = match vhost.attr("Status") {
        Some(v) => cx.ok(
            v.parse(|s| match s.to_ascii_lowercase().as_str() {
                "active" => Ok(VhostStatus::Active),
                "inactive" => Ok(VhostStatus::Inactive),
                _ => match s.split_once(':') {
                    Some((f, target)) if f.eq_ignore_ascii_case("facade") && !target.is_empty() => {
                        Ok(VhostStatus::Facade(target.trim().to_ascii_lowercase()))
                    }
                    _ => Err(format!(
                        "unknown value \"{s}\" (Active, Inactive or facade:<vhost>)"
                    )),
                },
            }),
            VhostStatus::Active,
        ),
        None => VhostStatus::Active,
    };
    let mut aliases = Vec::new();
    for el in vhost.list("Alias") {
        if let Some(v) = Node::new(Some(el), None, "Vhosts/Vhost/Alias").value() {
            let a = cx.ok(v.parse(alias), String::new());
            if !a.is_empty() {
                aliases.push(a);
            }
        }
    }

    let mut listen = Vec::new();
    let listen_els = vhost.list("Listen");
    if listen_els.is_empty() && own.is_some() {
        listen.push(Listen::AnyIp(80));
    }
    for el in listen_els {
        if let Some(v) = Node::new(Some(el), None, "Vhosts/Vhost/Listen").value() {
            match cx.ok(v.parse(value::listen), Listen::Off) {
                Listen::Off => {}
                l => listen.push(l),
            }
        }
    }

    let origin = origin::read(cx, &vhost.child("Origin"), &origin_options);
    if own.is_some() && origin.addresses.is_empty() && status == VhostStatus::Active {
        cx.errors
            .push(vhost.error(format!("vhost {name} has no <Origin><Address>")));
    }

    let svc = files.map(|f| (f, name.to_ascii_lowercase()));
    let svc = svc.as_ref().map(|(f, n)| (*f, n.as_str()));
    let ttl = caching::read_ttl(cx, &options, svc);
    let caching = caching::read_caching(cx, &options, svc);
    let headers = headers::read(cx, &options, &origin_options, svc);
    let bypass = bypass::read(cx, &options, &origin_options, svc);
    let port_bypass = bypass::read_ports(cx, &vhost);
    let secs = |cx: &mut Cx, n: Node<'_>, fallback: u64| {
        cx.get(n.value(), value::duration, Duration::from_secs(fallback))
    };

    let on = |cx: &mut Cx, n: Node<'_>, fallback: bool| cx.get(n.value(), value::on_off, fallback);
    let age = options.child("AgeHeader");
    let keep_alive_header = options.child("KeepAliveHeader");
    let client = ClientPolicy {
        // RFC 9111 5.1: a shared cache sends Age. The guide's default is OFF;
        // kura sends it unless the configuration says OFF.
        age_header: if age.is_written() {
            on(cx, age, true)
        } else {
            true
        },
        via_header: on(cx, options.child("ViaHeader"), true),
        server_header: on(cx, options.child("ServerHeader"), true),
        etag_header: on(cx, options.child("ETagHeader"), true),
        connection_close: cx.get(
            options.child("ConnectionHeader").value(),
            |s| match s.to_ascii_lowercase().as_str() {
                "keep-alive" => Ok(false),
                "close" => Ok(true),
                _ => Err(format!("unknown value \"{s}\" (keep-alive or close)")),
            },
            false,
        ),
        keep_alive_max: cx.get(
            keep_alive_header.attr("Max"),
            value::int_in(0u32, u32::MAX),
            0,
        ),
        keep_alive_header: on(cx, keep_alive_header, true),
        keep_alive: secs(cx, options.child("ClientKeepAliveSec"), 10),
    };
    let stats = group(own, defaults, "Stats");
    let depth = cx.get(
        stats.child("DirDepth").value(),
        value::int_in(0u32, u32::MAX),
        0,
    );
    let accum = on(cx, stats.child("DirDepthAccum"), false);
    let https_traffic = on(cx, stats.child("HttpsTraffic"), false);
    let dir_stats = (depth > 0).then_some(DirPolicy { depth, accum });
    let static_index = cx.get(vhost.attr("StaticIndex"), value::int_in(1u32, 65_535), 0);
    let logs = log::read_vhost(cx, &group(own, defaults, "Log"));
    VhostConfig {
        name: name.to_ascii_lowercase(),
        static_index: (static_index > 0).then_some(static_index),
        status,
        aliases,
        listen,
        ttl,
        caching,
        headers,
        bypass,
        port_bypass,
        client,
        origin,
        dir_stats,
        https_traffic,
        logs,
    }
}

/// `<View Name><Vhost>name</Vhost>...</View>`; view names are unique.
fn read_views(cx: &mut Cx, root: &Element) -> Vec<ViewConfig> {
    let mut views: Vec<ViewConfig> = Vec::new();
    for el in Node::new(Some(root), None, "Vhosts").list("View") {
        let view = Node::new(Some(el), None, "Vhosts/View");
        let name = view
            .attr("Name")
            .map(|v| v.raw.trim().to_string())
            .unwrap_or_default();
        if name.is_empty() {
            cx.errors.push(view.error("missing Name attribute"));
            continue;
        }
        if views.iter().any(|v| v.name == name) {
            cx.errors
                .push(view.error(format!("duplicate view name {name}")));
            continue;
        }
        let vhosts = view
            .list("Vhost")
            .into_iter()
            .map(|v| v.text.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect();
        views.push(ViewConfig { name, vhosts });
    }
    views
}

/// One of the five groups of a vhost, which inherit from `<VHostDefault>`
/// (everything else in a `<Vhost>` is its own).
fn group<'a>(own: Option<&'a Element>, defaults: Option<&'a Element>, g: &str) -> Node<'a> {
    let pick = |e: Option<&'a Element>| e.and_then(|e| e.children_named(g).next());
    Node::new(
        pick(own),
        pick(defaults),
        &format!("Server/VHostDefault/{g}"),
    )
}

/// An `<Alias>`: a host name, or `*.suffix` (only a leading `*.` is a pattern).
fn alias(s: &str) -> Result<String, String> {
    let name = s.strip_prefix("*.").unwrap_or(s);
    if name.is_empty()
        || name.contains('*')
        || name.contains('/')
        || name.contains(char::is_whitespace)
    {
        return Err(format!("\"{s}\" is not a host name or *.suffix pattern"));
    }
    Ok(s.to_ascii_lowercase())
}

/// Vhost names and aliases are unique, and `<Default>` and facades name real vhosts.
fn check_names(
    cx: &mut Cx,
    vhosts: &[(Arc<VhostConfig>, &Element)],
    default: Option<(&str, node::Value<'_>)>,
) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (v, el) in vhosts {
        if let Some(prev) = seen.insert(&v.name, &v.name) {
            cx.errors.push(ConfigError::at(
                el.loc,
                "Vhost",
                format!("duplicate vhost name {prev}"),
            ));
        }
    }
    for (v, el) in vhosts {
        for a in &v.aliases {
            let line = el
                .children_named("Alias")
                .find(|x| x.text.eq_ignore_ascii_case(a))
                .map_or(el.loc, |x| x.loc);
            if let Some(owner) = seen.insert(a, &v.name) {
                cx.errors.push(ConfigError::at(
                    line,
                    "Alias",
                    format!("{a} is already used by vhost {owner}"),
                ));
            }
        }
        if let VhostStatus::Facade(target) = &v.status {
            if !vhosts.iter().any(|(o, _)| &o.name == target) {
                cx.errors.push(ConfigError::at(
                    el.loc,
                    "Vhost",
                    format!("Status: facade target {target} is not a vhost"),
                ));
            }
        }
    }
    let mut pinned: HashMap<u32, &str> = HashMap::new();
    for (v, el) in vhosts {
        if let Some(i) = v.static_index {
            if let Some(other) = pinned.insert(i, &v.name) {
                cx.errors.push(ConfigError::at(
                    el.loc,
                    "Vhost",
                    format!("StaticIndex {i} is already pinned by vhost {other}"),
                ));
            }
        }
    }
    if let Some((name, v)) = default {
        if !vhosts.iter().any(|(o, _)| o.name == name) {
            cx.errors
                .push(v.error(format!("{name} is not the Name of any <Vhost>")));
        }
    }
}

/// The `svc/<vhost>/` lists kurad reads.
const IMPLEMENTED_LISTS: [&str; 5] = [
    "ttl.txt",
    "querystring.txt",
    "headers.txt",
    "expires.txt",
    "postbody.txt",
];

/// `svc/<vhost>/*.txt`: every documented file is recognised; those not implemented
/// yet are reported.
fn svc_files(
    conf_dir: &Path,
    files: &ConfFiles,
    vhosts: &[Arc<VhostConfig>],
    out: &mut Vec<Unused>,
) {
    for v in vhosts {
        for file in &schema::schema().text_files {
            let rel = format!("svc/{}/{file}", v.name);
            if IMPLEMENTED_LISTS.contains(file) {
                continue;
            }
            if files.get(&rel).is_some() && !out.iter().any(|u| u.path.ends_with(file)) {
                out.push(Unused {
                    path: format!("svc/<vhost>/{file}"),
                    place: conf_dir.join(rel).display().to_string(),
                });
            }
        }
    }
}
