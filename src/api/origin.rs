//! `/monitoring/origin`, `/monitoring/dnslist` and `/command/resetorigin` (guide
//! chapter 7): the live state of each vhost's origin IP table.

use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::proxy::origin::OriginPool;
use crate::proxy::Runtime;

/// The pools of every vhost, or of `vhost` (`None` when it is not configured).
fn pools<'a>(rt: &'a Runtime, vhost: Option<&str>) -> Option<Vec<&'a OriginPool>> {
    let mut names: Vec<&String> = rt.pools.keys().collect();
    names.sort_by_key(|n| rt.config.vhosts.iter().position(|v| &v.name == *n));
    let wanted = vhost.map(str::to_ascii_lowercase);
    let pools: Vec<&OriginPool> = names
        .into_iter()
        .filter(|n| wanted.as_ref().is_none_or(|w| w == *n))
        .map(|n| rt.pools[n].as_ref())
        .collect();
    (wanted.is_none() || !pools.is_empty()).then_some(pools)
}

/// `{ "key": value }`, the guide's one-member objects.
fn pair(key: String, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key, value);
    Value::Object(m)
}

/// The `/monitoring/origin` reply: each address `Active` while in use, `Inactive`
/// otherwise (a standby is in use only while it stands in for a failed address),
/// and every IP with its TTL left under `ActiveIP` or `InactiveIP`.
pub fn monitoring(rt: &Runtime, vhost: Option<&str>) -> Option<Value> {
    let now = Instant::now();
    let entries: Vec<Value> = pools(rt, vhost)?
        .into_iter()
        .map(|pool| {
            let t = &pool.table;
            let addresses = |standby: bool| -> Vec<Value> {
                t.entries
                    .iter()
                    .filter(|e| e.standby == standby)
                    .map(|e| {
                        let state = if t.is_in_use(e) { "Active" } else { "Inactive" };
                        pair(e.address.authority(), state.into())
                    })
                    .collect()
            };
            let (mut active, mut inactive) = (Vec::new(), Vec::new());
            for ip in t.entries.iter().flat_map(|e| e.ips()) {
                let row = pair(ip.addr.ip().to_string(), ip.ttl_left(now).into());
                if ip.usable() {
                    active.push(row);
                } else {
                    inactive.push(row);
                }
            }
            json!({
                "VirtualHost": pool.vhost,
                "Address": addresses(false),
                "Address2": addresses(true),
                "ActiveIP": active,
                "InactiveIP": inactive,
            })
        })
        .collect();
    Some(json!({ "origin": entries }))
}

/// The `/monitoring/dnslist` reply: each domain address with the IPs it resolved
/// to and their TTL left (the guide names the endpoint only; the shape is kura's).
pub fn dns_list(rt: &Runtime) -> Value {
    let now = Instant::now();
    let list: Vec<Value> = pools(rt, None)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|pool| {
            pool.table
                .entries
                .iter()
                .filter(|e| e.is_domain())
                .map(|e| {
                    let ips: Vec<Value> = e
                        .ips()
                        .iter()
                        .map(|ip| pair(ip.addr.ip().to_string(), ip.ttl_left(now).into()))
                        .collect();
                    json!({"VirtualHost": pool.vhost, "Domain": e.address.host, "IP": ips})
                })
                .collect::<Vec<_>>()
        })
        .collect();
    json!({ "dnslist": list })
}

/// `/command/resetorigin[?vhost=]`: resets the IP tables; the names of the vhosts
/// reset (`None` when `vhost` is not configured).
pub fn reset(rt: &Runtime, vhost: Option<&str>) -> Option<Vec<String>> {
    let pools = pools(rt, vhost)?;
    for p in &pools {
        p.reset();
        tracing::info!(vhost = %p.vhost, "origin state reset");
    }
    Some(pools.into_iter().map(|p| p.vhost.clone()).collect())
}
