#!/usr/bin/env bash
# Export benchmark: the 1x and 10x (~250,000 parcels) sample stores exported
# with `chizu export` to GeoPackage, FlatGeobuf and zipped Shapefile in
# EPSG:6670, with peak memory from /usr/bin/time -v, beside `ogr2ogr` doing the
# same GeoPackage conversion on the same machine (the baseline).
#   scripts/export-bench.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release -q
BIN=$PWD/target/release/chizu
mkdir -p "$WORK"
for scale in 1 10; do
  dir="$WORK/x$scale"
  if [ ! -f "$dir/store.gpkg" ]; then
    mkdir -p "$dir/data-samples" && cp -r layers "$dir/" && cp data-samples/kashima_outline.geojson "$dir/data-samples/"
    (cd "$dir" && "$BIN" samples --scale "$scale" >/dev/null && "$BIN" ingest --layer parcels --store store.gpkg >/dev/null)
  fi
  n=$(ogrinfo -ro -so "$dir/store.gpkg" parcels | sed -n 's/^Feature Count: //p')
  measure() { # label, command...
    local label=$1; shift
    local log; log=$(mktemp)
    /usr/bin/time -v "$@" >/dev/null 2>"$log"
    local secs rss
    secs=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    awk -v s="$scale" -v l="$label" -v n="$n" -v t="$secs" -v r="$rss" \
      'BEGIN { printf "x%-3s %-28s %8d features  %7.2f s  %9.0f features/s  peak RSS %6.1f MB\n", s, l, n, t, n / t, r / 1024 }'
    rm -f "$log"
  }
  rm -f "$dir"/out.*
  measure "ogr2ogr gpkg (baseline)" ogr2ogr -f GPKG "$dir/out.ogr.gpkg" "$dir/store.gpkg" parcels -t_srs EPSG:6670
  measure "chizu export gpkg" "$BIN" export --store "$dir/store.gpkg" --layer parcels --format gpkg --crs EPSG:6670 --out "$dir/out.gpkg"
  measure "chizu export fgb" "$BIN" export --store "$dir/store.gpkg" --layer parcels --format fgb --crs EPSG:6670 --out "$dir/out.fgb"
  measure "chizu export shp (zip)" "$BIN" export --store "$dir/store.gpkg" --layer parcels --format shp --crs EPSG:6670 --out "$dir/out.zip"
  measure "chizu export csv" "$BIN" export --store "$dir/store.gpkg" --layer parcels --format csv --crs EPSG:6670 --out "$dir/out.csv"
done
