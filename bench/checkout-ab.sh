#!/usr/bin/env bash
# Checkouts of two revisions side by side: builds REV (a commit, tag or branch) in
# target/bench-rev beside this tree's release build, then, ROUNDS times and
# alternating which goes first, starts each revision's shop on fresh data with the
# embedded defaults and measures through its gateway, with this tree's
# `emporium load --mix checkout` for both (the same load generator, on the same
# two cores as the shop):
#   1. saturation: SHOPPERS closed-loop shoppers for SECONDS → confirmed checkouts/s,
#      and the CPU time (user + system) the shop's processes spent per checkout;
#   2. half load: an open loop at half that rate for SECONDS → p50 / p99 from when
#      each checkout was due (no coordinated omission);
#   3. with FLOOR=N set (both shops then run with http.concurrency_floor = N):
#      overload, an open loop at 3× the saturation rate (8 × SHOPPERS shoppers,
#      10 s warm-up) for SECONDS → goodput (confirmed checkouts/s, also as a share
#      of saturation) and the p50 / p99 of the confirmed checkouts.
# Each shop runs with its own revision's benchmark settings (its bench/lib.sh's
# bench_env), since settings a revision does not know stop it at start. The users
# service's CPU is left out of the per-checkout figure: in these runs it is the
# shoppers' sign-ups and sign-ins (argon2), not the checkouts.
# Since 2026-12-05 the adaptive limit sheds a queue that stands longer than
# http.concurrency_burst_ms, and 64 closed-loop shoppers keep one standing: the
# saturation figure then counts the limiter's shedding too. To compare capacity
# with a revision before that, export EMPORIUM__HTTP__CONCURRENCY_MIN=64 in this
# tree's bench_env (a revision that does not know the setting would not start).
# OLD_BIN=PATH skips the build and runs that binary as REV's side, with REV's
# settings (a build of REV made another way, e.g. with other profile settings).
# Usage: [FLOOR=N] [OLD_BIN=PATH] bench/checkout-ab.sh REV [rounds, default 2] [seconds, default 15]
#        [shoppers, default 64]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/checkout-ab.sh REV [rounds] [seconds] [shoppers]}
ROUNDS=${2:-2}
SECONDS_PER_RUN=${3:-15}
USERS=${4:-64}
FLOOR=${FLOOR:-}

COMMIT=$(git rev-parse --short=12 "$REV^{commit}")
OLD_SRC=target/bench-rev/src-$COMMIT
if [ ! -d "$OLD_SRC" ]; then
  mkdir -p "$OLD_SRC.tmp"
  git archive "$COMMIT" | tar -x -C "$OLD_SRC.tmp"
  mv "$OLD_SRC.tmp" "$OLD_SRC"
fi
if [ -n "${OLD_BIN:-}" ]; then
  echo "## $REV ($COMMIT): its settings, the binary $OLD_BIN" >&2
