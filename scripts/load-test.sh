#!/usr/bin/env bash
# HTTP load test of a running chizu over a fixed list of z14-z16 tiles around
# Kashima, with wrk (Debian package). Prints tiles/s and latency percentiles.
#   scripts/load-test.sh [BASE_URL] [DURATION]
# With CHIZU_TOKEN set, requests carry `Authorization: Bearer $CHIZU_TOKEN` (a
# staff view, with the token checked on every request) and the staff layers.
# Start a server first, e.g. `cargo run --release -- demo`.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
DURATION=${2:-20s}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
LIST=$(mktemp)
# The tiles covering central Kashima at z14..z16 (x, y from the city bounds).
LAYERS=parcels,roads,zoning,hazard,boundary
AUTH=""
if [ -n "${CHIZU_TOKEN:-}" ]; then
  LAYERS=$LAYERS,water_pipes
  AUTH=", [\"Authorization\"] = \"Bearer $CHIZU_TOKEN\""
fi
"$(dirname "$0")/city-tiles.py" "$LAYERS" > "$LIST"
echo "$(wc -l < "$LIST") tiles in the list"
SCRIPT=$(mktemp --suffix=.lua)
cat > "$SCRIPT" <<LUA
local paths = {}
for line in io.lines("$LIST") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], { ["Accept-Encoding"] = "gzip"$AUTH })
end
done = function(summary, latency, requests)
  io.write(string.format("tiles/s: %.0f  p50: %.2f ms  p99: %.2f ms  errors: %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read))
end
LUA
wrk -t2 -c32 -d"$DURATION" -s "$SCRIPT" "$BASE"
rm -f "$LIST" "$SCRIPT"
