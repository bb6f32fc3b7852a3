#!/usr/bin/env bash
# bench/access-log.sh: what the access log costs kurad, beside nginx, in one peers.sh run.
#
#   cargo build --release --bins && bench/access-log.sh
#   ROUNDS=5 DURATION=10 LOG_DIR=/var/tmp/kura-access bench/access-log.sh
#
# Two kurads from conf/bench: `kura-nolog` (127.0.0.1:19090) with the access log OFF and
# `kura-log` (127.0.0.1:19092) with `<Access Local="ON">ON` (wrk's clients are loopback,
# which the guide's default leaves out), its log on a real disk (LOG_DIR, default under
# /var/tmp, not tmpfs). peers.sh runs the 1 KiB hit test against both and nginx
# (proxy_cache, access_log off), interleaved. Afterwards: the log's size and line count
# against the requests kurad counted, and the lines the writer dropped.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
. bench/lib.sh
LOG_DIR=${LOG_DIR:-$(mktemp -d /var/tmp/kura-accesslog.XXXXXX)}
CLEANUP+=("$LOG_DIR")

start_kura kura-nolog 19090 19091 '<Log><Access>OFF</Access></Log>'
start_kura kura-log 19092 19093 '<Log><Access Local="ON">ON</Access></Log>' "$LOG_DIR"

"$SHARED/bench/peers.sh" --peers nginx --tests 1k --rounds "$ROUNDS" --duration "$DURATION" \
  --target kura-nolog=127.0.0.1:19090 --target kura-log=127.0.0.1:19092

sleep 2 # the writer drains its queue
logs=("$LOG_DIR"/bench.kura/access*) # rolled files too
requests=$(curl -s http://127.0.0.1:19093/metrics | awk '/^kura_requests_total\{.*side="client"/ {s += $2} END {print s + 0}')
dropped=$(curl -s http://127.0.0.1:19093/metrics | awk '/^kura_log_dropped_lines_total\{log="access"/ {s += $2} END {print s + 0}')
echo
echo "kura-log: $(zcat -f "${logs[@]}" | grep -vc '^#') access lines for $requests client requests" \
  "in ${#logs[@]} file(s), $(du -cm "${logs[@]}" | tail -1 | cut -f1) MB, $dropped dropped" \
  "(log on $(df --output=source "$LOG_DIR" | tail -1))"
