#!/usr/bin/env bash
# Cold `cargo generate-lockfile` of a project with 300 transitive dependencies
# (see tools/bench/README.md, section "cargo generate-lockfile").
#
#   tools/bench/cargo_lockfile.sh
#   RUNS=20 LAYERS=10 WIDTH=30 VERSIONS=3 tools/bench/cargo_lockfile.sh
#
# A fresh registry in a temp dir: `cairn serve` on 127.0.0.1 with
# CAIRN_RATE_LIMIT=off; tools/bench/cargo/gen.py publishes a layered DAG of
# LAYERS x WIDTH synthetic crates through cargo's publish endpoint and writes
# a consumer project depending on the first layer. Then the same static root
# is served by nginx on 127.0.0.1 (its default headers: ETag and
# Last-Modified, no Cache-Control), and hyperfine times a cold
# `cargo generate-lockfile` against each (a fresh CARGO_HOME every run, no
# Cargo.lock), crates.io replaced by the server under test, in ROUNDS blocks
# that alternate the two servers. Prints a markdown
# table with the medians and the ratio. Every step has a time limit; both
# servers are stopped at the end, on error and on Ctrl-C.
#
# Environment:
#   RUNS          timed runs per server                          (20)
#   ROUNDS        alternating blocks the runs are split into     (4)
#   LAYERS WIDTH  DAG shape: LAYERS x WIDTH crates               (10 x 30)
#   FANOUT        dependencies per crate on the next layer       (3)
#   VERSIONS      versions per crate (1.0.0, 1.1.0, ...)         (3)
#   SKIP_BUILD    1 = do not run cargo build                     (0)
#   KEEP          1 = keep the temp dir                           (0)
#   BENCH_TMP     parent of the temp dir                          ($TMPDIR or /tmp)
#   STEP_TIMEOUT  seconds allowed to any one step                 (900)
set -euo pipefail

RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-4}
LAYERS=${LAYERS:-10}
WIDTH=${WIDTH:-30}
FANOUT=${FANOUT:-3}
VERSIONS=${VERSIONS:-3}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing command: $1 ($2)"; exit 1; }; }
need cargo "rustup"
need python3 "apt-get install -y python3"
need timeout "coreutils"
need nginx "apt-get install -y nginx"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || { log "missing $CAIRN"; exit 1; }

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-cargo-bench.XXXXXX")
CAIRN_PID=
NGINX_PID=
cleanup() {
    for pid in "$CAIRN_PID" "$NGINX_PID"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    CAIRN_PID= NGINX_PID=
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 1. The registry, filled through cargo's publish endpoint.
log "starting cairn serve"
mkfifo "$WORK/serve.out"
CAIRN_RATE_LIMIT=off CAIRN_LOG=warn "$CAIRN" serve --data "$WORK/data" --listen 127.0.0.1:0 \
    >"$WORK/serve.out" 2>"$WORK/serve.log" &
CAIRN_PID=$!
URL= TOKEN=
exec 3<"$WORK/serve.out"
while IFS= read -r -t 60 line <&3; do
    case "$line" in
        "listening on "*) URL=${line#listening on } ;;
        *"(shown once): "*) TOKEN=${line##*(shown once): } ;;
        "public key: "*) break ;;
    esac
done
# Keep draining the server's stdout.
cat <&3 >/dev/null &
exec 3<&-
[ -n "$URL" ] && [ -n "$TOKEN" ] || { log "cairn serve did not start: $(cat "$WORK/serve.log")"; exit 1; }
log "cairn on $URL"

log "publishing $((LAYERS * WIDTH)) crates x $VERSIONS versions"
start=$(date +%s.%N)
timeout "$STEP_TIMEOUT" python3 tools/bench/cargo/gen.py --url "$URL" --token "$TOKEN" \
    --project "$WORK/project" --layers "$LAYERS" --width "$WIDTH" --fanout "$FANOUT" --versions "$VERSIONS"
log "published in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"

# 2. nginx over the same static root, with its default headers.
NGINX_PORT=$(free_port)
NGINX_URL=http://127.0.0.1:$NGINX_PORT
mkdir -p "$WORK/nginx"
chmod 755 "$WORK"  # nginx workers may run as another user
user_line=
[ "$(id -u)" = 0 ] && user_line="user root;"
mime=
[ -f /etc/nginx/mime.types ] && mime="include /etc/nginx/mime.types;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    $mime
    default_type application/octet-stream;
    access_log $WORK/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/data/static;
    }
}
EOF
log "starting nginx on $NGINX_URL"
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "$NGINX_URL/index/config.json" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "$NGINX_URL/index/config.json" || { log "nginx did not start: $(cat "$WORK/nginx/error.log")"; exit 1; }

# 3. One CARGO_HOME config per server: crates.io replaced by it.
for s in cairn nginx; do
    base=$URL
    [ "$s" = nginx ] && base=$NGINX_URL
    tools/bench/cargo/replace-crates-io.sh "$base" >"$WORK/config-$s.toml"
