//! Host system figures (guide chapter 10, `System`): CPU, memory, TCP sockets,
//! load average and kurad's own connections, sampled from /proc once a second
//! into the same rings as the traffic counters. Every value is a per-second
//! sample, so `realtime` shows the last second and `average` the mean.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::procfs::{kib_field, read};

use super::{Ring, Sample, Window};

/// The sampled values, in the guide's order within each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    /// System CPU in kernel mode, 0.01 %.
    CpuKernel,
    /// System CPU in user mode, 0.01 %.
    CpuUser,
    /// Idle CPU, 0.01 %.
    CpuIdle,
    /// kurad's kernel-mode CPU, 0.01 % of all CPUs.
    CpuProcKernel,
    /// kurad's user-mode CPU, 0.01 % of all CPUs.
    CpuProcUser,
    /// Niced CPU, 0.01 %.
    CpuNice,
    /// I/O wait, 0.01 %.
    CpuIoWait,
    /// Hardware interrupts, 0.01 %.
    CpuIrq,
    /// Soft interrupts, 0.01 %.
    CpuSoftIrq,
    /// Stolen by the hypervisor, 0.01 %.
    CpuSteal,
    /// Free memory, bytes.
    MemFree,
    /// kurad's resident memory, bytes.
    MemProcess,
    /// Open client connections.
    ServerTotal,
    /// Open client connections (all are established once accepted).
    ServerEstablished,
    /// Client connections accepted in the second.
    ServerAccepted,
    /// Client connections closed in the second.
    ServerClosed,
    /// Open origin connections.
    ClientTotal,
    /// Open origin connections (established once connected).
    ClientEstablished,
    /// Origin connections made in the second.
    ClientConnected,
    /// Origin connections closed in the second.
    ClientClosed,
    /// TCP connections in ESTABLISHED, whole system.
    TcpEstablished,
    /// TCP connections in TIME_WAIT.
    TcpTimewait,
    /// Orphaned TCP connections.
    TcpOrphan,
    /// Allocated TCP sockets.
    TcpAlloc,
    /// Pages of memory used by TCP.
    TcpMem,
    /// Client connections `<ServiceAccess>` let through in the second.
    ServiceAllow,
    /// Client connections `<ServiceAccess>` refused in the second.
    ServiceDeny,
    /// Objects waiting to be written to a cache disk ([`WAITING_WRITES`]).
    WaitingWrites,
    /// 1-minute load average, 0.01.
    Load1,
    /// 5-minute load average, 0.01.
    Load5,
    /// 15-minute load average, 0.01.
    Load15,
    /// CPU not idle, 0.01 % (SNMP `cpuTotal`).
    CpuTotal,
    /// Memory in use (total minus free), bytes (SNMP `memUse`).
    MemUsed,
    /// Memory in use, 0.01 % of the total (SNMP `memUseRatio`).
    MemUseRatio,
    /// kurad's resident memory, 0.01 % of the total (SNMP `memSTONRatio`).
    MemProcessRatio,
    /// Bytes received in the second by every network interface but loopback (our addition).
    NetInBytes,
    /// Bytes sent in the second by every network interface but loopback.
    NetOutBytes,
    /// Packets received in the second, loopback excluded.
    NetInPackets,
    /// Packets sent in the second, loopback excluded.
    NetOutPackets,
    /// Log lines dropped in the second because the log writer's queue was full (our addition).
    LogDropped,
    /// Client TLS handshakes completed in the second (our addition).
    SslHandshakes,
    /// Client TLS handshakes that failed in the second.
    SslHandshakeErrors,
    /// Open client TLS connections.
    SslSessions,
}

/// Number of sampled values.
pub const SYS_N: usize = Sys::SslSessions as usize + 1;

/// Process-wide connection events, counted where they happen.
#[derive(Debug, Default)]
pub struct Connections {
    /// Client connections accepted.
    pub accepted: AtomicU64,
    /// Client connections closed.
    pub closed: AtomicU64,
    /// Origin connections made.
    pub connected: AtomicU64,
    /// Origin connections closed.
    pub disconnected: AtomicU64,
    /// TLS handshakes completed with clients.
    pub tls_handshakes: AtomicU64,
    /// TLS handshakes that failed (refused, not TLS, timed out).
    pub tls_failed: AtomicU64,
    /// TLS connections ended after their handshake.
    pub tls_closed: AtomicU64,
    /// Client connections `<ServiceAccess>` let through.
    pub service_allowed: AtomicU64,
    /// Client connections `<ServiceAccess>` refused (closed at once).
    pub service_denied: AtomicU64,
}

