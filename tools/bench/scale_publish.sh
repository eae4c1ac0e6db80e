#!/usr/bin/env bash
# Publish latency and throughput on S3 + Postgres against the embedded
# default (issues 16 and 26; see tools/bench/README.md), on two S3 servers:
# s3s-fs (Rust, objects in files) and moto (Python, objects in memory).
#
#   tools/bench/scale_publish.sh            # N=400 publishes, 16 clients
#   N=200 CLIENTS=16 SKIP_BUILD=1 tools/bench/scale_publish.sh
#
# One script, one machine: moto's S3 server and a Postgres cluster started
# here on 127.0.0.1 (fsync on, the server's defaults), a registry on each
# setup, `bench-publish-load` with CLIENTS clients and N new packages
# against each. Prints a markdown table and the ratio (S3+Postgres over
# embedded). moto is Python and keeps objects in memory: its PUTs are not
# what AWS S3's cost, so the ratio says what cairn's own path costs, not
# what a deployment's bucket would.
#
# Environment: N (400), CLIENTS (16), SKIP_BUILD, KEEP, STEP_TIMEOUT (600),
# CAIRN_LOG (warn; `warn,cairn::layout::object=debug` logs each sync's
# object requests in the kept directory's *.serve files).
set -euo pipefail

N=${N:-400}
CLIENTS=${CLIENTS:-16}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --examples --bin cairn >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
CAIRN=$TARGET/cairn
LOAD=$TARGET/examples/bench-publish-load
for b in "$CAIRN" "$LOAD"; do [ -x "$b" ] || { log "missing $b"; exit 1; }; done
PG_BIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$PG_BIN/initdb" ] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-scale.XXXXXX")
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # Postgres runs under runuser: its own pid stops it.
    [ -f "$WORK/pg/data/postmaster.pid" ] && kill "$(head -1 "$WORK/pg/data/postmaster.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# S3: moto's server and s3s-fs (tools/test.sh installs it), one bucket each.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
S3_PORT=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf -X PUT "http://127.0.0.1:$S3_PORT/bench" >/dev/null && break; sleep 0.1; done
S3S_PORT=$(free_port)
mkdir -p "$WORK/s3s/bench"
s3s-fs --host 127.0.0.1 --port "$S3S_PORT" --access-key bench --secret-key bench "$WORK/s3s" >"$WORK/s3s.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$S3S_PORT/" && break; sleep 0.1; done

# Postgres: a fresh cluster as the postgres user (initdb refuses root).
PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
as_pg() { if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK/pg"; runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1
as_pg "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -k "$WORK/pg" -c listen_addresses=127.0.0.1 \
    >"$WORK/postgres.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.1; done
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres cairn_moto
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres cairn_s3s

# Runs the load against a registry in DATA; prints the load's JSON line.
run() {
    local data=$1 out=$WORK/$(basename "$1").serve
    CAIRN_RATE_LIMIT=off CAIRN_LOG=${CAIRN_LOG:-warn} "$CAIRN" serve --data "$data" --listen 127.0.0.1:0 >"$out" 2>&1 &
    PIDS+=($!)
    local url token
    for _ in $(seq 300); do url=$(sed -n 's/^listening on //p' "$out"); [ -n "$url" ] && break; sleep 0.1; done
    token=$(sed -n 's/.*(shown once): //p' "$out")
    [ -n "$url" ] && [ -n "$token" ] || { log "no server in $data"; cat "$out" >&2; exit 1; }
    timeout "$STEP_TIMEOUT" "$LOAD" --url "$url" --token "$token" --clients "$CLIENTS" --count "$N"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}
field() { sed -n "s/.*\"$2\":\([-0-9.][-0-9.]*\).*/\1/p" <<<"$1"; }

# A registry on S3 server $2 (port) and Postgres database $3, in $1.
scaled() {
    mkdir -p "$1"
    cat >"$1/registry.toml" <<EOF
[storage]
kind = "s3"
bucket = "bench"
endpoint = "http://127.0.0.1:$2"
region = "us-east-1"

[database]
url = "postgres://postgres@127.0.0.1:$PG_PORT/$3"
EOF
}
mkdir -p "$WORK/embedded"
scaled "$WORK/s3s-fs" "$S3S_PORT" cairn_s3s
scaled "$WORK/moto" "$S3_PORT" cairn_moto
log "embedded: $CLIENTS clients, $N publishes"
E=$(run "$WORK/embedded")
log "S3 (s3s-fs) + Postgres: $CLIENTS clients, $N publishes"
F=$(run "$WORK/s3s-fs")
log "S3 (moto) + Postgres: $CLIENTS clients, $N publishes"
M=$(run "$WORK/moto")

echo "| setup | clients | publishes | p50 ms | p99 ms | publishes/s |"
echo "| --- | --- | --- | --- | --- | --- |"
for row in "embedded:$E" "S3 (s3s-fs) + Postgres:$F" "S3 (moto) + Postgres:$M"; do
    name=${row%%:*}; j=${row#*:}
    echo "| $name | $CLIENTS | $(field "$j" ok) | $(field "$j" p50_ms) | $(field "$j" p99_ms) | $(field "$j" throughput_per_s) |"
done
echo
for row in "s3s-fs:$F" "moto:$M"; do
    name=${row%%:*}; j=${row#*:}
    python3 - "$name" "$(field "$E" throughput_per_s)" "$(field "$j" throughput_per_s)" \
        "$(field "$E" p50_ms)" "$(field "$j" p50_ms)" <<'PY'
import sys
name = sys.argv[1]
e, s, ep, sp = map(float, sys.argv[2:])
print(f"{name}: throughput ratio (S3+Postgres / embedded) {s / e:.2f}; p50 ratio {sp / ep:.2f}")
PY
done
