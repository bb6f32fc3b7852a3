//! The cache: keys, storage policy, the memory store and in-progress fills.
//!
//! Boundaries: this module knows HTTP heads and bodies as data; it never
//! talks to a socket. The proxy decides what to fetch; the cache decides what
//! is kept, for how long, and who shares a fetch.

pub mod fill;
pub mod policy;
pub mod result;
pub mod store;

pub use result::CacheResult;

/// The cache key of a request: the vhost name and the request target.
/// (Key options of chapter 4, such as `CaseSensitive`, come with the caching-policy work.)
pub fn key(vhost: &str, path_and_query: &str) -> String {
    let mut k = String::with_capacity(vhost.len() + 1 + path_and_query.len());
    k.push_str(vhost);
    k.push('\0');
    k.push_str(path_and_query);
    k
}
