#!/usr/bin/env bash
# The install benchmark of the cairn CLI against cargo on the same graph and
# the same server (see tools/bench/README.md, "cairn install").
#
#   tools/bench/install.sh                  # 300 packages x 2 versions, 5 runs each
#   PACKAGES=100 RUNS=3 tools/bench/install.sh
#
# A fresh registry in a temp dir (`cairn init`, `cairn serve` on 127.0.0.1 with
# CAIRN_RATE_LIMIT=off). The synthetic graph of tools/bench/install/graph.py
# is published into it twice: as cairn packages `bench-pkg-NNN`
# (`graph.py publish`) and, with the same edges, versions and `^1` ranges, as
# crates `bench-crate-NNN` through cargo's publish endpoint
# (`graph.py publish-crates`, which also writes a consumer project depending
# on `bench-crate-000 = "1"`). Then, RUNS times, in one loop:
#
#   cargo cold    a new empty CARGO_HOME (only a config.toml replacing
#                 crates.io by `sparse+$URL/index/`), no Cargo.lock:
#                 `cargo generate-lockfile --quiet` then `cargo fetch --quiet`
#                 (every index file fetched, resolve, lock written, every
#                 .crate downloaded and checksummed into the cache)
#   cold          `cairn install bench-pkg-000`, empty cache, no lock:
#                 resolve (every index file fetched), download, verify,
#                 unpack, write the lock
#   warm-resolve  warm cache, no lock, new project: index revalidated (304),
#                 no download, verify, unpack
#   warm-lock     warm cache, lock present, packages removed: no request,
#                 verify, unpack
#   warm-noop     warm cache, lock present, packages in place: no request,
#                 verify, nothing to unpack
#
# The two cold runs alternate their order from one iteration to the next
# (cargo first, then cairn first, ...) so machine load weighs on both. Each
# run is checked: cairn.lock and Cargo.lock hold PACKAGES registry packages
# and CARGO_HOME/registry/cache holds PACKAGES .crate files; at the end, the
# two locks must pin the same names (modulo the prefix), versions and edges.
# Prints a markdown table (median and min in ms, wall time of the processes)
# and the ratio of the cold medians, cairn / cargo.
#
# cargo is the toolchain's binary (`rustup which cargo`), not the rustup
# proxy, so the proxy's start-up is not charged to cargo.
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
need cargo

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || { log "missing $CAIRN"; exit 1; }
CARGO=$(rustup which cargo 2>/dev/null || command -v cargo)

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-install-bench.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { log "$1"; [ -n "${2:-}" ] && [ -s "$2" ] && tail -n 20 "$2" >&2; exit 1; }

DATA=$WORK/data
TOKEN=$(timeout "$STEP_TIMEOUT" "$CAIRN" init --data "$DATA" 2>/dev/null)
CAIRN_RATE_LIMIT=off CAIRN_LOG=warn "$CAIRN" serve --data "$DATA" --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q '^public key:' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || fail "the server did not start" "$WORK/serve.err"
log "registry at $URL"

python3 tools/bench/install/graph.py spec --packages "$PACKAGES" --versions "$VERSIONS" >"$WORK/graph.json"
log "publishing $PACKAGES packages x $VERSIONS versions"
t0=$(date +%s%N)
timeout "$STEP_TIMEOUT" python3 tools/bench/install/graph.py publish --url "$URL" --token "$TOKEN" --spec "$WORK/graph.json"
log "published in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
ROOT_PKG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' "$WORK/graph.json")

CPROJ=$WORK/cargo-project
log "publishing the same graph as $PACKAGES crates x $VERSIONS versions (cargo's endpoint)"
t0=$(date +%s%N)
timeout "$STEP_TIMEOUT" python3 tools/bench/install/graph.py publish-crates --url "$URL" --token "$TOKEN" \
    --spec "$WORK/graph.json" --project "$CPROJ"
log "published in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# cargo's CARGO_HOME config: crates.io replaced by the server under test.
tools/bench/cargo/replace-crates-io.sh "$URL" >"$WORK/cargo-config.toml"
export CARGO_TARGET_DIR=$WORK/target CARGO_TERM_COLOR=never
unset CARGO_NET_OFFLINE CARGO_REGISTRIES_CRATES_IO_PROTOCOL CARGO_HTTP_MULTIPLEXING

# cairn_install DIR HOME ARGS...: one timed `cairn install`, ms in MS.
cairn_install() {
    local dir=$1 home=$2; shift 2
    mkdir -p "$dir"
    local t0 t1
    t0=$(date +%s%N)
    (cd "$dir" && HOME=$home XDG_CONFIG_HOME=$home/config XDG_CACHE_HOME=$home/cache \
        timeout "$STEP_TIMEOUT" "$CAIRN" install "$@" --registry "$URL" 2>>"$WORK/install.err" >/dev/null) ||
        fail "cairn install $* failed in $dir" "$WORK/install.err"
    t1=$(date +%s%N)
    MS=$(( (t1 - t0) / 1000000 ))
}

