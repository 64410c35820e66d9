#!/usr/bin/env bash
# What a map page costs the server, with wrk against a running chizu: the
# style (filled in per request), cached label glyphs, the gzipped MapLibre
# bundle, the catalog and the page itself, each beside /health measured in the
# same run (the ratio is what to compare between machines).
#   scripts/web-bench.sh [BASE_URL] [DURATION]
# Start a server first, e.g. `cargo run --release -- demo`.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
DURATION=${2:-10s}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# Warm the glyph cache once (the first range is rendered, later ones are not).
curl -fsS -o /dev/null "$BASE/fonts/Noto%20Sans%20CJK%20JP%20Regular/0-255.pbf"
rate() { # path [header]
  local args=(-t2 -c32 -d"$DURATION" --latency)
  [ -n "${2:-}" ] && args+=(-H "$2")
  wrk "${args[@]}" "$BASE$1" | awk '/Requests\/sec/ {print $2} /^ +99%/ {p99=$2} END {print p99}' | paste -sd' '
}
printf '%-44s %12s %9s %8s\n' path req/s p99 ratio
base=$(rate /health)
printf '%-44s %12s %9s %8s\n' /health ${base} 1.00
for entry in "/styles/public.json" "/catalog" "/" \
             "/fonts/Noto%20Sans%20CJK%20JP%20Regular/0-255.pbf|Accept-Encoding: gzip" \
             "/assets/vendor/maplibre-gl-csp.js|Accept-Encoding: gzip"; do
  path=${entry%%|*}; header=""; [ "$entry" != "$path" ] && header=${entry#*|}
  read -r rps p99 <<<"$(rate "$path" "$header")"
  printf '%-44s %12s %9s %8.2f\n' "${path:0:44}" "$rps" "$p99" "$(awk -v a="$rps" -v b="${base%% *}" 'BEGIN {print a / b}')"
done
