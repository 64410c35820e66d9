#!/usr/bin/env bash
# chizu beside Martin 1.14 + PostGIS on the same synthetic city, in one run
# (../shared/bench/: 200,000 parcels with 1 M vertices, 30,000 roads, 49,781
# pipes, 500 zoning and 2,000 hazard areas). Loopback only, every load bounded.
#
#   scripts/bench-vs-martin.sh            # everything below, then the tables
#   DUR=10s ROUNDS=2 LISTS="tiles-z14.txt tiles.txt" scripts/bench-vs-martin.sh
#
# 1. the peers: PostgreSQL + PostGIS with the bench data, its FlatGeobuf export,
#    Martin (../shared/bench/setup-peers.sh; building Martin takes ~30 min once);
# 2. ingest: `chizu ingest` of the five FlatGeobuf files beside `ogr2ogr -f GPKG`
#    of the same files (median of 3 each);
# 3. memory: `chizu serve` on the bench store, VmHWM after loading and after a
#    warm-up over the mixed tile list (beside the FlatGeobuf size);
# 4. tiles: ../shared/bench/duel.sh (chizu and Martin interleaved A B A B,
#    uncached and cached, plain and gzip) and its ratio table;
# 5. bulk tiles: `chizu pmtiles` beside `martin-cp` on the same layers and
#    zooms, tiles per CPU-second.
# Results under target/bench/results/vs-martin-<time>/; the summary is printed
# and written to summary.md. Exits non-zero when a cached ratio falls under
# its floor (cached >= 1.5x, cached gzip >= 10x Martin): those must not regress.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=$(cd ../shared/bench && pwd)
OUT=${OUT:-$PWD/target/bench/results/vs-martin-$(date +%Y%m%d-%H%M%S)}
DATA=$PWD/target/bench/data
STORE=$PWD/target/bench/bench.gpkg
MARTIN=${MARTIN:-/opt/peers/bin/martin}
export DUR=${DUR:-10s} ROUNDS=${ROUNDS:-2} LISTS=${LISTS:-"tiles-z14.txt tiles.txt"}
mkdir -p "$OUT"

echo "== peers" >&2
DATASETS=$DATA "$BENCH/setup-peers.sh" packages pg-start db data export martin >"$OUT/setup.log" 2>&1 \
  || { tail -20 "$OUT/setup.log" >&2; exit 1; }
