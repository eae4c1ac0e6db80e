#!/usr/bin/env bash
# Publish latency and throughput on S3 + Postgres against the embedded
# default (issues 16 and 26; see tools/bench/README.md), on two S3 servers:
# s3s-fs (Rust, objects in files) and moto (Python, objects in memory).
#
#   tools/bench/scale_publish.sh            # N=400 publishes, 16 clients
#   N=200 CLIENTS=16 SKIP_BUILD=1 tools/bench/scale_publish.sh
#   N=200 ROUNDS=5 SKIP_BUILD=1 tools/bench/scale_publish.sh   # medians
#
# One script, one machine: moto's S3 server and a Postgres cluster started
# here on 127.0.0.1 (fsync on, the server's defaults), a registry on each
# setup, `bench-publish-load` with CLIENTS clients and N new packages
# against each. Prints a markdown table and the ratio (S3+Postgres over
# embedded). moto is Python and keeps objects in memory: its PUTs are not
# what AWS S3's cost, so the ratio says what cairn's own path costs, not
# what a deployment's bucket would.
#
# Environment: N (400), CLIENTS (16), ROUNDS (1), SKIP_BUILD, KEEP, STEP_TIMEOUT (600),
# CAIRN_LOG (warn; `warn,cairn::layout::object=debug` logs each sync's
# object requests in the kept directory's *.serve files).
set -euo pipefail

N=${N:-400}
CLIENTS=${CLIENTS:-16}
ROUNDS=${ROUNDS:-1}
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
    # Shown at the first start only: kept for the next rounds.
    token=$(sed -n 's/.*(shown once): //p' "$out")
    if [ -n "$token" ]; then echo "$token" >"$data.token"; else token=$(cat "$data.token" 2>/dev/null || true); fi
    [ -n "$url" ] && [ -n "$token" ] || { log "no server in $data"; cat "$out" >&2; exit 1; }
    timeout "$STEP_TIMEOUT" "$LOAD" --url "$url" --token "$token" --clients "$CLIENTS" --count "$N"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}

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
# ROUNDS rounds, the three setups one after the other in each, so a load
# that comes and goes weighs on all three; medians over the rounds, and
# the median of each round's ratio.
for r in $(seq "$ROUNDS"); do
    log "round $r/$ROUNDS: embedded, $CLIENTS clients, $N publishes"
    run "$WORK/embedded" >>"$WORK/embedded.jsonl"
    log "round $r/$ROUNDS: S3 (s3s-fs) + Postgres"
    run "$WORK/s3s-fs" >>"$WORK/s3s-fs.jsonl"
    log "round $r/$ROUNDS: S3 (moto) + Postgres"
    run "$WORK/moto" >>"$WORK/moto.jsonl"
done

python3 - "$WORK" "$CLIENTS" <<'PY'
import json, statistics, sys
work, clients = sys.argv[1], sys.argv[2]
def rounds(name):
    return [json.loads(l) for l in open(f"{work}/{name}.jsonl") if l.strip()]
setups = [("embedded", "embedded"), ("S3 (s3s-fs) + Postgres", "s3s-fs"), ("S3 (moto) + Postgres", "moto")]
runs = {key: rounds(key) for _, key in setups}
med = lambda key, field: statistics.median(r[field] for r in runs[key])
print(f"| setup | clients | publishes (each round) | p50 ms | p99 ms | publishes/s |")
print("| --- | --- | --- | --- | --- | --- |")
for label, key in setups:
    ok = "/".join(str(r["ok"]) for r in runs[key])
    print(f"| {label} | {clients} | {ok} | {med(key, 'p50_ms'):.1f} | {med(key, 'p99_ms'):.1f} | {med(key, 'throughput_per_s'):.1f} |")
print()
for _, key in setups[1:]:
    t = [s["throughput_per_s"] / e["throughput_per_s"] for e, s in zip(runs["embedded"], runs[key])]
    p = [s["p50_ms"] / e["p50_ms"] for e, s in zip(runs["embedded"], runs[key])]
    each = ", ".join(f"{x:.2f}" for x in t)
    print(f"{key}: throughput ratio (S3+Postgres / embedded) {statistics.median(t):.2f} (rounds: {each}); p50 ratio {statistics.median(p):.2f}")
PY
