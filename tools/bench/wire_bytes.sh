#!/usr/bin/env bash
# Bytes on the wire for a cold `cargo generate-lockfile` of 300 crates with
# crates.io-like version counts, with and without compression, from
# `cairn serve` and from nginx with the shipped configuration
# (tools/deploy/nginx/) on the same static root. See tools/bench/README.md,
# "Wire bytes".
#
#   tools/bench/wire_bytes.sh
#   SKIP_BUILD=1 RUNS=1 tools/bench/wire_bytes.sh
#
# A fresh registry: `cairn serve` (CAIRN_RATE_LIMIT=off), then
# tools/bench/cargo/gen.py publishes LAYERS x WIDTH crates through cargo's
# publish endpoint with 1 + Exp(VERSIONS_MEAN - 1) versions each (the
# distribution of bench-prefill; crates.io has about 7 versions per crate).
# nginx serves the same static root. cargo reaches each server through
# tools/bench/wire/proxy.py, which counts the bytes of every answer: as cargo
# asks (its own Accept-Encoding: compressed) and with Accept-Encoding removed
# (identity: the same requests, uncompressed). Each measurement is a cold
# run: a fresh CARGO_HOME, no Cargo.lock. Prints a table.
#
# Environment:
#   LAYERS WIDTH   the DAG: LAYERS x WIDTH crates                  (10 x 30)
#   FANOUT         dependencies per crate on the next layer        (3)
#   VERSIONS_MEAN  mean versions per crate                         (7)
#   RUNS           runs per server and variant (bytes are medians) (3)
#   SKIP_BUILD     1 = do not run cargo build                      (0)
#   KEEP           1 = keep the temp dir                           (0)
#   BENCH_TMP      parent of the temp dir                          ($TMPDIR or /tmp)
#   STEP_TIMEOUT   seconds allowed to any one step                 (900)
set -euo pipefail

LAYERS=${LAYERS:-10}
WIDTH=${WIDTH:-30}
FANOUT=${FANOUT:-3}
VERSIONS_MEAN=${VERSIONS_MEAN:-7}
RUNS=${RUNS:-3}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[wire %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for c in cargo python3 nginx curl timeout; do command -v "$c" >/dev/null || { log "missing command: $c"; exit 1; }; done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || { log "missing $CAIRN"; exit 1; }

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-wire.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 1. The registry.
log "starting cairn serve"
CAIRN_RATE_LIMIT=off CAIRN_LOG=warn timeout 7200 "$CAIRN" serve --data "$WORK/data" --listen 127.0.0.1:0 \
    >"$WORK/serve.out" 2>"$WORK/serve.log" &
PIDS+=($!)
for _ in $(seq 600); do grep -q '^public key:' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
TOKEN=$(sed -n 's/.*(shown once): //p' "$WORK/serve.out")
[ -n "$URL" ] && [ -n "$TOKEN" ] || { log "cairn serve did not start: $(cat "$WORK/serve.log")"; exit 1; }
log "cairn on $URL; publishing $((LAYERS * WIDTH)) crates, mean $VERSIONS_MEAN versions"
timeout "$STEP_TIMEOUT" python3 tools/bench/cargo/gen.py --url "$URL" --token "$TOKEN" --project "$WORK/project" \
    --layers "$LAYERS" --width "$WIDTH" --fanout "$FANOUT" --versions-mean "$VERSIONS_MEAN"

# 2. nginx with the shipped configuration over the same static root.
NGINX_PORT=$(free_port)
"$ROOT/tools/deploy/nginx/render.sh" "$WORK/data" "127.0.0.1:$NGINX_PORT" "${URL#http://}" "$WORK/nginx" 1 >/dev/null
timeout 7200 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" &
PIDS+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PORT/index/config.json" 2>/dev/null && break; sleep 0.1; done
log "nginx on 127.0.0.1:$NGINX_PORT"

# 3. One cold run through a fresh counting proxy: prints "BYTES REQUESTS ACCEPT".
export CARGO_TARGET_DIR=$WORK/target CARGO_TERM_COLOR=never
unset CARGO_NET_OFFLINE CARGO_REGISTRIES_CRATES_IO_PROTOCOL
measure() { # SERVER_ADDR VARIANT
    local port stats proxy
    port=$(free_port)
    stats=$WORK/stats.$RANDOM
    local flag=
    [ "$2" = identity ] && flag=--identity
    python3 tools/bench/wire/proxy.py "$port" "$1" "$stats" $flag &
    proxy=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    rm -rf "$WORK/home" "$WORK/project/Cargo.lock"
    mkdir -p "$WORK/home"
    tools/bench/cargo/replace-crates-io.sh "http://127.0.0.1:$port" >"$WORK/home/config.toml"
    CARGO_HOME=$WORK/home timeout "$STEP_TIMEOUT" cargo generate-lockfile --quiet --manifest-path "$WORK/project/Cargo.toml"
    for _ in $(seq 50); do [ -s "$stats" ] && break; sleep 0.1; done
    sleep 0.5   # every connection's close is in the file
    kill "$proxy" 2>/dev/null || true
    wait "$proxy" 2>/dev/null || true
    cat "$stats"
}
: >"$WORK/results"
for run in $(seq "$RUNS"); do
    for server in "cairn ${URL#http://}" "nginx 127.0.0.1:$NGINX_PORT"; do
        set -- $server
        for variant in compressed identity; do
            r=$(measure "$2" "$variant")
            log "run $run: $1 $variant: $r"
            echo "$1 $variant $r" >>"$WORK/results"
        done
    done
done
locked=$(grep -c '^checksum = ' "$WORK/project/Cargo.lock")
versions=$(find "$WORK/data/static/blobs/sha256" -name '*.minisig' | wc -l)

python3 - "$WORK/results" "$locked" "$versions" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"Cold `cargo generate-lockfile`: {sys.argv[2]} crates locked, {sys.argv[3]} versions published; "
      f"cargo's Accept-Encoding: {rows[0][4]}")
print()
print("| server | compressed (as cargo asks) | identity (Accept-Encoding removed) | compressed / identity | requests |")
print("| --- | ---: | ---: | ---: | ---: |")
for s in ("cairn", "nginx"):
    med = {v: statistics.median(int(r[2]) for r in rows if r[0] == s and r[1] == v) for v in ("compressed", "identity")}
    req = statistics.median(int(r[3]) for r in rows if r[0] == s)
    print(f"| {s} | {med['compressed']:,} B | {med['identity']:,} B | {med['compressed'] / med['identity']:.3f} | {req:.0f} |")
PY
