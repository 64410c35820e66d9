#!/usr/bin/env bash
# Runs the demo: installs what the build needs, then generates the sample city,
# ingests it into ./chizu-demo.gpkg and serves it on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
cargo run --release -- demo "$@"