# cargo_cold: a fresh CARGO_HOME, no Cargo.lock, then generate-lockfile and
# fetch, timed together (and apart, in LOCK_MS and FETCH_MS); ms in MS.
cargo_cold() {
    local home=$WORK/cargo-home
    rm -rf "$home" "$CPROJ/Cargo.lock"
    mkdir -p "$home"
    cp "$WORK/cargo-config.toml" "$home/config.toml"
    local t0 t1 t2
    t0=$(date +%s%N)
    (cd "$CPROJ" && CARGO_HOME=$home timeout "$STEP_TIMEOUT" "$CARGO" generate-lockfile --quiet 2>>"$WORK/cargo.err") ||
        fail "cargo generate-lockfile failed" "$WORK/cargo.err"
    t1=$(date +%s%N)
    (cd "$CPROJ" && CARGO_HOME=$home timeout "$STEP_TIMEOUT" "$CARGO" fetch --quiet 2>>"$WORK/cargo.err") ||
        fail "cargo fetch failed" "$WORK/cargo.err"
    t2=$(date +%s%N)
    MS=$(( (t2 - t0) / 1000000 )) LOCK_MS=$(( (t1 - t0) / 1000000 )) FETCH_MS=$(( (t2 - t1) / 1000000 ))
    local locked crates
    locked=$(grep -c '^checksum = ' "$CPROJ/Cargo.lock" || true)
    [ "$locked" = "$PACKAGES" ] || fail "Cargo.lock holds $locked registry packages, expected $PACKAGES" "$WORK/cargo.err"
    crates=$(find "$home/registry/cache" -name '*.crate' 2>/dev/null | wc -l)
    [ "$crates" = "$PACKAGES" ] || fail "CARGO_HOME/registry/cache holds $crates .crate files, expected $PACKAGES" "$WORK/cargo.err"
    cp "$CPROJ/Cargo.lock" "$WORK/Cargo.lock"
}

# cairn_all I: cold then the three warm states, in their own HOME and projects.
cairn_all() {
    local H=$WORK/home-$1 P=$WORK/proj-$1
    cairn_install "$P" "$H" "$ROOT_PKG"; cold+=("$MS")
    local n
    n=$(grep -c '^checksum = ' "$P/cairn.lock" || true)
    [ "$n" = "$PACKAGES" ] || fail "cairn.lock holds $n packages, expected $PACKAGES" "$WORK/install.err"
    cairn_install "$P-b" "$H" "$ROOT_PKG"; wres+=("$MS")
    rm -rf "$P/cairn_packages"
    cairn_install "$P" "$H"; wlock+=("$MS")
    cairn_install "$P" "$H"; wnoop+=("$MS")
}

cold=() wres=() wlock=() wnoop=() ccold=() clock=() cfetch=()
for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then order="cargo cairn"; else order="cairn cargo"; fi
    log "run $i/$RUNS: $order"
    for who in $order; do
        if [ "$who" = cargo ]; then
            cargo_cold; ccold+=("$MS") clock+=("$LOCK_MS") cfetch+=("$FETCH_MS")
        else
            cairn_all "$i"
        fi
    done
done

# Same graph: both locks pin the same names (modulo the prefix), versions and
# dependency edges.
python3 - "$WORK/proj-1/cairn.lock" "$WORK/Cargo.lock" <<'EOF' || fail "cairn.lock and Cargo.lock differ"
import sys, tomllib
def pins(path, prefix):
    out = {}
    for p in tomllib.load(open(path, "rb"))["package"]:
        if p["name"].startswith(prefix):
            strip = lambda n: n[len(prefix):].split(" ")[0]
            out[strip(p["name"])] = (p["version"], sorted(strip(d) for d in p.get("dependencies", [])))
    return out
a, b = pins(sys.argv[1], "bench-pkg-"), pins(sys.argv[2], "bench-crate-")
if a != b:
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    print(f"cairn pins {len(a)}, cargo pins {len(b)}; differ on {diff[:3]}: "
          f"{[(a.get(k), b.get(k)) for k in diff[:3]]}", file=sys.stderr)
    sys.exit(1)
EOF

# stats MS...: "median min" (the mean of the two middle values for an even count).
stats() {
    printf '%s\n' "$@" | sort -n |
        awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%d %d\n", m, a[1]}'
}
read -r cairn_med _ <<<"$(stats "${cold[@]}")"
read -r cargo_med _ <<<"$(stats "${ccold[@]}")"

echo
echo "cairn install vs cargo generate-lockfile + fetch, $PACKAGES packages ($VERSIONS versions each, $RUNS runs; ms)"
echo
echo "| state | median | min |"
echo "| --- | ---: | ---: |"
row() { local label=$1; shift; read -r med min <<<"$(stats "$@")"; echo "| $label | $med | $min |"; }
row "cairn install (cold)" "${cold[@]}"
row "cairn install (warm-resolve)" "${wres[@]}"
row "cairn install (warm-lock)" "${wlock[@]}"
row "cairn install (warm-noop)" "${wnoop[@]}"
row "cargo generate-lockfile + fetch (cold)" "${ccold[@]}"
row "  of which cargo generate-lockfile" "${clock[@]}"
row "  of which cargo fetch" "${cfetch[@]}"
echo
echo "ratio of cold medians, cairn / cargo: $(awk -v a="$cairn_med" -v b="$cargo_med" 'BEGIN {printf "%.2f", a / b}')"
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg); $("$CAIRN" --version); $("$CARGO" --version)"