done
export CARGO_TARGET_DIR=$WORK/target CARGO_TERM_COLOR=never
unset CARGO_NET_OFFLINE CARGO_REGISTRIES_CRATES_IO_PROTOCOL
lockfile() {  # lockfile SERVER: one cold run, Cargo.lock copied to $WORK/SERVER.lock
    rm -rf "$WORK/home-$1" "$WORK/project/Cargo.lock"
    mkdir -p "$WORK/home-$1"
    cp "$WORK/config-$1.toml" "$WORK/home-$1/config.toml"
    CARGO_HOME=$WORK/home-$1 timeout "$STEP_TIMEOUT" cargo generate-lockfile --quiet \
        --manifest-path "$WORK/project/Cargo.toml"
    cp "$WORK/project/Cargo.lock" "$WORK/$1.lock"
}
# Sanity: both resolve the same 300 packages.
lockfile cairn
lockfile nginx
cmp -s "$WORK/cairn.lock" "$WORK/nginx.lock" || { log "the two lockfiles differ"; exit 1; }
locked=$(grep -c '^checksum = ' "$WORK/cairn.lock")
log "lockfile: $locked registry packages"
[ "$locked" = $((LAYERS * WIDTH)) ] || { log "expected $((LAYERS * WIDTH)) packages"; exit 1; }

# 4. Timing: a fresh CARGO_HOME and no Cargo.lock before every run.
prep() {
    echo "rm -rf '$WORK/home-$1' '$WORK/project/Cargo.lock' && mkdir -p '$WORK/home-$1' && cp '$WORK/config-$1.toml' '$WORK/home-$1/config.toml'"
}
run() {
    echo "CARGO_HOME='$WORK/home-$1' cargo generate-lockfile --quiet --manifest-path '$WORK/project/Cargo.toml'"
}
# The runs are split into ROUNDS blocks that alternate the servers (cairn
# first, then nginx first, ...), so a change in machine load during the
# benchmark weighs on both; the medians are over all runs of a server.
per_round=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
for round in $(seq "$ROUNDS"); do
    order="cairn nginx"
    [ $((round % 2)) = 0 ] && order="nginx cairn"
    for s in $order; do
        if command -v hyperfine >/dev/null; then
            log "round $round/$ROUNDS: $s, hyperfine, $per_round runs"
            timeout "$STEP_TIMEOUT" hyperfine --style basic --runs "$per_round" --warmup 1 \
                --prepare "$(prep $s)" --export-json "$WORK/$s-$round.json" -n "$s" "$(run $s)" >&2
            python3 -c "import json,sys; print(*json.load(open(sys.argv[1]))['results'][0]['times'])" \
                "$WORK/$s-$round.json" >>"$WORK/$s.times"
        else
            log "round $round/$ROUNDS: $s, $per_round timed runs (no hyperfine)"
            for _ in $(seq "$per_round"); do
                eval "$(prep $s)"
                t0=$(date +%s.%N)
                eval "$(run $s)"
                python3 -c "print($(date +%s.%N) - $t0)" >>"$WORK/$s.times"
            done
        fi
    done
done

# The servers alone: every index file cargo fetched (config.json and one per
# package), one after another by one curl on one keep-alive connection.
python3 - "$WORK/cairn.lock" "$URL" "$NGINX_URL" "$WORK" <<'EOF'
import re, sys
lock, cairn, nginx, work = sys.argv[1:]
names = re.findall(r'^name = "(.+)"\n(?:.*\n)?source = "registry', open(lock).read(), re.M)
def path(n):
    n = n.lower()
    return {1: f"1/{n}", 2: f"2/{n}", 3: f"3/{n[0]}/{n}"}.get(len(n), f"{n[:2]}/{n[2:4]}/{n}")
for s, base in (("cairn", cairn), ("nginx", nginx)):
    with open(f"{work}/urls-{s}.txt", "w") as f:
        for p in ["config.json"] + [path(n) for n in names]:
            f.write(f'url = "{base}/index/{p}"\noutput = "/dev/null"\n')
EOF
files=$(grep -c '^url' "$WORK/urls-cairn.txt")
log "curl: $files index files on one connection"
if command -v hyperfine >/dev/null; then
    timeout "$STEP_TIMEOUT" hyperfine --style basic --runs "$RUNS" --warmup 2 --export-json "$WORK/curl.json" \
        -n cairn "curl -sSf -K '$WORK/urls-cairn.txt'" -n nginx "curl -sSf -K '$WORK/urls-nginx.txt'" >&2
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(*r[0]['times']); print(*r[1]['times'], file=open(sys.argv[2], 'w'))" \
        "$WORK/curl.json" "$WORK/nginx.curl" >"$WORK/cairn.curl"
else
    for s in cairn nginx; do
        for _ in $(seq "$RUNS"); do
            t0=$(date +%s.%N)
            curl -sSf -K "$WORK/urls-$s.txt"
            python3 -c "print($(date +%s.%N) - $t0)" >>"$WORK/$s.curl"
        done
    done
fi

python3 - "$WORK" "$locked" "$files" <<'EOF'
import statistics, sys
work, n, files = sys.argv[1:4]
def load(ext):
    return {s: [float(x) for x in open(f"{work}/{s}.{ext}").read().split()] for s in ("cairn", "nginx")}
def rows(t):
    med = {s: statistics.median(v) for s, v in t.items()}
    for s, label in (("cairn", "cairn serve (embedded)"), ("nginx", "nginx, same static root")):
        print(f"| {label} | {med[s] * 1000:.0f} ms | {min(t[s]) * 1000:.0f} ms | {max(t[s]) * 1000:.0f} ms |")
    print(f"| ratio of medians, cairn / nginx | {med['cairn'] / med['nginx']:.3f} | | |")
cargo, curl = load("times"), load("curl")
print(f"Cold `cargo generate-lockfile`, {n} crates, {len(cargo['cairn'])} runs per server:")
print()
print("| server | median | min | max |")
print("| --- | --- | --- | --- |")
rows(cargo)
print()
print(f"The servers alone: the same {files} index files by one curl on one connection, {len(curl['cairn'])} runs:")
print()
print("| server | median | min | max |")
print("| --- | --- | --- | --- |")
rows(curl)
EOF
