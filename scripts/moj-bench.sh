#!/usr/bin/env bash
# MOJ map XML ingest speed: the Joetsu file of ../shared/data/moj (1,051
# parcels, 13.7 MB of XML) and the sample city's parcels.zip (~25,800 parcels
# in one sheet per district, one placed from control points) ingested by `chizu ingest`
# (read, chain rings, reproject, validate, store), beside `ogr2ogr` writing the
# same parcels from a GeoPackage in their zone to a GeoPackage in EPSG:4326
# (the baseline: GDAL has no MOJ XML reader). Median of RUNS runs each.
#   scripts/moj-bench.sh [WORKDIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
RUNS=${2:-5}
cargo build --release -q
BIN=$PWD/target/release/chizu
SHARED=$(cd ../shared/data/moj && pwd)
mkdir -p "$WORK/layers" "$WORK/data-samples"
cp layers/roles.toml "$WORK/layers/"
cp data-samples/kashima_outline.geojson "$WORK/data-samples/"
[ -f "$WORK/data-samples/parcels.zip" ] || (cd "$WORK" && "$BIN" samples >/dev/null)
fields='fields = [ { name = "fude_id", type = "text", source = "筆ID" }, { name = "oaza", type = "text", source = "大字名" }, { name = "chiban", type = "text", source = "地番", required = true } ]'
cat > "$WORK/layers/joetsu.toml" <<TOML
id = "joetsu"
title = { ja = "上越市 地番図" }
source = { path = "$SHARED/15222-1107-1553.zip", format = "mojxml" }
geometry = "polygon"
zoom = { min = 12, max = 22 }
invalid_geometry = "repair"
$fields
[access]
read = ["public"]
TOML
cat > "$WORK/layers/kashima.toml" <<TOML
id = "kashima"
title = { ja = "鹿島市 地番図 (sample)" }
source = { path = "../data-samples/parcels.zip", format = "mojxml", mojxml = { arbitrary = "control_points", control_points = "../data-samples/parcels_control.toml" } }
geometry = "polygon"
zoom = { min = 12, max = 22 }
invalid_geometry = "repair"
$fields
[access]
read = ["public"]
TOML
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
timed() { # command... -> seconds
  local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
for layer in joetsu kashima; do
  store="$WORK/$layer.gpkg"
  chizu_s=$(for _ in $(seq "$RUNS"); do rm -f "$store"*; (cd "$WORK" && timed "$BIN" ingest --layer "$layer" --store "$store"); done | median)
  n=$(ogrinfo -ro -so "$store" "$layer" | sed -n 's/^Feature Count: //p')
  zone=$([ "$layer" = joetsu ] && echo 6676 || echo 6670)
  (cd "$WORK" && "$BIN" export --store "$store" --layer "$layer" --format gpkg --crs "EPSG:$zone" --out "$WORK/$layer-zone.gpkg" >/dev/null)
  ogr_s=$(for _ in $(seq "$RUNS"); do rm -f "$WORK/$layer-ogr.gpkg"; timed ogr2ogr -f GPKG "$WORK/$layer-ogr.gpkg" "$WORK/$layer-zone.gpkg" -t_srs EPSG:4326; done | median)
  awk -v l="$layer" -v n="$n" -v c="$chizu_s" -v o="$ogr_s" 'BEGIN {
    printf "%-8s %6d parcels  chizu ingest (MOJ XML) %6.3f s = %8.0f features/s   ogr2ogr (GPKG, baseline) %6.3f s = %8.0f features/s   ratio %.2f\n",
      l, n, c, n / c, o, n / o, o / c }'
done
