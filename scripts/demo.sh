#!/usr/bin/env bash
# Runs the demo: installs what the build needs, then generates the sample city,
# ingests it into ./chizu-demo.gpkg, builds the web viewer and serves the maps on
# http://127.0.0.1:8080 (public map) and http://127.0.0.1:8080/staff (staff map).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh --demo
scripts/build-viewer.sh
cargo run --release -- demo "$@"
