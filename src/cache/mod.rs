//! The cache: keys, storage policy, the object index, the disks and the
//! memory tier, and in-progress fills.
//!
//! Boundaries: this module knows HTTP heads and bodies as data; it never
//! talks to a socket. The proxy decides what to fetch; the cache decides what
//! is kept, for how long, and who shares a fetch.

pub mod admission;
pub mod disk;
pub mod fields;
pub mod fill;
pub mod hot;
pub mod key;
pub mod policy;
pub mod purge;
pub mod read;
pub mod record;
pub mod result;
pub mod stale;
pub mod store;

pub use result::CacheResult;
