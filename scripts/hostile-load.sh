#!/usr/bin/env bash
# Hostile and normal traffic together, on loopback, bounded in time:
#  1. a well-behaved map client (4 connections) reads cached composite tiles
#     alone for BASELINE seconds: its p99 without hostile load;
#  2. the same client again, while 64 connections send a mix of hostile and
#     normal requests for DURATION seconds (deep and backtracking filters,
#     wrong passwords, one-character searches, distinct empty tiles, long and
#     malformed URLs, point queries, items pages, tiles);
#  3. prints crashes (is the server alive and healthy), the server's peak RSS
#     against BOUND_MB, the answers by status class, and the client's p99
#     under load against its baseline (the goal: within 2x).
#   scripts/hostile-load.sh [DURATION=60] [BASELINE=20]
# Builds the release binary and a sample city in a temporary directory
# unless CHIZU_BIN / CHIZU_STORE say otherwise. Needs wrk (Debian package).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}
BASELINE=${2:-20}
BOUND_MB=${BOUND_MB:-400}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
BIN=${CHIZU_BIN:-target/release/chizu}
[ -x "$BIN" ] || cargo build --release
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
STORE=${CHIZU_STORE:-}
if [ -z "$STORE" ]; then
  mkdir -p "$WORK/city/data-samples"
  cp -r layers "$WORK/city/"
  cp data-samples/kashima_outline.geojson "$WORK/city/data-samples/"
  (cd "$WORK/city" && "$BIN" samples >/dev/null && "$BIN" ingest --all --store city.gpkg >/dev/null)
  STORE="$WORK/city/city.gpkg"
fi
# The clients come through this machine as a reverse proxy would send them,
# each with its own address in X-Forwarded-For.
RUST_LOG=error "$BIN" serve --store "$STORE" --bind 127.0.0.1:0 --trusted-proxy 127.0.0.1 \
  --viewer /nonexistent >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
for _ in $(seq 100); do grep -q listening "$WORK/server.out" && break; sleep 0.1; done
BASE=$(sed -n 's/^chizu listening on //p' "$WORK/server.out")
echo "server $SERVER at $BASE"

