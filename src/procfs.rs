//! Facts about the machine from /proc and /sys (Linux), and the wall clock in
//! unix seconds: the few readers the config, the stats core and the API share.

use std::time::{SystemTime, UNIX_EPOCH};

/// A whole file, or "" when it cannot be read (a missing /proc file means "unknown").
pub fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A `Key: N kB` line of a /proc status-style file, in bytes (0 when absent).
pub fn kib_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Physical memory in bytes (1 GiB when /proc/meminfo cannot be read).
pub fn physical_memory() -> u64 {
    match kib_field(&read("/proc/meminfo"), "MemTotal:") {
        0 => 1 << 30,
        bytes => bytes,
    }
}

/// This process's user and kernel CPU time, in clock ticks (/proc/self/stat).
pub fn process_cpu_ticks() -> [u64; 2] {
    let stat = read("/proc/self/stat");
    // Fields after the ") " that ends the command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or("", |r| r.1)
        .split_whitespace()
        .collect();
    [11, 12].map(|i| fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

/// Received and transmitted bytes of each network interface (/proc/net/dev).
pub fn network_bytes() -> Vec<(String, u64, u64)> {
    read("/proc/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| {
            let (dev, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            Some((dev.trim().to_string(), *f.first()?, *f.get(8)?))
        })
        .collect()
}

/// The entries of a directory, sorted by name.
pub fn list_dir(path: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The current unix second.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_bytes() {
        assert_eq!(
            kib_field("MemTotal:  2048 kB\nMemFree: 1 kB\n", "MemFree:"),
            1024
        );
        assert_eq!(kib_field("", "MemFree:"), 0);
        assert!(physical_memory() > 1 << 20);
    }
}
