//! The cache: keys, storage policy, the memory store and in-progress fills.
//!
//! Boundaries: this module knows HTTP heads and bodies as data; it never
//! talks to a socket. The proxy decides what to fetch; the cache decides what
//! is kept, for how long, and who shares a fetch.

pub mod fill;
pub mod key;
pub mod policy;
pub mod purge;
pub mod result;
pub mod store;

pub use result::CacheResult;
