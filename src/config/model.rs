//! The typed configuration that the rest of kurad reads.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::node::Unused;
use super::pattern::UrlPattern;
use super::value::{IpRule, Listen};

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `server.xml` settings that are not per vhost.
    pub server: ServerSettings,
    /// Every `<Vhost>`, in file order, with `<VHostDefault>` applied.
    pub vhosts: Vec<Arc<VhostConfig>>,
    /// `<Vhosts><Default>`: the vhost for requests no vhost matches.
    pub default_vhost: Option<String>,
    /// `<Vhosts><View>`: named groups of vhosts with combined statistics.
    pub views: Vec<ViewConfig>,
    /// What the files set that kurad recognises but does not implement yet.
    pub not_implemented: Vec<Unused>,
    /// The files it was read from: what `/conf/...` serves and the history archives.
    pub files: super::ConfFiles,
}

impl Config {
    /// The vhost a host name stands for: its Name, an exact `<Alias>`, then the
    /// longest matching `*.` alias (as the router does; without `<Default>`).
    pub fn vhost_by_host(&self, host: &str) -> Option<&Arc<VhostConfig>> {
        let host = host.to_ascii_lowercase();
        self.vhosts
            .iter()
            .find(|v| v.name == host)
            .or_else(|| self.vhosts.iter().find(|v| v.aliases.contains(&host)))
            .or_else(|| {
                self.vhosts
                    .iter()
                    .flat_map(|v| v.aliases.iter().map(move |a| (a, v)))
                    .filter_map(|(a, v)| Some((a.strip_prefix('*')?, v)))
                    .filter(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix))
                    .max_by_key(|(suffix, _)| suffix.len())
                    .map(|(_, v)| v)
            })
    }
}

impl VhostConfig {
    /// The vhost whose cached objects it serves: a facade's target, else itself.
    pub fn cache_name(&self) -> &str {
        match &self.status {
            VhostStatus::Facade(target) => target,
            _ => &self.name,
        }
    }
}

/// `<View Name>`: a named group of vhosts whose statistics are combined (chapter 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewConfig {
    /// `Name`.
    pub name: String,
    /// Member vhost names, lower case (a name need not exist).
    pub vhosts: Vec<String>,
}

/// Management API access role (chapter 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Graphs only.
    Looker,
    /// Monitoring and graphs.
    User,
    /// Everything.
    Admin,
}

impl Role {
    /// Parses `Admin`, `User` or `Looker`.
    pub fn parse(s: &str) -> Result<Role, String> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            "looker" => Ok(Role::Looker),
            _ => Err(format!("unknown role \"{s}\" (Admin, User or Looker)")),
        }
    }
}

/// `<Host><Manager>`: the management port and who may use it.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Address to bind: loopback unless an `<Allow>` admits another address.
    pub bind: SocketAddr,
    /// Role of an `<Allow>` without its own `Role`.
    pub role: Role,
    /// Allowed client addresses and their roles; loopback is allowed when empty.
    pub allow: Vec<(IpRule, Role)>,
    /// `UploadMultipartName`: the form field `/conf/upload` reads the archive from.
    pub upload_field: String,
    /// `HttpMethod`: `PURGE`/`EXPIRE`/`HARDPURGE` on a service port need an Admin
    /// `<Allow>` of the manager (ON) or anyone may send them (OFF).
    pub http_method_acl: bool,
}

impl ManagerConfig {
    /// The role of a client address, or `None` when its connection must be refused.
    pub fn role_of(&self, ip: IpAddr) -> Option<Role> {
        if self.allow.is_empty() {
            return super::is_loopback(ip).then_some(self.role);
        }
        self.allow
            .iter()
            .find(|(rule, _)| rule.matches(ip))
            .map(|(_, role)| *role)
    }
}

