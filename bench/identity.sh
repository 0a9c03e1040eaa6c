#!/usr/bin/env bash
# The cost of service identity: the whole shop with mTLS between services (the
# default) and with identity off (plain HTTP, EMPORIUM__IDENTITY__MODE=off),
# interleaved in one run. Each round starts a fresh `emporium up` (release, embedded
# defaults) per mode and measures: idle memory per process (RSS, PSS, USS) 3 s after the
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

echo "## Machine: $(machine)"
echo "## ${DURATION}s per measurement, $ROUNDS rounds, modes interleaved"
RESULTS="$WORK/results"
MEMORY="$WORK/memory"
: >"$RESULTS"
: >"$MEMORY"
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    start_up "$mode"
    sleep 3
    memory_kib | sed "s/^/$mode /" >>"$MEMORY"
    measure_round "$round" "$mode" "$DURATION" "$USERS" "$RESULTS"
  done
done
summarize_on_off "$RESULTS"
python3 - "$MEMORY" <<'PY'
import sys, statistics as st
mem = {}
for line in open(sys.argv[1]):
    mode, name, *kib = line.split()
    mem.setdefault(name, {}).setdefault(mode, []).append([int(k) / 1024 for k in kib])
print("## Idle memory per process, MiB (mean over rounds): off, on, on - off; RSS, then PSS, then USS")
total = {"off": [0.0] * 3, "on": [0.0] * 3}
for name, modes in sorted(mem.items()):
    cells = []
    for i in range(3):
        off = st.mean(v[i] for v in modes["off"])
        on = st.mean(v[i] for v in modes["on"])
        total["off"][i] += off
        total["on"][i] += on
        cells.append(f"{off:7.1f} {on:7.1f} {on - off:+5.1f}")
    print(f"{name:<14} " + " | ".join(cells))
print(f"{'total':<14} " + " | ".join(
    f"{total['off'][i]:7.1f} {total['on'][i]:7.1f} {total['on'][i] - total['off'][i]:+5.1f}" for i in range(3)))
PY
