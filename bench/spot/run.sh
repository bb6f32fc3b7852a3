#!/usr/bin/env bash
# Spot checks: the same request sequences against kura, ATS and Varnish in front of one
# scriptable origin (origin.py).  Everything on 127.0.0.1, ports 19500-19599:
#   origin 19500, ATS 19510, Varnish 19520, kurad 19591 (admin 19590).
# Usage: bench/spot/run.sh [SEQ...]  -> results in $OUT (default /tmp/kura-spot/out:
#        results.json, results.md, logs); KURAD defaults to target/release/kurad.
# Needs ../shared/bench/install-peers.sh (trafficserver, varnish). The report of the last
# full run and what it found: docs/caching-spot-checks.md.
# Every process started here is stopped by PID on exit.
set -Eeuo pipefail
D=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
RUN=${RUN:-/tmp/kura-spot/run}   # per-run state (ATS runroot, varnish workdir, kura state/logs)
OUT=${OUT:-/tmp/kura-spot/out}
KURAD=${KURAD:-$D/../../target/release/kurad}
PIDS=()

log() { printf '[spot %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
cleanup() {
  set +e
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    p=${PIDS[i]}
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    fi
    wait "$p" 2>/dev/null
  done
  log "stopped ${#PIDS[@]} processes"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 150); do
    ss -ltnH "( sport = :$1 )" | grep -q . && return 0
    sleep 0.2
  done
  log "port $1 not listening"; return 1
}

for p in 19500 19510 19520 19590 19591; do
  ss -ltnH "( sport = :$p )" | grep -q . && { log "port $p busy"; exit 1; }
done
rm -rf "$RUN" "$OUT"; mkdir -p "$RUN" "$OUT"

# --- versions
{
  echo "kurad: $KURAD ($(stat -c '%y' "$KURAD"), sha256 $(sha256sum "$KURAD" | cut -c1-16))"
  echo "ats: $(traffic_server -V 2>/dev/null | sed -n 1p | awk '{print $1,$2,$3}') (deb $(dpkg-query -W -f '${Version}' trafficserver 2>/dev/null))"
  echo "varnish: $(varnishd -V 2>&1 | sed -n 1p) (deb $(dpkg-query -W -f '${Version}' varnish 2>/dev/null))"
  echo "python: $(python3 -V)"
} >"$OUT/versions.txt"

# --- origin
python3 "$D/origin.py" 19500 >"$OUT/origin.log" 2>&1 &
PIDS+=($!); log "origin pid $!"
wait_port 19500

# --- kura
mkdir -p "$RUN/kura/state" "$RUN/kura/logs"
cp "$D/conf/kura/"*.xml "$RUN/kura/"
"$KURAD" --conf-dir "$RUN/kura" --state-dir "$RUN/kura/state" --log-dir "$RUN/kura/logs" >"$OUT/kurad.stdout" 2>&1 &
PIDS+=($!); log "kurad pid $!"

# --- ATS (bench records.config/runroot/storage templates, RAM cache 64 MiB, store 64 MiB)
A=$RUN/ats
mkdir -p "$A/etc" "$A/var/cache" "$A/run" "$A/log"
cp -a /etc/trafficserver/. "$A/etc/"
sed "s#@RUN@#$RUN#g" "$D/conf/ats/records.config.tmpl" >"$A/etc/records.config"
sed -e "s#@RUN@#$RUN#g" -e "s#@STORE_MB@#64#g" "$D/conf/ats/storage.config.tmpl" >"$A/etc/storage.config"
sed "s#@RUN@#$RUN#g" "$D/conf/ats/runroot.yaml.tmpl" >"$A/runroot.yaml"
cp "$D/conf/ats/remap.config" "$D/conf/ats/logging.yaml" "$A/etc/"
: >"$A/etc/plugin.config"
chown -R trafficserver:trafficserver "$A/var" "$A/run" "$A/log"
traffic_server --run-root="$A/runroot.yaml" >"$OUT/ats.stdout" 2>&1 &
PIDS+=($!); log "traffic_server pid $!"

# --- Varnish (bench VCL: builtin behaviour + X-Cache)
mkdir -p "$RUN/varnish/work"
cp "$D/conf/varnish.vcl" "$RUN/varnish/default.vcl"
varnishd -F -j none -a 127.0.0.1:19520 -T none -n "$RUN/varnish/work" \
  -f "$RUN/varnish/default.vcl" -s malloc,64m >"$OUT/varnish.stdout" 2>&1 &
PIDS+=($!); log "varnishd pid $!"

wait_port 19591; wait_port 19510; wait_port 19520
sleep 2

python3 "$D/driver.py" "$OUT" "$@"

sleep 2   # let ATS flush its transaction log
cp -f "$A/log/squid.log" "$OUT/ats-squid.log" 2>/dev/null || true
cp -f "$A/log/diags.log" "$OUT/ats-diags.log" 2>/dev/null || true
cp -f "$RUN/kura/logs/www.test/access.log" "$OUT/kura-access.log" 2>/dev/null || true
log "done: $OUT"
