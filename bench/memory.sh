#!/usr/bin/env bash
# Memory of the shop, per process, in the two shapes side by side (every service its
# own process, and `--monolith`), on a release build with the embedded defaults:
# idle 5 s after ready on fresh data, and again 5 s after a run of Online Boutique's
# mix (steady state with warm caches and open connections).
#
# Three figures per process, from /proc/PID/smaps_rollup:
#   RSS  resident pages, shared ones included: every process maps the same
#        `emporium` binary, and the binary's pages it touched count in full in
#        each process's RSS, so a sum of RSS counts them once per process;
#   PSS  proportional set size: each shared page divided among the processes
#        mapping it (the sum over processes is what the shop really holds);
#   USS  private pages only (Private_Clean + Private_Dirty): what stopping that
#        process alone would give back.
# Usage: bench/memory.sh [rounds, default 3] [mix seconds, default 10]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
MIX=${2:-10}

source bench/lib.sh
bench_setup
bench_env

# Lines "PHASE SHAPE NAME RSS PSS USS" for every process of the running shop and
# for the supervisor.
measure() {
  local phase=$1 shape=$2
  memory_kib | while read -r name figures; do
    [ "$shape" = monolith ] && [ "$name" != registry ] && name=monolith
    echo "$phase $shape $name $figures"
  done
  echo "$phase $shape supervisor $(smaps_kib "$UP_PID")"
}

echo "## Machine: $(machine)"
echo "## binary: $(du -m "$BIN" | cut -f1) MB; $ROUNDS rounds, shapes interleaved; ${MIX}s of the mix (32 shoppers) between the two readings"
RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for shape in processes monolith; do
    args=()
    [ "$shape" = monolith ] && args=(--monolith)
    up_start "$WORK/up-$shape-$round.log" "$WORK/data-$shape-$round" "${args[@]}"
    sleep 5
    measure idle "$shape" >>"$RESULTS"
    "$BIN" load --base "$BASE" --admin bench-admin@example.com --json \
      --users 32 --seconds "$MIX" --warmup 2 >/dev/null
    sleep 5
    measure loaded "$shape" >>"$RESULTS"
    up_stop
    echo "round $round: $shape measured"
  done
done
python3 - "$RESULTS" <<'PY'
import sys, statistics as st
from collections import defaultdict
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for phase, shape, name, rss, pss, uss in rows:
    by[(phase, shape, name)].append((int(rss), int(pss), int(uss)))
def mib(values, i):
    return st.mean(v[i] for v in values) / 1024
for phase in ("idle", "loaded"):
    print(f"\n### {phase}: mean MiB per process (RSS / PSS / USS)\n")
    print("| process | RSS | PSS | USS |")
    print("|---|---|---|---|")
    totals = {}
    for shape in ("processes", "monolith"):
        names = sorted({n for (p, s, n) in by if p == phase and s == shape},
                       key=lambda n: (n == "supervisor", n))
        shop = [0.0, 0.0, 0.0]
        for name in names:
            values = by[(phase, shape, name)]
            figures = [mib(values, i) for i in range(3)]
            label = name if shape == "processes" else f"{name} (monolith shape)"
            print(f"| {label} | {figures[0]:.1f} | {figures[1]:.1f} | {figures[2]:.1f} |")
            shop = [a + b for a, b in zip(shop, figures)]
        totals[shape] = shop
    for shape, shop in totals.items():
        print(f"| **whole shop, {shape}** (supervisor included) | **{shop[0]:.1f}** | **{shop[1]:.1f}** | **{shop[2]:.1f}** |")
    p, m = totals["processes"], totals["monolith"]
    print(f"| **monolith / processes** | {m[0]/p[0]:.2f} | {m[1]/p[1]:.2f} | {m[2]/p[2]:.2f} |")
PY