scripts/city-tiles.py parcels,roads,zoning,hazard,boundary > "$WORK/tiles.txt"
cat >"$WORK/client.lua" <<LUA
local paths = {}
for line in io.lines("$WORK/tiles.txt") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], { ["Accept-Encoding"] = "gzip", ["X-Forwarded-For"] = "198.51.100.1" })
end
done = function(summary, latency, requests)
  io.write(string.format("client: %.0f tiles/s  p50 %.2f ms  p99 %.2f ms  errors %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read))
  io.write(string.format("P99_MS=%.3f\n", latency:percentile(99) / 1000))
end
LUA
cat >"$WORK/hostile.lua" <<'LUA'
local function rep(s, n) local t = {} for i = 1, n do t[i] = s end return table.concat(t) end
local function enc(s) return (s:gsub("[^%w%-_%.]", function(c) return string.format("%%%02X", string.byte(c)) end)) end
local deep = "/ogc/collections/parcels/items?filter=" .. enc(rep("(", 2000) .. "chiban='1'" .. rep(")", 2000))
local nots = "/ogc/collections/parcels/items?filter=" .. enc(rep("NOT ", 2000) .. "chiban='1'")
local like = "/ogc/collections/roads/items?filter=" .. enc("route_name LIKE '%%%%%%%%%%%%%%Z'")
local spatial = "/ogc/collections/parcels/items?limit=5&filter=" .. enc("S_INTERSECTS(geometry, BBOX(130.0, 33.0, 130.2, 33.2)) AND chiban LIKE '%1%'")
local long = "/search?q=" .. rep("1", 15000)
local kinds = 12
s2, s4, s5, other = 0, 0, 0, 0
request = function()
  local k = math.random(kinds)
  local xff = { ["X-Forwarded-For"] = "203.0.113." .. math.random(250) }
  if k == 1 then return wrk.format("GET", deep, xff)
  elseif k == 2 then return wrk.format("GET", nots, xff)
  elseif k == 3 then return wrk.format("GET", like, xff)
  elseif k == 4 then
    xff["Content-Type"] = "application/json"
    return wrk.format("POST", "/auth/login", xff, '{"username":"admin","password":"guess' .. math.random(1e9) .. '"}')
  elseif k == 5 then return wrk.format("GET", "/search?q=1", xff)
  elseif k == 6 then
    return wrk.format("GET", string.format("/tiles/parcels/16/%d/%d.mvt", math.random(0, 65535), math.random(0, 65535)), xff)
  elseif k == 7 then return wrk.format("GET", long, xff)
  elseif k == 8 then return wrk.format("OPTIONS", "/catalog", xff)
  elseif k == 9 then return wrk.format("GET", "/search?q=%FF%FE", xff)
  elseif k == 10 then
    return wrk.format("GET", string.format("/query/point?lon=%.5f&lat=%.5f&zoom=18", 130.05 + math.random() * 0.1, 33.02 + math.random() * 0.1), xff)
  elseif k == 11 then return wrk.format("GET", spatial, xff)
  else return wrk.format("GET", "/catalog", xff)
  end
end
response = function(status, headers, body)
  if status < 300 then s2 = s2 + 1 elseif status < 500 then s4 = s4 + 1 elseif status < 600 then s5 = s5 + 1 else other = other + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("s2"); b = b + t:get("s4"); c = c + t:get("s5") end
  io.write(string.format("hostile: %.0f req/s  2xx %d  4xx %d  5xx %d  socket errors %d\n",
    summary.requests / (summary.duration / 1e6), a, b, c,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || echo 0; }
echo "warming the tile cache ($(wc -l <"$WORK/tiles.txt") tiles)"
wrk -t1 -c4 -d5s -s "$WORK/client.lua" "$BASE" >/dev/null
echo "baseline: the client alone for ${BASELINE}s"
wrk -t1 -c4 -d"${BASELINE}s" --latency -s "$WORK/client.lua" "$BASE" | tee "$WORK/base.txt" | grep -E "^client"
P99_BASE=$(sed -n 's/^P99_MS=//p' "$WORK/base.txt")
RSS_BEFORE=$(rss_kb)
echo "under attack: 64 hostile connections for ${DURATION}s beside the client"
( while kill -0 "$SERVER" 2>/dev/null; do echo "$(rss_kb)"; sleep 0.5; done ) >"$WORK/rss.txt" &
SAMPLER=$!
wrk -t2 -c64 -d"${DURATION}s" --timeout 10s -s "$WORK/hostile.lua" "$BASE" >"$WORK/hostile.txt" &
HOSTILE=$!
sleep 1
wrk -t1 -c4 -d"$((DURATION - 2))s" --latency -s "$WORK/client.lua" "$BASE" >"$WORK/load.txt"
wait "$HOSTILE" || true
kill "$SAMPLER" 2>/dev/null || true
P99_LOAD=$(sed -n 's/^P99_MS=//p' "$WORK/load.txt")
PEAK=$(sort -n "$WORK/rss.txt" | tail -1)
grep -E "^hostile" "$WORK/hostile.txt"
grep -E "^client" "$WORK/load.txt"
ALIVE=no; kill -0 "$SERVER" 2>/dev/null && ALIVE=yes
HEALTH=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health" || true)
RATIO=$(awk -v a="$P99_LOAD" -v b="$P99_BASE" 'BEGIN { printf "%.2f", a / b }')
echo
echo "| measure | value |"
echo "|---|---|"
echo "| server alive after the attack, /health | $ALIVE, $HEALTH |"
echo "| server RSS before / peak during (bound ${BOUND_MB} MB) | $((RSS_BEFORE / 1024)) MB / $((PEAK / 1024)) MB |"
echo "| client p99 alone / under attack | ${P99_BASE} ms / ${P99_LOAD} ms (x${RATIO}) |"
[ "$ALIVE" = yes ] && [ "$HEALTH" = 200 ] && [ "$((PEAK / 1024))" -lt "$BOUND_MB" ] || { echo "FAILED"; exit 1; }
