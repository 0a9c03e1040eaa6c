#!/usr/bin/env bash
# Second by second through checkout overload: a fresh shop, 64 closed-loop shoppers
# (the peak), then an open loop at RATE checkouts/s (default: three times that peak)
# while orders', cart's and the gateway's /metrics are read about every second.
# Prints per interval (its start in seconds since the load began, counts per
# second): orders placed and confirmed, POST /api/orders (answered 202: count, mean
# ms, share over 100 ms), orders' call to cart's take (mean ms, share over 100 ms),
# the wait of cart's admitted writes for its write slot (mean ms), the share of the
# interval cart's slot was held, the gateway's brownout share and orders'
# concurrency limit on POST /api/orders. Shows how overload sets in and settles
# (the limit's burst time, the brownout's ramp) where bench/overload-ab.sh shows
# only each run's totals; the load's warm-up (3 s after the sign-ups) is in the
# series but not in its p50 and p99.
# Service identity is off in this run so that plain curl can read /metrics.
# Usage: bench/overload-series.sh [rate] [seconds, default 20]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-}
SECONDS_PER_RUN=${2:-20}

source bench/lib.sh
bench_setup
bench_env
export EMPORIUM__IDENTITY__MODE=off
echo "machine: $(machine); load generator on the same cores"

up_start "$WORK/up.log" "$WORK/data"
grep -E '^ +(orders|cart|gateway/admin) +127\.0\.0\.1:' "$WORK/up.log" | awk '{print $1, $2}' >"$WORK/scraped"
checkout_load --users 16 --seconds 2 --warmup 1 >/dev/null
peak=$(checkout_load --users 64 --seconds 8 --warmup 2)
RATE=${RATE:-$(python3 -c 'import json,sys; print(round(3 * json.loads(sys.argv[1])["checkouts_per_s"]))' "$peak")}
echo "peak: $(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["checkouts_per_s"], 1))' "$peak") checkouts/s; offered: $RATE/s"

checkout_load --users 512 --rate "$RATE" --seconds "$SECONDS_PER_RUN" --warmup 3 >"$WORK/over.json" &
LOAD=$!
n=0
while kill -0 "$LOAD" 2>/dev/null; do
  date +%s.%N >"$WORK/at.$n"
  while read -r name address; do
    curl -s --max-time 1 "http://$address/metrics" >"$WORK/${name%/admin}.$n" || true
  done <"$WORK/scraped"
  n=$((n + 1))
  sleep 1
done
wait "$LOAD"
python3 - "$WORK" "$n" <<'PY'
import json, re, sys
work, n = sys.argv[1], int(sys.argv[2])
def scrape(path):
    samples = []
    try:
        for line in open(path):
            m = re.match(r'(\S+?)(\{[^}]*\})?\s+(\S+)$', line.strip())
            if m and not line.startswith('#'):
                samples.append((m.group(1), m.group(2) or '', float(m.group(3))))
    except OSError:
        pass
    return samples
s = {svc: [scrape(f"{work}/{svc}.{i}") for i in range(n)] for svc in ("orders", "cart", "gateway")}
at = [float(open(f"{work}/at.{i}").read()) for i in range(n)]
def total(samples, name, *labels):
    return sum(v for k, l, v in samples if k == name and all(x in l for x in labels))
def moved(svc, i, name, *labels):
    return total(s[svc][i], name, *labels) - total(s[svc][i - 1], name, *labels)
def histogram(svc, i, name, *labels):
    count = moved(svc, i, name + "_count", *labels)
    if not count:
        return 0, 0.0, 0.0
    mean = 1000 * moved(svc, i, name + "_sum", *labels) / count
    fast = moved(svc, i, name + "_bucket", *labels, 'le="0.1"')
    return count, mean, 100 * (1 - fast / count)
over = json.load(open(f"{work}/over.json"))
print("at the rate: %.1f confirmed/s, p50 %.0f ms, p99 %.0f ms (the load's 3 s warm-up not counted)"
      % (over["checkouts_per_s"], over["confirmed_p50_ms"], over["confirmed_p99_ms"]))
# Per second: each interval's counts over its measured length (a scrape of three
# services and the sleep make an interval a little over one second).
print("s  placed/s confirmed/s | POST /api/orders: n mean-ms >100ms% | take: mean-ms >100ms% | cart admitted wait ms | cart slot busy share | brownout share | orders limit")
started = False
for i in range(1, n):
    if not all(s[svc][j] for svc in s for j in (i - 1, i)):
        continue  # a scrape failed: no figures for this interval
    dt = at[i] - at[i - 1]
    placed = moved("orders", i, "emporium_orders_placed_total") / dt
    started = started or placed > 0
    if not started:
        continue
    confirmed = moved("orders", i, "emporium_orders_confirmed_total") / dt
    _, mean, slow = histogram("orders", i, "http_server_request_duration_seconds", 'route="/api/orders"', 'status="202"')
    count = moved("orders", i, "http_server_request_duration_seconds_count", 'route="/api/orders"', 'status="202"') / dt
    _, take, take_slow = histogram("orders", i, "http_client_request_duration_seconds", 'target="cart"', 'method="POST"')
    _, wait, _ = histogram("cart", i, "emporium_store_write_wait_seconds", 'class="admitted"')
    held = moved("cart", i, "emporium_store_write_hold_seconds_sum") / dt
    share = total(s["gateway"][i], "gateway_brownout_share")
    limit = total(s["orders"][i], "http_server_concurrency_limit", 'route="POST /api/orders"')
    print(f"{at[i] - at[0]:5.1f} {placed:5.0f} {confirmed:5.0f} | {count:5.0f} {mean:6.1f} {slow:5.1f} | {take:6.1f} {take_slow:5.1f} | {wait:6.1f} | {held:4.2f} | {share:4.2f} | {limit:3.0f}")
PY
