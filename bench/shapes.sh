#!/usr/bin/env bash
# The same shop in two shapes, side by side in one run, on a release build with the
# embedded defaults: every service its own process (`emporium up`) and every service
# in one process (`emporium up --monolith`), shapes interleaved round by round.
#   1. time from `emporium up` to every service ready (fresh data), and the idle
#      resident memory of the shop's processes (5 s after ready) and the supervisor;
#   2. Online Boutique's mix (`emporium load`, closed loop, no think time): journeys/s,
#      p50/p99 of browsing and of checkouts, and journeys per CPU-second of the shop's
#      processes (the load generator shares the same cores and is not counted);
#   3. checkouts at saturation (closed loop) and p99 at half that rate (open loop).
# Usage: bench/shapes.sh [seconds per run, default 15] [rounds, default 2] [shoppers, default 32]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
ROUNDS=${2:-2}
USERS=${3:-32}

source bench/lib.sh
bench_setup
bench_env

# Resident MiB of the shop's processes.
rss_mib() {
  up_processes | while read -r _ _ pid; do
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status"
  done | awk '{t += $1} END {printf "%.1f", t / 1024}'
}

field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$1" "$2"; }

echo "## Machine: $(machine); load generator on the same cores"
echo "## ${DURATION}s per run, $ROUNDS rounds, $USERS shoppers, shapes interleaved"
RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for shape in processes monolith; do
    args=()
    [ "$shape" = monolith ] && args=(--monolith)
    up_start "$WORK/up-$shape-$round.log" "$WORK/data-$shape-$round" "${args[@]}"
    ready=$(grep -o "up in [0-9]* ms" "$UP_LOG" | awk '{print $3}')
    sleep 5
    rss=$(rss_mib)
    sup=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$UP_PID/status")
    procs=$(up_processes | wc -l)
    # Warm up (the catalog's seeding events settle, connections open), then measure.
    c0=$(cpu_seconds)
    ob=$("$BIN" load --base "$BASE" --admin bench-admin@example.com --json \
      --users "$USERS" --seconds "$DURATION" --warmup 3)
    c1=$(cpu_seconds)
    sat=$(checkout_load --users "$USERS" --seconds "$DURATION")
    cps=$(field "$sat" "d['checkouts_per_s']")
    half=$(python3 -c "print(round($cps / 2, 1))")
    halfrun=$(checkout_load --users "$USERS" --seconds "$DURATION" --rate "$half")
    up_stop
    jps=$(field "$ob" "d['journeys_per_s']")
    journeys=$(field "$ob" "d['journeys']")
    per_cpu=$(python3 -c "print(round($journeys / max(0.01, $c1 - $c0), 1))")
    line="$shape $ready $rss $sup $jps $per_cpu \
$(field "$ob" "d['steps']['browse_product']['p50_ms']") $(field "$ob" "d['steps']['browse_product']['p99_ms']") \
$(field "$ob" "d['steps']['checkout']['p50_ms']") $(field "$ob" "d['steps']['checkout']['p99_ms']") \
$cps $(field "$halfrun" "d['p99_ms']") $(field "$ob" "d['errors']") $(field "$sat" "d['errors']") $procs"
    echo "round $round: $line"
    echo "  error kinds: mix $(field "$ob" "{k: v['error_kinds'] for k, v in d['steps'].items() if v['errors']}") saturation $(field "$sat" "d['steps'].get('checkout', {}).get('error_kinds', {})")"
    echo "$line" >>"$RESULTS"
  done
done
python3 - "$RESULTS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
names = [("time to all ready", 1, "ms"), ("idle RSS, shop", 2, "MiB"), ("idle RSS, supervisor", 3, "MiB"),
         ("OB mix", 4, "journeys/s"), ("OB mix per CPU-second", 5, "journeys"),
         ("browse p50", 6, "ms"), ("browse p99", 7, "ms"), ("checkout (mix) p50", 8, "ms"),
         ("checkout (mix) p99", 9, "ms"), ("checkouts at saturation", 10, "/s"),
         ("checkout p99 at half load", 11, "ms"), ("errors (mix, saturation)", 12, "")]
def mean(shape, i):
    return st.mean(float(r[i]) for r in rows if r[0] == shape)
print("## Means over rounds: processes | monolith | monolith / processes")
for name, i, unit in names:
    p, m = mean("processes", i), mean("monolith", i)
    if i == 12:
        p = st.mean(float(r[12]) + float(r[13]) for r in rows if r[0] == "processes")
        m = st.mean(float(r[12]) + float(r[13]) for r in rows if r[0] == "monolith")
    ratio = f"{m / p:.2f}" if p else "-"
    print(f"| {name} | {p:.1f} {unit} | {m:.1f} {unit} | {ratio} |")
print(f"| processes | {rows[0][14]} | {[r for r in rows if r[0]=='monolith'][0][14]} | |")
PY
