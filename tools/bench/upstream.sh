#!/usr/bin/env bash
# cargo through cairn in front of an upstream, against cargo straight from
# the upstream (SPEC section 16; see tools/bench/README.md, "Upstreams").
#
#   tools/bench/upstream.sh              # 5 runs of each
#   RUNS=9 SKIP_BUILD=1 tools/bench/upstream.sh
#
# The upstream is ../shared/fixtures/crates-io-mini (38 crates' real
# crates.io lines, the 40 .crate files of its seed project) served by
# nginx on 127.0.0.1. Each run, in alternating order:
#
#   direct      a fresh CARGO_HOME whose crates.io is the upstream itself:
#               `cargo generate-lockfile` + `cargo fetch` of the seed project
#   cairn-cold  the same against a NEW cairn (release build, empty data
#               directory, [[upstreams]] = the nginx): every index file and
#               .crate is a miss (fetched, checked, committed, signed, logged)
#   cairn-warm  the same again with a fresh CARGO_HOME against that cairn,
#               whose cache is now warm (static reads)
#
# Then the added latency of one index-file miss: for each of the 38
# crates, on a new cairn, `curl` of its index file through cairn (a miss)
# minus `curl` of the same file straight from nginx; p50 and p99 over all
# runs. Prints medians (ms, wall time of the cargo processes) and the
# ratios cairn-cold / direct and cairn-warm / direct.
#
# TLS=1 runs it as deployed: cargo speaks HTTPS (HTTP/2) to the upstream's
# nginx (direct) and to cairn's shipped nginx configuration
# (tools/deploy/nginx, rendered with TLS_CERT), which serves the static
# root and sends the misses to cairn; cairn reads the upstream over plain
# HTTP on loopback (its client trusts only public CAs). Over HTTP/1.1
# cargo asks for index files one or two at a time, so each miss's commit
# is on the critical path; over HTTP/2 it asks for a level at once.
#
# Environment: RUNS (5), SKIP_BUILD (0 = cargo build --release first), TLS (0),
# KEEP (0 = remove the temp dir), BENCH_TMP (parent of the temp dir),
# CAIRN_LOG (warn; `warn,cairn::publish=debug` logs each write group's times).
set -euo pipefail

RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
FIXTURE="$ROOT/../shared/fixtures/crates-io-mini"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAILED: $1"; [ -n "${2:-}" ] && tail -20 "$2" >&2; exit 1; }
for c in nginx curl python3; do command -v "$c" >/dev/null || fail "missing command: $c"; done
[ -d "$FIXTURE" ] || fail "no fixture at $FIXTURE"
CARGO=$(rustup which cargo 2>/dev/null || command -v cargo)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building cairn (release)"
    cargo build --release --quiet --bin cairn
fi
CAIRN="${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn"
[ -x "$CAIRN" ] || fail "no release binary at $CAIRN (unset SKIP_BUILD)"

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-bench-upstream.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream: the fixture under nginx. With TLS=1 also over HTTPS with
# HTTP/2 (what cargo reads directly), with a certificate made here.
UP_PORT=$(free_port)
UP="http://127.0.0.1:$UP_PORT"
mkdir -p "$WORK/upstream" "$WORK/nginx/tmp"
cp -R "$FIXTURE/index" "$FIXTURE/crates" "$WORK/upstream/"
sed "s|@BASE@|$UP|g" "$FIXTURE/config.json.template" >"$WORK/upstream/index/config.json"
TLS_SERVER=""
DIRECT=$UP
if [ "${TLS:-0}" = 1 ]; then
    command -v openssl >/dev/null || fail "missing command: openssl"
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -days 1 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>"$WORK/tls/openssl.log" ||
        fail "openssl" "$WORK/tls/openssl.log"
    export CARGO_HTTP_CAINFO="$WORK/tls/cert.pem"
    UPS_PORT=$(free_port)
    DIRECT="https://127.0.0.1:$UPS_PORT"
    # The same files, with the crates' download URL on HTTPS too.
    mkdir -p "$WORK/upstream-tls/index"
    ln -s "$WORK/upstream/crates" "$WORK/upstream-tls/crates"
    (cd "$WORK/upstream/index" && find . -mindepth 1 -maxdepth 1 ! -name config.json \
        -exec ln -s "$WORK/upstream/index/{}" "$WORK/upstream-tls/index/{}" \;)
    sed "s|@BASE@|$DIRECT|g" "$FIXTURE/config.json.template" >"$WORK/upstream-tls/index/config.json"
    TLS_SERVER="server { listen 127.0.0.1:$UPS_PORT ssl http2; root $WORK/upstream-tls;
        ssl_certificate $WORK/tls/cert.pem; ssl_certificate_key $WORK/tls/key.pem; }"
