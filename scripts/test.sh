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
cargo clippy --all-targets -- -D warnings
# The benches are built (not run) so that they keep compiling.
cargo build --benches
cargo test --all -- --test-threads 2
