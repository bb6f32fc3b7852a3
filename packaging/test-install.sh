#!/usr/bin/env bash
# Install test of the .deb, as root on a Debian machine (CI's: no systemd as
# PID 1, so the unit's ExecStart runs as the kura user the way systemd would:
# setpriv with CAP_NET_BIND_SERVICE as the only capability, NOTIFY_SOCKET set).
#
#   install  -> user (adduser fallback: systemd-sysusers hidden), directories,
#               conffiles, systemd-analyze verify
#   start    -> READY=1, curl through the default vhost (MISS then HIT), kuractl status
#   edit     -> server.xml SNMP Status="Active" (an edited conffile), reload as
#               ExecReload does (RELOADING=1, READY=1), snmpget KURA-MIB::kuraMetaVersion
#   upgrade  -> a 0.1.0-2 .deb from the same staged binaries: the edited conffile,
#               the cached objects and the state survive, and kurad serves them as hits
#   remove   -> data and conffiles kept;  purge -> all gone but the kura user
#
# Needs target/dist from packaging/build.sh, and: curl, python3, snmp, strace,
# systemd (systemd-analyze), man-db, cargo-deb.
# Ports 80 (vhost), 8080 (origin), 10040 (manager), 161/udp (SNMP) must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
((EUID == 0)) || { echo "test-install.sh: run as root" >&2; exit 1; }

dist=target/dist
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
deb1="$(ls "$dist"/kura_"$version"-1_*.deb)"
work="$(mktemp -d)"
unit=/lib/systemd/system/kura.service
origin_pid="" kurad_pid="" launcher_pid="" notify_pid=""
# KURA-MIB by name from /usr/share/snmp/mibs; the SNMPv2-SMI/TC/CONF it imports
# are in Debian's non-free snmp-mibs-downloader, so they come from tests/mibs.
mibs=(-m KURA-MIB -M "+$PWD/tests/mibs")
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
sysusers=/usr/bin/systemd-sysusers
cleanup() {
    if dpkg-divert --listpackage "$sysusers" 2>/dev/null | grep -q LOCAL; then
        dpkg-divert --quiet --local --rename --remove "$sysusers"
    fi
    for p in $kurad_pid $launcher_pid $origin_pid $notify_pid; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits up to $2 seconds for $1 (a command) to succeed.
wait_for() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if eval "$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    fail "timed out waiting for: $1"
}

for port in 80 8080 10040; do
    if ss -Hltn "sport = :$port" | grep -q .; then fail "TCP port $port is taken"; fi
done
if dpkg-query -W kura >/dev/null 2>&1; then
    step "purging a kura package left from an earlier run"
    dpkg -P kura
fi

step "install $deb1 (apt-get resolves its dependencies), systemd-sysusers hidden"
# The first install takes postinst's adduser fallback; the upgrade below runs
# systemd-sysusers on the user that fallback made.
if getent passwd kura >/dev/null; then deluser --quiet --system kura 2>/dev/null; fi
if getent group kura >/dev/null; then delgroup --quiet --system kura; fi
dpkg-divert --quiet --local --rename --divert "$sysusers.kura-test" --add "$sysusers"
apt-get install -y -qq "./$deb1" >/dev/null
dpkg-divert --quiet --local --rename --remove "$sysusers"
dpkg-query -W -f='${Package} ${Version} ${Status}\n' kura
getent passwd kura || fail "no kura user"
[[ "$(getent passwd kura | cut -d: -f6,7)" == "/var/lib/kura:/usr/sbin/nologin" ]] || fail "kura's home or shell"
getent group kura >/dev/null || fail "no kura group"
for d in /var/cache/kura /var/lib/kura /var/log/kura; do
    [[ "$(stat -c '%U:%G %a' "$d")" == "kura:kura 750" ]] || fail "$d: $(stat -c '%U:%G %a' "$d")"
done
[[ "$(stat -c '%U:%G %a' /etc/kura)" == "root:kura 775" ]] || fail "/etc/kura: $(stat -c '%U:%G %a' /etc/kura)"
conffiles="$(dpkg-query -W -f='${Conffiles}\n' kura | awk 'NF {print $1}' | sort | tr '\n' ' ')"
[[ "$conffiles" == "/etc/kura/server.xml /etc/kura/vhosts.xml " ]] || fail "conffiles: $conffiles"
echo "conffiles: $conffiles"

step "systemd-analyze verify $unit (must print nothing)"
out="$(systemd-analyze verify "$unit" 2>&1)" || fail "verify failed: $out"
[[ -z "$out" ]] || fail "verify printed: $out"
echo "(nothing)"

step "origin: python3 -m http.server on 127.0.0.1:8080"
mkdir -p "$work/origin"
echo "hello from the origin" >"$work/origin/hello.txt"
python3 -m http.server 8080 --bind 127.0.0.1 --directory "$work/origin" >"$work/origin.log" 2>&1 &
origin_pid=$!
wait_for "curl -sf http://127.0.0.1:8080/hello.txt" 10

