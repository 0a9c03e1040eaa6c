#!/usr/bin/env bash
# Time to all ready, two builds alternated: from `emporium up` on a fresh data dir
# to its banner (printed once every service answers /readyz), N runs each, medians.
# Usage: bench/startup-ab.sh BIN_A BIN_B [runs, default 10]
#   e.g. git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release -p emporium)
#        bench/startup-ab.sh /tmp/old/target/release/emporium target/release/emporium
# Every process started here is stopped before the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1?usage: bench/startup-ab.sh BIN_A BIN_B [runs]}
B=${2?usage: bench/startup-ab.sh BIN_A BIN_B [runs]}
RUNS=${3:-10}
source bench/lib.sh
WORK=$(mktemp -d)
trap 'up_stop; rm -rf "$WORK"' EXIT
bench_env
echo "machine: $(machine)"

# one BIN: appends to RUN_MS the milliseconds from start to banner on a fresh data dir
# (not in a subshell, so the exit trap can stop the shop it started).
one() {
  local t0 t1 data
  data=$WORK/data-$RANDOM
  t0=$(date +%s%N)
  BIN=$1 up_launch "$WORK/up.log" "$data"
  t1=$(date +%s%N)
  up_stop
  rm -rf "$data"
  RUN_MS=$(((t1 - t0) / 1000000))
}
a=() b=()
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then one "$A"; a+=("$RUN_MS"); one "$B"; b+=("$RUN_MS")
  else one "$B"; b+=("$RUN_MS"); one "$A"; a+=("$RUN_MS"); fi
done
# (median: the lower of the two middle runs of an even count.)
echo "A $A: median $(median "${a[@]}") ms (runs: ${a[*]})"
echo "B $B: median $(median "${b[@]}") ms (runs: ${b[*]})"
