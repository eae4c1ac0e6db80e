#!/usr/bin/env bash
# The operating benchmarks of issue 31 (see tools/bench/README.md,
# "Operating: metrics, backup, restore"):
#
#   metrics  static reads with metrics on against off, in one run: two
#            `cairn serve` over one prefilled data directory (PACKAGES
#            packages plus BLOBS published for blobs), one with
#            CAIRN_METRICS=off, both pinned to SERVER_CPU; ROUNDS interleaved
#            wrk rounds (off, on, off, on, …) of DURATION over the same
#            shuffled paths as static_read.sh; medians and on/off.
#   backup   `cairn backup` of a BIG_PACKAGES-package prefill (one version
#            each, documents and pages written, BIG_BLOBS published for
#            blobs) against `cp -r` of the same data directory, ROUNDS_BACKUP
#            interleaved rounds each (cp -r, backup, cp -r, backup, …), the
#            page cache warm for both; then `cairn restore` of the last
#            backup, `cairn fsck` of the original and the restored registry
#            (the prefill writes no blobs: both find the same missing ones).
#
#   tools/bench/ops.sh                          # both parts
#   PARTS=backup BIG_PACKAGES=20000 SKIP_BUILD=1 tools/bench/ops.sh
#
# Environment (defaults): PARTS ("metrics backup"), PACKAGES (2000), BLOBS
# (300), ROUNDS (5), DURATION (10s), CONNECTIONS (32), SERVER_CPU (1),
# WRK_CPU (0), BIG_PACKAGES (200000), BIG_BLOBS (300), ROUNDS_BACKUP (2),
# SKIP_BUILD, KEEP, BENCH_TMP, STEP_TIMEOUT (3600).
set -euo pipefail

