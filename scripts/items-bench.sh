#!/usr/bin/env bash
# Load test of the features API of a running chizu, with wrk: pages of parcels
# by bbox (public), and the staff utility query (CIP mains >= 150 mm laid before
# 1980 within 50 m of a point). Prints requests/s and features/s for each, with
# /health as the baseline of the same run.
#   CHIZU_TOKEN=<staff token> scripts/items-bench.sh [BASE_URL] [DURATION]
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
DURATION=${2:-10s}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
AUTH=""
[ -n "${CHIZU_TOKEN:-}" ] && AUTH=", [\"Authorization\"] = \"Bearer $CHIZU_TOKEN\""
run() { # name, lua list file
  local script; script=$(mktemp --suffix=.lua)
  cat > "$script" <<LUA
local paths = {}
for line in io.lines("$2") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], { ["Accept-Encoding"] = "gzip"$AUTH })
end
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("%s: %.0f requests/s  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n", "$1",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
LUA
  local line; line=$(wrk -t2 -c8 -d"$DURATION" -s "$script" "$BASE" | grep -E "requests/s" || true)
  # Features per request, from one pass over the list (same URLs, same answers).
  local avg; avg=$(BASE="$BASE" TOKEN="${CHIZU_TOKEN:-}" python3 - "$2" <<'PY'
import json, os, sys, urllib.request
paths = [l.strip() for l in open(sys.argv[1]) if l.strip()]
total = 0
for p in paths:
    req = urllib.request.Request(os.environ["BASE"] + p)
    if os.environ["TOKEN"]:
        req.add_header("Authorization", "Bearer " + os.environ["TOKEN"])
    body = urllib.request.urlopen(req).read()
    total += json.loads(body).get("numberReturned", 0) if body.startswith(b"{") else 0
print(f"{total / len(paths):.1f}")
PY
)
  local rps; rps=$(echo "$line" | sed -E 's/.*: ([0-9]+) requests.*/\1/')
  echo "$line  features/request $avg  features/s $(python3 -c "print(round($rps * $avg))")"
  rm -f "$script"
}
LIST=$(mktemp)
echo "/health" > "$LIST"; run "baseline /health" "$LIST"
python3 - "$LIST" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(200):
        x = 130.06 + (i % 20) * 0.004
        y = 33.04 + (i // 20) * 0.006
        f.write(f"/ogc/collections/parcels/items?limit=100&bbox={x:.4f},{y:.4f},{x + 0.004:.4f},{y + 0.004:.4f}\n")
PY
run "parcels bbox pages (limit 100)" "$LIST"
if [ -n "${CHIZU_TOKEN:-}" ]; then
  python3 - "$LIST" <<'PY'
import sys, urllib.parse
with open(sys.argv[1], "w") as f:
    for i in range(200):
        lon = 130.06 + (i % 20) * 0.004
        lat = 33.03 + (i // 20) * 0.008
        q = f"diameter_mm >= 150 AND material = 'CIP' AND install_year < 1980 AND DWITHIN(geometry, POINT({lon:.4f} {lat:.4f}), 50, meters)"
        f.write("/ogc/collections/water_pipes/items?limit=100&filter=" + urllib.parse.quote(q) + "\n")
PY
  run "utility query (staff)" "$LIST"
fi
rm -f "$LIST"