fi
# nginx's workers (an unprivileged user when started as root) read it.
chmod -R a+rX "$WORK"
cat >"$WORK/nginx/nginx.conf" <<EOF
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
    types { application/json json; }
    default_type application/octet-stream;
    server { listen 127.0.0.1:$UP_PORT; root $WORK/upstream; }
    $TLS_SERVER
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "$UP/index/config.json" >/dev/null && break; sleep 0.1; done
curl -sf "$UP/index/config.json" >/dev/null || fail "nginx did not start" "$WORK/nginx/error.log"
if [ "${TLS:-0}" = 1 ]; then
    curl -sf --http2 --cacert "$WORK/tls/cert.pem" "$DIRECT/index/config.json" >/dev/null ||
        fail "nginx over TLS did not answer" "$WORK/nginx/error.log"
fi

# A new cairn in front of the upstream; sets CAIRN_URL and CAIRN_PID.
# With TLS=1 also the shipped nginx in front of it (TLS, HTTP/2), whose
# URL is cairn's public one; sets FRONT_URL (cairn's own URL without TLS)
# and FRONT_PID.
start_cairn() {
    local data="$WORK/cairn-$1" front_port="" public=()
    mkdir -p "$data"
    printf '[[upstreams]]\nname = "crates-io"\nindex = "sparse+%s/index/"\n' "$UP" >"$data/registry.toml"
    if [ "${TLS:-0}" = 1 ]; then
        front_port=$(free_port)
        public=(--public-url "https://127.0.0.1:$front_port")
    fi
    CAIRN_RATE_LIMIT=off CAIRN_LOG=${CAIRN_LOG:-warn} "$CAIRN" serve --data "$data" --listen 127.0.0.1:0 \
        "${public[@]}" >"$data.out" 2>"$data.err" &
    CAIRN_PID=$!
    PIDS+=($CAIRN_PID)
    for _ in $(seq 100); do grep -q '^public key:' "$data.out" 2>/dev/null && break; sleep 0.1; done
    CAIRN_URL=$(sed -n 's/^listening on //p' "$data.out")
    [ -n "$CAIRN_URL" ] || fail "cairn did not start" "$data.err"
    FRONT_URL=$CAIRN_URL FRONT_PID=""
    if [ -n "$front_port" ]; then
        local conf
        conf=$(TLS_CERT="$WORK/tls/cert.pem" TLS_KEY="$WORK/tls/key.pem" BENCH=1 tools/deploy/nginx/render.sh \
            "$data" "127.0.0.1:$front_port" "${CAIRN_URL#http://}" "$data.nginx")
        nginx -p "$data.nginx" -c "$conf" -g 'daemon off;' 2>"$data.nginx.err" &
        FRONT_PID=$!
        PIDS+=($FRONT_PID)
        FRONT_URL="https://127.0.0.1:$front_port"
        for _ in $(seq 100); do curl -sf --cacert "$WORK/tls/cert.pem" "$FRONT_URL/index/config.json" >/dev/null && break; sleep 0.1; done
        curl -sf --cacert "$WORK/tls/cert.pem" "$FRONT_URL/index/config.json" >/dev/null ||
            fail "nginx in front of cairn did not start" "$data.nginx/error.log"
    fi
}

stop_cairn() {
    kill "$CAIRN_PID" $FRONT_PID 2>/dev/null || true
    wait "$CAIRN_PID" $FRONT_PID 2>/dev/null || true
}

