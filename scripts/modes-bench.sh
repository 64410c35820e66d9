#!/usr/bin/env bash
# The same PostGIS data served from memory and from the database, side by
# side in one run: uncached z14 parcel tiles (the tile cache off) and pages of
# parcels by bbox, each with wrk (16 connections, loopback), reporting
# requests/s, p99, and the CPU of chizu and of PostgreSQL. The tile pass uses
# ../shared/bench/tile-bench.sh.
#   scripts/modes-bench.sh [scale] [duration]     e.g. scripts/modes-bench.sh 10 20s
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-1}
duration=${2:-15s}
root=$(pwd)
scripts/setup-deps.sh --cluster >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk jq >/dev/null; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
cargo build --release -q
bin=$root/target/release/chizu
dir=$root/target/bench/modes
city=$dir/city-$scale
pg_bin=/usr/lib/postgresql/15/bin
pg_port=55434
url="postgres://postgres@127.0.0.1:$pg_port/bench$scale"
mkdir -p "$city/data-samples" "$dir/results"
cp -r layers "$city/"
cp data-samples/kashima_outline.geojson "$city/data-samples/"
[ -f "$city/data-samples/parcels.shp" ] || (cd "$city" && "$bin" samples --scale "$scale" >/dev/null)

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -d "$dir/pg/data" ]; then
  mkdir -p "$dir/pg"; [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/pg"
  as_postgres "$pg_bin/initdb" -D "$dir/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
as_postgres "$pg_bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" \
  -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c shared_buffers=512MB" -w start >/dev/null
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  as_postgres "$pg_bin/pg_ctl" -D "$dir/pg/data" -m fast stop >/dev/null || true
}
trap cleanup EXIT
admin="postgres://postgres@127.0.0.1:$pg_port/postgres"
if ! psql "$admin" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'bench$scale'" | grep -q 1; then
  psql "$admin" -qc "CREATE DATABASE bench$scale"
  (cd "$city" && "$bin" ingest --all --store "$url" 2>/dev/null)
fi

start() { # mode port
  "$bin" serve --store "$url" --bind "127.0.0.1:$2" --serve-layers "$1" --tile-cache-mb 0 \
    --per-client 100000 >"$dir/results/serve-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$2/ready" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "chizu ($1) did not start" >&2; exit 1
}
start memory 18091; memory_pid=${pids[-1]}
start database 18092; database_pid=${pids[-1]}

# z14 tiles over the city, as z/x/y lines.
python3 scripts/city-tiles.py parcels | awk -F/ '$4 == 14 {sub(/\.mvt$/, "", $6); print $4 "/" $5 "/" $6}' >"$dir/tiles-z14.txt"
for mode in memory database; do
  port=18091; pid=$memory_pid
  [ $mode = database ] && { port=18092; pid=$database_pid; }
  ../shared/bench/tile-bench.sh -u "http://127.0.0.1:$port/tiles/parcels/{z}/{x}/{y}.mvt" \
    -n "tiles-$mode" -t "$dir/tiles-z14.txt" -s 1 -c 16 -d "$duration" -p "$pid" -g \
    -o "$dir/results" >/dev/null
done

# Pages of 100 parcels in boxes of about 300 m over the city.
python3 - "$dir/items.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as out:
    for i in range(200):
        lon = 130.06 + (i * 37 % 100) / 1000.0
        lat = 33.03 + (i * 53 % 90) / 1000.0
        out.write(f"/ogc/collections/parcels/items?limit=100&bbox={lon:.4f},{lat:.4f},{lon + 0.003:.4f},{lat + 0.003:.4f}\n")
PY
cat >"$dir/items.lua" <<LUA
local paths = {}
for line in io.lines("$dir/items.txt") do paths[#paths + 1] = line end
local i = 0
request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000, summary.errors.status))
end
LUA
ticks() { local sum=0; for p in "$@"; do f=$(cat /proc/$p/stat 2>/dev/null) || continue; f=${f##*) }; set -- $f; sum=$((sum + ${12} + ${13} + ${14} + ${15})); done; echo $sum; }
hz=$(getconf CLK_TCK)
for mode in memory database; do
  port=18091; pid=$memory_pid
  [ $mode = database ] && { port=18092; pid=$database_pid; }
  s0=$(ticks "$pid"); g0=$(ticks $(ps -u postgres -o pid=)); t0=$(date +%s.%N)
  r=$(wrk -t2 -c16 -d"$duration" -s "$dir/items.lua" "http://127.0.0.1:$port" | grep RESULT)
  s1=$(ticks "$pid"); g1=$(ticks $(ps -u postgres -o pid=)); t1=$(date +%s.%N)
  echo "$mode $r $(( s1 - s0 )) $(( g1 - g0 )) $t0 $t1" >>"$dir/results/items-$scale.txt"
  awk -v m="$mode" -v s=$((s1 - s0)) -v g=$((g1 - g0)) -v t0="$t0" -v t1="$t1" -v hz="$hz" -v r="$r" 'BEGIN{
    split(r, f, " "); w = t1 - t0;
    printf "items    %-8s %8.1f req/s  p99 %7.2f ms  non-2xx %d  chizu %.2f cores  postgres %.2f cores\n", m, f[2], f[3], f[4], s/hz/w, g/hz/w }'
done
for mode in memory database; do
  jq -r --arg m "$mode" 'select(.phase == "wrk-c16")
    | "tiles z14 \($m)  \(.rps) tiles/s  p99 \(.lat_p99_ms) ms  non-2xx \(.err_status)  chizu \(.server_cores) cores  postgres \(.pg_cores) cores"' \
    "$dir/results/tiles-$mode.jsonl" | tail -1
done
