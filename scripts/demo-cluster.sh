#!/usr/bin/env bash
# The scale-out demo: a PostgreSQL/PostGIS database, the sample city ingested
# into it, two stateless chizu instances (ports 8081 and 8082) and HAProxy in
# front of them on http://127.0.0.1:8080, checking each instance's /ready.
# Stop with Ctrl-C: the instances, HAProxy and the database stop, and the
# database's directory (./.cluster) is kept for the next run.
#   scripts/demo-cluster.sh [port]
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8080}
scripts/setup-deps.sh --cluster
scripts/build-viewer.sh
# CHIZU_BIN runs another build (e.g. target/debug/chizu) instead of the release one.
bin=${CHIZU_BIN:-target/release/chizu}
[ -n "${CHIZU_BIN:-}" ] || cargo build --release
pg_bin=/usr/lib/postgresql/15/bin
dir=$(pwd)/.cluster
pg_port=55433
url="postgres://postgres@127.0.0.1:$pg_port/chizu"

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$dir"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
if [ ! -d "$dir/data" ]; then
  as_postgres "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
  -o "-p $pg_port -k $dir -c listen_addresses=127.0.0.1" -w start >/dev/null
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null || true
}
trap cleanup EXIT INT TERM
psql "postgres://postgres@127.0.0.1:$pg_port/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'chizu'" | grep -q 1 \
  || psql "postgres://postgres@127.0.0.1:$pg_port/postgres" -qc "CREATE DATABASE chizu"

if [ ! -f data-samples/parcels.shp ]; then "$bin" samples; fi
"$bin" ingest --all --store "$url"
password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
if "$bin" user list --store "$url" | grep -q '^demo-staff'; then
  echo "$password" | "$bin" user passwd demo-staff --store "$url" 2>/dev/null
else
  echo "$password" | "$bin" user add demo-staff --role staff --role water --role planning --store "$url" 2>/dev/null
fi

for instance_port in 8081 8082; do
  "$bin" serve --store "$url" --bind "127.0.0.1:$instance_port" \
    --public-url "http://127.0.0.1:$port" --trusted-proxy 127.0.0.1 >"$dir/chizu-$instance_port.log" 2>&1 &
  pids+=($!)
done
cat >"$dir/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
frontend chizu
  bind 127.0.0.1:$port
  default_backend instances
backend instances
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  server a 127.0.0.1:8081 check inter 1s fall 2 rise 1
  server b 127.0.0.1:8082 check inter 1s fall 2 rise 1
CFG
haproxy -f "$dir/haproxy.cfg" -db &
pids+=($!)
for _ in $(seq 1 60); do
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
cat <<MSG

chizu on PostgreSQL/PostGIS ($url), two instances behind HAProxy:
  public map: http://127.0.0.1:$port/
  staff map:  http://127.0.0.1:$port/staff   (user demo-staff, password $password)
  instances:  http://127.0.0.1:8081/ and http://127.0.0.1:8082/ (logs in $dir)
  a new version (any shell): $bin ingest --layer parcels --store $url
Ctrl-C stops everything.
MSG
wait
