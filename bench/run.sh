#!/usr/bin/env bash
# Platform benchmarks (checkout has its own: bench/checkout.sh), on a release build:
#   1. time from `emporium up` to every service ready (fresh data, then existing data);
#   2. idle resident memory of each process and of the whole system;
#   3. GET /api/catalog/products/{id} with wrk against (a) catalog directly,
#      (b) nginx as a reverse proxy in front of catalog, (c) the gateway with rate
#      limiting on (limits set high enough never to refuse), interleaved in one run.
# Usage: bench/run.sh [seconds-per-wrk-run, default 10] [rounds, default 2]
# Needs wrk and nginx (installed from Debian's packages when missing).
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
ROUNDS=${2:-2}
CONNECTIONS=64

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx

source bench/lib.sh
cargo build --release -p emporium >/dev/null
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
start_up() {
  local t0 t1
  t0=$(date +%s%N)
  up_start "$WORK/up-$RANDOM.log" "$1"
  PIDS+=("$UP_PID")
  t1=$(date +%s%N)
  READY_MS=$(((t1 - t0) / 1000000))
}
addr_of() { up_processes | awk -v s="$1" '$1 == s {print $2; exit}'; }
pid_of() { up_processes | awk -v s="$1" '$1 == s {print $3; exit}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "## Startup (emporium up → every /readyz 200), 5 runs each"
fresh=(); warm=()
for i in 1 2 3 4 5; do
  d="$WORK/data-$i"
  start_up "$d"; fresh+=("$READY_MS"); up_stop
  start_up "$d"; warm+=("$READY_MS"); up_stop
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "- fresh data dir (migrations, 1,200-product seed, key generation): median $(median "${fresh[@]}") ms (runs: ${fresh[*]})"
echo "- existing data dir: median $(median "${warm[@]}") ms (runs: ${warm[*]})"

DATA="$WORK/data-bench"
start_up "$DATA"
sleep 3
echo
echo "## Idle resident memory, 3 s after ready"
total=0
for s in registry users catalog inventory payments cart orders notifications gateway; do
  kib=$(rss_kib "$(pid_of $s)"); total=$((total + kib))
  echo "- $s: $((kib / 1024)).$(((kib % 1024) * 10 / 1024)) MiB"
done
sup=$(rss_kib "$UP_PID"); total=$((total + sup))
echo "- supervisor (emporium up): $((sup / 1024)).$(((sup % 1024) * 10 / 1024)) MiB"
echo "- whole system: $((total / 1024)).$(((total % 1024) * 10 / 1024)) MiB"

CATALOG=$(addr_of catalog)
GATEWAY=$(addr_of gateway)
ID=$(curl -s "http://$GATEWAY/api/catalog/products?limit=1" | sed -E 's/.*"id":"([^"]+)".*/\1/' | head -c 36)
NGINX_PORT=$((20000 + RANDOM % 20000))
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
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
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' &
PIDS+=("$!")
until curl -sf "http://127.0.0.1:$NGINX_PORT/api/catalog/products/$ID" >/dev/null; do sleep 0.05; done

declare -A RPS P50 P99
run_wrk() { # name url
  local out rps p50 p99
  out=$(wrk -t2 -c$CONNECTIONS -d"${DURATION}s" --latency "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "| $1 | $rps | $p50 | $p99 |"
  RPS[$1]="${RPS[$1]:-} $rps"
}
echo
echo "## GET /api/catalog/products/{id}: wrk -t2 -c$CONNECTIONS -d${DURATION}s, $ROUNDS interleaved rounds"
echo
echo "| target | req/s | p50 | p99 |"
echo "|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
  run_wrk direct "http://$CATALOG/api/catalog/products/$ID"
  run_wrk nginx "http://127.0.0.1:$NGINX_PORT/api/catalog/products/$ID"
  run_wrk gateway "http://$GATEWAY/api/catalog/products/$ID"
done
mean() { awk '{s=0; for (i=1;i<=NF;i++) s+=$i; printf "%.0f", s/NF}' <<<"$1"; }
d=$(mean "${RPS[direct]}"); n=$(mean "${RPS[nginx]}"); g=$(mean "${RPS[gateway]}")
echo
echo "Mean req/s: direct $d, nginx $n, gateway $g."
echo "Ratios: gateway/nginx $(awk -v a="$g" -v b="$n" 'BEGIN {printf "%.2f", a/b}'), gateway/direct $(awk -v a="$g" -v b="$d" 'BEGIN {printf "%.2f", a/b}'), nginx/direct $(awk -v a="$n" -v b="$d" 'BEGIN {printf "%.2f", a/b}')."
up_stop
