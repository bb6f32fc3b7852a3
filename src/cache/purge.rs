//! The purge family of chapter 5: targets (`host/path`, `host/dir/*`,
//! `|`-separated lists), the vhost rules (`<Purge2Expire>`, `<RootPurgeExpire>`,
//! `<Cache><Purge>Hard`) and an incremental walk over the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::key;
use super::stale::{Entry, Scope};
use super::store::{Invalidate, Store};
use crate::config::pattern::UrlPattern;
use crate::config::{Config, Purge2Expire, RootPurge, VhostConfig};

/// What a request target cannot hold as it is (RFC 3986 outside pchar, query, `%`).
const NOT_IN_TARGET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The command as the API or the HTTP method named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `purge`.
    Purge,
    /// `expire`.
    Expire,
    /// `expireafter?sec=`.
    ExpireAfter(Duration),
    /// `hardpurge`.
    HardPurge,
}

impl Command {
    /// The API's `method` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Purge => "purge",
            Command::Expire => "expire",
            Command::ExpireAfter(_) => "expireafter",
            Command::HardPurge => "hardpurge",
        }
    }
}

/// Why a purge request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No `url=`, or an empty target.
    #[error("url=<host>/<path> is required")]
    NoTarget,
    /// A target without a host and no host used before.
    #[error("{0}: no host given and none used before")]
    NoHost(String),
    /// No vhost has that name or alias.
    #[error("no virtual host for {0}")]
    UnknownHost(String),
    /// `<RootPurgeExpire>` forbids this on the vhost root.
    #[error("{0} of the root of {1} is not allowed (<RootPurgeExpire>)")]
    RootForbidden(&'static str, String),
}

/// One resolved target.
#[derive(Debug)]
struct Target {
    vhost: Arc<VhostConfig>,
    /// The vhost whose objects are affected (the target of a facade).
    cache_name: String,
    /// The URL or pattern, shaped like a key's URL part.
    url: UrlPattern,
}

impl Target {
    /// `/` or `/*`: the vhost root (chapter 5 note).
    fn is_root(&self) -> bool {
        matches!(self.url.as_str(), "/" | "/*")
    }
}

/// Resolves the targets; a target without a host takes the previous one's,
/// or `last_host` (the host the API used last). `last_host` is updated.
fn resolve(
    config: &Config,
    urls: &[String],
    last_host: &mut Option<String>,
) -> Result<Vec<Target>, PurgeError> {
    let mut out = Vec::new();
    for item in urls.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let rest = item.split_once("://").map_or(item, |(_, r)| r);
        let (host, path) = match rest.find('/') {
            Some(0) => match last_host.as_deref() {
                Some(h) => (h.to_string(), rest),
                None => return Err(PurgeError::NoHost(item.to_string())),
            },
            Some(i) => (rest[..i].to_ascii_lowercase(), &rest[i..]),
            None => (rest.to_ascii_lowercase(), "/"),
        };
        let vhost = config
            .vhost_by_host(&host)
            .ok_or_else(|| PurgeError::UnknownHost(host.clone()))?;
        let cache_name = vhost.cache_name().to_string();
        // Keys hold request targets as clients send them: percent-encoded.
        let path = percent_encoding::utf8_percent_encode(path, NOT_IN_TARGET).to_string();
        let path = path.as_str();
        let url = if path.contains('*') {
            let p = &vhost.caching.key;
            if p.case_sensitive {
                path.to_string()
            } else {
                path.to_lowercase()
            }
        } else {
            key::url(&vhost.caching.key, path).into_owned()
        };
        *last_host = Some(host);
        out.push(Target {
            vhost: vhost.clone(),
            cache_name,
            url: UrlPattern::new(&url),
        });
    }
    if out.is_empty() {
        return Err(PurgeError::NoTarget);
    }
    Ok(out)
}

/// What a purge did: the API's `result`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Objects affected.
    pub count: usize,
    /// Their body bytes.
    pub size: u64,
    /// Milliseconds it took.
    pub time_ms: u64,
    /// `<ResCodeNoCtrlTarget>` of the (last) vhost, for a purge that found nothing.
    pub no_target_status: u16,
}

