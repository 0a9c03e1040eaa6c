#!/usr/bin/env bash
# Platform benchmarks (checkout has its own: bench/checkout.sh; memory per process:
# bench/memory.sh), on a release build:
#   1. time from `emporium up` to every service ready (fresh data, then existing data);
#   2. GET /api/catalog/products/{id} with wrk, two shops running side by side:
#      - service identity off (plain HTTP between services): (a) catalog directly,
#        (b) nginx as a reverse proxy in front of catalog, (c) the gateway, and
#        (f) hyper-floor (bench/load/src/hyper_floor.rs): a proxy on hyper and
#        tokio served the gateway's way with none of its features, the floor
#        under the gateway;
#      - identity on (the default: mutual TLS between services; catalog refuses
#        plain HTTP, so wrk cannot reach it directly): (d) nginx reaching catalog
#        over mTLS with a gateway certificate from the shop's CA, (e) the gateway;
#      the gateway with rate limiting on (limits set high enough never to refuse),
#      the six targets interleaved round by round.
# Usage: bench/run.sh [seconds-per-wrk-run, default 10] [rounds, default 2]
# (STARTUP_RUNS=0 skips part 1.)
# Needs wrk, nginx and openssl (installed from Debian's packages when missing).
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
ROUNDS=${2:-2}
CONNECTIONS=64

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx
need openssl openssl

source bench/lib.sh
# One build of both packages: built alone, emporium-bench (hyper-floor) would unify
# its dependencies' features differently and rebuild a share of them each time.
cargo build --release -p emporium -p emporium-bench >/dev/null
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# nginx runs with access_log off, like Emporium's logs at warn.
bench_env

# Starts `emporium up` on data dir $1; sets UP_PID, UP_LOG and READY_MS (ms until ready).
# Short-lived shops are stopped by the caller (up_stop); long-lived ones are
# added to PIDS for the exit trap.
start_up() {
  local t0 t1
  t0=$(date +%s%N)
  up_start "$WORK/up-$RANDOM.log" "$1"
  t1=$(date +%s%N)
  READY_MS=$(((t1 - t0) / 1000000))
}
addr_of() { up_processes | awk -v s="$1" '$1 == s {print $2; exit}'; }
pid_of() { up_processes | awk -v s="$1" '$1 == s {print $3; exit}'; }

STARTUP_RUNS=${STARTUP_RUNS:-5}
if [ "$STARTUP_RUNS" -gt 0 ]; then
echo "## Startup (emporium up → every /readyz 200), $STARTUP_RUNS runs each"
fresh=(); warm=()
for i in $(seq "$STARTUP_RUNS"); do
  d="$WORK/data-$i"
  start_up "$d"; fresh+=("$READY_MS"); up_stop
  start_up "$d"; warm+=("$READY_MS"); up_stop
done
echo "- fresh data dir (migrations, 1,200-product seed, key generation): median $(median "${fresh[@]}") ms (runs: ${fresh[*]})"
echo "- existing data dir: median $(median "${warm[@]}") ms (runs: ${warm[*]})"
fi

# The shop with identity off, then the default one; each keeps its processes.
EMPORIUM__IDENTITY__MODE=off start_up "$WORK/data-plain"
PIDS+=("$UP_PID")
CATALOG=$(addr_of catalog)
GATEWAY=$(addr_of gateway)
CATALOG_PID=$(pid_of catalog)
GATEWAY_PID=$(pid_of gateway)
start_up "$WORK/data-mtls"
PIDS+=("$UP_PID")
DATA_MTLS=$WORK/data-mtls
CATALOG_MTLS=$(addr_of catalog)
GATEWAY_MTLS=$(addr_of gateway)
CATALOG_MTLS_PID=$(pid_of catalog)
GATEWAY_MTLS_PID=$(pid_of gateway)
UP_PID=
ID=$(curl -s "http://$GATEWAY/api/catalog/products?limit=1" | sed -E 's/.*"id":"([^"]+)".*/\1/' | head -c 36)
ID_MTLS=$(curl -s "http://$GATEWAY_MTLS/api/catalog/products?limit=1" | sed -E 's/.*"id":"([^"]+)".*/\1/' | head -c 36)

