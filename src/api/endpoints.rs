//! The management API's endpoint table: `../shared/spec/api-endpoints.tsv`,
//! embedded as it is (a test keeps the copy identical), drives routing and the
//! role check. Every documented endpoint answers: those kura serves go to
//! their handler, the others answer 501 naming the capability they belong to,
//! never 404.

use std::sync::LazyLock;

use http::Method;

use crate::config::Role;

/// The embedded `api-endpoints.tsv`.
pub const API_ENDPOINTS_TSV: &str = include_str!("api-endpoints.tsv");

/// How a table row's `path` column matches a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// This exact path.
    Exact(String),
    /// Any path under this prefix (`/graph/{name}_{type}.png` → `/graph/`).
    Prefix(String),
    /// Any path: the purge methods sent to a content URI (`/<uri>` rows).
    Any,
}

impl PathMatch {
    fn parse(column: &str) -> PathMatch {
        let path = column.split_whitespace().next().unwrap_or(column);
        if path.starts_with("/<") {
            return PathMatch::Any;
        }
        match path.find(['{', '*']) {
            Some(i) => PathMatch::Prefix(path[..i].to_string()),
            None => PathMatch::Exact(path.to_string()),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Any => true,
        }
    }

    /// How specific the match is: exact paths before longer prefixes before shorter ones.
    fn rank(&self) -> usize {
        match self {
            PathMatch::Exact(_) => usize::MAX,
            PathMatch::Prefix(p) => p.len(),
            PathMatch::Any => 0,
        }
    }
}

/// What kura does with a request for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `/version`.
    Version,
    /// `/conf/reload` and its `reloadall`/`reloadserver`/`reloadvhosts` forms.
    Reload,
    /// `/conf/server.xml`, `/conf/vhosts.xml`: the file as written.
    ConfFile,
    /// `/conf/<file>.txt?vhost=`: a vhost's `svc/<vhost>/<file>.txt`.
    SvcFile,
    /// `/monitoring/vhostslist`.
    VhostsList,
    /// `/monitoring/realtime` (JSON/XML, last second).
    Realtime,
    /// `/monitoring/average` (JSON/XML, 5 minutes).
    Average,
    /// `/monitoring/hwinfo`.
    HwInfo,
    /// `/monitoring/cpuinfo.json`: the `CPU` part of hwinfo.
    CpuInfo,
    /// `/monitoring/origin`.
    Origin,
    /// `/monitoring/dnslist`.
    DnsList,
    /// `/command/resetorigin`.
    ResetOrigin,
    /// `/command/mount`: a cache disk back in service.
    Mount,
    /// `/command/unmount` (`umount`): a cache disk out of service.
    Unmount,
    /// `/monitoring/fileinfo`.
    FileInfo,
    /// `/monitoring/ssl?ciphersuite=`: the suites an expression makes kura offer.
    Ssl,
    /// `/conf/latest`: the newest history entry.
    ConfLatest,
    /// `/conf/history`: every history entry.
    ConfHistory,
    /// `/conf/restore?hash=|id=`.
    ConfRestore,
    /// `/conf/download?hash=|id=`.
    ConfDownload,
    /// `POST /conf/upload[/server.xml|/vhosts.xml]`.
    ConfUpload,
    /// `/command/restart`.
    Restart,
    /// `/command/terminate`.
    Terminate,
    /// `/command/cacheclear`.
    CacheClear,
    /// `/command/cleanup`.
    Cleanup,
    /// `/command/purge`, `expire`, `expireafter`, `hardpurge`.
    Purge,
    /// `PURGE`/`EXPIRE`/`HARDPURGE` sent to a content URI.
    PurgeMethod,
    /// `/metrics` (our addition, not in the table).
    Metrics,
    /// `/monitoring/logtrace/<log>`: a log's lines as they are written.
    LogTrace,
    /// Documented, but its capability is not built yet.
    Later(Capability),
}

