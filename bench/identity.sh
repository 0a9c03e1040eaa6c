#!/usr/bin/env bash
# The cost of service identity: the whole shop with mTLS between services (the
# default) and with identity off (plain HTTP, EMPORIUM__IDENTITY__MODE=off),
# interleaved in one run. Each round starts a fresh `emporium up` (release, embedded
# defaults) per mode and measures: idle resident memory per process 3 s after the
# banner; GET /api/catalog/products?limit=20 through the gateway with wrk (one mTLS
# hop, gateway -> catalog: requests/s, p99); closed-loop checkouts with
# `emporium load --mix checkout` (the saga's hops: checkouts/s, p99); and the CPU time
# all Emporium processes spent per request.
# Usage: bench/identity.sh [seconds per measurement, default 10] [rounds, default 2]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
ROUNDS=${2:-2}
USERS=64

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
source bench/lib.sh
bench_setup
bench_env

start_up() {
  if [ "$1" = off ]; then
    EMPORIUM__IDENTITY__MODE=off up_start "$WORK/up-off-$RANDOM.log" "$WORK/data-$RANDOM"
  else
    up_start "$WORK/up-on-$RANDOM.log" "$WORK/data-$RANDOM"
  fi
}

echo "## Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "## ${DURATION}s per measurement, $ROUNDS rounds, modes interleaved"
RESULTS="$WORK/results"
MEMORY="$WORK/memory"
: >"$RESULTS"
: >"$MEMORY"
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    start_up "$mode"
    sleep 3
    rss_kib | sed "s/^/$mode /" >>"$MEMORY"
    # Warm up (connections made, catalog's seeding events settled) before measuring.
    wrk -t2 -c32 -d3s "$BASE/api/catalog/products?limit=20" >/dev/null
    c0=$(cpu_seconds)
    read -r rps p99 non2xx < <(catalog_wrk "$DURATION")
    c1=$(cpu_seconds)
    sat=$(checkout_load --users "$USERS" --seconds "$DURATION")
    c2=$(cpu_seconds)
    up_stop
    read -r cps cp99 errs done_ < <(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['checkouts_per_s'], d['p99_ms'], d['errors'], d['completed'])" "$sat")
    read_cpu=$(python3 -c "print(round(($c1 - $c0) * 1000 / ($rps * $DURATION), 3))")
    checkout_cpu=$(python3 -c "print(round(($c2 - $c1) * 1000 / max(1, $done_), 2))")
    echo "round $round $mode: catalog $rps req/s p99 $p99 ms cpu $read_cpu ms/req (non-2xx $non2xx); checkout $cps/s p99 $cp99 ms cpu $checkout_cpu ms (errors $errs)"
    echo "$mode $rps $p99 $cps $cp99 $read_cpu $checkout_cpu" >>"$RESULTS"
  done
done
python3 - "$RESULTS" "$MEMORY" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def col(mode, i):
    return st.mean(float(r[i]) for r in rows if r[0] == mode)
print("## Means over rounds (on / off)")
for name, i, unit in [("catalog read", 1, "req/s"), ("catalog p99", 2, "ms"),
                      ("read CPU", 5, "ms/req"), ("checkout", 3, "checkouts/s"),
                      ("checkout p99", 4, "ms"), ("checkout CPU", 6, "ms/checkout")]:
    off, on = col("off", i), col("on", i)
    print(f"{name:<14} off {off:>9.1f}  on {on:>9.1f} {unit:<12} ratio {on / off:.3f}")
mem = {}
for line in open(sys.argv[2]):
    mode, name, kib = line.split()
    mem.setdefault(name, {}).setdefault(mode, []).append(int(kib) / 1024)
print("## Idle VmRSS per process, MiB (mean over rounds): off, on, on - off")
total = {"off": 0.0, "on": 0.0}
for name, modes in sorted(mem.items()):
    off, on = st.mean(modes["off"]), st.mean(modes["on"])
    total["off"] += off
    total["on"] += on
    print(f"{name:<14} {off:7.1f} {on:7.1f} {on - off:+6.1f}")
print(f"{'total':<14} {total['off']:7.1f} {total['on']:7.1f} {total['on'] - total['off']:+6.1f}")
PY
