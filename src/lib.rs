//! kura: an HTTP edge cache daemon.
//!
//! See ARCHITECTURE.md for the codemap. In short: `config` reads the guide's
//! XML files into typed settings, `proxy` serves clients and talks to origins,
//! `cache` keeps objects, `api` is the management port, `demo` is the
//! embedded default, `log` sets up tracing.

pub mod api;
pub mod cache;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod log;
pub mod procfs;
pub mod proxy;
pub mod snmp;
pub mod stats;

/// kura's version, as reported by `/version`, `Via` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
