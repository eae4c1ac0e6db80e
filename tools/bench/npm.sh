#!/usr/bin/env bash
# The npm benchmark (issue 29): cairn's npm door against Verdaccio 6.8
# (pinned in tools/bench/npm/package-lock.json, no uplinks), side by side in
# one run, with the real npm client. See tools/bench/README.md, "npm".
#
#   tools/bench/npm.sh                      # 50 publishes, 200-package install, 5 rounds
#   PUBLISHES=20 PACKAGES=100 RUNS=3 tools/bench/npm.sh
#
# 1. publish: PUBLISHES packages, each `npm publish`ed to cairn and to
#    Verdaccio in turn (which goes first alternates), wall time of npm;
#    npm's own time (`npm publish --dry-run`, no request) beside it, and
#    each registry's time above it. Then the same bodies' PUT alone (npm's body replayed by curl as a new
#    version), which is the server's share of that time.
# 2. install: a project depending on the root of a PACKAGES-package graph
#    (a binary tree of `^1.0.0` dependencies, published to both through
#    their publish routes by tools/bench/npm/graph.py): `npm install` with a
#    fresh cache and no lock or node_modules, RUNS rounds, interleaved.
# 3. tarballs: wrk on one tarball URL of each (10 s, 2 threads, 16 connections).
#
# Prints a markdown table of medians (and p90 for publishes) and the
# ratios cairn / Verdaccio.
#
# Environment: PUBLISHES (50), PACKAGES (200), RUNS (5), SKIP_BUILD,
# KEEP, BENCH_TMP, STEP_TIMEOUT (600) as in the other scripts.
set -euo pipefail

PUBLISHES=${PUBLISHES:-50}
PACKAGES=${PACKAGES:-200}
RUNS=${RUNS:-5}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing command: $1"; exit 1; }; }
for c in python3 timeout npm node curl wrk; do need "$c"; done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || { log "missing $CAIRN"; exit 1; }
[ -d tools/bench/npm/node_modules/verdaccio ] ||
    (cd tools/bench/npm && npm ci --no-audit --no-fund --loglevel=error)
VERDACCIO=$ROOT/tools/bench/npm/node_modules/.bin/verdaccio

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-npm-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { log "$1"; [ -n "${2:-}" ] && [ -s "$2" ] && tail -n 20 "$2" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; fail "$1 never answered" "$2"; }

# cairn: the npm door of a fresh registry.
CPORT=$(free_port)
CURL_BASE=http://127.0.0.1:$CPORT
TOKEN=$(timeout "$STEP_TIMEOUT" "$CAIRN" init --data "$WORK/cairn" --public-url "$CURL_BASE" 2>/dev/null)
CAIRN_RATE_LIMIT=off CAIRN_LOG=warn "$CAIRN" serve --data "$WORK/cairn" --listen "127.0.0.1:$CPORT" \
    >"$WORK/cairn.out" 2>"$WORK/cairn.err" &
PIDS+=($!)
CAIRN_NPM=$CURL_BASE/npm/
wait_for "$CAIRN_NPM-/npm/v1/keys" "$WORK/cairn.err"

# Verdaccio: its own storage, htpasswd, no uplinks.
VPORT=$(free_port)
mkdir -p "$WORK/verdaccio"
cat >"$WORK/verdaccio/config.yaml" <<YAML
storage: $WORK/verdaccio/storage
auth:
  htpasswd:
    file: $WORK/verdaccio/htpasswd
    max_users: 10
uplinks: {}
packages:
  '**':
    access: \$all
    publish: \$authenticated
