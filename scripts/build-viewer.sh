#!/usr/bin/env bash
# Builds the web viewer (viewer/dist) from the locked npm packages.
set -euo pipefail
cd "$(dirname "$0")/../viewer"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
