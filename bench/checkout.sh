#!/usr/bin/env bash
# Checkout benchmarks, on a release build with the embedded defaults (SQLite, feed):
#   1. saturation: closed-loop shoppers checking out through the gateway (add to cart,
#      POST /api/orders, which answers when the saga finished) → confirmed checkouts/s;
#   2. latency at half that rate: open loop, latency measured from when each checkout
#      was due → p50 / p99;
#   3. event delivery: for every order confirmed in (2), the time from the
#      OrderConfirmed outbox row (its CloudEvents time) to the mail written → p50 / p99.
# Usage: bench/checkout.sh [seconds per run, default 15] [shoppers, default 64] [up args...]
# The backends are the environment's: EMPORIUM__DATABASE_URL and
# EMPORIUM__EVENTS__NATS_URL select PostgreSQL and NATS (bench/backends.sh runs this
# on each shape side by side); extra arguments go to `emporium up` (--replicas ...).
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-15}
USERS=${2:-64}
shift 2 2>/dev/null || shift $#

source bench/lib.sh
bench_setup

bench_env
up_start "$WORK/up.log" "$WORK/data" "$@"

echo "## Machine: $(machine)"
echo "## Saturation: $USERS closed-loop shoppers, ${SECONDS_PER_RUN}s"
SAT=$(checkout_load --users "$USERS" --seconds "$SECONDS_PER_RUN")
echo "$SAT"
RATE=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['checkouts_per_s'] / 2, 1))" "$SAT")
echo "## Half load: open loop at $RATE checkouts/s, ${SECONDS_PER_RUN}s"
HALF_START_MS=$(date +%s%3N)
checkout_load --users "$USERS" --seconds "$SECONDS_PER_RUN" --rate "$RATE"

sleep 2
echo "## Event delivery at half load: OrderConfirmed committed → mail written (.eml)"
python3 - "$WORK/data/notifications/notifications.db" "$HALF_START_MS" "${EMPORIUM__DATABASE_URL:-}" <<'PY'
import sqlite3, subprocess, sys
since, url = int(sys.argv[2]), sys.argv[3]
delays = ("SELECT sent_ms - event_ms FROM messages WHERE kind = 'order_confirmed' "
          "AND status = 'sent' AND event_ms >= {}")
unsent = "SELECT COUNT(*) FROM messages WHERE status <> 'sent'"
if url:
    def query(sql):
        out = subprocess.run(["psql", url, "-At", "-c", "SET search_path TO notifications; " + sql],
                             check=True, capture_output=True, text=True).stdout
        return [int(line) for line in out.split() if line.strip().lstrip("-").isdigit()]
    rows = sorted(query(delays.format(since)))
    pending = query(unsent)[0]
else:
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    rows = sorted(r[0] for r in db.execute(delays.format(since)))
    pending = db.execute(unsent).fetchone()[0]
def pct(p):
    return rows[min(len(rows) - 1, max(0, int(len(rows) * p + 0.999999) - 1))] if rows else 0
print(f'{{"mails": {len(rows)}, "pending": {pending}, "p50_ms": {pct(0.5)}, "p99_ms": {pct(0.99)}, "max_ms": {rows[-1] if rows else 0}}}')
PY
echo "## RSS after the run (KiB)"
up_processes | while read -r name _ pid; do
  printf "%-14s %s\n" "$name" "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
done