else
  echo "## building $REV ($COMMIT) in $OLD_SRC" >&2
  # With this tree's release settings (read from its Cargo.toml: LTO and codegen
  # units since d2704de), so that an older revision's build differs in its code only.
  release_setting() {
    awk -v key="$1" '/^\[/ { in_release = ($0 == "[profile.release]") }
      in_release && $1 == key { gsub(/"/, "", $3); print $3 }' Cargo.toml
  }
  profile=()
  lto=$(release_setting lto)
  units=$(release_setting codegen-units)
  if [ -n "$lto" ]; then profile+=("CARGO_PROFILE_RELEASE_LTO=$lto"); fi
  if [ -n "$units" ]; then profile+=("CARGO_PROFILE_RELEASE_CODEGEN_UNITS=$units"); fi
  (cd "$OLD_SRC" && env CARGO_TARGET_DIR=../target "${profile[@]}" \
    cargo build --release -p emporium >/dev/null)
  OLD_BIN=target/bench-rev/target/release/emporium
fi

source bench/lib.sh
bench_setup
NEW_BIN=$BIN

# shop_start SRC SHOP_BIN NAME: `emporium up` of SHOP_BIN with SRC's benchmark
# settings on fresh data; sets UP_PID, UP_LOG and BASE as up_start does.
shop_start() {
  local src=$1 shop_bin=$2 name=$3
  UP_LOG=$WORK/$name.log
  rm -rf "$WORK/$name"
  (
    unset "${!EMPORIUM__@}"
    # shellcheck disable=SC1091 # the revision's own settings
    source "$src/bench/lib.sh"
    bench_env
    if [ -n "$FLOOR" ]; then export EMPORIUM__HTTP__CONCURRENCY_FLOOR=$FLOOR; fi
    exec "$shop_bin" up --port 0 --data-dir "$WORK/$name"
  ) >"$UP_LOG" 2>&1 &
  UP_PID=$!
  up_wait
  export EMPORIUM_LOAD_DATA_DIR=$WORK/$name
  # Revisions with `admin grant` name the admin here; older ones read it from
  # their bench_env.
  "$shop_bin" admin grant bench-admin@example.com --data-dir "$WORK/$name" >/dev/null 2>&1 || true
}

# measure SIDE SRC SHOP_BIN: appends "SIDE CHECKOUTS_PER_S CPU_MS HALF_P50 HALF_P99
# ERRORS", and with FLOOR "GOODPUT_3X SHARE_3X P50_3X P99_3X", to $WORK/results and
# prints the line.
measure() {
  local side=$1 src=$2 shop_bin=$3 c0 c1 sat half over='{}'
  shop_start "$src" "$shop_bin" "$side"
  checkout_load --users "$USERS" --seconds 3 >/dev/null
  # users left out (see the header)
  c0=$(cpu_seconds users)
  sat=$(checkout_load --users "$USERS" --seconds "$SECONDS_PER_RUN")
  c1=$(cpu_seconds users)
  local rate
  rate=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['checkouts_per_s'] / 2, 1))" "$sat")
  half=$(checkout_load --users "$USERS" --seconds "$SECONDS_PER_RUN" --rate "$rate")
  if [ -n "$FLOOR" ]; then
    rate=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['checkouts_per_s'] * 3, 1))" "$sat")
    over=$(checkout_load --users $((USERS * 8)) --seconds "$SECONDS_PER_RUN" --warmup 10 --rate "$rate")
  fi
  up_stop
  python3 - "$side" "$sat" "$half" "$c0" "$c1" "$over" <<'PY' | tee -a "$WORK/results"
import json, sys
side, sat, half, over = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[6])
cpu = (float(sys.argv[5]) - float(sys.argv[4])) * 1000 / max(1, sat["completed"])
row = [side, round(sat["checkouts_per_s"], 1), round(cpu, 2), half["p50_ms"], half["p99_ms"],
       sat["errors"] + half["errors"]]
if over:
    row += [round(over["checkouts_per_s"], 1),
            round(over["checkouts_per_s"] / max(0.1, sat["checkouts_per_s"]), 2),
            over["confirmed_p50_ms"], over["confirmed_p99_ms"]]
print(*row)
PY
}

echo "## $(machine); old = $REV ($COMMIT), new = this tree ($(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo ', with changes'))"
echo "## $USERS shoppers, ${SECONDS_PER_RUN}s per run; columns: side, checkouts/s, CPU ms per checkout (users excluded), half-load p50 ms, p99 ms, errors${FLOOR:+; at 3× (concurrency floor $FLOOR): goodput/s, share of saturation, confirmed p50 ms, p99 ms}"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    measure old "$OLD_SRC" "$OLD_BIN"; measure new . "$NEW_BIN"
  else
    measure new . "$NEW_BIN"; measure old "$OLD_SRC" "$OLD_BIN"
  fi
done
python3 - "$WORK/results" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def mean(side, i):
    return st.mean(float(r[i]) for r in rows if r[0] == side)
print("## means: old / new / new÷old")
names = [("checkouts/s", 1), ("CPU ms per checkout", 2), ("half-load p50 ms", 3),
         ("half-load p99 ms", 4), ("errors", 5)]
if len(rows[0]) > 6:
    names += [("3× goodput/s", 6), ("3× share of sat.", 7), ("3× confirmed p50", 8),
              ("3× confirmed p99", 9)]
for name, i in names:
    old, new = mean("old", i), mean("new", i)
    print(f"{name:<20} {old:>9.2f} {new:>9.2f} {new / old if old else float('nan'):>7.3f}")
PY
