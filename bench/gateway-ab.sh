#!/usr/bin/env bash
# Two builds of the gateway path side by side: `emporium up` from BIN_A and from
# BIN_B at once (each with its own data), then wrk on GET /api/catalog/products/{id}
# through each gateway, alternating which goes first, ROUNDS times. Prints per
# round each side's requests/s and its gateway's and catalog's CPU time per
# request (user + system, from /proc), the figures a change to the per-request
# path moves. To compare settings rather than builds, pass as BIN a command line
# that sets them, e.g. "bench/policies-off target/release/emporium" (split at
# spaces: no spaces or glob characters inside its words). The shop
# started second tends to do better on this 2-core machine: run it both ways
# (A B, then B A) and average.
# Usage: bench/gateway-ab.sh BIN_A BIN_B [rounds, default 6] [seconds, default 8]
# (build the old revision elsewhere, e.g. `git worktree add /tmp/old REV && cargo
# build --release` there, and pass both binaries; a revision before d2704de builds
# without LTO unless given CARGO_PROFILE_RELEASE_LTO=fat
# CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1).
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/gateway-ab.sh BIN_A BIN_B [rounds] [seconds]}
B=${2:?usage: bench/gateway-ab.sh BIN_A BIN_B [rounds] [seconds]}
ROUNDS=${3:-6}
DURATION=${4:-8}
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

source bench/lib.sh
bench_env
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

# start SIDE BIN: a shop on a free port; sets the side's URL, product id and gateway pid.
declare -A URL ID GW CAT
start() {
    # shellcheck disable=SC2086 # BIN may be a command line (bench/policies-off BIN)
    $2 up --port 0 --data-dir "$WORK/$1" >"$WORK/$1.log" 2>&1 &
    PIDS+=("$!")
    until grep -q "Open http://" "$WORK/$1.log"; do
        kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/$1.log" >&2; exit 1; }
        sleep 0.05
    done
    URL[$1]=$(grep -o "Open http://[0-9.:]*" "$WORK/$1.log" | head -1 | cut -d' ' -f2)
    GW[$1]=$(awk '$1 == "gateway" && $3 ~ /^[0-9]+$/ {print $3; exit}' "$WORK/$1.log")
    CAT[$1]=$(awk '$1 == "catalog" && $3 ~ /^[0-9]+$/ {print $3; exit}' "$WORK/$1.log")
    ID[$1]=$(curl -s "${URL[$1]}/api/catalog/products?limit=1" | sed -E 's/.*"id":"([^"]+)".*/\1/' | head -c 36)
}
# per_request TICKS REQUESTS: microseconds of CPU per request.
per_request() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}'; }
# run SIDE SECONDS: "REQUESTS_PER_S GATEWAY_CPU_US_PER_REQUEST CATALOG_CPU_US_PER_REQUEST"
run() {
    local g0 g1 c0 c1 out n
    g0=$(cpu_ticks "${GW[$1]}")
    c0=$(cpu_ticks "${CAT[$1]}")
    out=$(wrk -t2 -c64 -d"$2s" "${URL[$1]}/api/catalog/products/${ID[$1]}")
    g1=$(cpu_ticks "${GW[$1]}")
    c1=$(cpu_ticks "${CAT[$1]}")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(per_request $((g1 - g0)) "$n") $(per_request $((c1 - c0)) "$n")"
}
start a "$A"
start b "$B"
sleep 3
run a 3 >/dev/null
run b 3 >/dev/null
echo "## $(machine); A = $A, B = $B"
echo "| round | A req/s | A µs CPU/req: gateway, catalog | B req/s | B µs CPU/req: gateway, catalog |"
echo "|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then a=$(run a "$DURATION"); b=$(run b "$DURATION")
    else b=$(run b "$DURATION"); a=$(run a "$DURATION"); fi
    read -r ar ag ac <<<"$a"
    read -r br bg bc <<<"$b"
    echo "| $r | $ar | $ag, $ac | $br | $bg, $bc |"
done