# `cargo generate-lockfile` + `cargo fetch` of the seed project with a new
# CARGO_HOME against index URL $2; prints the milliseconds it took.
cargo_run() {
    local name=$1 index=$2 dir="$WORK/run-$1"
    rm -rf "$dir"
    mkdir -p "$dir/home" "$dir/project/src"
    cp "$FIXTURE/Cargo.toml" "$dir/project/"
    cp "$FIXTURE/src/lib.rs" "$dir/project/src/"
    printf '[source.crates-io]\nreplace-with = "up"\n[source.up]\nregistry = "sparse+%s/index/"\n[net]\nretry = 0\n' \
        "$index" >"$dir/home/config.toml"
    local start end
    start=$(date +%s%N)
    (cd "$dir/project" && CARGO_HOME="$dir/home" "$CARGO" generate-lockfile --quiet \
        && CARGO_HOME="$dir/home" "$CARGO" fetch --quiet) >"$dir.log" 2>&1 || fail "cargo ($name)" "$dir.log"
    end=$(date +%s%N)
    cmp -s "$dir/project/Cargo.lock" "$FIXTURE/Cargo.lock" || fail "$name resolved another Cargo.lock"
    [ "$(ls "$dir/home/registry/cache/"*/ | wc -l)" = 40 ] || fail "$name did not fetch the 40 crates"
    echo $(((end - start) / 1000000))
}

NAMES=$(cd "$FIXTURE/index" && find . -type f | sed 's|^\./||' | sort)
: >"$WORK/direct.ms"; : >"$WORK/cold.ms"; : >"$WORK/warm.ms"; : >"$WORK/miss.ms"
for i in $(seq "$RUNS"); do
    log "run $i of $RUNS"
    start_cairn "run$i"
    if [ $((i % 2)) = 1 ]; then
        cargo_run "direct-$i" "$DIRECT" >>"$WORK/direct.ms"
        cargo_run "cold-$i" "$FRONT_URL" >>"$WORK/cold.ms"
    else
        cargo_run "cold-$i" "$FRONT_URL" >>"$WORK/cold.ms"
        cargo_run "direct-$i" "$DIRECT" >>"$WORK/direct.ms"
    fi
    cargo_run "warm-$i" "$FRONT_URL" >>"$WORK/warm.ms"
    stop_cairn
    # One index-file miss per crate, on a new cairn, less the direct read.
    start_cairn "miss$i"
    for path in $NAMES; do
        d=$(curl -sf -o /dev/null -w '%{time_total}' "$UP/index/$path")
        c=$(curl -sf -o /dev/null -w '%{time_total}' "$CAIRN_URL/index/$path") || fail "miss of $path" "$WORK/cairn-miss$i.err"
        python3 -c "print(round(($c - $d) * 1000, 3))" >>"$WORK/miss.ms"
    done
    stop_cairn
done

python3 - "$WORK" "$RUNS" "${TLS:-0}" <<'EOF'
import statistics, sys
work, runs, tls = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
print("cargo over HTTPS with HTTP/2, cairn behind the shipped nginx" if tls else "cargo over HTTP/1.1")
read = lambda n: [float(x) for x in open(f"{work}/{n}.ms").read().split()]
direct, cold, warm, miss = read("direct"), read("cold"), read("warm"), read("miss")
med = statistics.median
print(f"| {runs} runs | median ms | min ms |")
print("|---|---:|---:|")
for name, xs in [("direct (cargo straight from nginx)", direct), ("through cairn, cold cache", cold), ("through cairn, warm cache", warm)]:
    print(f"| {name} | {med(xs):.0f} | {min(xs):.0f} |")
print(f"\ncold / direct = {med(cold) / med(direct):.2f} (target <= 1.5); warm / direct = {med(warm) / med(direct):.2f} (target <= 1.1)")
miss.sort()
p99 = miss[min(len(miss) - 1, int(round(0.99 * (len(miss) - 1))))]
print(f"added latency of one index-file miss ({len(miss)} misses): p50 {med(miss):.1f} ms, p99 {p99:.1f} ms")
EOF
