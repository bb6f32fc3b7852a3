#!/usr/bin/env bash
# SNMP agent benchmark: kurad against net-snmp's snmpd on this machine, in one run, with the
# same load generator (../shared/bench/snmp-load.py). Prints GET/s, p50/p99 latency and the
# agent's CPU per GET (from /proc/PID/stat) over ROUNDS interleaved rounds (default 3) with the
# median ratios, and the bulk walk of each agent's tree. snmpd runs twice: as installed, and
# with its per-request TCP-wrappers check stubbed out; a null agent (echo) measures the floor
# (both need a C compiler).
#   bench/snmp.sh [seconds]        (needs: snmpd, snmp, python3, cc, a release build of kurad)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared}
secs=${1:-10}
rounds=${ROUNDS:-3}   # interleaved rounds of the GET loads; the summary takes the median ratio
kurad=$here/target/release/kurad
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# kurad: three vhosts, a view, the agent on 127.0.0.1:11162.
mkdir -p "$work/kura"
cat > "$work/kura/server.xml" <<XML
<Server><Host><Manager Port="0"/><SNMP Port="11162" Status="Active"/></Host>
<Cache><Storage/></Cache></Server>
XML
cat > "$work/kura/vhosts.xml" <<XML
<Vhosts>
  <Vhost Name="a.bench"><Listen>127.0.0.1:0</Listen><Origin><Address>127.0.0.1:9</Address></Origin></Vhost>
  <Vhost Name="b.bench"><Listen>127.0.0.1:0</Listen><Origin><Address>127.0.0.1:9</Address></Origin></Vhost>
  <Vhost Name="c.bench"><Listen>127.0.0.1:0</Listen><Origin><Address>127.0.0.1:9</Address></Origin></Vhost>
  <View Name="ab"><Vhost>a.bench</Vhost><Vhost>b.bench</Vhost></View>
</Vhosts>
XML
"$kurad" --conf-dir "$work/kura" --state-dir "$work/state" --log-dir "$work/logs" >"$work/kurad.log" 2>&1 &
kura_pid=$!
# snmpd: read-only public for loopback, on 127.0.0.1:11161, in the foreground.
echo "rocommunity public 127.0.0.1" > "$work/snmpd.conf"
snmpd -f -Lf "$work/snmpd.log" -C -c "$work/snmpd.conf" -p "$work/snmpd.pid" udp:127.0.0.1:11161 &
snmpd_pid=$!
# The same snmpd without TCP wrappers: Debian's build asks libwrap's hosts_ctl() about every
# request, which re-reads /etc/hosts.allow and /etc/hosts.deny (about half its CPU per GET
# here). A preloaded hosts_ctl that admits everyone shows snmpd's own request path, on 11163.
cc -shared -fPIC -O2 -o "$work/nowrap.so" "$here/bench/ref/no-tcp-wrappers.c"
LD_PRELOAD="$work/nowrap.so" snmpd -f -Lf "$work/snmpd-nowrap.log" -C -c "$work/snmpd.conf" \
  -p "$work/snmpd-nowrap.pid" udp:127.0.0.1:11163 &
nowrap_pid=$!
# The floor: a null agent that sends each datagram straight back (blocking recvfrom/sendto, no
# SNMP work at all), on 11164. No agent that answers each request with its own datagram can
# cost less per GET on this machine, with this generator.
cc -O2 -o "$work/echo" "$here/bench/ref/echo-udp.c"
"$work/echo" 11164 &
echo_pid=$!
sleep 2

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

load() { # name pid port window oid
  local t0 t1 out
  t0=$(ticks "$2")
  out=$(python3 "$shared/bench/snmp-load.py" "127.0.0.1:$3" --seconds "$secs" --window "$4" --oid "$5")
  t1=$(ticks "$2")
  local gets; gets=$(awk '{print $2}' <<<"$out")
  local us; us=$(python3 -c "print(round(($t1-$t0)/$hz*1e6/($gets*$secs), 2))")
  echo "| $1 | $4 | $out | cpu_us_per_get $us |"
  echo "$1 $4 $us $(awk '{print $4}' <<<"$out")" >>"$work/results"
}

walk() { # name pid port root: 20 walks, so the agent's CPU ticks (10 ms) are measurable
  local t0 t1 s e n
  n=$(snmpbulkwalk -v2c -c public -Cr50 -On -t 5 "127.0.0.1:$3" "$4" | wc -l)
  t0=$(ticks "$2"); s=$(date +%s.%N)
  for _ in $(seq 20); do snmpbulkwalk -v2c -c public -Cr50 -On -t 5 "127.0.0.1:$3" "$4" >/dev/null; done
  e=$(date +%s.%N); t1=$(ticks "$2")
  python3 -c "el=($e-$s)/20; cpu=($t1-$t0)/$hz/20; print(f'| $1 | {$n} OIDs | {el*1000:.1f} ms per walk | {$n/el:.0f} OIDs/s | agent cpu {cpu*1e6/$n:.2f} us/OID |')"
}

echo "## GET of sysUpTime.0 ($secs s each, same generator)"
for round in $(seq "$rounds"); do
  for w in 1 16; do
    load snmpd "$snmpd_pid" 11161 "$w" 1.3.6.1.2.1.1.3.0
    load snmpd-nowrap "$nowrap_pid" 11163 "$w" 1.3.6.1.2.1.1.3.0
    load null-agent "$echo_pid" 11164 "$w" 1.3.6.1.2.1.1.3.0
    load kurad "$kura_pid" 11162 "$w" 1.3.6.1.2.1.1.3.0
  done
done
echo "## Ratios per round (CPU per GET; p50), and the median"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for ours, peer in [("kurad", "snmpd"), ("kurad", "snmpd-nowrap"), ("null-agent", "snmpd"),
                   ("null-agent", "snmpd-nowrap"), ("kurad", "null-agent")]:
    for w in ("1", "16"):
        agent = lambda a: [r for r in rows if r[0] == a and r[1] == w]
        pairs = list(zip(agent(peer), agent(ours)))
        cpu = [float(k[2]) / float(s[2]) for s, k in pairs]
        p50 = [float(k[3]) / float(s[3]) for s, k in pairs]
        fmt = lambda xs: " / ".join(f"{x:.3f}" for x in xs)
        print(f"| {ours} / {peer} | window {w} | cpu ratio {fmt(cpu)} (median {statistics.median(cpu):.3f}) "
              f"| p50 ratio {fmt(p50)} (median {statistics.median(p50):.3f}) |")
PY
echo "## GET of a vhost counter at minute 5 (kurad only: 1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9.5.1)"
load kurad "$kura_pid" 11162 16 1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9.5.1
echo "## snmpbulkwalk -Cr50 of each agent's whole tree"
for i in 1 2 3; do
  walk snmpd "$snmpd_pid" 11161 .1
  walk snmpd-nowrap "$nowrap_pid" 11163 .1
  walk kurad "$kura_pid" 11162 .1.3.6.1.4.1.40001
done
