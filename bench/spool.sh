#!/usr/bin/env bash
# bench/spool.sh: a cold object far larger than the memory a fill may hold (1/16 of the
# memory tier), written to disk as it arrives, against nginx's proxy_cache (temp file
# renamed into the cache), in one run, on a SIZE_MB object (default 1024).
#
#   cargo build --release --bins && bench/spool.sh
#   SIZE_MB=256 ROUNDS=1 bench/spool.sh
#
# Origin: nginx (the peers.sh origin) serving a random /big.bin from tmpfs.
# kura (127.0.0.1:19090): conf/bench (memory tier 5 % of RAM: a fill holds at most
# 1/16 of it) with one <Disk> on tmpfs.
# nginx (127.0.0.1:19094): ../shared/bench/conf/nginx-cache.conf, cache files on tmpfs.
#
# Each round asks for a new URL (cold): CLIENTS curls started 0.2 s apart, so all but
# the first arrive during the fill. Reported: the slowest client's time, whether every
# client got every byte (cksum against the origin's file), origin requests, the server's
# CPU (utime+stime of its processes), then one warm fetch (MB/s). At the end each
# server's peak resident memory (VmHWM; nginx: its largest process).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
. bench/lib.sh
SIZE=$((SIZE_MB << 20))
TICK=$(getconf CLK_TCK)

start_origin
head -c "$SIZE" /dev/urandom >"$RUN/docroot/big.bin"
cksum <"$RUN/docroot/big.bin" >"$RUN/sum.origin"

declare -A ROOT PORT=([kura]=19090 [nginx]=19094)
mkdir -p "$RUN/kura/disk"
start_kura kura 19090 19091 '' "" "<Storage><Disk>$RUN/kura/disk</Disk></Storage>"
ROOT[kura]=$KURA_PID
mkdir -p "$RUN/nginx"
sed -e "s#@RUN@#$RUN#g" -e "s#@ORIGIN_PORT@#19080#g" -e "s#@PORT@#19094#g" \
  -e "s#@CACHE_MB@#$((SIZE_MB * (ROUNDS + 1)))#g" \
  "$SHARED/bench/conf/nginx-cache.conf" >"$RUN/nginx.conf"
nginx -c "$RUN/nginx.conf" -e "$RUN/nginx/error.log" &
PIDS+=($!)
ROOT[nginx]=$!
wait_port 19080
wait_port 19094

# The largest VmHWM (KiB) among a process and its children.
peak_kib() {
  local max=0 p v
  for p in $1 $(pgrep -P "$1" || true); do
    v=$(awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    ((v > max)) && max=$v
  done
  echo "$max"
}

echo "# A cold $SIZE_MB MiB object written to disk as it arrives: kurad against nginx proxy_cache"
echo
echo "host: $(uname -srm); $(nproc) CPUs; $(date -u +%F); $CLIENTS clients 0.2 s apart per cold fetch"
echo
echo "| round | target | slowest client (s) | all bytes right | origin requests | server CPU (s) | warm fetch (MB/s) |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  for t in kura nginx; do
    url="http://127.0.0.1:${PORT[$t]}/big.bin?round=$round"
    o0=$(origin_requests)
    c0=$(tree_ticks "${ROOT[$t]}")
    start=$(date +%s.%N)
    clients=()
    for c in $(seq "$CLIENTS"); do
      (curl -s --max-time 600 "$url" | cksum >"$RUN/sum.$c") &
      clients+=($!)
      sleep 0.2
    done
    for j in "${clients[@]}"; do wait "$j" || true; done
    took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
    right=yes
    for c in $(seq "$CLIENTS"); do cmp -s "$RUN/sum.$c" "$RUN/sum.origin" || right=no; done
    c1=$(tree_ticks "${ROOT[$t]}")
    origin=$(($(origin_requests) - o0 - 1))
    sleep 1
    speed=$(curl -s -o /dev/null --max-time 600 -w '%{speed_download}' "$url")
    echo "| $round | $t | $took | $right | $origin | $(awk -v c=$((c1 - c0)) -v t="$TICK" 'BEGIN { printf "%.2f", c / t }') | $(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }') |"
  done
done
echo
echo "Peak resident memory: kurad $(($(peak_kib "${ROOT[kura]}") >> 10)) MiB, nginx (largest process) $(($(peak_kib "${ROOT[nginx]}") >> 10)) MiB"