/// What the vhost's rules make of a command on a target.
fn action(command: Command, target: &Target, purge_hard: bool) -> Result<Invalidate, PurgeError> {
    let caching = &target.vhost.caching;
    let root = target.is_root();
    if root {
        let allowed = !matches!(
            (caching.root_purge, command),
            (RootPurge::Off, Command::Purge | Command::Expire)
                | (RootPurge::Purge, Command::Expire)
                | (RootPurge::Expire, Command::Purge)
        );
        if !allowed {
            return Err(PurgeError::RootForbidden(
                command.as_str(),
                target.vhost.name.clone(),
            ));
        }
    }
    Ok(match command {
        Command::Purge => {
            let to_expire = match caching.purge2expire {
                Purge2Expire::None => false,
                Purge2Expire::Root => root,
                Purge2Expire::Pattern => target.url.is_wildcard(),
                Purge2Expire::All => true,
            };
            if to_expire {
                Invalidate::Expire
            } else if purge_hard {
                Invalidate::HardPurge
            } else {
                Invalidate::Purge
            }
        }
        Command::Expire => Invalidate::Expire,
        Command::ExpireAfter(d) => Invalidate::ExpireAfter(d),
        Command::HardPurge => Invalidate::HardPurge,
    })
}

/// Runs `command` on `urls`, one store shard at a time, yielding between shards
/// so serving goes on during a purge of millions of objects.
pub async fn run(
    store: &Arc<Store>,
    config: &Config,
    command: Command,
    urls: &[String],
    last_host: &parking_lot::Mutex<Option<String>>,
) -> Result<Outcome, PurgeError> {
    let started = Instant::now();
    let targets = {
        let mut last = last_host.lock();
        resolve(config, urls, &mut last)?
    };
    let mut out = Outcome::default();
    for t in &targets {
        let action = action(command, t, config.server.purge_hard)?;
        out.no_target_status = t.vhost.caching.no_target_status;
        let collective = t.vhost.caching.key.collective;
        store.note(
            action,
            Scope::Target {
                cache_name: t.cache_name.clone(),
                url: t.url.as_str().to_string(),
                collective,
            },
        );
        let (select, shards) = selection(&t.cache_name, &t.url, collective);
        let exact = shards.len() == 1;
        for shard in shards {
            let ((n, bytes), cold) = store.invalidate(shard, &select, action, Instant::now());
            out.count += n;
            out.size += bytes;
            if !cold.is_empty() {
                let store = store.clone();
                let changed = tokio::task::spawn_blocking(move || {
                    store.invalidate_cold(cold, Instant::now())
                })
                .await
                .unwrap_or_default();
                out.count += changed.0;
                out.size += changed.1;
            }
            if !exact {
                tokio::task::yield_now().await;
            }
        }
    }
    out.time_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// The keys a target selects (vhost cache `cache_name`, `url` or pattern, and
/// with `<Collective>` the same URL with any query string), and the shards
/// they can be in: one for an exact URL, else all.
fn selection<'a>(
    cache_name: &'a str,
    url: &'a UrlPattern,
    collective: bool,
) -> (impl Fn(&str) -> bool + 'a, Vec<usize>) {
    let select = move |k: &str| {
        let (vhost, key_url) = key::split(k);
        if vhost != cache_name {
            return false;
        }
        url.matches(key_url)
            || (collective
                && key_url
                    .split_once('?')
                    .is_some_and(|(path, _)| url.matches(path)))
    };
    let shards = if !url.is_wildcard() && !collective {
        vec![Store::shard_of(&key::primary_key(cache_name, url.as_str()))]
    } else {
        (0..Store::SHARDS).collect()
    };
    (select, shards)
}

/// Makes again the invalidations a stale log kept (`<SyncStale>`, at start,
/// before serving); returns how many objects they changed.
pub fn replay(store: &Store, entries: &[Entry]) -> usize {
    let now = crate::procfs::unix_now();
    let mut changed = 0;
    for entry in entries {
        let action = entry.action_at(now);
        match &entry.scope {
            Scope::All => changed += store.clear().0,
            Scope::Target {
                cache_name,
                url,
                collective,
            } => {
                let url = UrlPattern::new(url);
                let (select, shards) = selection(cache_name, &url, *collective);
                for shard in shards {
                    let ((n, _), cold) = store.invalidate(shard, &select, action, Instant::now());
                    changed += n + store.invalidate_cold(cold, Instant::now()).0;
                }
            }
        }
    }
    changed
}
