#!/usr/bin/env bash
# The storefront on a release build with the embedded defaults:
#   1. Lighthouse 12.2.3 (npm) with Debian's Chromium on home, search results, a
#      product and the cart (signed in, one line in it): performance, accessibility
#      and best practices, mobile (Lighthouse's default: simulated slow 4G, 4x CPU);
#   2. page weight without images: the HTML of each page plus its CSS and script;
#   3. server time of each page under load (wrk, 16 connections, signed in): p50,
#      p99, requests per second and per CPU-second of the shop's processes;
#   4. Online Boutique's mix through the storefront's pages (`emporium load --mix
#      storefront`) beside the same mix through the API (`--mix boutique`), in one
#      run: journeys and requests per second and per CPU-second.
# Usage: bench/storefront.sh [seconds per load run, default 15] [shoppers, default 16]
# Needs wrk (Debian), node/npm (for Lighthouse, installed under ~/.cache when
# missing), chromium. Traffic goes to 127.0.0.1 only; every process started here is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
USERS=${2:-16}
LH_DIR=${LIGHTHOUSE_DIR:-$HOME/.cache/emporium-lighthouse}

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need chromium chromium
need jq jq
if [ ! -x "$LH_DIR/node_modules/.bin/lighthouse" ]; then
  npm i -E --silent --prefix "$LH_DIR" lighthouse@12.2.3 >/dev/null
fi

source bench/lib.sh
bench_setup
bench_env

echo "## Machine: $(machine); load generator and browser on the same cores"
up_start "$WORK/up.log" "$WORK/data"
sleep 3

# A signed-in shopper with one line in the cart; their session cookie.
curl -s -o /dev/null -XPOST "$BASE/api/users/register" -H 'content-type: application/json' \
  -d '{"email":"bench-shopper@example.com","password":"correct horse battery","name":"Bench"}'
TOKEN=$(curl -s -XPOST "$BASE/api/users/login" -H 'content-type: application/json' \
  -d '{"email":"bench-shopper@example.com","password":"correct horse battery"}' | jq -r .access_token)
SKU=$(curl -s "$BASE/api/search?in_stock=true&sort=price&limit=1" | jq -r '.items[0].sku')
curl -s -o /dev/null -XPOST "$BASE/api/cart/items" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "{\"sku\":\"$SKU\",\"quantity\":1}"
COOKIE="emporium_session=$TOKEN"
PAGES=("/" "/search?q=lamp" "/products/$SKU" "/cart")
NAMES=(home search product cart)

echo
echo "### Lighthouse (mobile), scores 0-100"
echo
echo "| page | performance | accessibility | best practices |"
echo "|---|---|---|---|"
for i in "${!PAGES[@]}"; do
  out="$WORK/lh-${NAMES[$i]}.json"
  CHROME_PATH=/usr/bin/chromium "$LH_DIR/node_modules/.bin/lighthouse" "$BASE${PAGES[$i]}" \
    --quiet --output=json --output-path="$out" \
    --only-categories=performance,accessibility,best-practices \
    --extra-headers="{\"Cookie\":\"$COOKIE\"}" \
    --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$WORK/chrome-$i" \
    >/dev/null 2>&1 || true
  if [ -s "$out" ]; then
    jq -r --arg p "${NAMES[$i]} (\`${PAGES[$i]}\`)" \
      '"| \($p) | \(.categories.performance.score*100|round) | \(.categories.accessibility.score*100|round) | \(.categories["best-practices"].score*100|round) |"' "$out"
  else
    echo "| ${NAMES[$i]} | (lighthouse failed) | | |"
  fi
done

echo
echo "### Page weight without images (bytes as sent, no compression)"
echo
css=$(grep -o '/assets/site\.[0-9a-f]*\.css' <(curl -s "$BASE/") | head -1)
js=$(grep -o '/assets/site\.[0-9a-f]*\.js' <(curl -s "$BASE/") | head -1)
css_bytes=$(curl -s -o /dev/null -w '%{size_download}' "$BASE$css")
js_bytes=$(curl -s -o /dev/null -w '%{size_download}' "$BASE$js")
echo "| page | HTML | + CSS and script | total |"
echo "|---|---|---|---|"
for i in "${!PAGES[@]}"; do
  html=$(curl -s -o /dev/null -w '%{size_download}' -H "Cookie: $COOKIE" "$BASE${PAGES[$i]}")
  echo "| ${NAMES[$i]} | $html | $((css_bytes + js_bytes)) | $((html + css_bytes + js_bytes)) ($(( (html + css_bytes + js_bytes) / 1024 )) KiB) |"
done

echo
echo "### Server time under load (wrk, 2 threads, 16 connections, ${DURATION}s each, signed in)"
echo
echo "| page | requests/s | p50 ms | p99 ms | requests per CPU-second |"
echo "|---|---|---|---|---|"
for i in "${!PAGES[@]}"; do
  before=$(cpu_seconds)
  out=$(wrk -t2 -c16 -d"${DURATION}s" --latency -H "Cookie: $COOKIE" "$BASE${PAGES[$i]}")
  after=$(cpu_seconds)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  ms() { awk -v q="$1" '$1 == q {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' <<<"$out"; }
  per_cpu=$(awk -v n="$total" -v a="$before" -v b="$after" 'BEGIN {printf "%.0f", n / (b - a)}')
  echo "| ${NAMES[$i]} | $rps | $(ms 50%) | $(ms 99%) | $per_cpu |"
done

echo
echo "### Online Boutique's mix: through the storefront's pages vs through the API (closed loop, $USERS shoppers, ${DURATION}s each)"
echo
echo "| mix | journeys/s | requests/s | errors | CPU-seconds | requests per CPU-second | journeys per CPU-second |"
echo "|---|---|---|---|---|---|---|"
for mix in storefront boutique; do
  # A warm-up run of its own, so the CPU measured below is the measured run's.
  "$BIN" load --base "$BASE" --mix "$mix" --admin bench-admin@example.com --json \
    --users "$USERS" --seconds 3 >/dev/null
  before=$(cpu_seconds)
  out=$("$BIN" load --base "$BASE" --mix "$mix" --json --users "$USERS" --seconds "$DURATION")
  after=$(cpu_seconds)
  cpu=$(awk -v a="$before" -v b="$after" 'BEGIN {printf "%.2f", b - a}')
  jq -r --arg mix "$mix" --argjson cpu "$cpu" \
    '"| \($mix) | \(.journeys_per_s*10|round/10) | \(.requests_per_s*10|round/10) | \(.errors) | \($cpu) | \(.requests/$cpu|round) | \(.journeys/$cpu|round) |"' <<<"$out"
done
echo
echo "(CPU-seconds are the shop's processes during the measured run, including its $USERS shoppers' sign-ups.)"
