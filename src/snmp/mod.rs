//! The embedded SNMP v1/v2c agent (guide chapter 11, `../shared/spec/SNMP.md`).
//!
//! `ber` is the wire codec, `oid` the identifier type, `tree` the served objects
//! and what computes them, `index` the remembered table indexes, `agent` the UDP
//! service that ties them to the stats core, `mib` the KURA-MIB module written
//! from the tree.

pub mod agent;
pub mod ber;
pub mod index;
pub mod mib;
pub mod oid;
pub mod service;
pub mod tree;
