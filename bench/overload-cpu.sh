#!/usr/bin/env bash
# Where the CPU goes under checkout overload: one shop, 64 closed-loop shoppers
# (the peak), then an open loop at RATE checkouts/s (default three times that
# peak). In each, five seconds of steady load are sampled: the load generator's
# cores, the shop's cores, and each process's CPU per confirmed checkout (µs).
# Usage: bench/overload-cpu.sh [rate]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-}
source bench/lib.sh
bench_setup
bench_env
echo "machine: $(machine); load generator on the same cores"
up_start "$WORK/up.log" "$WORK/data"
checkout_load --users 16 --seconds 2 --warmup 1 >/dev/null

# ticks_of FILE: "NAME TICKS" of the load generator ($gen) and each process in $WORK/names.
ticks_of() {
  {
    if [ -n "$gen" ]; then echo "load $(cpu_ticks "$gen")"; fi
    while read -r svc _ pid; do echo "$svc $(cpu_ticks "$pid")"; done <"$WORK/names"
  } >"$1"
}

# sample NAME ARGS...: a 24 s run with ARGS, sampled from 16 to 21 s (after the
# shoppers' sign-ups; checked below).
sample() {
  local name=$1 load_pid gen t0 t1
  shift
  checkout_load "$@" --seconds 24 --warmup 3 >"$WORK/$name.json" &
  load_pid=$!
  sleep 16
  gen=$(pgrep -f -n "$BIN load --base $BASE" || true)
  [ -n "$gen" ] || echo "warning: the load generator's process not found; its cores read 0" >&2
  up_processes >"$WORK/names"
  t0=$(date +%s%N)
  ticks_of "$WORK/$name.0"
  sleep 5
  t1=$(date +%s%N)
  ticks_of "$WORK/$name.1"
  wait "$load_pid"
  python3 - "$name" "$WORK/$name.0" "$WORK/$name.1" "$WORK/$name.json" "$(((t1 - t0) / 1000000))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, f0, f1, report, ms, hz = sys.argv[1:7]
secs, hz = int(ms) / 1000, int(hz)
read = lambda f: [(l.split()[0], float(l.split()[1])) for l in open(f) if not l.startswith("gateway/")]
before, after = read(f0), read(f1)
cores = {n: (b - a) / hz / secs for (n, a), (_, b) in zip(before, after)}
gen = cores.pop("load", 0.0)
r = json.load(open(report))
rate = r["checkouts_per_s"]
shop = sum(cores.values())
print(f"{name}: {rate:.1f} confirmed/s, p99 {r['confirmed_p99_ms']:.1f} ms; load generator {gen:.2f} cores, shop {shop:.2f} cores")
print("  µs CPU per confirmed checkout: " + ", ".join(f"{n} {c * 1e6 / rate:.0f}" for n, c in cores.items()) + f"; all {shop * 1e6 / rate:.0f}")
if cores.get("users", 0) > 0.05 * shop:
    print("  (users took over 5% of the shop's CPU: sign-ups overlapped the window)")
PY
}

sample peak --users 64
if [ -z "$RATE" ]; then
  RATE=$(python3 -c 'import json,sys; print(round(3 * json.load(open(sys.argv[1]))["checkouts_per_s"]))' "$WORK/peak.json")
fi
sample "at-$RATE-per-s" --users 512 --rate "$RATE"