/// Objects whose file is being written to a cache disk now (`WaitingFiles2Write`):
/// raised when a fill is handed to its disk, lowered once the file is committed or
/// given up.
pub static WAITING_WRITES: AtomicU64 = AtomicU64::new(0);

/// kurad's connection events (one daemon per process).
pub static CONNECTIONS: Connections = Connections {
    accepted: AtomicU64::new(0),
    closed: AtomicU64::new(0),
    connected: AtomicU64::new(0),
    disconnected: AtomicU64::new(0),
    tls_handshakes: AtomicU64::new(0),
    tls_failed: AtomicU64::new(0),
    tls_closed: AtomicU64::new(0),
    service_allowed: AtomicU64::new(0),
    service_denied: AtomicU64::new(0),
};

/// Cumulative CPU ticks from /proc/stat and /proc/self/stat.
#[derive(Debug, Default, Clone, Copy)]
struct CpuTicks {
    /// user, nice, system, idle, iowait, irq, softirq, steal.
    system: [u64; 8],
    /// kurad's utime, stime.
    process: [u64; 2],
}

fn cpu_ticks() -> CpuTicks {
    let mut t = CpuTicks::default();
    if let Some(line) = read("/proc/stat").lines().find(|l| l.starts_with("cpu ")) {
        for (dst, v) in t.system.iter_mut().zip(line.split_whitespace().skip(1)) {
            *dst = v.parse().unwrap_or(0);
        }
    }
    t.process = crate::procfs::process_cpu_ticks();
    t
}

/// The kernel's count of established TCP connections (MIB-II `tcpCurrEstab`:
/// ESTABLISHED and CLOSE-WAIT, IPv4 and IPv6) from a `/proc/net/snmp` text: the
/// figure `netstat -s` and the host's own snmpd report. A constant-time read,
/// where listing `/proc/net/tcp{,6}` walks the whole connection hash table
/// (8.7 ms a second on a 24 GiB host with five sockets, and a line per socket).
fn tcp_curr_estab(snmp: &str) -> u64 {
    let mut tcp = snmp.lines().filter_map(|l| l.strip_prefix("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "CurrEstab")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Received bytes, sent bytes, received packets and sent packets, summed over the
/// interfaces of a `/proc/net/dev` text except loopback (cumulative).
fn net_totals(dev: &str) -> [u64; 4] {
    let mut t = [0u64; 4];
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let v: Vec<u64> = counters
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // rx: bytes packets errs drop fifo frame compressed multicast; then tx: bytes packets ...
        if v.len() >= 10 {
            for (sum, x) in t.iter_mut().zip([v[0], v[8], v[1], v[9]]) {
                *sum += x;
            }
        }
    }
    t
}

/// The value after `key` on the `TCP: inuse N orphan N tw N alloc N mem N` line
/// of a /proc/net/sockstat text (0 when absent).
fn sockstat(text: &str, key: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("TCP:")).unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == key)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0)
}

#[derive(Debug)]
struct State {
    last_cpu: Option<CpuTicks>,
    /// Network totals at the last sample ([`net_totals`]).
    last_net: Option<[u64; 4]>,
    /// accepted, closed, connected, disconnected, TLS handshakes, failed, closed,
    /// service access allowed, denied at the last sample.
    last_events: [u64; 9],
    /// Dropped log lines at the last sample ([`crate::log::DROPPED`]).
    last_dropped: u64,
    last_sec: Option<u64>,
    seconds: Ring<SYS_N>,
    minutes: Ring<SYS_N>,
}

/// The system figures' history.
#[derive(Debug)]
pub struct SystemStats {
    state: Mutex<State>,
}

