# Shared by the bench/*.sh scripts (sourced, not run): the release binary, the
# settings every benchmark runs with, and starting and stopping `emporium up`.

# The binary under test: `BIN=path/to/emporium bench/...` measures another build.
BIN=${BIN:-target/release/emporium}

# The machine a benchmark ran on, for its header line.
machine() {
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
}

# Logs at warn (the benchmarks measure serving, not log shipping), rate limits out
# of the way.
bench_env() {
  export EMPORIUM__LOG__LEVEL=warn
  export EMPORIUM__GATEWAY__RATE_LIMIT__PER_SECOND=100000000
  export EMPORIUM__GATEWAY__RATE_LIMIT__BURST=100000000
  export EMPORIUM__GATEWAY__RATE_LIMIT__USER_PER_SECOND=100000000
  export EMPORIUM__GATEWAY__RATE_LIMIT__USER_BURST=100000000
}

# The resilience policies off: no retries, no hedging, no outlier ejection, no
# circuit breaker, no bulkhead, the fixed concurrency limit, no brownout at the
# gateway. A build from before the brownout (decc74b) refuses its setting (the
# gateway's settings deny unknown fields): drop that line to run one this way.
OFF_SETTINGS=(
  EMPORIUM__CLIENT__DEFAULT__RETRIES=0
  EMPORIUM__CLIENT__DEFAULT__ATTEMPT_TIMEOUT_MS=0
  EMPORIUM__CLIENT__DEFAULT__EJECT_AFTER=4294967295
  EMPORIUM__CLIENT__DEFAULT__BREAKER_MIN_CALLS=4294967295
  EMPORIUM__CLIENT__DEFAULT__MAX_CONCURRENT=1000000
  EMPORIUM__HTTP__ADAPTIVE_CONCURRENCY=false
  EMPORIUM__GATEWAY__BROWNOUT__ENABLED=false
)

# The usual start of a benchmark: a release build, a scratch folder in WORK, and on
# exit the `emporium up` it started stopped and the folder removed.
bench_setup() {
  cargo build --release -p emporium >/dev/null
  WORK=$(mktemp -d)
  trap 'up_stop; rm -rf "$WORK"' EXIT
}

# up_launch LOG DATA_DIR [up args...]: starts `emporium up` on a free gateway port
# and waits for its banner (every service ready). Sets UP_PID, UP_LOG and BASE.
up_launch() {
  UP_LOG=$1
  local data=$2
  shift 2
  "$BIN" up --port 0 --data-dir "$data" "$@" >"$UP_LOG" 2>&1 &
  UP_PID=$!
  up_wait
}

# up_start LOG DATA_DIR [up args...]: up_launch, then the shop set up for the load
# generator. Sets UP_PID, UP_LOG and BASE (the gateway's URL).
up_start() {
  # `emporium load` confirms its shoppers' addresses as this shop's operator.
  export EMPORIUM_LOAD_DATA_DIR=$2
  up_launch "$@"
  # The admin the load generator stocks products with (it registers later).
  "$BIN" admin grant bench-admin@example.com --data-dir "$2" >/dev/null
}

# Waits for the banner of the `emporium up` at UP_PID logging to UP_LOG (its log is
# printed and the script stops if it dies first); sets BASE (the gateway's URL).
up_wait() {
  until grep -q "Open http://" "$UP_LOG"; do
    kill -0 "$UP_PID" 2>/dev/null || { cat "$UP_LOG"; exit 1; }
    sleep 0.005
  done
  BASE=$(grep -o "Open http://[0-9.:]*" "$UP_LOG" | head -1 | cut -d' ' -f2)
}

# Stops the `emporium up` started last, if it still runs, and waits for it.
up_stop() {
  if [ -n "${UP_PID:-}" ]; then
    kill -TERM "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null || true
  fi
  UP_PID=
}

# "NAME ADDRESS PID" of every process in the banner's table (a process hosting
# several services, the monolith, once).
up_processes() { awk '$1 ~ /^[a-z0-9-]+$/ && $2 ~ /^127\.0\.0\.1:/ && !seen[$3]++ {print $1, $2, $3}' "$UP_LOG"; }

