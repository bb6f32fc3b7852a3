# bench/lib.sh: what the bench scripts share; sourced after they `cd` to the repository.
# Sets KURAD, SHARED, RUN (a new directory in /dev/shm named after the script), PIDS
# (processes stopped on exit) and CLEANUP (paths removed on exit, RUN first); defines
# wait_port, start_origin, start_kura, origin_requests and tree_ticks.
KURAD=${KURAD:-target/release/kurad}
SHARED=${SHARED:-../shared}
RUN=$(mktemp -d "/dev/shm/kura-$(basename "$0" .sh).XXXXXX")
PIDS=()
CLEANUP=("$RUN")
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${CLEANUP[@]}"
}
trap bench_cleanup EXIT

# Waits up to 30 s for 127.0.0.1:PORT to accept connections.
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# The peers.sh origin: nginx with ../shared/bench/conf/origin-nginx.conf on 19080,
# serving a random 1 KiB $RUN/docroot/1k.bin.
start_origin() {
  mkdir -p "$RUN/origin/tmp" "$RUN/docroot"
  head -c 1024 /dev/urandom >"$RUN/docroot/1k.bin"
  sed -e "s#@RUN@#$RUN#g" -e "s#@DOCROOT@#$RUN/docroot#g" -e "s#@ORIGIN_PORT@#19080#g" \
    "$SHARED/bench/conf/origin-nginx.conf" >"$RUN/origin.conf"
  nginx -c "$RUN/origin.conf" -e "$RUN/origin/error.log" &
  PIDS+=($!)
}

# start_kura NAME HTTP_PORT MANAGER_PORT VHOST_ELEMENTS [LOG_DIR] [STORAGE]: kurad from
# conf/bench in $RUN/NAME on 127.0.0.1:HTTP_PORT (manager MANAGER_PORT), VHOST_ELEMENTS
# after the vhost's <Origin>, its logs in LOG_DIR (default $RUN/NAME/logs), STORAGE in
# place of <Storage /> (default Memory-Only); sets KURA_PID once both ports are open.
start_kura() {
  local logs=${5:-$RUN/$1/logs} storage=${6:-<Storage />}
  mkdir -p "$RUN/$1/conf" "$RUN/$1/state" "$logs"
  sed -e "s#Port=\"19091\"#Port=\"$3\"#" -e "s#<Storage />#$storage#" \
    conf/bench/server.xml >"$RUN/$1/conf/server.xml"
  sed -e "s#127.0.0.1:19090#127.0.0.1:$2#" -e "s#</Origin>#</Origin>\n        $4#" \
    conf/bench/vhosts.xml >"$RUN/$1/conf/vhosts.xml"
  "$KURAD" --conf-dir "$RUN/$1/conf" --state-dir "$RUN/$1/state" --log-dir "$logs" 2>"$RUN/$1.err" &
  KURA_PID=$!
  PIDS+=("$KURA_PID")
  wait_port "$3"
  wait_port "$2"
}

# Requests the origin (start_origin) has answered so far, this one included.
origin_requests() { curl -s http://127.0.0.1:19080/__origin_status | awk 'NR == 3 { print $3 }'; }

# utime + stime (ticks) of a process and its children, live and reaped.
tree_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
