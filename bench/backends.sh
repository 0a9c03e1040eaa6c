#!/usr/bin/env bash
# Checkouts on each backend shape, one after the other in one run on this machine:
#   embedded    SQLite files + the feed (the defaults)
#   production  PostgreSQL (a schema per service) + NATS JetStream
#   scaled      the same with two orders and two inventory instances
# Each row is bench/checkout.sh: saturated checkouts/s, p99 at half that rate, and
# OrderConfirmed → mail delivery. PostgreSQL and nats-server are started here on free
# loopback ports with data in a temporary folder (PostgreSQL as `postgres` when run
# as root) and stopped by PID on exit.
# Usage: bench/backends.sh [seconds per run, default 15] [shoppers, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-15}
USERS=${2:-64}

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v nats-server >/dev/null || { echo "nats-server is missing (apt-get install nats-server)"; exit 1; }
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL is missing (apt-get install postgresql)"; exit 1; }

WORK=$(mktemp -d /tmp/emporium-bench.XXXXXX)
chmod 755 "$WORK"
NATS_PID=
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [ -n "$NATS_PID" ] && kill "$NATS_PID" 2>/dev/null || true
  if [ -f "$WORK/pg/postmaster.pid" ]; then
    kill -INT "$(head -1 "$WORK/pg/postmaster.pid")" 2>/dev/null || true
    sleep 1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
NATS_PORT=$(free_port)
NATS_MON=$(free_port)
mkdir -p "$WORK/pg" "$WORK/sock"
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/pg" "$WORK/sock"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -A trust -U postgres -E UTF8 >/dev/null
# Durable settings (fsync on): the numbers are what a production server would do.
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/sock/pg.log" -w \
  -o "-p $PG_PORT -k $WORK/sock -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" -sd "$WORK/nats" 2>"$WORK/nats.log" &
NATS_PID=$!
until curl -fs "http://127.0.0.1:$NATS_MON/healthz?js-enabled-only=true" >/dev/null; do sleep 0.1; done

run() {
  local name=$1; shift
  echo
  echo "################ $name"
  "$@"
}
run embedded bench/checkout.sh "$SECONDS_PER_RUN" "$USERS"
for shape in production scaled; do
  db="shop_$shape"
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $db"
  args=()
  [ "$shape" = scaled ] && args=(--replicas orders=2,inventory=2)
  run "$shape" env EMPORIUM__DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db" \
    EMPORIUM__EVENTS__NATS_URL="nats://127.0.0.1:$NATS_PORT" \
    bench/checkout.sh "$SECONDS_PER_RUN" "$USERS" "${args[@]}"
done
