#!/usr/bin/env bash
# The download-statistics benchmark (issue 4: above 1 million log lines/s).
#
#   tools/bench/stats.sh                         # 10 million lines, 20 000 packages
#   LINES=1000000 PACKAGES=2000 tools/bench/stats.sh
#
# Steps: a fresh registry in a temp dir (`cairn init`, then bench-prefill with
# PACKAGES synthetic packages, one version each), bench-access-log writes a
# LINES-line combined-format log over their blobs (see access_log.rs for the
# mix), the page cache is warmed, then on the same file:
#   peers:  `wc -l` and an `awk` filter that counts GET /blobs/ answered 200/206
#   cairn:  `cairn rebuild stats --access-log FILE` (first run: everything is
#           new), the same again (every line already counted), and the log
#           gzipped (a rotated copy: reads, decompresses, counts nothing).
# The JSON report of each cairn run gives the parse time and lines/s of the
# stats job itself; wall time includes the statistics documents and the
# package and version documents of the packages with new counts (they carry
# download counts), then the listings.
#
# Environment:
#   LINES         log lines                                   (10000000)
#   PACKAGES      synthetic packages                          (20000)
#   GZ            1 = also time the gzipped copy              (1)
#   SKIP_BUILD    1 = do not run cargo build                  (0)
#   KEEP          1 = keep the temp dir                       (0)
#   BENCH_TMP     parent of the temp dir                      ($TMPDIR or /tmp)
#   STEP_TIMEOUT  seconds allowed to any one step             (900)
set -euo pipefail

LINES=${LINES:-10000000}
PACKAGES=${PACKAGES:-20000}
GZ=${GZ:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing command: $1"; exit 1; }; }
need timeout
need awk
need gzip
need jq

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn \
        --example bench-prefill --example bench-access-log >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
CAIRN=$TARGET/cairn
PREFILL=$TARGET/examples/bench-prefill
GEN=$TARGET/examples/bench-access-log
for b in "$CAIRN" "$PREFILL" "$GEN"; do [ -x "$b" ] || { log "missing $b"; exit 1; }; done

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-stats-bench.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

DATA=$WORK/data
LOG=$WORK/access.log
export CAIRN_LOG=warn

log "registry with $PACKAGES packages"
timeout "$STEP_TIMEOUT" "$CAIRN" init --data "$DATA" --public-url http://127.0.0.1 >/dev/null
timeout "$STEP_TIMEOUT" "$PREFILL" --data "$DATA" --packages "$PACKAGES" >&2
log "writing $LINES log lines"
timeout "$STEP_TIMEOUT" "$GEN" --data "$DATA" --lines "$LINES" --out "$LOG"
BYTES=$(stat -c %s "$LOG")
sync # so no run below pays for flushing the generated files
cat "$LOG" >/dev/null # warm the page cache for every reader alike

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }'; }
# Pulls a field of the stats job's report out of `cairn rebuild stats`'s JSON.
field() { jq -r ".stats.$1" "$2"; }

t0=$(now); WC=$(wc -l <"$LOG"); t1=$(now)
WC_S=$(secs "$t0" "$t1")
t0=$(now)
AWK_N=$(awk '$6 == "\"GET" && index($7, "/blobs/sha256/") == 1 && ($9 == 200 || $9 == 206) { n++ } END { print n + 0 }' "$LOG")
t1=$(now)
AWK_S=$(secs "$t0" "$t1")

run_cairn() { # label, file → prints a table row
    local label=$1 file=$2 out=$WORK/report-$1.json
    local t0 t1
    t0=$(now)
    /usr/bin/time -f '%M' -o "$WORK/rss-$label" timeout "$STEP_TIMEOUT" \
        "$CAIRN" rebuild stats --data "$DATA" --access-log "$file" >"$out"
    t1=$(now)
    local wall parse count docs job sync lines counted dups mal rss
    wall=$(secs "$t0" "$t1")
    parse=$(field seconds.parse "$out"); count=$(field seconds.count "$out")
    docs=$(field seconds.documents "$out"); job=$(field seconds.total "$out"); sync=$(field documents.syncSeconds "$out")
    lines=$(field lines "$out"); counted=$(field counted "$out")
    dups=$(field duplicatesSkipped "$out"); mal=$(field malformedSkipped "$out")
    rss=$(awk '{ printf "%.0f", $1 / 1024 }' "$WORK/rss-$label")
    printf '| cairn rebuild stats (%s) | %s | %s | %s | %s | %s | counted %s, duplicates %s, malformed %s; parse %s s, dedupe+count %s s, documents %s s (syncfs %s s); peak RSS %s MiB |\n' \
        "$label" "$lines" "$wall" "$job" "$(rate "$lines" "$parse")" "$(rate "$lines" "$job")" \
        "$counted" "$dups" "$mal" "$parse" "$count" "$docs" "$sync" "$rss"
}

echo
echo "Access log: $LINES lines, $((BYTES / 1048576)) MiB; registry: $PACKAGES packages; $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| what | lines | wall s (command) | stats job s | lines/s (parse) | lines/s (stats job) | notes |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
printf '| wc -l | %s | %s | - | - | %s | |\n' "$WC" "$WC_S" "$(rate "$WC" "$WC_S")"
printf '| awk filter | %s | %s | - | - | %s | %s blob GETs with 200/206 |\n' "$WC" "$AWK_S" "$(rate "$WC" "$AWK_S")" "$AWK_N"
run_cairn first "$LOG"
run_cairn again "$LOG"
if [ "$GZ" = 1 ]; then
    log "gzipping a rotated copy"
    gzip -1 -c "$LOG" >"$WORK/access.log.1.gz"
    run_cairn gzip-copy "$WORK/access.log.1.gz"
fi