/// Global settings of `server.xml`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `<Host><Name>`, or the system host name.
    pub name: String,
    /// `<Host><Admin>`: the administrator's contact (SNMP `meta.admin`, `sysContact`).
    pub admin: String,
    /// `<Host><SNMP>`.
    pub snmp: super::snmp::SnmpConfig,
    /// `<Host><Manager>`.
    pub manager: ManagerConfig,
    /// `<Host><ServiceAccess>`: who may connect to the service ports.
    pub service_access: super::access::ServiceAccess,
    /// `<Cache><Listen>`: the addresses `*:port` stands for (all when empty).
    pub listen_ips: Vec<IpAddr>,
    /// Bytes of memory the object cache may hold
    /// (RAM x `SystemMemoryRatio` x `ContentMemoryRatio`).
    pub cache_memory_bytes: u64,
    /// `<Cache><Storage>`: the cache disks and what happens when they fail.
    pub storage: StorageConfig,
    /// `<Cache><Cleanup>`: the daily clean-up.
    pub cleanup: CleanupConfig,
    /// `<Cache><ConfigHistory>`: days configuration archives are kept.
    pub config_history_days: u32,
    /// `<InfoLog>`, `<DenyLog>`, `<OriginErrorLog>` (chapter 12).
    pub logs: super::log::GlobalLogs,
    /// `<Cache><Purge>Hard`: purges delete like hardpurge (no restore on origin failure).
    pub purge_hard: bool,
    /// `<Https>` blocks in file order: the first on an address is its default certificate.
    pub https: Vec<super::https::HttpsConfig>,
}

/// `<Cache><Storage>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `<Disk>` in file order: position + 1 is the SNMP `diskIndex`. Empty is
    /// Memory-Only mode (2.5.16 edition).
    pub disks: Vec<DiskConfig>,
    /// `DiskFailSec`: the window in which a disk's I/O errors are counted.
    pub fail_window: Duration,
    /// `DiskFailCount`: errors within the window past which a disk is taken out.
    pub fail_count: u32,
    /// `OnCrash`: what happens once every disk is out.
    pub on_crash: OnCrash,
    /// `<Cache><SyncStale>`: purges are written to `stale.log` and applied
    /// again at the next start after a crash.
    pub sync_stale: bool,
    /// `<Cache><Indexing>`: whether every stored head stays in memory.
    pub indexing: Indexing,
}

/// `<Cache><Indexing>` (chapter 18): where the heads of stored objects live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// Every object's head in memory (the guide's default).
    Memory,
    /// The heads of recently used objects in memory, the rest only in their
    /// files: memory holds a small entry per cold object.
    Disk,
}

/// `<Storage OnCrash>`: what kurad does when every disk has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCrash {
    /// Put every failed disk back to work (the guide's default).
    Hang,
    /// Pass every request to the origin until a disk is back.
    Bypass,
    /// Exit (systemd restarts kurad).
    SelfKill,
}

impl OnCrash {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            OnCrash::Hang => "hang",
            OnCrash::Bypass => "bypass",
            OnCrash::SelfKill => "selfkill",
        }
    }
}

/// One `<Disk>`: a cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// The directory as written (reported as is, so NMS labels match the file).
    pub path: PathBuf,
    /// `Quota` in bytes (written in GB, decimals allowed); `None` keeps the file
    /// system from filling instead.
    pub quota: Option<u64>,
}

/// `<Cache><Cleanup>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupConfig {
    /// `<Time>`: minutes after local midnight when the daily clean-up runs.
    pub minute_of_day: u32,
    /// `<Age>`: content not hit for this many days is deleted (0: only what the
    /// quotas evict).
    pub age_days: u32,
}

/// `<Vhost Status>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VhostStatus {
    /// Serving.
    Active,
    /// Not serving; its cache is kept.
    Inactive,
    /// Serves as the named vhost while keeping its own statistics and logs.
    Facade(String),
}

/// Where a TTL may come from, in `<TTL Priority>` order (chapter 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlSource {
    /// `Cache-Control: no-cache` (or must-revalidate): the `<NoCache>` TTL.
    CcNoCache,
    /// `svc/<vhost>/ttl.txt` rules.
    Custom,
    /// `s-maxage`, `max-age` or `Expires` from the origin.
    CcMaxAge,
    /// The `<ResNxx>` TTL of the status class.
    ResCode,
}