PARTS=${PARTS:-"metrics backup"}
PACKAGES=${PACKAGES:-2000}
BLOBS=${BLOBS:-300}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
BIG_PACKAGES=${BIG_PACKAGES:-200000}
BIG_BLOBS=${BIG_BLOBS:-300}
ROUNDS_BACKUP=${ROUNDS_BACKUP:-2}
STEP_TIMEOUT=${STEP_TIMEOUT:-3600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[ops-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
for c in timeout taskset curl awk wrk; do command -v "$c" >/dev/null || die "missing command: $c"; done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    cargo build --release --bin cairn --example bench-prefill --example bench-publish-load >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
CAIRN=$TARGET/cairn PREFILL=$TARGET/examples/bench-prefill LOAD=$TARGET/examples/bench-publish-load
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-ops.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A prefilled registry in DIR (no search timer: nothing of the server's own
# runs during a round) with N packages, BLOBS of them published for blobs.
registry() { # dir packages blobs
    timeout 60 "$CAIRN" init --data "$1" --public-url http://127.0.0.1:1 >"$1.token" 2>/dev/null
    timeout "$STEP_TIMEOUT" "$PREFILL" --data "$1" --packages "$2" 2>&1 | sed 's/^/    /' >&2
    sed -i 's/^search_interval *=.*/search_interval = 0/' "$1/registry.toml"
    if [ "$3" -gt 0 ]; then
        serve "$1" on
        timeout "$STEP_TIMEOUT" "$LOAD" --url "$URL" --token "$(cat "$1.token")" --clients 4 --count "$3" \
            --prefix zqblob --warmup 0 >/dev/null
        kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
    fi
    sync
}

# `cairn serve` on DIR with metrics on or off, pinned; sets URL.
serve() { # dir on|off
    local out=$WORK/serve-$2-$RANDOM
    local metrics=on; [ "$2" = off ] && metrics=off
    CAIRN_RATE_LIMIT=off CAIRN_METRICS=$metrics taskset -c "$SERVER_CPU" "$CAIRN" serve --data "$1" \
        --listen 127.0.0.1:0 >"$out.out" 2>"$out.err" &
    PIDS+=($!)
    # A large registry's first start takes a while (its recovery and summaries).
    for _ in $(seq 6000); do
        grep -q '^public key:' "$out.out" 2>/dev/null && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    URL=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$out.out")
    [ -n "$URL" ] || { cat "$out.err" >&2; die "cairn serve did not start"; }
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) printf "%.2f\n", a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

if [[ " $PARTS " == *" metrics "* ]]; then
    D=$WORK/reads
    log "metrics: prefill $PACKAGES packages, $BLOBS published"
    registry "$D" "$PACKAGES" "$BLOBS"
    PATHS=$WORK/paths.txt
    (cd "$D/static" && find index api/v1/packages blobs -type f ! -path '*/.*' -printf '/%p\n') |
        grep -E '^/[A-Za-z0-9._/+-]+$' | LC_ALL=C sort |
        awk 'BEGIN { srand(42) } { printf "%.15f\t%s\n", rand(), $0 }' | LC_ALL=C sort -k1,1 | cut -f2- >"$PATHS"
    serve "$D" off; OFF=$URL
    serve "$D" on; ON=$URL
    log "paths: $(wc -l <"$PATHS"); off at $OFF, on at $ON"
    wrk_rps() { # url
        taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s tools/bench/static_read/paths.lua \
            "$1" -- "$PATHS" | sed -n 's/^STATIC_READ .*rps=\([^ ]*\).*/\1/p'
    }
    wrk_rps "$OFF" >/dev/null; wrk_rps "$ON" >/dev/null # warm-up
    echo
    echo "### static reads, metrics off and on ($PACKAGES packages + $BLOBS blobs, wrk -t1 -c$CONNECTIONS -d$DURATION)"
    echo
    echo "| round | off req/s | on req/s |"
    echo "| ---: | ---: | ---: |"
    OFFS=() ONS=()
    for r in $(seq "$ROUNDS"); do
        off=$(wrk_rps "$OFF"); on=$(wrk_rps "$ON")
        OFFS+=("$off") ONS+=("$on")
        echo "| $r | $off | $on |"
    done
    m_off=$(printf '%s\n' "${OFFS[@]}" | median) m_on=$(printf '%s\n' "${ONS[@]}" | median)
    echo "| median | $m_off | $m_on |"
    echo
    echo "on/off (median req/s): $(awk -v a="$m_on" -v b="$m_off" 'BEGIN { printf "%.3f", a / b }') (target >= 0.97)"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
fi

if [[ " $PARTS " == *" backup "* ]]; then
    D=$WORK/big
    log "backup: prefill $BIG_PACKAGES packages, $BIG_BLOBS published"
    registry "$D" "$BIG_PACKAGES" "$BIG_BLOBS"
    files=$(find "$D" -type f | wc -l) bytes=$(du -sb "$D" | cut -f1)
    secs_of() { local s; s=$EPOCHREALTIME; "$@" >/dev/null 2>"$WORK/step.err" || { cat "$WORK/step.err" >&2; die "$* failed"; }
        awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
    echo
    echo "### backup of $BIG_PACKAGES packages against cp -r ($files files, $((bytes / 1048576)) MiB in the data directory)"
    echo
    echo "| round | cp -r s | cairn backup s | backup / cp -r |"
    echo "| ---: | ---: | ---: | ---: |"
    CPS=() BKS=()
    for r in $(seq "$ROUNDS_BACKUP"); do
        rm -rf "$WORK/copy" "$WORK/backup"; sync
        cp_s=$(secs_of cp -r "$D" "$WORK/copy")
        rm -rf "$WORK/copy"; sync
        bk_s=$(secs_of "$CAIRN" backup --data "$D" "$WORK/backup")
        CPS+=("$cp_s") BKS+=("$bk_s")
        echo "| $r | $cp_s | $bk_s | $(awk -v a="$bk_s" -v b="$cp_s" 'BEGIN { printf "%.2f", a / b }') |"
    done
    m_cp=$(printf '%s\n' "${CPS[@]}" | median) m_bk=$(printf '%s\n' "${BKS[@]}" | median)
    echo "| median | $m_cp | $m_bk | $(awk -v a="$m_bk" -v b="$m_cp" 'BEGIN { printf "%.2f", a / b }') (target <= 1.0) |"
    echo
    echo "backup: $(find "$WORK/backup" -type f | wc -l) files, $(($(du -sb "$WORK/backup" | cut -f1) / 1048576)) MiB"
    rs_s=$(secs_of "$CAIRN" restore "$WORK/backup" --data "$WORK/restored")
    echo "restore: $rs_s s ($(find "$WORK/restored" -type f | wc -l) files)"
    # The prefill writes no blobs, so fsck finds each prefilled version's
    # missing: the restored registry must find exactly what the original does.
    for d in big restored; do
        echo "cairn fsck of $d: $("$CAIRN" fsck --data "$WORK/$d" 2>&1 | tail -n1 | sed 's/ in [0-9.]*s$//')"
    done
fi