# A NOTIFY_SOCKET listener: every datagram kurad sends, one per line.
notify_socket="$work/notify"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)
' "$notify_socket" >"$work/notify.log" &
notify_pid=$!
wait_for "test -S $notify_socket" 5
chmod 0777 "$work" "$notify_socket"

# kurad as the unit runs it: User=, AmbientCapabilities=/CapabilityBoundingSet=
# CAP_NET_BIND_SERVICE, NoNewPrivileges=, UMask=, the unit's ExecStart line.
# With "strace" as $1, every system call kurad makes is recorded (strace runs
# as root outside setpriv; what comes before kurad's execve is setpriv's).
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
launcher_pid=""
start_kurad() {
    local tracer=()
    [[ "${1:-}" == strace ]] && tracer=(strace -f -qq -s 64 -o "$work/strace.out")
    # shellcheck disable=SC2086 # the ExecStart line is split into words as systemd does
    (umask 0027 && cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$notify_socket" \
        "${tracer[@]}" setpriv --reuid=kura --regid=kura --init-groups \
        --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
        --bounding-set=-all,+net_bind_service --no-new-privs \
        $exec_start) >>"$work/kurad.stderr" 2>&1 &
    launcher_pid=$!
    wait_for 'pgrep -u kura -x kurad' 10
    kurad_pid="$(pgrep -u kura -x kurad)"
}
notified() { grep -c "^$1\$" "$work/notify.log" || true; }
stop_kurad() {
    kill -TERM "$kurad_pid"
    wait "$launcher_pid" || fail "kurad exited $? on SIGTERM"
    kurad_pid="" launcher_pid=""
}
# The system calls a filter group allows, its @groups expanded.
syscalls_of() {
    systemd-analyze syscall-filter "$1" | awk 'NR > 1 && $1 !~ /^#/ {print $1}' | while read -r s; do
        if [[ "$s" == @* ]]; then syscalls_of "$s"; else echo "$s"; fi
    done
}

step "start: $exec_start (as kura, CAP_NET_BIND_SERVICE only)"
start_kurad strace
wait_for '[ "$(notified READY=1)" -ge 1 ]' 30
echo "kurad $kurad_pid sent: $(tr '\n' '|' <"$work/notify.log")"
grep -i "^Cap\(Eff\|Bnd\|Amb\)" "/proc/$kurad_pid/status"
[[ "$(stat -c %U "/proc/$kurad_pid")" == kura ]] || fail "kurad does not run as kura"

step "fetch through the default vhost on port 80"
h1="$(curl -si -H 'Host: any.example' http://127.0.0.1/hello.txt)"
h2="$(curl -si -H 'Host: any.example' http://127.0.0.1/hello.txt)"
echo "$h1" | grep -i '^x-cache' ; echo "$h2" | grep -i '^x-cache'
echo "$h1" | grep -qi '^x-cache: MISS' || fail "first fetch: $h1"
echo "$h2" | grep -qi '^x-cache: HIT' || fail "second fetch: $h2"
echo "$h2" | grep -q 'hello from the origin' || fail "body: $h2"

step "kuractl status"
kuractl status

step "edit the conffile: SNMP Status=\"Active\", reload as ExecReload does"
sed -i 's/<SNMP Port="161" Status="Inactive" \/>/<SNMP Port="161" Status="Active" \/>/' /etc/kura/server.xml
grep -q 'Status="Active"' /etc/kura/server.xml || fail "the edit did not apply"
while read -r line; do
    cmd="${line#ExecReload=}"
    cmd="${cmd//\$MAINPID/$kurad_pid}"
    echo "+ $cmd"
    # shellcheck disable=SC2086
    setpriv --reuid=kura --regid=kura --init-groups $cmd >/dev/null
done < <(grep '^ExecReload=' "$unit")
wait_for '[ "$(notified READY=1)" -ge 2 ]' 20
[[ "$(notified RELOADING=1)" -ge 1 ]] || fail "no RELOADING=1"
echo "notifications: $(tr '\n' '|' <"$work/notify.log")"

step "snmpget a meta OID with the packaged MIB loaded by name"
wait_for "snmpget -v2c -c public ${mibs[*]} 127.0.0.1 KURA-MIB::kuraMetaVersion" 10
snmpget -v2c -c public "${mibs[@]}" 127.0.0.1 KURA-MIB::kuraMetaVersion KURA-MIB::kuraMetaSoftware
snmpget -v2c -c public "${mibs[@]}" 127.0.0.1 KURA-MIB::kuraMetaVersion | grep -q "STRING: $version\$" ||
    fail "kuraMetaVersion is not $version"

step "stop (SIGTERM)"
stop_kurad
[[ "$(notified STOPPING=1)" -ge 1 ]] || fail "no STOPPING=1"
echo "notifications: $(tr '\n' '|' <"$work/notify.log")"

step "kura.service's SystemCallFilter= and RestrictAddressFamilies= allow what kurad used"
# No systemd as PID 1 here, so the sandbox itself is not applied; instead the
# calls kurad made under strace (start, requests, reload, SNMP, stop) are
# checked against the unit's filter: @system-service less @privileged @resources.
sed -n '/execve("\/usr\/sbin\/kurad"/,$p' "$work/strace.out" |
    sed -n 's/^[0-9]\+ \+\([a-z0-9_]\+\)(.*/\1/p' | sort -u >"$work/used"