impl Handler {
    /// The `method` the reply envelope names.
    pub fn as_str(self) -> &'static str {
        match self {
            Handler::Version => "version",
            Handler::Reload => "reload",
            Handler::ConfFile | Handler::SvcFile => "conf",
            Handler::VhostsList => "vhostslist",
            Handler::Realtime => "realtime",
            Handler::Average => "average",
            Handler::HwInfo => "hwinfo",
            Handler::CpuInfo => "cpuinfo",
            Handler::Origin => "origin",
            Handler::DnsList => "dnslist",
            Handler::ResetOrigin => "resetorigin",
            Handler::Mount => "mount",
            Handler::Unmount => "unmount",
            Handler::FileInfo => "fileinfo",
            Handler::Ssl => "ssl",
            Handler::ConfLatest => "latest",
            Handler::ConfHistory => "history",
            Handler::ConfRestore => "restore",
            Handler::ConfDownload => "download",
            Handler::ConfUpload => "uploadconfig",
            Handler::Restart => "restart",
            Handler::Terminate => "terminate",
            Handler::CacheClear => "cacheclear",
            Handler::Cleanup => "cleanup",
            Handler::Purge | Handler::PurgeMethod => "purge",
            Handler::Metrics => "metrics",
            Handler::LogTrace => "logtrace",
            Handler::Later(_) => "unavailable",
        }
    }
}

/// A capability an endpoint belongs to that kura does not have yet, with the
/// issue that brings it (or why it is not planned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Cache resource reports (`cacheresource`, `coldfiledist`).
    Storage,
    /// Graphs (RRD-style images).
    Graphs,
    /// GeoIP access control (chapter 14).
    GeoIp,
    /// Clustering (not planned: kura nodes are independent).
    Cluster,
    /// Encrypted configuration passwords.
    EncryptPassword,
}

impl Capability {
    /// The name the 501 reply gives.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Storage => "cache resource reports (cacheresource, coldfiledist)",
            Capability::Graphs => "graphs",
            Capability::GeoIp => "GeoIP access control (chapter 14)",
            Capability::Cluster => "clustering (not planned: kura nodes are independent)",
            Capability::EncryptPassword => "encrypted configuration passwords",
        }
    }
}

/// The handler of a table row, from its path and method.
fn handler_of(path: &PathMatch, method: &str) -> Handler {
    use Capability as C;
    let p = match path {
        PathMatch::Any => return Handler::PurgeMethod,
        PathMatch::Prefix(p) if p.starts_with("/graph/") => return Handler::Later(C::Graphs),
        PathMatch::Prefix(p) | PathMatch::Exact(p) => p.as_str(),
    };
    let base = p
        .strip_suffix(".json")
        .or_else(|| {
            p.strip_suffix(".xml")
                .filter(|_| p.starts_with("/monitoring/"))
        })
        .unwrap_or(p);
    match (base, method) {
        ("/version", _) => Handler::Version,
        ("/conf/reload" | "/conf/reloadall" | "/conf/reloadserver" | "/conf/reloadvhosts", _) => {
            Handler::Reload
        }
        ("/conf/server.xml" | "/conf/vhosts.xml", "GET") => Handler::ConfFile,
        (p, "GET") if p.starts_with("/conf/") && p.ends_with(".txt") => Handler::SvcFile,
        ("/monitoring/vhostslist", _) => Handler::VhostsList,
        ("/monitoring/realtime", _) => Handler::Realtime,
        ("/monitoring/average", _) => Handler::Average,
        ("/monitoring/hwinfo", _) => Handler::HwInfo,
        ("/monitoring/origin", _) => Handler::Origin,
        ("/monitoring/fileinfo", _) => Handler::FileInfo,
        ("/conf/latest", _) => Handler::ConfLatest,
        ("/conf/history", _) => Handler::ConfHistory,
        ("/conf/restore", _) => Handler::ConfRestore,
        ("/conf/download", _) => Handler::ConfDownload,
        ("/conf/upload" | "/conf/upload/server.xml" | "/conf/upload/vhosts.xml", "POST") => {
            Handler::ConfUpload
        }
        ("/command/restart", _) => Handler::Restart,
        ("/command/terminate", _) => Handler::Terminate,
        ("/command/cacheclear", _) => Handler::CacheClear,
        ("/command/cleanup", _) => Handler::Cleanup,
        (
            "/command/purge" | "/command/expire" | "/command/expireafter" | "/command/hardpurge",
            _,
        ) => Handler::Purge,
        ("/command/mount", _) => Handler::Mount,
        ("/command/unmount" | "/command/umount", _) => Handler::Unmount,
        ("/monitoring/cacheresource" | "/monitoring/coldfiledist", _) => Handler::Later(C::Storage),
        ("/command/resetorigin", _) => Handler::ResetOrigin,
        ("/monitoring/dnslist", _) => Handler::DnsList,
        ("/monitoring/ssl", _) => Handler::Ssl,
        (p, _) if p.starts_with("/monitoring/logtrace/") => Handler::LogTrace,
        ("/monitoring/geoiplist", _) => Handler::Later(C::GeoIp),
        ("/monitoring/clusterlist", _) => Handler::Later(C::Cluster),
        ("/command/encryptpassword", _) => Handler::Later(C::EncryptPassword),
        ("/monitoring/cpuinfo", _) => Handler::CpuInfo,
        (p, m) => panic!("api-endpoints.tsv row {p} {m} has no handler: add one"),
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The `path` column as written.
    pub path: String,
    /// How it matches request paths.
    pub matcher: PathMatch,
    /// HTTP method (`GET`, `POST`, `PURGE`...).
    pub method: Method,
    /// The least role that may call it.
    pub role: Role,
    /// What serves it.
    pub handler: Handler,
    /// The `params` column, for help and docs.
    pub params: String,
}

/// Every endpoint of the table, most specific path first, then `/metrics`.
pub fn endpoints() -> &'static [Endpoint] {
    static TABLE: LazyLock<Vec<Endpoint>> = LazyLock::new(|| {
        let mut rows: Vec<Endpoint> = API_ENDPOINTS_TSV
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let matcher = PathMatch::parse(f[0]);
                Endpoint {
                    path: f[0].to_string(),
                    handler: handler_of(&matcher, f[1]),
                    matcher,
                    method: Method::from_bytes(f[1].as_bytes()).expect("a method name"),
                    role: Role::parse(f[3]).expect("role_min is Admin, User or Looker"),
                    params: f[2].to_string(),
                }
            })
            .collect();
        rows.push(Endpoint {
            path: "/metrics".into(),
            matcher: PathMatch::Exact("/metrics".into()),
            method: Method::GET,
            role: Role::User,
            handler: Handler::Metrics,
            params: String::new(),
        });
        rows.sort_by_key(|e| std::cmp::Reverse(e.matcher.rank()));
        rows
    });
    &TABLE
}

