#!/usr/bin/env bash
# Search on a release build with the embedded defaults, side by side with catalog's
# own listing in the same runs:
#   1. `emporium load --mix search` closed loop (saturation) and open loop at half
#      that rate: p50/p99 of one word, two words with a typo, a facet-only filter, a
#      suggestion, and catalog's listing of the same filter (1,200 products);
#   2. freshness: a product PATCH until search finds it by its new name, N times;
#   3. index size on disk and search's resident memory, idle after start and after
#      the load.
# Usage: bench/search.sh [seconds per run, default 15] [shoppers, default 32] [freshness samples, default 100]
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
USERS=${2:-32}
SAMPLES=${3:-100}

source bench/lib.sh
bench_setup
bench_env

search_rss() {
  local pid
  pid=$(up_processes | awk '$1 == "search" {print $3}')
  awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"
}

echo "## Machine: $(machine); load generator on the same cores"
up_start "$WORK/up.log" "$WORK/data"
sleep 5
idle=$(search_rss)
index=$(du -sk "$WORK/data/search/index" | awk '{printf "%.0f", $1}')

sat=$("$BIN" load --base "$BASE" --mix search --json --users "$USERS" --seconds "$DURATION" --warmup 3)
rate=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['journeys_per_s'] / 2, 1))" "$sat")
half=$("$BIN" load --base "$BASE" --mix search --json --users "$USERS" --seconds "$DURATION" --rate "$rate")
loaded=$(search_rss)

python3 - "$sat" "$half" "$rate" <<'EOF'
import json, sys
sat, half, rate = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"## search mix: saturation {sat['journeys_per_s']:.0f} requests/s ({sat['users']} shoppers, closed loop); half load {rate}/s (open loop)")
print("| step | req/s at saturation | p50 ms | p99 ms | p50 ms at half load | p99 ms at half load | errors |")
print("|---|---|---|---|---|---|---|")
for step in ["search_word", "search_typo", "search_facets", "suggest", "list_category"]:
    s, h = sat["steps"][step], half["steps"][step]
    print(f"| {step} | {s['per_second']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f} | {s['errors'] + h['errors']} |")
EOF

# Freshness: rename a product as the admin, then poll search (every 2 ms) until it
# finds it by the new name.
python3 - "$BASE" "$SAMPLES" <<'EOF'
import json, sys, time, urllib.request
base, samples = sys.argv[1], int(sys.argv[2])
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 409:
            return None
        raise
admin = {"email": "bench-admin@example.com", "password": "correct horse battery", "name": "Bench"}
call("POST", "/api/users/register", admin)
token = call("POST", "/api/users/login", {"email": admin["email"], "password": admin["password"]})["access_token"]
products = call("GET", "/api/catalog/products?limit=100")["items"]
took = []
for n in range(samples):
    p = products[n % len(products)]
    name = f"Freshness Probe Zq{n:05d}x"
    started = time.perf_counter()
    call("PATCH", f"/api/catalog/products/{p['id']}", {"name": name}, token)
    while True:
        page = call("GET", f"/api/search?q=zq{n:05d}x%20")
        if page["items"] and page["items"][0]["id"] == p["id"]:
            break
        if time.perf_counter() - started > 10:
            sys.exit(f"{name} did not show in 10 s")
        time.sleep(0.002)
    took.append((time.perf_counter() - started) * 1000)
took.sort()
pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
print(f"## freshness over {samples} PATCHes (PATCH to found, polling every 2 ms): p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {took[-1]:.1f} ms")
EOF
echo "## index: ${index} KiB on disk; search RSS: ${idle} MiB idle after start, ${loaded} MiB after the load"
