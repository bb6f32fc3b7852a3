#!/usr/bin/env bash
# bench/storage.sh: what issue 6 asks to measure of the disk store with OBJECTS
# cached objects: index memory per object, the time a clean stop takes, and
# the start-up time (index rebuilt from the disk) after a clean stop and after
# kill -9.
#
#   cargo build --release --bins && bench/storage.sh          # 1,000,000 objects
#   OBJECTS=100000 bench/storage.sh
#   INDEXING=Disk bench/storage.sh                             # <Indexing>Disk
#
# The origin is nginx with ../shared/bench/conf/origin-nginx.conf (the peers.sh
# origin); the objects are /1k.bin?i=N. kurad runs with conf/bench's vhosts
# (127.0.0.1:19090, manager 19091) and one <Disk> on tmpfs (/dev/shm), with
# SystemMemoryRatio and ContentMemoryRatio at 1 % so the memory tier (a few MB)
# does not hide the index in the resident size. Prints a Markdown report.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export OBJECTS=${OBJECTS:-1000000}
INDEXING=${INDEXING:-Memory}
. bench/lib.sh
KURA_PID=""
metric() { curl -s http://127.0.0.1:19091/metrics | awk -v n="$1" '$1 == n { print $2 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$KURA_PID/status"; }
now_ms() { date +%s%3N; }

start_origin
mkdir -p "$RUN/state" "$RUN/logs" "$RUN/conf" "$RUN/disk"
cp conf/bench/vhosts.xml "$RUN/conf/"
cat >"$RUN/conf/server.xml" <<EOF
<Server>
    <Host><Manager Port="19091" /></Host>
    <Cache>
        <Storage><Disk>$RUN/disk</Disk></Storage>
        <SystemMemoryRatio>1</SystemMemoryRatio>
        <ContentMemoryRatio>1</ContentMemoryRatio>
        <Indexing>$INDEXING</Indexing>
    </Cache>
</Server>
EOF

# Starts kurad (not in a subshell: it sets KURA_PID and READY_MS, the time
# until both ports are open).
start_kurad() {
  local t0
  t0=$(now_ms)
  "$KURAD" --conf-dir "$RUN/conf" --state-dir "$RUN/state" --log-dir "$RUN/logs" 2>>"$RUN/kurad.err" &
  KURA_PID=$!
  PIDS+=("$KURA_PID")
  wait_port 19091
  wait_port 19090
  READY_MS=$(($(now_ms) - t0))
}
indexed_ms() { grep "cache disks indexed" "$RUN/kurad.err" | tail -1 | grep -o 'ms=[0-9]*' | cut -d= -f2; }

wait_port 19080
start_kurad
rss_empty=$(rss_kib)

# Fill: each wrk thread walks its own slice of /1k.bin?i=0..OBJECTS-1.
echo "filling $OBJECTS objects..." >&2
t0=$(now_ms)
wrk -t2 -c32 -d600s -s bench/fill.lua http://127.0.0.1:19090/ >"$RUN/fill.txt" &
FILL=$!
cached=0
for _ in $(seq 1200); do
  cached=$(metric kura_cache_objects)
  [ "${cached:-0}" -ge "$OBJECTS" ] && break
  sleep 0.5
done
kill "$FILL" 2>/dev/null || true; wait "$FILL" 2>/dev/null || true
fill_s=$(( ($(now_ms) - t0) / 1000 ))
sleep 1
rss_full=$(rss_kib)
tier=$(metric kura_memory_tier_bytes)
disk_bytes=$(du -sb "$RUN/disk/objects" | cut -f1)
per_object=$(( (rss_full * 1024 - rss_empty * 1024 - ${tier:-0}) / cached ))

t0=$(now_ms); kill -TERM "$KURA_PID"; wait "$KURA_PID" 2>/dev/null || true
stop_ms=$(($(now_ms) - t0))
start_kurad
clean_ready_ms=$READY_MS
clean_index_ms=$(indexed_ms)
after_restart=$(metric kura_cache_objects)
rss_restart=$(rss_kib)
cold=$(metric kura_cache_cold_objects)
kill -KILL "$KURA_PID"; wait "$KURA_PID" 2>/dev/null || true
start_kurad
crash_ready_ms=$READY_MS
crash_index_ms=$(indexed_ms)
after_crash=$(metric kura_cache_objects)
hit=$(curl -s -o /dev/null -D - -H 'Host: bench.kura' 'http://127.0.0.1:19090/1k.bin?i=7' | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache" { print $2 }')

cat <<EOF
## kurad disk store, $cached objects of 1 KiB (tmpfs disk, \`<Indexing>$INDEXING\`)

| figure | value |
|---|---:|
| fill (wrk -t2 -c32, misses to the nginx origin) | ${fill_s} s |
| object files on disk | $disk_bytes bytes ($(( disk_bytes / cached )) per object) |
| RSS empty / full | $((rss_empty / 1024)) / $((rss_full / 1024)) MiB |
| memory tier at the end | ${tier:-0} bytes |
| **index memory per object** (RSS growth less the memory tier) | **$per_object bytes** |
| clean stop (SIGTERM to exit) | $stop_ms ms |
| start after a clean stop: index rebuilt / ports open | $clean_index_ms / $clean_ready_ms ms |
| objects indexed after it (of them cold: head only in the file) | $after_restart ($cold) |
| RSS after the restart | $((rss_restart / 1024)) MiB |
| start after kill -9: index rebuilt / ports open | $crash_index_ms / $crash_ready_ms ms |
| objects indexed after it | $after_crash |
| /1k.bin?i=7 after the kill -9 restart | X-Cache: $hit |
EOF
