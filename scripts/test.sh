#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, then runs the
# unit, router and end-to-end tests (which start the real binary on free ports),
# including the web maps in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
# The browser tests drive the built viewer (and playwright-core from its lock file).
scripts/build-viewer.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The benches are built (not run) so that they keep compiling.
cargo build --benches
cargo test --all -- --test-threads 2
# The behaviour suite again on PostgreSQL/PostGIS (each test starts a
# throwaway cluster of its own), with the layers served from memory and then
# from the database; tests/postgis_e2e.rs runs in the line above.
# (The tests run a debug build two at a time: queries get a longer budget.)
for mode in memory database; do
  CHIZU_TEST_STORE=postgres CHIZU_SERVE_LAYERS=$mode CHIZU_QUERY_BUDGET=30 cargo test \
    --test permissions_e2e --test features_e2e --test export_e2e --test tiles_e2e \
    --test ingest_e2e --test operations_e2e --test web_e2e -- --test-threads 2
done
