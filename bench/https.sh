#!/usr/bin/env bash
# bench/https.sh: kurad's HTTPS against nginx with the same certificate, one run.
#
#   cargo build --release --bins && bench/https.sh
#   ROUNDS=5 SECS=10 CONNS=64 bench/https.sh
#
# The peer is nginx as a plain static TLS server of the same 1 KiB file (the
# simplest fair peer for the TLS cost: no proxying, open_file_cache, sendfile off
# under TLS anyway). kurad serves it as a cached hit from the peers.sh origin
# (nginx with ../shared/bench/conf/origin-nginx.conf on 19080). Both get the same
# RSA 2048 certificate from a throwaway CA, TLS 1.2 and 1.3 (clients pick 1.3),
# HTTP/1.1 (wrk has no h2).
#   - keep-alive hits: wrk -t1 -cCONNS, req/s, ROUNDS interleaved rounds, median;
#   - handshakes: `openssl s_time -new` (one client, a full handshake per connection,
#     a 1 KiB GET on each), connections/s; and wrk -t1 -c16 with `Connection: close`.
# The machine has 2 cores shared by client and server: only ratios mean anything.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CONNS=${CONNS:-64}
. bench/lib.sh

# The certificate: a CA and an RSA 2048 leaf for bench.kura (the guide's key type).
cd "$RUN"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
  -days 2 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=bench.kura" 2>/dev/null
printf 'subjectAltName=DNS:bench.kura\n' >leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out leaf.pem -extfile leaf.ext 2>/dev/null
cat leaf.pem ca.pem >chain.pem
cd - >/dev/null

# The origin, and the file nginx serves directly.
start_origin
mkdir -p "$RUN/state" "$RUN/logs" "$RUN/conf" "$RUN/peer/tmp"

# kurad: conf/bench plus an <Https> on 19443.
sed -e "s#</Server>#    <Https Listen=\"127.0.0.1:19443\"><Cert>$RUN/leaf.pem</Cert><Key>$RUN/leaf.key</Key><CA>$RUN/ca.pem</CA></Https>\n</Server>#" \
  conf/bench/server.xml >"$RUN/conf/server.xml"
cp conf/bench/vhosts.xml "$RUN/conf/"
"$KURAD" --conf-dir "$RUN/conf" --state-dir "$RUN/state" --log-dir "$RUN/logs" 2>"$RUN/kurad.err" & PIDS+=($!)

# nginx with TLS on 19444: the same file, the same certificate, as many workers as cores.
cat >"$RUN/peer.conf" <<EOF
daemon off;
worker_processes auto;
pid $RUN/peer/nginx.pid;
error_log $RUN/peer/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $RUN/peer/tmp;
    server {
        listen 127.0.0.1:19444 ssl backlog=4096;
        ssl_certificate $RUN/chain.pem;
        ssl_certificate_key $RUN/leaf.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $RUN/docroot;
        location / { add_header Cache-Control "max-age=3600"; }
    }
}
EOF
nginx -c "$RUN/peer.conf" -e "$RUN/peer/error.log" & PIDS+=($!)
wait_port 19080; wait_port 19443; wait_port 19444
curl -sk -o /dev/null https://127.0.0.1:19443/1k.bin   # the cached object
[ "$(curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:19443/1k.bin)" = 200 ] || { cat "$RUN/kurad.err"; exit 1; }

declare -A PORT=([kura]=19443 [nginx]=19444)
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
for round in $(seq "$ROUNDS"); do
  for peer in kura nginx; do
    url="https://127.0.0.1:${PORT[$peer]}/1k.bin"
    echo "round $round: $peer..." >&2
    wrk -t1 -c"$CONNS" -d"$SECS"s "$url" | awk '/Requests\/sec/ {print $2}' >>"$RUN/$peer.keepalive"
    wrk -t1 -c16 -d"$SECS"s -H "Connection: close" "$url" | awk '/Requests\/sec/ {print $2}' >>"$RUN/$peer.close"
    openssl s_time -connect "127.0.0.1:${PORT[$peer]}" -new -www /1k.bin -time "$SECS" 2>/dev/null |
      awk '/connections in .* real seconds/ {printf "%.0f\n", $1 / $4}' >>"$RUN/$peer.stime"
  done
done

row() { printf '| %s | %s | %s | %s |\n' "$1" "$(median <"$RUN/kura.$2")" "$(median <"$RUN/nginx.$2")" \
  "$(python3 -c "print(f'{$(median <"$RUN/kura.$2") / $(median <"$RUN/nginx.$2"):.2f}')")"; }
cat <<EOF
## HTTPS: kurad against nginx, 1 KiB, same certificate (RSA 2048)

| test | kura | nginx | ratio |
|---|---:|---:|---:|
$(row "keep-alive hits, req/s (wrk -t1 -c$CONNS)" keepalive)
$(row "new connection per request, req/s (wrk -t1 -c16, Connection: close)" close)
$(row "full handshakes/s (openssl s_time -new, 1 client)" stime)

Keep-alive rounds, kura: $(paste -sd' ' "$RUN/kura.keepalive"); nginx: $(paste -sd' ' "$RUN/nginx.keepalive").
Medians of $ROUNDS interleaved rounds of $SECS s; $(nproc) cores shared by client and servers;
kurad $($KURAD --version | awk '{print $2}') (a cached hit), $(nginx -v 2>&1 | sed 's/.*\///') (a static file), $(openssl version | awk '{print $1, $2}').
EOF
