#!/usr/bin/env bash
# Resilience benchmarks, on a release build with the embedded defaults, every figure
# measured with the policies on (the defaults) and off in the same run:
#   1. soak: closed-loop checkouts (16 shoppers) while one service is SIGKILLed every
#      10 s and the soak's fault rules delay, abort and reset calls (`emporium soak
#      --faults`) → share of requests that succeeded, checkout p99, and the verdict
#      of `emporium verify`;
#   2. overload: checkouts/s at saturation (64 closed-loop shoppers), then open loop
#      at 0.5×, 1×, 1.5×, 2× and 3× that rate → goodput (confirmed checkouts/s) and
#      the p99 of the confirmed ones;
#   3. the happy path: closed-loop checkouts and catalog reads (wrk), on and off
#      alternated twice → the policies' cost in throughput.
# "Off" is: no retries, no hedging, no outlier ejection, no circuit breaker, no
# bulkhead, the fixed concurrency limit instead of the adaptive one, and no brownout
# at the gateway.
# Usage: bench/resilience.sh [soak seconds, default 300] [seconds per point, default 15]
#        [happy-path rounds, default 2] [parts, default soak,overload,happy]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${1:-300}
POINT_SECONDS=${2:-15}
ROUNDS=${3:-2}
PARTS=${4:-soak,overload,happy}

source bench/lib.sh
bench_setup
bench_env

# policies on|off: the settings the next `up_start` runs with.
policies() {
  local kv
  for kv in "${OFF_SETTINGS[@]}"; do
    if [ "$1" = off ]; then export "${kv?}"; else unset "${kv%%=*}"; fi
  done
}

# shop POLICIES: a fresh shop (the last one stopped) with the policies on or off.
shop() {
  up_stop
  policies "$1"
  rm -rf "$WORK/data"
  up_start "$WORK/up.log" "$WORK/data"
}

# The figures of a load report: "CONFIRMED_PER_S P99_CONFIRMED_MS ERRORS".
figures() {
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%.1f %.1f %d" % (r["checkouts_per_s"], r["confirmed_p99_ms"], r["errors"]))' "$1"
}

echo "## Machine: $(machine)"

# part NAME: whether NAME is among the parts asked for.
part() { [[ ",$PARTS," == *",$1,"* ]]; }

if part soak; then
  echo "## 1. Soak: ${SOAK_SECONDS}s, a kill every 10 s, fault rules on, 16 shoppers"
  for p in on off; do
    shop "$p"
    out=$("$BIN" soak --for "${SOAK_SECONDS}s" --kill-every 10s --faults --users 16 \
      --base "$BASE" --data-dir "$WORK/data" 2>&1 || true)
    summary=$(grep '^soak: ' <<<"$out" || echo "soak: no summary")
    p99=$(awk '$1 == "checkout" {print $7}' <<<"$out" | tail -1)
    verdict=$(grep -E '^[0-9]+ violation' <<<"$out" || echo "verify did not run")
    echo "policies $p | $summary | checkout p99 ${p99:-?} ms | $verdict"
  done
fi

if part overload; then
  echo "## 2. Overload: open-loop checkouts at multiples of saturation, ${POINT_SECONDS}s each"
  for p in on off; do
    shop "$p"
    sat=$(checkout_load --users 64 --seconds "$POINT_SECONDS" --warmup 2)
    peak=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["checkouts_per_s"])' "$sat")
    echo "policies $p | saturation (64 closed-loop shoppers): $(figures "$sat")"
    for x in 0.5 1 1.5 2 3; do
      rate=$(python3 -c "print(round($peak * $x, 1))")
      r=$(checkout_load --users 512 --seconds "$POINT_SECONDS" --warmup 2 --rate "$rate")
      echo "policies $p | ${x}× = $rate/s offered | $(figures "$r") | goodput $(python3 -c 'import json,sys; print("%.0f%%" % (100 * json.loads(sys.argv[1])["checkouts_per_s"] / float(sys.argv[2])))' "$r" "$peak") of saturation"
    done
  done
fi

if part happy; then
  echo "## 3. Happy path: checkouts (32 closed-loop shoppers) and catalog reads (wrk), alternated"
  for round in $(seq "$ROUNDS"); do
    for p in on off; do
      shop "$p"
      c=$(checkout_load --users 32 --seconds "$POINT_SECONDS" --warmup 2)
      echo "round $round policies $p | checkouts $(figures "$c") | catalog reads $(catalog_wrk "$POINT_SECONDS")"
    done
  done
fi
