#!/usr/bin/env bash
# The public map's first view, today's viewer against an earlier commit's, on
# the same data and server binary in the same run: bytes over the wire,
# requests and time to the first drawn map (viewer/tests/page-weight.mjs).
#   scripts/page-weight.sh [BASELINE_COMMIT]    (default: the commit before the map tools, 80f1e72)
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=${1:-80f1e72}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; git worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cargo build --release -q
npm --prefix viewer ci --silent && npm --prefix viewer run build --silent >/dev/null
git worktree add -q "$work/old" "$baseline"
(cd "$work/old/viewer" && npm ci --silent && npm run build --silent >/dev/null)
bin=target/release/chizu
"$bin" samples --out "$work/data" >/dev/null
cp data-samples/kashima_outline.geojson "$work/data/"
cp -r layers "$work/layers"
sed -i "s#\.\./data-samples/#$work/data/#g" "$work"/layers/*.toml
"$bin" ingest --all --layers "$work/layers" --store "$work/city.gpkg" >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
new_port=$(port); old_port=$(port)
"$bin" serve --store "$work/city.gpkg" --bind "127.0.0.1:$new_port" --viewer viewer/dist --styles styles &
"$bin" serve --store "$work/city.gpkg" --bind "127.0.0.1:$old_port" --viewer "$work/old/viewer/dist" --styles "$work/old/styles" &
for p in $new_port $old_port; do
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$p/ready" && break; sleep 0.2; done
done
view='#15/33.1036/130.0991'
echo "baseline $baseline: http://127.0.0.1:$old_port ; today: http://127.0.0.1:$new_port"
(cd viewer && node tests/page-weight.mjs "http://127.0.0.1:$old_port/$view" "http://127.0.0.1:$new_port/$view")
