#!/usr/bin/env bash
# Installs what chizu needs on Debian 12, only when missing.
#   scripts/setup-deps.sh          everything the tests need
#   scripts/setup-deps.sh --demo   only what building and running the demo needs
#   scripts/setup-deps.sh --cluster  the demo's needs, PostgreSQL/PostGIS and HAProxy
# Build and run: cmake, gcc and make (PROJ and jemalloc are built from source), Node.js and
# npm (the web viewer's build), Noto Sans CJK (map labels and the pages' text).
# Tests also: GDAL and PROJ command-line tools (independent cross-checks),
# Chromium (browser tests), Python's mapbox-vector-tile, OWSLib, fontTools and
# prometheus-client.
set -euo pipefail
demo_only=false
cluster=false
[ "${1:-}" = "--demo" ] && demo_only=true
[ "${1:-}" = "--cluster" ] && demo_only=true && cluster=true
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
# A C compiler and make: PROJ (through cmake) and jemalloc are built from source.
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v npm >/dev/null || need_apt+=(nodejs npm)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need_apt+=(fonts-noto-cjk)
# PostgreSQL 15 with PostGIS 3: the tests run the behaviour suite on it too.
if ! $demo_only || $cluster; then
  [ -f /usr/share/postgresql/15/extension/postgis.control ] || need_apt+=(postgresql-15-postgis-3)
fi
$cluster && { command -v haproxy >/dev/null || need_apt+=(haproxy); }
if ! $demo_only; then
  command -v ogrinfo >/dev/null || need_apt+=(gdal-bin)
  command -v cs2cs >/dev/null || need_apt+=(proj-bin)
  command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v pdftoppm >/dev/null || need_apt+=(poppler-utils)
  # A plain static file server for the site `chizu publish-site` writes.
  command -v nginx >/dev/null || need_apt+=(nginx-light)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
$demo_only && exit 0
# Independent clients for the tests: an MVT decoder, OWSLib (OGC API - Features),
# fontTools (glyph metrics), the Prometheus client's text parser and the
# Protomaps PMTiles reader.
for module_package in mapbox_vector_tile:mapbox-vector-tile owslib:OWSLib fontTools:fonttools prometheus_client:prometheus-client pmtiles:pmtiles; do
  module=${module_package%%:*}; package=${module_package#*:}
  if ! python3 -c "import $module" 2>/dev/null; then
    python3 -m pip install -q "$package" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "$package"
  fi
done
# QGIS's own MapLibre style converter (3.22 in Debian 12, for the system
# Python): the tests load the served styles with it. Without the recommended
# packages (a desktop's worth): the converter needs only the core library.
if [ ! -d /usr/lib/python3/dist-packages/qgis ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  [ ${#need_apt[@]} -gt 0 ] || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-qgis >/dev/null
fi
