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
  UP_LOG=$WORK/up.log
  t0=$(date +%s%N)
  "$1" up --port 0 --data-dir "$data" >"$UP_LOG" 2>&1 &
  UP_PID=$!
  up_wait
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
# The middle run; of an even count, the lower of the two middle ones.
median() { printf '%s\n' "$@" | sort -n | awk '{x[NR]=$1} END {print x[int((NR+1)/2)]}'; }
echo "A $A: median $(median "${a[@]}") ms (runs: ${a[*]})"
echo "B $B: median $(median "${b[@]}") ms (runs: ${b[*]})"