/// `<Options><TTL>`.
#[derive(Debug, Clone)]
pub struct TtlPolicy {
    /// Order in which TTL sources are tried.
    pub priority: Vec<TtlSource>,
    /// `<Res2xx>`.
    pub res2xx: Duration,
    /// `<NoCache>` when written. Not written, a `no-cache` response is stored
    /// but revalidated on every use (RFC 9111 5.2.2.4) instead of the guide's 5 s.
    pub no_cache: Option<Duration>,
    /// `<NoCache MaxAge>`: when > 0, a no-cache response's max-age is honoured up to it.
    pub no_cache_max_age: Duration,
    /// `<Res3xx>`.
    pub res3xx: Duration,
    /// `<Res4xx>`.
    pub res4xx: Duration,
    /// `<Res5xx>`.
    pub res5xx: Duration,
    /// Whether `<Res2xx>`..`<Res5xx>` (index 0..3) give a TTL in the files. Not
    /// written, a response without freshness information gets at most RFC 9111's
    /// heuristic (4.2.2), bounded by the documented TTL.
    pub rescode_written: [bool; 4],
    /// `<Res2xx Ratio>`: percent a rescode TTL grows on each 304 revalidation.
    pub res2xx_ratio: u32,
    /// `<Res2xx Max>`: ceiling of the grown TTL.
    pub res2xx_max: Duration,
    /// `<NoCache Ratio>`.
    pub no_cache_ratio: u32,
    /// `<NoCache Max>`.
    pub no_cache_max: Duration,
    /// `<TTL><ConnectTimeout>`: how long an expired copy is kept (or an error
    /// answered) when the origin cannot be reached.
    pub connect_timeout: Duration,
    /// `<TTL><ReceiveTimeout>`: the same when the origin connects but does not answer.
    pub receive_timeout: Duration,
    /// `<TTL><OriginBusy>`: how long an expired copy is kept, without asking the
    /// origin, while the origin is busy (`<BusySessionCount>`).
    pub origin_busy: Duration,
    /// `svc/<vhost>/ttl.txt`: fixed TTLs by URL pattern, first match wins.
    pub custom: Vec<(UrlPattern, Duration)>,
}

/// How a request becomes a cache key (chapter 4 "Caching Key").
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// `<CaseSensitive>`: OFF lower-cases the key.
    pub case_sensitive: bool,
    /// `<ApplyQueryString>`: the query string is part of the key.
    pub apply_query_string: bool,
    /// `svc/<vhost>/querystring.txt`: URLs for which `apply_query_string` is inverted.
    pub query_exceptions: Vec<UrlPattern>,
    /// `<ApplyQueryString Collective>`: a purge of a URL also hits its query-string variants.
    pub collective: bool,
    /// `<AcceptEncoding>`: the client's accepted encodings are part of the key.
    pub accept_encoding: bool,
}

/// Which `Vary` fields of the origin are honoured (`<VaryHeader>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaryPolicy {
    /// Not written: every field (RFC 9111 4.1), see ARCHITECTURE.md.
    Rfc,
    /// Written: only these (lower case); empty ignores `Vary`, as the guide says.
    Only(Vec<String>),
    /// `*`: every field.
    All,
}

/// `<Purge2Expire>`: which purges are carried out as expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge2Expire {
    /// None.
    None,
    /// Purges of the vhost root.
    Root,
    /// Purges with a `*` pattern.
    Pattern,
    /// Every purge.
    All,
}

/// `<RootPurgeExpire>` (2.5.16 values): what may target the vhost root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootPurge {
    /// `ON`: purge and expire.
    Both,
    /// `PURGE`: purge only.
    Purge,
    /// `EXPIRE`: expire only.
    Expire,
    /// `OFF`: neither.
    Off,
}

/// Chapters 4 and 5 settings of a vhost beyond TTLs.
#[derive(Debug, Clone)]
pub struct CachingPolicy {
    /// Cache key options.
    pub key: KeyPolicy,
    /// `<VaryHeader>`.
    pub vary: VaryPolicy,
    /// `<TTLExtensionBy4xx>`: a 4xx on revalidation keeps the stored copy.
    pub ttl_extension_4xx: bool,
    /// `<TTLExtensionBy5xx>`: a 5xx on revalidation keeps the stored copy.
    pub ttl_extension_5xx: bool,
    /// `<RefreshExpired>`: ON waits for revalidation; OFF serves the expired copy
    /// and revalidates in the background.
    pub refresh_expired: bool,
    /// `<NoCacheRequestExpire>`: a client's `no-cache` expires the stored copy.
    pub no_cache_request_expire: bool,
    /// `<Purge2Expire>`.
    pub purge2expire: Purge2Expire,
    /// `<RootPurgeExpire>`.
    pub root_purge: RootPurge,
    /// `<ResCodeNoCtrlTarget>`: status of a purge that found nothing.
    pub no_target_status: u16,
    /// `<PostRequest>` with `<BypassPostRequest>`: how POSTs are handled.
    pub post: PostPolicy,
}