[[ -s "$work/used" ]] || fail "strace recorded nothing"
syscalls_of @system-service | sort -u >"$work/service"
{ syscalls_of @privileged; syscalls_of @resources; } | sort -u >"$work/denied"
comm -23 "$work/service" "$work/denied" >"$work/allowed"
outside="$(comm -23 "$work/used" "$work/allowed" | tr '\n' ' ')"
echo "kurad used $(wc -l <"$work/used") distinct system calls: $(tr '\n' ' ' <"$work/used")"
[[ -z "$outside" ]] || fail "kurad uses system calls kura.service denies (EPERM): $outside"
families="$(grep -o 'socket(AF_[A-Z0-9]*' "$work/strace.out" | sort -u | sed 's/socket(//' | tr '\n' ' ')"
echo "socket families: $families"
for f in $families; do
    grep -q "^RestrictAddressFamilies=.*\b$f\b" "$unit" || fail "kurad opens $f sockets, which the unit does not allow"
done

step "cache and state before the upgrade"
# /hello.txt was fetched above: its object file is in the cache disk.
(cd /var/cache/kura && find objects -type f -exec sha256sum {} + | sort -k2) >"$work/cache.before"
[[ -s "$work/cache.before" ]] || fail "no object file in /var/cache/kura"
[[ -e /var/cache/kura/clean ]] || fail "a clean stop leaves /var/cache/kura/clean"
cat "$work/cache.before"
ls -l /var/lib/kura /var/lib/kura/conf
(cd /var/lib/kura && find . -type f -exec sha256sum {} + | sort -k2) >"$work/state.before"
[[ -s "$work/state.before" ]] || fail "kurad left no state in /var/lib/kura"
ls /var/log/kura

step "upgrade to $version-2 (same staged binaries, bumped version)"
cargo deb --no-build --no-strip --deb-version "$version-2" --output "$work/" >/dev/null
apt-get install -y -qq "$work/kura_$version-2_"*.deb >/dev/null
dpkg-query -W -f='${Package} ${Version} ${Status}\n' kura
[[ "$(dpkg-query -W -f='${Version}' kura)" == "$version-2" ]] || fail "not upgraded"
grep -q 'Status="Active"' /etc/kura/server.xml || fail "the edited conffile was replaced"
[[ ! -e /etc/kura/server.xml.dpkg-new && ! -e /etc/kura/server.xml.dpkg-dist ]] || fail "dpkg-new/dist left"
echo "edited conffile kept: $(grep -o '<SNMP [^>]*>' /etc/kura/server.xml)"
(cd /var/cache/kura && find objects -type f -exec sha256sum {} + | sort -k2) >"$work/cache.after"
cmp -s "$work/cache.before" "$work/cache.after" || fail "the cache was lost or changed in the upgrade"
(cd /var/lib/kura && find . -type f -exec sha256sum {} + | sort -k2) >"$work/state.after"
missing="$(comm -23 "$work/state.before" "$work/state.after")"
[[ -z "$missing" ]] || fail "state lost or changed in the upgrade: $missing"
echo "$(wc -l <"$work/cache.before") cached objects and $(wc -l <"$work/state.before") state files kept"

step "the upgraded kurad serves with the kept configuration"
start_kurad
wait_for '[ "$(notified READY=1)" -ge 3 ]' 30
h3="$(curl -si -H 'Host: any.example' http://127.0.0.1/hello.txt)"
echo "$h3" | grep -i '^x-cache'
echo "$h3" | grep -qi '^x-cache: HIT' || fail "the object cached before the upgrade is not a hit: $h3"
snmpget -v2c -c public "${mibs[@]}" 127.0.0.1 KURA-MIB::kuraMetaVersion
kuractl conf history
stop_kurad

step "remove: the cache, state, logs and conffiles stay"
dpkg -r kura
[[ ! -e /usr/sbin/kurad ]] || fail "kurad still installed"
dpkg-query -W -f='${Status}\n' kura | grep -q "config-files" || fail "not in config-files state"
for f in /etc/kura/server.xml /var/cache/kura/objects /var/lib/kura/conf /var/log/kura/info.log; do
    [[ -e "$f" ]] || fail "$f removed by dpkg -r"
done
echo "kept: /etc/kura/server.xml /var/cache/kura/objects /var/lib/kura/conf /var/log/kura/info.log"

step "purge: everything goes but the kura user"
dpkg -P kura
for f in /etc/kura /var/cache/kura /var/lib/kura /var/log/kura; do
    [[ ! -e "$f" ]] || fail "$f left after purge"
done
! dpkg-statoverride --list /etc/kura >/dev/null || fail "statoverride left"
getent passwd kura >/dev/null || fail "the kura user was deleted"
echo "gone: /etc/kura /var/cache/kura /var/lib/kura /var/log/kura; user kura kept"

printf '\ntest-install.sh: OK\n'
