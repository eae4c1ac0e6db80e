#!/usr/bin/env bash
# The install benchmark of the cairn CLI (see tools/bench/README.md, "cairn install").
#
#   tools/bench/install.sh                  # 300 packages x 2 versions, 5 runs each
#   PACKAGES=100 RUNS=3 tools/bench/install.sh
#
# A fresh registry in a temp dir (`cairn init`, `cairn serve` on 127.0.0.1 with
# CAIRN_RATE_LIMIT=off), the synthetic graph of tools/bench/install/graph.py
# published into it, then `cairn install bench-pkg-000` (which reaches every
# package) timed in four states:
#
#   cold          empty cache, no lock: resolve (every index file fetched),
#                 download, verify, unpack, write the lock
#   warm-resolve  warm cache, no lock, new project: index revalidated (304),
#                 no download, verify, unpack
#   warm-lock     warm cache, lock present, packages removed: no request,
#                 verify, unpack
#   warm-noop     warm cache, lock present, packages in place: no request,
#                 verify, nothing to unpack
#
# Each state runs RUNS times; the median and min are reported in ms. A
# cargo peer (cargo generate-lockfile + cargo fetch on the same graph as
# crates) is run when tools/bench/cargo_lockfile.sh exists.
#
# Environment:
#   PACKAGES      packages in the graph                  (300)
#   VERSIONS      versions per package                   (2)
#   RUNS          runs per state                         (5)
#   SKIP_BUILD    1 = do not run cargo build             (0)
#   KEEP          1 = keep the temp dir                  (0)
#   BENCH_TMP     parent of the temp dir                 ($TMPDIR or /tmp)
#   STEP_TIMEOUT  seconds allowed to any one step        (600)
set -euo pipefail

PACKAGES=${PACKAGES:-300}
VERSIONS=${VERSIONS:-2}
RUNS=${RUNS:-5}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing command: $1"; exit 1; }; }
need python3
need timeout

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || { log "missing $CAIRN"; exit 1; }

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-install-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

DATA=$WORK/data
TOKEN=$(timeout "$STEP_TIMEOUT" "$CAIRN" init --data "$DATA" 2>/dev/null)
CAIRN_RATE_LIMIT=off CAIRN_LOG=warn "$CAIRN" serve --data "$DATA" --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q '^public key:' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { log "the server did not start"; cat "$WORK/serve.err" >&2; exit 1; }
log "registry at $URL"

python3 tools/bench/install/graph.py spec --packages "$PACKAGES" --versions "$VERSIONS" >"$WORK/graph.json"
log "publishing $PACKAGES packages x $VERSIONS versions"
t0=$(date +%s%N)
timeout "$STEP_TIMEOUT" python3 tools/bench/install/graph.py publish --url "$URL" --token "$TOKEN" --spec "$WORK/graph.json"
log "published in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
ROOT_PKG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' "$WORK/graph.json")

# run NAME DIR HOME ARGS...: one timed install, ms on stdout.
run() {
    local dir=$1 home=$2; shift 2
    mkdir -p "$dir"
    local t0 t1
    t0=$(date +%s%N)
    (cd "$dir" && HOME=$home XDG_CONFIG_HOME=$home/config XDG_CACHE_HOME=$home/cache \
        timeout "$STEP_TIMEOUT" "$CAIRN" install "$@" --registry "$URL" 2>>"$WORK/install.err" >/dev/null)
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d %d\n", a[int((NR+1)/2)], a[1]}'; }

declare -A RESULT
cold=() wres=() wlock=() wnoop=()
for i in $(seq "$RUNS"); do
    H=$WORK/home-$i P=$WORK/proj-$i
    cold+=("$(run "$P" "$H" "$ROOT_PKG")")
    wres+=("$(run "$WORK/proj-$i-b" "$H" "$ROOT_PKG")")
    rm -rf "$P/cairn_packages"
    wlock+=("$(run "$P" "$H")")
    wnoop+=("$(run "$P" "$H")")
done
n=$(grep -c '^name' "$WORK/proj-1/cairn.lock")
[ "$n" = "$PACKAGES" ] || { log "the lock holds $n packages, expected $PACKAGES"; tail "$WORK/install.err" >&2; exit 1; }
RESULT[cold]=$(printf '%s\n' "${cold[@]}" | stats)
RESULT[warm-resolve]=$(printf '%s\n' "${wres[@]}" | stats)
RESULT[warm-lock]=$(printf '%s\n' "${wlock[@]}" | stats)
RESULT[warm-noop]=$(printf '%s\n' "${wnoop[@]}" | stats)

CARGO_ROW=
if [ -x tools/bench/cargo_lockfile.sh ]; then
    log "cargo peer: tools/bench/cargo_lockfile.sh"
    CARGO_ROW=$(GRAPH="$WORK/graph.json" REGISTRY="$URL" TOKEN="$TOKEN" tools/bench/cargo_lockfile.sh 2>>"$WORK/cargo.err" | tail -1 || true)
fi

echo
echo "cairn install of $PACKAGES packages ($VERSIONS versions each, $RUNS runs; ms)"
echo
echo "| state | median | min |"
echo "| --- | ---: | ---: |"
for s in cold warm-resolve warm-lock warm-noop; do
    read -r med min <<<"${RESULT[$s]}"
    echo "| $s | $med | $min |"
done
[ -n "$CARGO_ROW" ] && echo "$CARGO_ROW"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $("$CAIRN" --version)"