/// POST handling (chapter 4 "POST Request Caching", chapter 8's `<BypassPostRequest>`).
#[derive(Debug, Clone)]
pub struct PostPolicy {
    /// `<PostRequest>`: POSTs with a `Content-Length` up to `max_body` are cached.
    pub cache: bool,
    /// `<PostRequest MaxContentLength>`.
    pub max_body: u64,
    /// `<PostRequest BodySensitive>`: the body is part of the key.
    pub body_sensitive: bool,
    /// `svc/<vhost>/postbody.txt`: URLs for which `body_sensitive` is inverted.
    pub body_exceptions: Vec<UrlPattern>,
}

/// Client-side session and header settings (chapter 6).
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    /// `<AgeHeader>`; ON unless written OFF (RFC 9111 requires Age from a shared cache).
    pub age_header: bool,
    /// `<ViaHeader>`.
    pub via_header: bool,
    /// `<ServerHeader>`: pass the origin's Server header.
    pub server_header: bool,
    /// `<ETagHeader>`.
    pub etag_header: bool,
    /// `<ConnectionHeader>close</ConnectionHeader>`.
    pub connection_close: bool,
    /// `<KeepAliveHeader>`.
    pub keep_alive_header: bool,
    /// `<KeepAliveHeader Max>`: requests per connection, 0 = unlimited.
    pub keep_alive_max: u32,
    /// `<ClientKeepAliveSec>`: idle client connections are closed after this.
    pub keep_alive: Duration,
}

/// One virtual host, with `<VHostDefault>` applied.
#[derive(Debug, Clone)]
pub struct VhostConfig {
    /// `Name`, lower case.
    pub name: String,
    /// `StaticIndex`: the SNMP `[vhostIndex]` this vhost keeps.
    pub static_index: Option<u32>,
    /// `Status`.
    pub status: VhostStatus,
    /// `<Alias>` names, lower case; `*.suffix` patterns keep their `*.`.
    pub aliases: Vec<String>,
    /// `<Listen>` addresses (empty for `OFF`).
    pub listen: Vec<Listen>,
    /// `<Options><TTL>`.
    pub ttl: TtlPolicy,
    /// Keys, Vary, revalidation and purge settings.
    pub caching: CachingPolicy,
    /// `<ModifyHeader>`, `<RefreshExpiresHeader>`, `<OriginalHeader>` (chapter 6).
    pub headers: super::headers::HeaderPolicy,
    /// Chapter 8's bypass settings and `bypass.txt`.
    pub bypass: super::bypass::BypassPolicy,
    /// `<PortBypass>`es.
    pub port_bypass: Vec<super::bypass::PortBypass>,
    /// Client-side headers and sessions.
    pub client: ClientPolicy,
    /// `<Origin>` and `<OriginOptions>` (chapter 7).
    pub origin: super::origin::OriginPolicy,
    /// `<Stats><DirDepth>`/`<DirDepthAccum>`; `None` for depth 0 (the vhost is `/`).
    pub dir_stats: Option<DirPolicy>,
    /// `<Stats><HttpsTraffic>`: HTTPS requests count in the HTTP statistics too (ON),
    /// or only in the SSL figures (OFF, the guide's default).
    pub https_traffic: bool,
    /// `<Log>`: the vhost's access, origin and monitoring logs (chapter 12).
    pub logs: super::log::VhostLogs,
}

/// How a vhost collects per-directory client statistics (guide chapter 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirPolicy {
    /// `<DirDepth>`: levels below `/` that get their own entry.
    pub depth: u32,
    /// `<DirDepthAccum>`: a directory's traffic counts in its ancestors too.
    pub accum: bool,
}