max_body_size: 50mb
log: { type: stdout, format: json, level: error }
YAML
"$VERDACCIO" --config "$WORK/verdaccio/config.yaml" --listen "127.0.0.1:$VPORT" >"$WORK/verdaccio.out" 2>&1 &
PIDS+=($!)
VERD_NPM=http://127.0.0.1:$VPORT/
wait_for "${VERD_NPM}-/ping" "$WORK/verdaccio.out"
VTOKEN=$(curl -fs -X PUT -H 'Content-Type: application/json' "${VERD_NPM}-/user/org.couchdb.user:bench" \
    -d '{"name":"bench","password":"bench-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
log "cairn at $CAIRN_NPM, Verdaccio $("$VERDACCIO" --version) at $VERD_NPM"

# npmrc REGISTRY TOKEN: an npmrc of its own for one registry.
npmrc() {
    local nerf=${1#http:}
    printf 'registry=%s\n%s:_authToken=%s\nfund=false\naudit=false\nupdate-notifier=false\nloglevel=error\n' "$1" "$nerf" "$2"
}
npmrc "$CAIRN_NPM" "$TOKEN" >"$WORK/cairn.npmrc"
npmrc "$VERD_NPM" "$VTOKEN" >"$WORK/verdaccio.npmrc"
# npm_run WHICH DIR ARGS...: npm with WHICH's npmrc; ms in MS.
npm_run() {
    local which=$1 dir=$2; shift 2
    local t0 t1
    t0=$(date +%s%N)
    (cd "$dir" && HOME=$WORK/home-$which npm_config_userconfig=$WORK/$which.npmrc \
        npm_config_cache=${CACHE:-$WORK/cache-$which} timeout "$STEP_TIMEOUT" npm "$@" >>"$WORK/npm.out" 2>>"$WORK/npm.err") ||
        fail "npm $* against $which failed" "$WORK/npm.err"
    t1=$(date +%s%N)
    MS=$(( (t1 - t0) / 1000000 ))
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
p90() { sort -n | awk '{ a[NR] = $1 } END { i = int(NR * 0.9 + 0.999); if (i > NR) i = NR; print a[i] }'; }

# 1. publish with npm.
python3 tools/bench/npm/graph.py sources "$WORK/pub" "$PUBLISHES"
: >"$WORK/pub-cairn.ms"; : >"$WORK/pub-verdaccio.ms"
log "npm publish x $PUBLISHES on each"
for i in $(seq 0 $((PUBLISHES - 1))); do
    dir=$WORK/pub/pub-$(printf %03d "$i")
    order="cairn verdaccio"; [ $((i % 2)) = 1 ] && order="verdaccio cairn"
    for which in $order; do
        npm_run "$which" "$dir" publish
        echo "$MS" >>"$WORK/pub-$which.ms"
    done
done

# npm's own time: a dry run packs and prints, and sends nothing.
: >"$WORK/dry.ms"
for i in $(seq 1 10); do
    npm_run cairn "$WORK/pub/pub-000" publish --dry-run
    echo "$MS" >>"$WORK/dry.ms"
done

# The server's share: npm's bodies (new names) PUT by curl, timed by curl.
python3 tools/bench/npm/graph.py make "$WORK/bodies" "$PUBLISHES" bench-put
put_ms() { # URL TOKEN FILE
    local pkg; pkg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$3")
    curl -fs -o /dev/null -w '%{time_total}\n' -X PUT -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $2" --data-binary @"$3" "$1$pkg" | awk '{ printf "%d\n", $1 * 1000 + 0.5 }'
}
: >"$WORK/put-cairn.ms"; : >"$WORK/put-verdaccio.ms"
i=0
for f in $(ls -r "$WORK/bodies"/*.json); do
    if [ $((i % 2)) = 0 ]; then
        put_ms "$CAIRN_NPM" "$TOKEN" "$f" >>"$WORK/put-cairn.ms"; put_ms "$VERD_NPM" "$VTOKEN" "$f" >>"$WORK/put-verdaccio.ms"
    else
        put_ms "$VERD_NPM" "$VTOKEN" "$f" >>"$WORK/put-verdaccio.ms"; put_ms "$CAIRN_NPM" "$TOKEN" "$f" >>"$WORK/put-cairn.ms"
    fi
    i=$((i + 1))
done

# 2. a cold install of the graph.
log "publishing the $PACKAGES-package graph to each"
python3 tools/bench/npm/graph.py make "$WORK/graph" "$PACKAGES"
timeout "$STEP_TIMEOUT" python3 tools/bench/npm/graph.py publish "$CAIRN_NPM" "$TOKEN" "$WORK/graph"
timeout "$STEP_TIMEOUT" python3 tools/bench/npm/graph.py publish "$VERD_NPM" "$VTOKEN" "$WORK/graph"
: >"$WORK/install-cairn.ms"; : >"$WORK/install-verdaccio.ms"
log "cold npm install of $PACKAGES packages x $RUNS rounds"
for r in $(seq 1 "$RUNS"); do
    order="cairn verdaccio"; [ $((r % 2)) = 0 ] && order="verdaccio cairn"
    for which in $order; do
        proj=$WORK/app-$which
        rm -rf "$proj" "$WORK/cold-cache"
        python3 tools/bench/npm/graph.py project "$proj"
        CACHE=$WORK/cold-cache npm_run "$which" "$proj" install --no-audit --ignore-scripts
        n=$(find "$proj/node_modules" -maxdepth 1 -name 'bench-npm-*' | wc -l)
        [ "$n" = "$PACKAGES" ] || fail "$which installed $n packages, not $PACKAGES"
        echo "$MS" >>"$WORK/install-$which.ms"
    done
done

# 3. tarball requests per second.
CTGZ=$(python3 -c 'import json,sys,urllib.request; d=json.load(urllib.request.urlopen(sys.argv[1])); print(d["versions"]["1.0.0"]["dist"]["tarball"])' "${CAIRN_NPM}bench-npm-000")
VTGZ=$(python3 -c 'import json,sys,urllib.request; d=json.load(urllib.request.urlopen(sys.argv[1])); print(d["versions"]["1.0.0"]["dist"]["tarball"])' "${VERD_NPM}bench-npm-000")
rps() { wrk -t2 -c16 -d10s "$1" | awk '/Requests\/sec/ { printf "%d", $2 }'; }
log "wrk on one tarball of each"
C_RPS=$(rps "$CTGZ"); V_RPS=$(rps "$VTGZ")

row() { # LABEL CAIRN_FILE VERD_FILE
    local c v; c=$(median <"$2"); v=$(median <"$3")
    printf '| %s | %s | %s | %s |\n' "$1" "$c" "$v" "$(awk -v a="$c" -v b="$v" 'BEGIN { printf "%.2f", a / b }')"
}
echo
echo "| step (ms, median of each) | cairn | Verdaccio 6.8 | cairn / Verdaccio |"
echo "| --- | --- | --- | --- |"
row "npm publish (x$PUBLISHES, wall of npm)" "$WORK/pub-cairn.ms" "$WORK/pub-verdaccio.ms"
printf '| npm publish p90 | %s | %s | |\n' "$(p90 <"$WORK/pub-cairn.ms")" "$(p90 <"$WORK/pub-verdaccio.ms")"
DRY=$(median <"$WORK/dry.ms")
printf '| npm publish --dry-run (npm alone, no request; x10) | %s | | |\n' "$DRY"
C_PUB=$(median <"$WORK/pub-cairn.ms"); V_PUB=$(median <"$WORK/pub-verdaccio.ms")
printf '| npm publish above npm'"'"'s own time | %s | %s | %s |\n' $((C_PUB - DRY)) $((V_PUB - DRY)) \
    "$(awk -v a=$((C_PUB - DRY)) -v b=$((V_PUB - DRY)) 'BEGIN { printf "%.2f", a / b }')"
row "its PUT alone (curl, x$PUBLISHES)" "$WORK/put-cairn.ms" "$WORK/put-verdaccio.ms"
row "cold npm install, $PACKAGES packages (x$RUNS)" "$WORK/install-cairn.ms" "$WORK/install-verdaccio.ms"
printf '| tarball GET, requests/s (wrk -t2 -c16 10 s) | %s | %s | %s |\n' "$C_RPS" "$V_RPS" \
    "$(awk -v a="$C_RPS" -v b="$V_RPS" 'BEGIN { printf "%.1f", a / b }')"