/// What a request resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// A documented endpoint.
    Found(&'a Endpoint),
    /// The path is documented, but not for this method.
    WrongMethod,
    /// Not a documented path.
    Unknown,
}

/// The endpoint for `method` on `path`. A GET row also answers POST (the
/// guide's tools post form bodies to GET endpoints).
pub fn route(method: &Method, path: &str) -> Route<'static> {
    let mut path_known = false;
    for e in endpoints() {
        if !e.matcher.matches(path) {
            continue;
        }
        if e.matcher != PathMatch::Any {
            path_known = true;
        }
        if e.method == method || (e.method == Method::GET && method == Method::POST) {
            return Route::Found(e);
        }
    }
    if path_known {
        Route::WrongMethod
    } else {
        Route::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_is_the_spec() {
        let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/spec/api-endpoints.tsv");
        let text = std::fs::read_to_string(&spec).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (../shared must be beside the repository)",
                spec.display()
            )
        });
        assert_eq!(
            text,
            API_ENDPOINTS_TSV,
            "copy {} to src/api/",
            spec.display()
        );
    }

    #[test]
    fn every_row_has_a_handler_and_routes_to_itself() {
        for e in endpoints() {
            let path = match &e.matcher {
                PathMatch::Exact(p) => p.clone(),
                PathMatch::Prefix(p) => format!("{p}cpu_day.png"),
                PathMatch::Any => "/some/object.jpg".into(),
            };
            match route(&e.method, &path) {
                Route::Found(found) => assert_eq!(
                    (found.handler, found.role),
                    (e.handler, e.role),
                    "{} {}",
                    e.method,
                    e.path
                ),
                other => panic!("{} {} routes to {other:?}", e.method, e.path),
            }
        }
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        assert_eq!(route(&Method::GET, "/nope"), Route::Unknown);
        assert_eq!(route(&Method::DELETE, "/version"), Route::WrongMethod);
        assert!(matches!(
            route(&Method::from_bytes(b"PURGE").unwrap(), "/a/b.jpg"),
            Route::Found(e) if e.handler == Handler::PurgeMethod
        ));
        assert!(matches!(
            route(&Method::GET, "/graph/vhost/hitratio_day.png"),
            Route::Found(e) if e.handler == Handler::Later(Capability::Graphs) && e.role == Role::Looker
        ));
    }
}