impl Default for SystemStats {
    fn default() -> Self {
        SystemStats {
            state: Mutex::new(State {
                last_cpu: None,
                last_net: None,
                last_events: [0; 9],
                last_dropped: 0,
                last_sec: None,
                seconds: Ring::new(1, 60, false),
                minutes: Ring::new(60, 60, false),
            }),
        }
    }
}

impl SystemStats {
    /// Samples /proc for the second ending at `now` (unix seconds).
    pub fn sample(&self, now: u64) {
        let cpu = cpu_ticks();
        let events = [
            &CONNECTIONS.accepted,
            &CONNECTIONS.closed,
            &CONNECTIONS.connected,
            &CONNECTIONS.disconnected,
            &CONNECTIONS.tls_handshakes,
            &CONNECTIONS.tls_failed,
            &CONNECTIONS.tls_closed,
            &CONNECTIONS.service_allowed,
            &CONNECTIONS.service_denied,
        ]
        .map(|a| a.load(Ordering::Relaxed));
        let net = net_totals(&read("/proc/net/dev"));
        let dropped = crate::log::DROPPED.load(Ordering::Relaxed);
        let meminfo = read("/proc/meminfo");
        let status = read("/proc/self/status");
        let load: Vec<u64> = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .map(|v| (v.parse::<f64>().unwrap_or(0.0) * 100.0).round() as u64)
            .collect();
        let mut st = self.state.lock();
        let sec = now.saturating_sub(1);
        if st.last_sec.is_some_and(|l| sec <= l) {
            return;
        }
        let mut s = Sample::<SYS_N>::empty(sec);
        s.seconds = 1;
        let v = &mut s.counts;
        if let Some(prev) = st.last_cpu {
            let d: Vec<u64> = cpu
                .system
                .iter()
                .zip(prev.system.iter())
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            let total: u64 = d.iter().sum::<u64>().max(1);
            let pct = |x: u64| x * 10_000 / total;
            // /proc/stat order: user nice system idle iowait irq softirq steal.
            v[Sys::CpuUser as usize] = pct(d[0]);
            v[Sys::CpuNice as usize] = pct(d[1]);
            v[Sys::CpuKernel as usize] = pct(d[2]);
            v[Sys::CpuIdle as usize] = pct(d[3]);
            v[Sys::CpuIoWait as usize] = pct(d[4]);
            v[Sys::CpuIrq as usize] = pct(d[5]);
            v[Sys::CpuSoftIrq as usize] = pct(d[6]);
            v[Sys::CpuSteal as usize] = pct(d[7]);
            v[Sys::CpuProcUser as usize] = pct(cpu.process[0].saturating_sub(prev.process[0]));
            v[Sys::CpuProcKernel as usize] = pct(cpu.process[1].saturating_sub(prev.process[1]));
            v[Sys::CpuTotal as usize] = 10_000 - pct(d[3]).min(10_000);
        }
        let total = kib_field(&meminfo, "MemTotal:").max(1);
        let free = kib_field(&meminfo, "MemFree:");
        let rss = kib_field(&status, "VmRSS:");
        v[Sys::MemFree as usize] = free;
        v[Sys::MemProcess as usize] = rss;
        v[Sys::MemUsed as usize] = total.saturating_sub(free);
        v[Sys::MemUseRatio as usize] = total.saturating_sub(free) * 10_000 / total;
        v[Sys::MemProcessRatio as usize] = rss * 10_000 / total;
        let open_clients = events[0].saturating_sub(events[1]);
        let open_origins = events[2].saturating_sub(events[3]);
        v[Sys::ServerTotal as usize] = open_clients;
        v[Sys::ServerEstablished as usize] = open_clients;
        v[Sys::ServerAccepted as usize] = events[0] - st.last_events[0];
        v[Sys::ServerClosed as usize] = events[1] - st.last_events[1];
        v[Sys::ClientTotal as usize] = open_origins;
        v[Sys::ClientEstablished as usize] = open_origins;
        v[Sys::ClientConnected as usize] = events[2] - st.last_events[2];
        v[Sys::ClientClosed as usize] = events[3] - st.last_events[3];
        v[Sys::SslHandshakes as usize] = events[4] - st.last_events[4];
        v[Sys::SslHandshakeErrors as usize] = events[5] - st.last_events[5];
        v[Sys::SslSessions as usize] = events[4].saturating_sub(events[6]);
        v[Sys::ServiceAllow as usize] = events[7] - st.last_events[7];
        v[Sys::ServiceDeny as usize] = events[8] - st.last_events[8];
        v[Sys::WaitingWrites as usize] = WAITING_WRITES.load(Ordering::Relaxed);
        v[Sys::TcpEstablished as usize] = tcp_curr_estab(&read("/proc/net/snmp"));
        let sockets = read("/proc/net/sockstat");
        for (i, key) in [
            (Sys::TcpTimewait, "tw"),
            (Sys::TcpOrphan, "orphan"),
            (Sys::TcpAlloc, "alloc"),
            (Sys::TcpMem, "mem"),
        ] {
            v[i as usize] = sockstat(&sockets, key);
        }
        for (i, l) in [Sys::Load1, Sys::Load5, Sys::Load15].into_iter().zip(load) {
            v[i as usize] = l;
        }
        if let Some(prev) = st.last_net {
            let fields = [
                Sys::NetInBytes,
                Sys::NetOutBytes,
                Sys::NetInPackets,
                Sys::NetOutPackets,
            ];
            for ((f, now), before) in fields.into_iter().zip(net).zip(prev) {
                v[f as usize] = now.saturating_sub(before);
            }
        }
        v[Sys::LogDropped as usize] = dropped.saturating_sub(st.last_dropped);
        st.last_dropped = dropped;
        st.last_net = Some(net);
        st.last_cpu = Some(cpu);
        st.last_events = events;
        st.last_sec = Some(sec);
        st.seconds.push_second(sec, &s);
        st.minutes.push_second(sec, &s);
    }

