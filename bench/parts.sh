#!/usr/bin/env bash
# bench/parts.sh: <PartSize> against nginx's slice module (the same design: one
# cache object per 1 MiB range), in one run, on a SIZE_MB object (default 1024).
#
#   cargo build --release --bins && bench/parts.sh
#   SIZE_MB=256 DURATION=5 ROUNDS=1 bench/parts.sh
#
# Origin: nginx (the peers.sh origin) serving a random /big.bin from tmpfs.
# kura-parts (127.0.0.1:19090): conf/bench with one <Disk> on tmpfs and PartSize 1.
# kura-whole (127.0.0.1:19092): the same without PartSize (how a range miss went before).
# nginx-slice (127.0.0.1:19094): ../shared/bench/conf/nginx-cache.conf with `slice 1m`,
# the slice range in the cache key and the Range sent upstream, cache files on tmpfs.
#
# 1. A cold range: 1 KiB in the middle of the object: status, bytes to the client,
#    origin requests and the time it took.
# 2. kura-parts and nginx-slice (and kura-whole, for objects up to 64 MiB) fetch the
#    whole object twice (cold, then cached), then
#    wrk sends random 64 KiB ranges (bench/ranges.lua, 16 connections) to each in
#    turn, ROUNDS times: requests/s and server CPU per request (utime+stime of its
#    processes).
# 3. A whole-object hit, three times each: MB/s to curl.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
. bench/lib.sh
export SIZE=$((SIZE_MB << 20))
TICK=$(getconf CLK_TCK)

start_origin
head -c "$SIZE" /dev/urandom >"$RUN/docroot/big.bin"

# A kurad with one <Disk> on tmpfs in $RUN/NAME/disk: start_kura's arguments.
start_kura_on_disk() {
  mkdir -p "$RUN/$1/disk"
  start_kura "$1" "$2" "$3" "$4" "" "<Storage><Disk>$RUN/$1/disk</Disk></Storage>"
  ROOT[$1]=$KURA_PID
}
declare -A ROOT PORT=([kura-parts]=19090 [kura-whole]=19092 [nginx-slice]=19094)
start_kura_on_disk kura-parts 19090 19091 '<OriginOptions><PartSize>1</PartSize></OriginOptions>'
start_kura_on_disk kura-whole 19092 19093 ''
mkdir -p "$RUN/nginx"
sed -e "s#@RUN@#$RUN#g" -e "s#@ORIGIN_PORT@#19080#g" -e "s#@PORT@#19094#g" -e "s#@CACHE_MB@#$((SIZE_MB * 2))#g" \
  -e 's#proxy_cache_lock on;#proxy_cache_lock on;\n            slice 1m;\n            proxy_cache_key $uri$is_args$args$slice_range;\n            proxy_set_header Range $slice_range;\n            proxy_cache_valid 200 206 1h;#' \
  "$SHARED/bench/conf/nginx-cache.conf" >"$RUN/nginx-slice.conf"
nginx -c "$RUN/nginx-slice.conf" -e "$RUN/nginx/error.log" &
PIDS+=($!)
ROOT[nginx-slice]=$!
wait_port 19080
wait_port 19094
# kura-whole passes a range miss of an object larger than it keeps (1/16 of its
# memory, conf/bench: about 75 MB on 24 GiB) to the origin whole: past 64 MiB it
# is in the cold range only; below, the wrk and whole runs show what parts cost.
TARGETS=(kura-parts nginx-slice)
((SIZE_MB > 64)) || TARGETS+=(kura-whole)


echo "# <PartSize> 1 MiB against nginx slice 1m, $SIZE_MB MiB object"
echo
echo "host: $(uname -srm); $(nproc) CPUs; $(date -u +%F)"
echo
echo "## A cold 1 KiB range in the middle"
echo
echo "| target | status | bytes to client | origin requests | time (ms) |"
echo "|---|---|---|---|---|"
mid=$((SIZE / 2))
for t in "${TARGETS[@]}" $( ((SIZE_MB > 64)) && echo kura-whole); do
  o0=$(origin_requests)
  read -r code bytes secs < <(curl -s -o /dev/null -r "$mid-$((mid + 1023))" --max-time 600 \
    -w '%{http_code} %{size_download} %{time_total}\n' "http://127.0.0.1:${PORT[$t]}/big.bin")
  echo "| $t | $code | $bytes | $(($(origin_requests) - o0 - 1)) | $(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }') |"
done

for t in "${TARGETS[@]}"; do
  curl -s -o /dev/null --max-time 600 "http://127.0.0.1:${PORT[$t]}/big.bin"
  curl -s -o /dev/null --max-time 600 "http://127.0.0.1:${PORT[$t]}/big.bin"
done
echo
echo "## Random 64 KiB ranges, all cached (wrk -t2 -c16, ${DURATION} s, $ROUNDS rounds)"
echo
echo "| round | target | requests/s | non-2xx | server CPU per request (us) | origin requests |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    o0=$(origin_requests)
    c0=$(tree_ticks "${ROOT[$t]}")
    out=$(wrk -t2 -c16 -d"${DURATION}s" -s bench/ranges.lua "http://127.0.0.1:${PORT[$t]}/big.bin")
    c1=$(tree_ticks "${ROOT[$t]}")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    bad=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    cpu=$(awk -v c=$((c1 - c0)) -v t="$TICK" -v n="$requests" 'BEGIN { printf "%.1f", c / t * 1e6 / n }')
    echo "| $round | $t | $rps | ${bad:-0} | $cpu | $(($(origin_requests) - o0 - 1)) |"
    sleep 1
  done
done
echo
echo "## The whole object, cached (curl, MB/s)"
echo
echo "| target | run 1 | run 2 | run 3 |"
echo "|---|---|---|---|"
for t in "${TARGETS[@]}"; do
  row="| $t"
  for _ in 1 2 3; do
    speed=$(curl -s -o /dev/null --max-time 600 -w '%{speed_download}' "http://127.0.0.1:${PORT[$t]}/big.bin")
    row+=" | $(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }')"
  done
  echo "$row |"
done