# nginx's certificate: the gateway's identity, signed by the mTLS shop's CA.
n=$WORK/nginx
mkdir -p "$n"
openssl ecparam -name prime256v1 -genkey -noout -out "$n/gw.key"
openssl req -new -key "$n/gw.key" -subj "/O=Emporium/CN=gateway" -out "$n/gw.csr"
printf '%s\n' "subjectAltName=URI:spiffe://emporium.local/service/gateway,DNS:gateway.svc.emporium.local" \
  "extendedKeyUsage=clientAuth,serverAuth" "keyUsage=critical,digitalSignature" "basicConstraints=CA:FALSE" >"$n/ext.cnf"
openssl x509 -req -in "$n/gw.csr" -CA "$DATA_MTLS/identity/ca.pem" -CAkey "$DATA_MTLS/identity/ca.key" \
  -CAserial "$n/ca.srl" -CAcreateserial -days 1 -extfile "$n/ext.cnf" -out "$n/gw.crt" 2>/dev/null
NGINX_PORT=$((20000 + RANDOM % 20000))
NGINX_MTLS_PORT=$((NGINX_PORT + 1))
cat >"$n/nginx.conf" <<CONF
worker_processes auto;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream catalog { server $CATALOG; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://catalog;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  upstream catalog_mtls { server $CATALOG_MTLS; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_MTLS_PORT;
    location / {
      proxy_pass https://catalog_mtls;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate $n/gw.crt;
      proxy_ssl_certificate_key $n/gw.key;
      proxy_ssl_trusted_certificate $DATA_MTLS/identity/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name catalog.svc.emporium.local;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
    }
  }
}
CONF
nginx -c "$n/nginx.conf" -p "$n" -g 'daemon off;' &
PIDS+=("$!")
NGINX_PID=$!
FLOOR_PORT=$((NGINX_PORT + 2))
target/release/hyper-floor "127.0.0.1:$FLOOR_PORT" "$CATALOG" &
PIDS+=("$!")
FLOOR_PID=$!
# The same floor speaking HTTP/2 to catalog (h2c: every request of a thread on one
# connection, many in flight at once).
target/release/hyper-floor "127.0.0.1:$((FLOOR_PORT + 1))" "$CATALOG" h2 &
PIDS+=("$!")
FLOOR_H2_PID=$!
declare -A URL=(
  [direct]="http://$CATALOG/api/catalog/products/$ID"
  [nginx]="http://127.0.0.1:$NGINX_PORT/api/catalog/products/$ID"
  [gateway]="http://$GATEWAY/api/catalog/products/$ID"
  [nginx-mtls]="http://127.0.0.1:$NGINX_MTLS_PORT/api/catalog/products/$ID_MTLS"
  [gateway-mtls]="http://$GATEWAY_MTLS/api/catalog/products/$ID_MTLS"
  [floor]="http://127.0.0.1:$FLOOR_PORT/api/catalog/products/$ID"
  [floor-h2]="http://127.0.0.1:$((FLOOR_PORT + 1))/api/catalog/products/$ID"
)
TARGETS=(direct nginx gateway nginx-mtls gateway-mtls floor floor-h2)
for t in "${TARGETS[@]}"; do
  for _ in $(seq 100); do curl -sf "${URL[$t]}" >/dev/null && continue 2; sleep 0.05; done
  echo "$t does not answer ${URL[$t]}"; cat "$n/error.log"; exit 1
done

# The processes whose CPU time a target's requests cost: the proxy (nginx's
# master and workers, or the gateway) and catalog behind it.
declare -A PROXY=(
  [direct]=""
  [nginx]="nginx"
  [gateway]="$GATEWAY_PID"
  [nginx-mtls]="nginx"
  [gateway-mtls]="$GATEWAY_MTLS_PID"
  [floor]="$FLOOR_PID"
  [floor-h2]="$FLOOR_H2_PID"
)
declare -A BEHIND=(
  [direct]="$CATALOG_PID" [nginx]="$CATALOG_PID" [gateway]="$CATALOG_PID"
  [nginx-mtls]="$CATALOG_MTLS_PID" [gateway-mtls]="$CATALOG_MTLS_PID" [floor]="$CATALOG_PID"
  [floor-h2]="$CATALOG_PID"
)
pids_of() {
  if [ "$1" = nginx ]; then echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; else echo "$1"; fi
}
# ticks PID...: user + system clock ticks of the processes, summed.
ticks() {
  local p
  for p in "$@"; do cpu_ticks "$p"; done | awk '{t += $1} END {print t + 0}'
}
per_request() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-"}'; }

