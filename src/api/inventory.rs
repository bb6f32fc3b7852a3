//! `/monitoring/hwinfo` (guide chapter 2): what the machine is.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::procfs::{list_dir, read};

/// The first `key : value` of /proc/cpuinfo.
fn cpuinfo(text: &str, key: &str) -> String {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// Network interfaces: name, driver, first IPv4 address, MAC.
fn nics() -> Vec<Value> {
    let mut ipv4: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                ipv4.entry(a.interface_name.clone())
                    .or_insert_with(|| sin.ip().to_string());
            }
        }
    }
    list_dir("/sys/class/net")
        .into_iter()
        .filter(|n| n != "lo")
        .map(|dev| {
            let driver = std::fs::read_link(format!("/sys/class/net/{dev}/device/driver"))
                .ok()
                .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_default();
            json!({
                "Dev": dev,
                "Model": driver,
                "IP": ipv4.get(&dev).cloned().unwrap_or_default(),
                "MAC": read(&format!("/sys/class/net/{dev}/address")).trim(),
            })
        })
        .collect()
}

/// Block devices (not loop, ram or zram): name, model, size, and the space used on
/// the filesystems mounted from them.
fn disks() -> Vec<Value> {
    let mounts = read("/proc/self/mounts");
    list_dir("/sys/block")
        .into_iter()
        .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
        .map(|dev| {
            let sectors: u64 = read(&format!("/sys/block/{dev}/size"))
                .trim()
                .parse()
                .unwrap_or(0);
            let used: u64 = mounts
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    Some((f.next()?, f.next()?))
                })
                .filter(|(src, _)| {
                    src.strip_prefix("/dev/")
                        .is_some_and(|s| s.starts_with(dev.as_str()))
                })
                .filter_map(|(_, mnt)| nix::sys::statvfs::statvfs(mnt).ok())
                .map(|s| (s.blocks() - s.blocks_free()) * s.fragment_size())
                .sum();
            json!({
                "Dev": dev,
                "Model": read(&format!("/sys/block/{dev}/device/model")).trim(),
                "Total": (sectors * 512).to_string(),
                "Usage": used.to_string(),
            })
        })
        .collect()
}

/// The `hwinfo` result; every value is a string, as the guide shows.
pub fn hwinfo() -> Value {
    let cpu = read("/proc/cpuinfo");
    let procs = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem_kb = crate::procfs::physical_memory() / 1024;
    json!({
        "OS": read("/proc/version").trim(),
        "STON": crate::VERSION,
        "CPU": {
            "ProcCount": procs.to_string(),
            "Model": cpuinfo(&cpu, "model name"),
            "MHz": cpuinfo(&cpu, "cpu MHz"),
            "Cache": cpuinfo(&cpu, "cache size"),
        },
        "Memory": format!("{} GB", (mem_kb + (1 << 19)) >> 20),
        "NIC": nics(),
        "Disk": disks(),
    })
}
