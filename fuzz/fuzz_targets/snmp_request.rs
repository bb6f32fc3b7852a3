//! One datagram through the SNMP decoder and the agent's whole request path:
//! no panic, and a reply only to what decodes as a request.
#![no_main]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use kura::snmp::agent::{Agent, Model};
use kura::snmp::ber;
use kura::stats::Stats;
use libfuzzer_sys::fuzz_target;

fn agent() -> &'static Mutex<Agent> {
    static AGENT: OnceLock<Mutex<Agent>> = OnceLock::new();
    AGENT.get_or_init(|| {
        let config = kura::config::load_str(
            std::path::Path::new("/nonexistent"),
            "<Server><Host><SNMP Status=\"Active\"/></Host><Cache><Storage/></Cache></Server>",
            "<Vhosts/>",
        )
        .expect("valid configuration");
        let model = Model::new(
            config.server.snmp.clone(),
            ("fuzz".into(), String::new()),
            BTreeMap::new(),
            BTreeMap::new(),
            Vec::new(),
            Vec::new(),
        );
        Mutex::new(Agent::new(
            Arc::new(ArcSwap::from_pointee(model)),
            Arc::new(Stats::default()),
            Instant::now(),
            1472,
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let decodes = ber::decode_request(data).is_ok();
    let mut a = agent().lock().unwrap();
    let replied = a.answer(data, IpAddr::V4(Ipv4Addr::LOCALHOST)).is_some();
    assert_eq!(replied, decodes);
});
