//! One datagram through the SNMP decoder and the agent's whole request path:
//! no panic, and a reply only to what decodes as a request.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock};

use kura::snmp::agent::Agent;
use kura::snmp::ber;
use libfuzzer_sys::fuzz_target;

fn agent() -> &'static Mutex<Agent> {
    static AGENT: OnceLock<Mutex<Agent>> = OnceLock::new();
    AGENT.get_or_init(|| Mutex::new(Agent::standalone()))
}

fuzz_target!(|data: &[u8]| {
    let decodes = ber::decode_request(data).is_ok();
    let mut a = agent().lock().unwrap();
    let replied = a.answer(data, IpAddr::V4(Ipv4Addr::LOCALHOST)).is_some();
    assert_eq!(replied, decodes);
});