cargo build --release -q
BIN=$PWD/target/release/chizu
mkdir -p target/bench/layers
cp "$BENCH"/chizu-layers/*.toml target/bench/layers/

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
secs() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }

echo "== ingest (median of 3)" >&2
ingest=$(for _ in 1 2 3; do rm -f "$STORE" "$STORE"-*; secs "$BIN" ingest --all --layers target/bench/layers --store "$STORE"; done | median)
ogr=$(for _ in 1 2 3; do
  rm -f "$OUT/ogr.gpkg"
  /usr/bin/time -f %e bash -c "for t in parcels roads water_pipes zoning hazard_areas; do
    ogr2ogr -f GPKG -update -append '$OUT/ogr.gpkg' '$DATA/'\$t.fgb -nln \$t; done" 2>&1 >/dev/null | tail -1
done | median)
fgb_bytes=$(cat "$DATA"/{parcels,roads,water_pipes,zoning,hazard_areas}.fgb | wc -c)

echo "== memory" >&2
"$BIN" serve --store "$STORE" --bind 127.0.0.1:18999 >"$OUT/serve-rss.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -fs http://127.0.0.1:18999/health >/dev/null && break; sleep 0.2; done
# VmHWM in MB (10^6 bytes), as the FlatGeobuf size is given.
hwm() { awk '/VmHWM/ {print int($2*1024/1000000)}' "/proc/$PID/status"; }
loaded=$(hwm)
while read -r t; do
  curl -fs -o /dev/null "http://127.0.0.1:18999/tiles/parcels,roads,water_pipes,zoning,hazard_areas/$t.mvt" || true
done <"$BENCH/tiles.txt"
warm=$(hwm)
kill $PID; wait $PID 2>/dev/null || true
trap - EXIT

echo "== tiles: duel.sh (DUR=$DUR ROUNDS=$ROUNDS LISTS=$LISTS)" >&2
cat >"$OUT/chizu-nocache" <<SH
#!/bin/sh
CHIZU_TILE_CACHE_MB=0 exec "$BIN" "\$@"
SH
chmod +x "$OUT/chizu-nocache"
OUT=$OUT/duel MARTIN=$MARTIN "$BENCH/duel.sh" "$BIN" "$OUT/chizu-nocache" "$STORE" >&2
python3 "$BENCH/duel-table.py" "$OUT/duel" >"$OUT/duel-table.md"

echo "== bulk: chizu pmtiles and martin-cp, z0-z14" >&2
cpu() { /usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1; }
rm -f "$OUT/chizu.pmtiles" "$OUT/martin.mbtiles"
read -r cw cu cs < <(cpu "$BIN" pmtiles --store "$STORE" --out "$OUT/chizu.pmtiles" --minzoom 0 --maxzoom 14 \
  --layers parcels,roads,water_pipes,zoning,hazard_areas)
chizu_tiles=$(python3 -c "
from pmtiles.reader import Reader, MmapSource, all_tiles
with open('$OUT/chizu.pmtiles','rb') as f: print(sum(1 for _ in all_tiles(Reader(MmapSource(f)).get_bytes)))")
read -r mw mu ms < <(cpu "${MARTIN%/*}/martin-cp" --config "$BENCH/martin.yaml" \
  --source parcels,roads,water_pipes,zoning,hazard_areas --output-file "$OUT/martin.mbtiles" \
  --mbtiles-type flat --min-zoom 0 --max-zoom 14 --bbox 130.03,33.03,130.17,33.15 --skip-agg-tiles-hash \
  --concurrency "$(($(nproc) * 2))")
martin_tiles=$(sqlite3 "$OUT/martin.mbtiles" "select count(*) from tiles" 2>/dev/null \
  || python3 -c "import sqlite3; print(sqlite3.connect('$OUT/martin.mbtiles').execute('select count(*) from tiles').fetchone()[0])")

{
  echo "# chizu vs Martin 1.14 + PostGIS ($(date -u +%F), $(nproc) cores)"
  echo
  echo "| | chizu | peer | ratio |"
  echo "|---|---:|---:|---:|"
  echo "| ingest of the five layers, s (peer: ogr2ogr -f GPKG) | $ingest | $ogr | $(python3 -c "print(f'{$ogr/$ingest:.1f}x')") |"
  echo "| server peak RSS after loading / after a warm-up that fills the tile cache (default 256 MiB), MB (FlatGeobuf: $((fgb_bytes / 1000000)) MB) | $loaded / $warm | | $(python3 -c "print(f'{$loaded*1e6/$fgb_bytes:.2f}x / {$warm*1e6/$fgb_bytes:.2f}x the FlatGeobuf')") |"
  echo "| bulk tiles z0-z14 (chizu pmtiles / martin-cp), tiles, wall s, CPU s (server + PostgreSQL not counted for Martin) | $chizu_tiles, $cw, $(python3 -c "print(round($cu+$cs,1))") | $martin_tiles, $mw, $(python3 -c "print(round($mu+$ms,1))") | $(python3 -c "print(f'{($chizu_tiles/($cu+$cs))/($martin_tiles/max($mu+$ms,1e-3)):.1f}x tiles per CPU-s')") |"
  echo
  cat "$OUT/duel-table.md"
} | tee "$OUT/summary.md"

# The floors: a cached ratio under them fails the run, loudly.
python3 - "$OUT/duel-table.md" <<'PY'
import sys
floors = {"cache": 1.5, "cachegz": 10.0}
bad = []
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 7 or cells[3] != "wrk-c16" or cells[2] not in floors or cells[6] == "-":
        continue
    if float(cells[6]) < floors[cells[2]]:
        bad.append(f"{cells[0]} {cells[1]} {cells[2]}: {cells[6]}x < {floors[cells[2]]}x")
if bad:
    print("RATIO BELOW ITS FLOOR:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
echo "results in $OUT" >&2
