#!/usr/bin/env bash
# Installs what chizu's build and tests need on Debian 12, only when missing:
# cmake (PROJ is built from source by the proj crate), GDAL and PROJ command-line
# tools (independent cross-checks in tests), and Python's mapbox-vector-tile
# and OWSLib (independent clients).
set -euo pipefail
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v ogrinfo >/dev/null || need_apt+=(gdal-bin)
command -v cs2cs >/dev/null || need_apt+=(proj-bin)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Independent clients for the tests: an MVT decoder and OWSLib (OGC API - Features).
for module_package in mapbox_vector_tile:mapbox-vector-tile owslib:OWSLib; do
  module=${module_package%%:*}; package=${module_package#*:}
  if ! python3 -c "import $module" 2>/dev/null; then
    python3 -m pip install -q "$package" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "$package"
  fi
done
