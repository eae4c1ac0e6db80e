#!/usr/bin/env bash
# The batch-jobs benchmark at crates.io scale (issue 4): a synthetic registry
# of PACKAGES packages and about VERSIONS versions (bench-prefill), then
#   - the full static rebuild, cold (every file new) and warm (nothing changed),
#   - the search rebuild,
#   - bytes and requests per query over a fixed set of 200 queries
#     (bench-search-queries, sizes after gzip),
# each with wall time and peak memory from /usr/bin/time. Peer in the same
# script: `cp -r` of the static root the rebuild wrote (the cost of just
# writing that many files on this disk).
#
#   tools/bench/rebuild.sh                      # 200 000 packages, 1 500 000 versions
#   PACKAGES=20000 VERSIONS=150000 tools/bench/rebuild.sh
set -euo pipefail
PACKAGES=${PACKAGES:-200000}
VERSIONS=${VERSIONS:-1500000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
log() { printf '[rebuild-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -x /usr/bin/time ] || { log "needs /usr/bin/time (apt-get install time)"; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin cairn --example bench-prefill --example bench-search-queries >&2
fi
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/cairn-rebuild.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] && log "kept $WORK" || rm -rf "$WORK"' EXIT
D=$WORK/data

measure() { # label, command...
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" > "$WORK/out.json"
    read -r secs kb < "$WORK/time"
    printf '| %s | %s s | %d MiB |\n' "$label" "$secs" $((kb / 1024))
}

log "init + prefill: $PACKAGES packages, ~$VERSIONS versions"
"$T/cairn" init --data "$D" --public-url http://127.0.0.1 > /dev/null 2>&1
"$T/examples/bench-prefill" --data "$D" --packages "$PACKAGES" --versions "$VERSIONS" --no-docs --downloads >&2
sync
echo "| step | wall | peak memory |"
echo "| --- | ---: | ---: |"
measure "rebuild static (cold)" "$T/cairn" rebuild static --data "$D"
cp "$WORK/out.json" "$WORK/static-cold.json"
measure "rebuild static (warm, nothing changed)" "$T/cairn" rebuild static --data "$D"
cp "$WORK/out.json" "$WORK/static-warm.json"
measure "rebuild search" "$T/cairn" rebuild search --data "$D"
cp "$WORK/out.json" "$WORK/search.json"
mkdir -p "$WORK/copy"
measure "peer: cp -r of api, index and the pages" cp -r "$D/static/api" "$D/static/index" "$D/static/p" "$D/static/u" "$WORK/copy/"
echo
log "static report (cold): $(tr -d '\n ' < "$WORK/static-cold.json" | head -c 400)"
log "static report (warm): $(tr -d '\n ' < "$WORK/static-warm.json" | head -c 400)"
log "search report: $(cat "$WORK/search.json" | tr -d '\n ' | head -c 400)"
echo "queries (200, gzip sizes):"
"$T/examples/bench-search-queries" --data "$D" --queries 200
