#!/usr/bin/env bash
# Two settings of the same release build under checkout overload, alternated: for
# each side a fresh shop, 64 closed-loop shoppers without think time (the peak),
# an open loop at a tenth of that peak (the unloaded p99), then an open loop at
# RATE checkouts/s (default: three times the first peak measured). Prints per run
# the peak, the unloaded p99, the confirmed checkouts/s at RATE with their p50 and
# p99, where the refusals fell (adds refused, checkouts refused), and the shop's
# CPU over the open loop; then each side's means, with issue 13's two figures:
# goodput as a share of the peak (goal >= 0.9) and the admitted p99 over the
# unloaded (goal <= 5). A side is a list of
# settings (space separated NAME=VALUE without spaces or glob characters in them,
# each name once; "" for the defaults), e.g.
#   bench/overload-ab.sh "" "EMPORIUM__GATEWAY__BROWNOUT__ENABLED=false" 3
# Usage: bench/overload-ab.sh SETTINGS_A SETTINGS_B [rounds, default 3]
#        [seconds per run, default 12] [rate]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1?usage: bench/overload-ab.sh SETTINGS_A SETTINGS_B [rounds] [seconds] [rate]}
B=${2?usage: bench/overload-ab.sh SETTINGS_A SETTINGS_B [rounds] [seconds] [rate]}
ROUNDS=${3:-3}
SECONDS_PER_RUN=${4:-12}
RATE=${5:-}

source bench/lib.sh
bench_setup
bench_env
echo "machine: $(machine); load generator on the same cores"

# run SIDE SETTINGS: one fresh shop with SETTINGS; appends "SIDE PEAK CONFIRMED P50 P99 ..." to $WORK/runs.
run() {
  local side=$1 peak unloaded over s0 s1
  # The side's settings for `emporium up` only; what they replaced comes back after.
  local kv name saved=()
  for kv in $2; do
    name=${kv%%=*}
    if [ -n "${!name+set}" ]; then saved+=("$name=${!name}"); else saved+=("$name"); fi
    export "${kv?}"
  done
  up_start "$WORK/up.log" "$WORK/data-$side-$round"
  for kv in "${saved[@]}"; do
    if [[ $kv == *=* ]]; then export "${kv?}"; else unset "$kv"; fi
  done
  checkout_load --users 16 --seconds 2 --warmup 1 >/dev/null
  peak=$(checkout_load --users 64 --seconds "$SECONDS_PER_RUN" --warmup 2)
  if [ -z "$RATE" ]; then
    RATE=$(python3 -c 'import json,sys; print(round(3 * json.loads(sys.argv[1])["checkouts_per_s"]))' "$peak")
    echo "rate: $RATE checkouts/s offered (3x the first peak)"
  fi
  unloaded=$(checkout_load --users 16 --rate "$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["checkouts_per_s"] / 10, 1))' "$peak")" --seconds 6 --warmup 1)
  s0=$(cpu_seconds)
  over=$(checkout_load --users 512 --rate "$RATE" --seconds "$SECONDS_PER_RUN" --warmup 3)
  s1=$(cpu_seconds)
  up_stop
  python3 - "$side" "$peak" "$over" "$s0" "$s1" "$unloaded" <<'PY' | tee -a "$WORK/runs"
import json, sys
side, peak, over = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
cpu = float(sys.argv[5]) - float(sys.argv[4])
unloaded = json.loads(sys.argv[6])["confirmed_p99_ms"]
kinds = over["steps"]["checkout"]["error_kinds"]
adds = sum(v for k, v in kinds.items() if k.startswith("add:"))
checkouts = sum(v for k, v in kinds.items() if not k.startswith("add:"))
print(side, round(peak["checkouts_per_s"], 1), round(over["checkouts_per_s"], 1),
      over["confirmed_p50_ms"], over["confirmed_p99_ms"], adds, checkouts, round(cpu, 1), unloaded)
PY
}

echo "side peak/s confirmed/s-at-rate p50-ms p99-ms adds-refused checkouts-refused shop-CPU-s(incl. sign-ups) unloaded-p99-ms"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run A "$A"; run B "$B"; else run B "$B"; run A "$A"; fi
done
python3 - "$WORK/runs" "$A" "$B" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
for side, settings in (("A", sys.argv[2]), ("B", sys.argv[3])):
    r = [[float(x) for x in row[1:]] for row in rows if row[0] == side]
    m = [sum(c) / len(c) for c in zip(*r)]
    p99_ratio = sum(x[3] / x[7] if x[7] else float("nan") for x in r) / len(r)
    print("%s (%s): peak %.1f/s, at the rate %.1f confirmed/s (%.2f of its peak), p50 %.0f ms, p99 %.0f ms (%.1fx the unloaded %.0f ms), refused %.0f adds and %.0f checkouts"
          % (side, settings or "defaults", m[0], m[1], m[1] / m[0], m[2], m[3], p99_ratio, m[7], m[4], m[5]))
PY