declare -A RPS PROXY_US
run_wrk() { # name url
  local out rps p50 p99 proxy p0 p1 b0 b1 n
  proxy=$(pids_of "${PROXY[$1]}")
  # shellcheck disable=SC2086 # a list of pids
  p0=$(ticks $proxy)
  b0=$(ticks "${BEHIND[$1]}")
  out=$(wrk -t2 -c$CONNECTIONS -d"${DURATION}s" --latency "$2")
  # shellcheck disable=SC2086
  p1=$(ticks $proxy)
  b1=$(ticks "${BEHIND[$1]}")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  # An error answered fast would pass for throughput.
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: $(grep Non-2xx <<<"$out")"; exit 1; fi
  local proxy_us=-
  [ -n "$proxy" ] && proxy_us=$(per_request $((p1 - p0)) "$n")
  echo "| $1 | $rps | $p50 | $p99 | $proxy_us | $(per_request $((b1 - b0)) "$n") |"
  RPS[$1]="${RPS[$1]:-} $rps"
  PROXY_US[$1]="${PROXY_US[$1]:-} $proxy_us"
}
echo
echo "## GET /api/catalog/products/{id}: wrk -t2 -c$CONNECTIONS -d${DURATION}s, $ROUNDS interleaved rounds"
echo
echo "| target | req/s | p50 | p99 | µs CPU/req: proxy | µs CPU/req: catalog |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do run_wrk "$t" "${URL[$t]}"; done
done
mean() { awk '{s=0; for (i=1;i<=NF;i++) s+=$i; printf "%.0f", s/NF}' <<<"$1"; }
mean1() { awk '{s=0; for (i=1;i<=NF;i++) s+=$i; printf "%.1f", s/NF}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
d=$(mean "${RPS[direct]}"); n=$(mean "${RPS[nginx]}"); g=$(mean "${RPS[gateway]}")
nm=$(mean "${RPS[nginx-mtls]}"); gm=$(mean "${RPS[gateway-mtls]}")
echo
echo "Mean req/s: direct $d, nginx $n, gateway $g; with mTLS to catalog: nginx $nm, gateway $gm."
echo "Ratios, plain: gateway/nginx $(ratio "$g" "$n"), gateway/direct $(ratio "$g" "$d"), nginx/direct $(ratio "$n" "$d")."
echo "Ratios, mTLS to catalog: gateway/nginx $(ratio "$gm" "$nm"); mTLS/plain: nginx $(ratio "$nm" "$n"), gateway $(ratio "$gm" "$g")."
pn=$(mean1 "${PROXY_US[nginx]}"); pg=$(mean1 "${PROXY_US[gateway]}")
pnm=$(mean1 "${PROXY_US[nginx-mtls]}"); pgm=$(mean1 "${PROXY_US[gateway-mtls]}")
echo "Proxy CPU per request (µs): plain nginx $pn, gateway $pg ($(ratio "$pg" "$pn")×); over mTLS nginx $pnm, gateway $pgm ($(ratio "$pgm" "$pnm")×)."
f=$(mean "${RPS[floor]}"); pf=$(mean1 "${PROXY_US[floor]}")
echo "The floor (hyper-floor: hyper and tokio served the gateway's way, no features): $f req/s, floor/nginx $(ratio "$f" "$n"), gateway/floor $(ratio "$g" "$f"); proxy CPU per request $pf µs ($(ratio "$pf" "$pn")× nginx's; the gateway $(ratio "$pg" "$pf")× the floor's)."
f2=$(mean "${RPS[floor-h2]}"); pf2=$(mean1 "${PROXY_US[floor-h2]}")
echo "The floor over HTTP/2 to catalog: $f2 req/s, floor-h2/nginx $(ratio "$f2" "$n"), floor-h2/floor $(ratio "$f2" "$f"); proxy CPU per request $pf2 µs."
