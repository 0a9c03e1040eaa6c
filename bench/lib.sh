# Shared by the bench/*.sh scripts (sourced, not run): the release binary, the
# settings every benchmark runs with, and starting and stopping `emporium up`.

BIN=target/release/emporium

# Logs at warn (the benchmarks measure serving, not log shipping), rate limits out
# of the way, and an admin the load generator can stock products with.
bench_env() {
  export EMPORIUM__LOG__LEVEL=warn
  export EMPORIUM__GATEWAY__RATE_LIMIT__PER_SECOND=100000000
  export EMPORIUM__GATEWAY__RATE_LIMIT__BURST=100000000
  export EMPORIUM__GATEWAY__RATE_LIMIT__USER_PER_SECOND=100000000
  export EMPORIUM__GATEWAY__RATE_LIMIT__USER_BURST=100000000
  export EMPORIUM__USERS__ADMIN_EMAILS='["bench-admin@example.com"]'
}

# The usual start of a benchmark: a release build, a scratch folder in WORK, and on
# exit the `emporium up` it started stopped and the folder removed.
bench_setup() {
  cargo build --release -p emporium >/dev/null
  WORK=$(mktemp -d)
  trap 'up_stop; rm -rf "$WORK"' EXIT
}

# up_start LOG DATA_DIR [up args...]: starts `emporium up` on a free gateway port
# and waits for its banner. Sets UP_PID, UP_LOG and BASE (the gateway's URL).
up_start() {
  UP_LOG=$1
  local data=$2
  shift 2
  "$BIN" up --port 0 --data-dir "$data" "$@" >"$UP_LOG" 2>&1 &
  UP_PID=$!
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

# CPU seconds (user + system) of every process of the running `emporium up`.
cpu_seconds() {
  up_processes | while read -r _ _ pid; do
    # Fields after the command name: utime and stime are the 12th and 13th.
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'
  done | awk -v hz="$(getconf CLK_TCK)" '{t += $1} END {printf "%.2f", t / hz}'
}

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
rss_kib() {
  up_processes | while read -r name _ pid; do
    echo "$name $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  done
}
