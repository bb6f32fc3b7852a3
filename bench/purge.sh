#!/usr/bin/env bash
# bench/purge.sh: a wildcard purge of OBJECTS cached objects while wrk serves
# 1 KiB hits, as issue 5 asks: how long the purge takes and how far the hit
# rate dips while it runs.
#
#   cargo build --release --bins && bench/purge.sh            # 100,000 objects
#   OBJECTS=20000 CONNS=32 bench/purge.sh
#
# The origin is nginx with ../shared/bench/conf/origin-nginx.conf (the peers.sh
# origin: /1k.bin, max-age=3600); kurad runs with conf/bench (127.0.0.1:19090,
# manager 19091). The objects are /1k.bin?i=N (the query string is part of the
# key), the hot object is /1k.bin, and the purge is `url=bench.kura/1k.bin?*`,
# so it walks every shard and matches every object but the hot one.
# Prints a Markdown report; per-second client responses come from /metrics.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export OBJECTS=${OBJECTS:-100000}
CONNS=${CONNS:-64}
. bench/lib.sh

# The peers.sh origin.
start_origin
mkdir -p "$RUN/state" "$RUN/logs"
"$KURAD" --conf-dir conf/bench --state-dir "$RUN/state" --log-dir "$RUN/logs" 2>"$RUN/kurad.err" & PIDS+=($!)
wait_port 19080; wait_port 19090; wait_port 19091
api() { curl -s "http://127.0.0.1:19091$1"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)['result']['$1'])"; }

# Fill: each wrk thread walks its own slice of /1k.bin?i=0..OBJECTS-1 until all are cached.
echo "filling $OBJECTS objects..." >&2
wrk -t2 -c32 -d60s -s bench/fill.lua http://127.0.0.1:19090/ >"$RUN/fill.txt" &
FILL=$!
# expireafter with a day changes nothing a client sees; its Count says how many are cached.
for _ in $(seq 120); do
  cached=$(api "/command/expireafter?sec=86400&url=bench.kura/1k.bin?*" | json Count)
  [ "$cached" -ge "$OBJECTS" ] && break
  sleep 0.5
done
kill "$FILL" 2>/dev/null || true; wait "$FILL" 2>/dev/null || true
echo "cached: $cached" >&2

# Per-second client responses of the vhost, from /metrics.
sample() {
  while :; do
    printf '%s %s\n' "$(date +%s.%N)" \
      "$(api /metrics | awk '/^kura_response_duration_seconds_count\{vhost="bench.kura",side="client"\}/ {print $2}')"
    sleep 1
  done
}

curl -s -o /dev/null http://127.0.0.1:19090/1k.bin   # the hot object
run_load() { wrk -t2 -c"$CONNS" -d"$1"s --latency http://127.0.0.1:19090/1k.bin >"$RUN/$2.txt"; }

echo "baseline load..." >&2
run_load 8 base

echo "load with a purge 3 s in..." >&2
sample >"$RUN/samples.txt" & SAMPLER=$!
run_load 10 purge & LOAD=$!
sleep 3
start=$(date +%s.%N)
reply=$(api "/command/purge?url=bench.kura/1k.bin?*")
end=$(date +%s.%N)
wait "$LOAD"
kill "$SAMPLER" 2>/dev/null || true

rps() { awk '/Requests\/sec/ {print $2}' "$RUN/$1.txt"; }
lat() { awk -v p="$2" '$1 == p {print $2}' "$RUN/$1.txt"; }
count=$(echo "$reply" | json Count)
api_ms=$(echo "$reply" | json Time)
wall_ms=$(python3 -c "print(round(($end - $start) * 1000))")
dip=$(python3 - "$RUN/samples.txt" "$start" "$end" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
start, end = float(sys.argv[2]), float(sys.argv[3])
rates = [((t0 + t1) / 2, (c1 - c0) / (t1 - t0)) for (t0, c0), (t1, c1) in zip(rows, rows[1:])]
steady = sorted(r for t, r in rates if t < start - 1 or t > end + 1)
during = [r for t, r in rates if start - 1 <= t <= end + 1]
med = steady[len(steady) // 2] if steady else 0
low = min(during) if during else med
print(f"{med:.0f} {low:.0f} {100 * (1 - low / med) if med else 0:.1f}")
PY
)
read -r med low pct <<<"$dip"
cat <<EOF
## Purge of $count objects (wildcard) under 1 KiB hit load

| | value |
|---|---|
| objects cached before the purge | $cached |
| objects purged (API Count) | $count |
| purge time, API \`Time\` | $api_ms ms |
| purge time, wall clock of the call | $wall_ms ms |
| wrk 1 KiB hits, baseline | $(rps base) req/s (p99 $(lat base 99%)) |
| wrk 1 KiB hits, run with the purge | $(rps purge) req/s (p99 $(lat purge 99%), max $(awk '/Latency/ && !/Distribution/ {print $4; exit}' "$RUN/purge.txt")) |
| responses per second, steady median (from /metrics) | $med |
| responses per second, lowest second around the purge | $low ($pct % dip) |

$CONNS connections, 2 wrk threads, $(nproc) cores, kurad $($KURAD --version | awk '{print $2}').
EOF