# cpu_ticks PID: the user + system clock ticks of one process so far.
cpu_ticks() {
  # Fields after the command name: utime and stime are the 12th and 13th.
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# CPU seconds (user + system) of every process of the running `emporium up`, but
# the one named EXCEPT if given: cpu_seconds [EXCEPT].
cpu_seconds() {
  local except=${1:-}
  up_processes | while read -r name _ pid; do
    [ "$name" = "$except" ] && continue
    cpu_ticks "$pid"
  done | awk -v hz="$(getconf CLK_TCK)" '{t += $1} END {printf "%.2f", t / hz}'
}

# median N...: the middle one; of an even count, the lower of the two middle ones.
median() { printf '%s\n' "$@" | sort -n | awk '{x[NR]=$1} END {print x[int((NR+1)/2)]}'; }

# checkout_load ARGS...: closed-loop (or --rate) checkouts through the gateway with
# `emporium load`, as one JSON line (checkouts_per_s, p50_ms, p99_ms, errors, ...).
checkout_load() {
  "$BIN" load --base "$BASE" --mix checkout --admin bench-admin@example.com --json "$@"
}

# catalog_wrk SECONDS: GET /api/catalog/products?limit=20 through the gateway with
# wrk (2 threads, 32 connections), as "REQUESTS_PER_S P99_MS NON_2XX".
catalog_wrk() {
  local out
  out=$(wrk -t2 -c32 -d"$1s" --latency "$BASE/api/catalog/products?limit=20")
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"{rps:.0f} {p99:.2f} {errors.group(1) if errors else 0}")
PY
}

# "NAME KIB" (VmRSS) of every process of the running `emporium up`.
# "RSS PSS USS" in KiB of one PID, from /proc/PID/smaps_rollup: resident pages,
# shared ones included; the proportional share (each shared page divided among the
# processes mapping it); private pages only (bench/memory.sh says why all three).
smaps_kib() {
  awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_(Clean|Dirty):/ {u+=$2} END {print r, p, u}' \
    "/proc/$1/smaps_rollup"
}

# "NAME RSS PSS USS" (KiB) of every process of the running `emporium up`.
memory_kib() {
  up_processes | while read -r name _ pid; do
    echo "$name $(smaps_kib "$pid")"
  done
}

# measure_round ROUND MODE DURATION USERS RESULTS: with `emporium up` just started,
# warms up (3 s of reads: connections made, catalog's seeding events settled), then
# measures catalog reads with wrk and closed-loop checkouts, with the CPU time every
# Emporium process spent per request; stops the shop; prints the round's line and
# appends "MODE RPS P99 CHECKOUTS_PER_S CHECKOUT_P99 READ_CPU CHECKOUT_CPU" to RESULTS.
measure_round() {
  local round=$1 mode=$2 duration=$3 users=$4 results=$5
  local c0 c1 c2 rps p99 non2xx sat cps cp99 errs done_ read_cpu checkout_cpu
  wrk -t2 -c32 -d3s "$BASE/api/catalog/products?limit=20" >/dev/null
  c0=$(cpu_seconds)
  read -r rps p99 non2xx < <(catalog_wrk "$duration")
  c1=$(cpu_seconds)
  sat=$(checkout_load --users "$users" --seconds "$duration")
  c2=$(cpu_seconds)
  up_stop
  read -r cps cp99 errs done_ < <(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['checkouts_per_s'], d['p99_ms'], d['errors'], d['completed'])" "$sat")
  # CPU ms per catalog read and per checkout (the checkout run includes its sign-ups).
  read_cpu=$(python3 -c "print(round(($c1 - $c0) * 1000 / ($rps * $duration), 3))")
  checkout_cpu=$(python3 -c "print(round(($c2 - $c1) * 1000 / max(1, $done_), 2))")
  echo "round $round $mode: catalog $rps req/s p99 $p99 ms cpu $read_cpu ms/req (non-2xx $non2xx); checkout $cps/s p99 $cp99 ms cpu $checkout_cpu ms (errors $errs)"
  echo "$mode $rps $p99 $cps $cp99 $read_cpu $checkout_cpu" >>"$results"
}

# summarize_on_off RESULTS: each measure's mean per mode and the on / off ratio.
summarize_on_off() {
  python3 - "$1" <<'PY'
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
PY
}