    /// The per-second samples summed over a window.
    pub fn window(&self, w: Window) -> Sample<SYS_N> {
        let st = self.state.lock();
        match w {
            Window::LastSecond => st.seconds.window(1, false),
            Window::Minutes(m) => st.minutes.window(usize::from(m), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shares_add_up_and_memory_is_read() {
        let s = SystemStats::default();
        s.sample(1_000);
        // Burn a little CPU so the second sample has ticks to share out.
        let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_add(1);
        }
        std::hint::black_box(x);
        s.sample(1_001);
        let w = s.window(Window::LastSecond);
        let c = |v: Sys| w.counts[v as usize];
        let sum: u64 = [
            Sys::CpuUser,
            Sys::CpuNice,
            Sys::CpuKernel,
            Sys::CpuIdle,
            Sys::CpuIoWait,
            Sys::CpuIrq,
            Sys::CpuSoftIrq,
            Sys::CpuSteal,
        ]
        .into_iter()
        .map(c)
        .sum();
        assert!(
            (9_990..=10_000).contains(&sum) || sum == 0,
            "CPU shares sum to 100%: {sum}"
        );
        assert!(c(Sys::MemFree) > 0 && c(Sys::MemProcess) > 0);
        assert_eq!(w.seconds, 1);
    }

    #[test]
    fn tcp_figures_come_from_the_tcp_mib_and_sockstat() {
        let snmp = "Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs
Tcp: 1 200 120000 -1 111760 110455 1178 2736 42 112583513
Udp: InDatagrams NoPorts
Udp: 5 6
";
        assert_eq!(tcp_curr_estab(snmp), 42);
        assert_eq!(tcp_curr_estab(""), 0, "no /proc/net/snmp: unknown");
        let sockstat_text = "sockets: used 140
TCP: inuse 5 orphan 1 tw 7 alloc 9 mem 3
UDP: inuse 2 mem 4
";
        let read = |key| sockstat(sockstat_text, key);
        assert_eq!(["tw", "orphan", "alloc", "mem"].map(read), [7, 1, 9, 3]);
    }

    #[test]
    fn network_totals_skip_loopback_and_read_rx_and_tx() {
        let dev = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9000000   90000    0    0    0     0          0         0  9000000   90000    0    0    0     0       0          0
  eth0: 1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
  eth1:  300       3    0    0    0     0          0         0      400       4    0    0    0     0       0          0
";
        assert_eq!(net_totals(dev), [1300, 2400, 13, 24]);
    }
}
