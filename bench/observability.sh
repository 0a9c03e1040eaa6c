#!/usr/bin/env bash
# The cost of tracing: catalog reads and checkouts with span export off, and on at
# 10% sampling to an OTLP receiver on this machine, interleaved in one run.
#   off  no OTEL_* variables: trace ids for logs and traceparent only, nothing built
#   on   OTEL_EXPORTER_OTLP_ENDPOINT=<local receiver>,
#        OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1
# Each round starts a fresh `emporium up` (release, embedded defaults) per mode and
# measures: GET /api/catalog/products?limit=20 through the gateway with wrk
# (requests/s, p99), then closed-loop checkouts with `emporium load --mix checkout` (checkouts/s, p99),
# and the CPU time all Emporium processes spent per request (from /proc/<pid>/stat):
# steadier than throughput on a shared machine. Metrics are on in both.
# Usage: bench/observability.sh [seconds per measurement, default 10] [rounds, default 2]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
ROUNDS=${2:-2}
USERS=64

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
source bench/lib.sh
cargo build --release -p emporium -p emporium-bench >/dev/null
SINK=target/release/otlp-sink
WORK=$(mktemp -d)
SINK_PID=
cleanup() {
  up_stop
  [ -n "$SINK_PID" ] && kill -TERM "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

bench_env
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG

"$SINK" --port 0 >"$WORK/sink.out" &
SINK_PID=$!
until [ -s "$WORK/sink.out" ]; do sleep 0.05; done
ENDPOINT=$(head -1 "$WORK/sink.out")

# Starts `emporium up` on fresh data with span export off or on ($1).
start_up() {
  if [ "$1" = on ]; then
    OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT" OTEL_TRACES_SAMPLER=parentbased_traceidratio \
      OTEL_TRACES_SAMPLER_ARG=0.1 up_start "$WORK/up-on-$RANDOM.log" "$WORK/data-$RANDOM"
  else
    up_start "$WORK/up-off-$RANDOM.log" "$WORK/data-$RANDOM"
  fi
}

echo "## Machine: $(machine)"
echo "## ${DURATION}s per measurement, $ROUNDS rounds, modes interleaved; receiver $ENDPOINT"
RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    start_up "$mode"
    measure_round "$round" "$mode" "$DURATION" "$USERS" "$RESULTS"
  done
done
kill -TERM "$SINK_PID"
wait "$SINK_PID" 2>/dev/null || true
SINK_PID=
echo "## Spans received by the OTLP receiver: $(tail -1 "$WORK/sink.out")"
summarize_on_off "$RESULTS"
