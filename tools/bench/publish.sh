#!/usr/bin/env bash
# The publish benchmark of the registry core (see tools/bench/README.md).
#
#   tools/bench/publish.sh                 # N=400 publishes per run
#   N=200 SIZES="10000" CLIENTS="1 16" tools/bench/publish.sh
#
# For each prefill size: a fresh registry in a temp dir, `cairn init`, the
# generator (bench-prefill), `cairn serve` on 127.0.0.1 with
# CAIRN_RATE_LIMIT=off, the load (bench-publish-load) with 1, 4 and 16
# clients, N publishes each run; then the peer: N commits with the git CLI on
# a non-bare clone of the same pre-filled index (append a JSON line to one
# file, `git add`, `git commit -q`), timed in this script. Prints a markdown
# table. Every step has a time limit; nothing listens beyond 127.0.0.1.
#
# Environment:
#   N             publishes per run and git commits per size   (400)
#   SIZES         prefill sizes                                 ("10000 100000")
#   CLIENTS       client counts                                 ("1 4 16")
#   GIT_FSYNC     1 = also time the git peer with core.fsync=all (1)
#   SKIP_BUILD    1 = do not run cargo build                    (0)
#   KEEP          1 = keep the temp dir (data dirs, logs)        (0)
#   BENCH_TMP     parent of the temp dir                         ($TMPDIR or /tmp)
#   STEP_TIMEOUT  seconds allowed to any one step               (900)
set -euo pipefail

N=${N:-400}
SIZES=${SIZES:-"10000 100000"}
CLIENTS=${CLIENTS:-"1 4 16"}
GIT_FSYNC=${GIT_FSYNC:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || { log "missing command: $1"; exit 1; }; }
need git
need timeout

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --examples --bin cairn >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
CAIRN=$TARGET/cairn
PREFILL=$TARGET/examples/bench-prefill
LOAD=$TARGET/examples/bench-publish-load
for b in "$CAIRN" "$PREFILL" "$LOAD"; do [ -x "$b" ] || { log "missing $b"; exit 1; }; done

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-bench.XXXXXX")
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
cleanup() {
    stop_server
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Pulls one numeric field out of the load generator's one-line JSON.
field() { local v; v=$(sed -n "s/.*\"$2\":\(null\|\"timeout\"\|[-0-9.][-0-9.]*\).*/\1/p" <<<"$1"); echo "${v:--}"; }

# The git CLI peer: N commits on a non-bare clone, each appending one JSON
# line to a different package file. Prints "commits_per_s median_ms p99_ms".
git_peer() {
    local bare=$1 dir=$2 fsync=$3
    rm -rf "$dir"
    timeout "$STEP_TIMEOUT" git clone -q "$bare" "$dir"
    local -a cfg=(-c user.name=bench -c user.email=bench@cairn.invalid -c gc.auto=0
                  -c commit.gpgSign=false -c core.hooksPath=/dev/null)
    if [ "$fsync" = 1 ]; then cfg+=(-c core.fsync=all -c core.fsyncMethod=fsync); fi
    local -a files
    mapfile -t files < <(cd "$dir" && git ls-files | grep -v -e '^config.json$' | awk 'NR % 7 == 3' | head -n "$N")
    [ "${#files[@]}" -gt 0 ] || { log "no files to commit in $dir"; return 1; }
    local -a lat=()
    local i=0 f t0 t1 start end
    sync
    start=${EPOCHREALTIME/./}
    (
        cd "$dir"
        i=0
        while [ "$i" -lt "$N" ]; do
            f=${files[$((i % ${#files[@]}))]}
            t0=${EPOCHREALTIME/./}
            printf '{"name":"%s","vers":"9.0.%d","deps":[],"cksum":"%064d","features":{},"yanked":false,"links":null,"v":1,"pubtime":"2026-01-01T00:00:00Z","blake3":"%064d","size":2048,"fmt":"tar.gz","kind":"library","description":"git CLI peer of the cairn publish benchmark","license":"MIT"}\n' \
                "${f##*/}" "$i" "$i" "$i" >>"$f"
            git "${cfg[@]}" add -- "$f"
            git "${cfg[@]}" commit -q -m "publish ${f##*/} 9.0.$i" -m "Published-By: bench"
            t1=${EPOCHREALTIME/./}
            echo $((t1 - t0))
            i=$((i + 1))
        done
    ) >"$dir.lat"
    end=${EPOCHREALTIME/./}
    mapfile -t lat < <(sort -n "$dir.lat")
    local n=${#lat[@]}
    [ "$n" -eq "$N" ] || { log "git peer made $n of $N commits"; return 1; }
    local med=${lat[$(((n + 1) / 2 - 1))]}
    local p99i=$(((n * 99 + 99) / 100 - 1))
    local p99=${lat[$p99i]}
    awk -v n="$n" -v us="$((end - start))" -v med="$med" -v p99="$p99" \
        'BEGIN { printf "%.1f %.2f %.2f\n", n / (us / 1e6), med / 1000, p99 / 1000 }'
}

ROWS=()
VERDICT=
for size in $SIZES; do
    data=$WORK/data-$size
    log "size $size: init"
    # A fixed public URL: config.json then does not depend on the port the
    # server picks, so `serve` starts without committing a new config.json.
    token=$(timeout 60 "$CAIRN" init --data "$data" --public-url http://127.0.0.1 2>"$WORK/init-$size.log")
    log "size $size: prefill"
    timeout "$STEP_TIMEOUT" "$PREFILL" --data "$data" --packages "$size" 2>&1 | sed 's/^/    /' >&2

    sync   # the generator does not fsync; flush before anything is measured
    log "size $size: serve"
    out=$WORK/serve-$size.out
    CAIRN_RATE_LIMIT=off timeout "$STEP_TIMEOUT" "$CAIRN" serve --data "$data" --listen 127.0.0.1:0 \
        >"$out" 2>"$WORK/serve-$size.err" &
    SERVER_PID=$!
    for _ in $(seq 3000); do
        grep -q '^public key:' "$out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { log "server exited"; cat "$WORK/serve-$size.err" >&2; exit 1; }
        sleep 0.1
    done
    url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$out")
    [ -n "$url" ] || { log "server did not start"; cat "$WORK/serve-$size.err" >&2; exit 1; }
    log "size $size: server at $url"

    declare -A RES=()
    for c in $CLIENTS; do
        sync
        log "size $size: $c client(s), $N publishes"
        json=$(timeout "$STEP_TIMEOUT" "$LOAD" --url "$url" --token "$token" --clients "$c" \
            --count "$N" --prefix "$(printf 'zqs%dc%02d' "$size" "$c" | tr 0-9 a-j)") ||
            { log "    the load did not finish within ${STEP_TIMEOUT}s"; json='{"errors":"timeout"}'; }
        log "    $json"
        RES[$c]=$json
    done
    stop_server

    log "size $size: git CLI peer, $N commits"
    read -r git_cps git_med git_p99 < <(git_peer "$data/static/index.git" "$WORK/peer-$size" 0)
    log "    git: $git_cps commits/s, median $git_med ms, p99 $git_p99 ms"
    git_f_cps=- git_f_med=-
    if [ "$GIT_FSYNC" = 1 ]; then
        read -r git_f_cps git_f_med _ < <(git_peer "$data/static/index.git" "$WORK/peerf-$size" 1)
        log "    git fsync=all: $git_f_cps commits/s, median $git_f_med ms"
    fi
    rm -rf "$WORK/peer-$size" "$WORK/peerf-$size"

    for c in $CLIENTS; do
        json=${RES[$c]}
        p50=$(field "$json" p50_ms) p99=$(field "$json" p99_ms)
        tput=$(field "$json" throughput_per_s) errs=$(field "$json" errors)
        ratio=$(awk -v a="$tput" -v b="$git_cps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        ROWS+=("| $size | $c | $p50 | $p99 | $tput | $errs | $git_cps | $git_med | $git_f_cps | $ratio |")
        if [ "$size" = 100000 ] && [ "$c" = 16 ]; then
            ok=$(awk -v p="$p50" -v t="$tput" -v e="$errs" 'BEGIN { print (p < 20 && t >= 200 && e == 0) ? "PASS" : "FAIL" }')
            VERDICT="target (100000 packages, 16 clients: p50 < 20 ms, >= 200 publishes/s): $ok (p50 $p50 ms, $tput publishes/s)"
        fi
    done
    unset RES
    [ "${KEEP:-0}" = 1 ] || rm -rf "$data"
done

echo
echo "cairn publish benchmark: N=$N publishes per run, $(nproc) CPUs, $(uname -sr), $(git --version)"
echo
echo "| prefill | clients | p50 ms | p99 ms | publishes/s | errors | git CLI commits/s | git CLI median ms | git fsync=all commits/s | ratio |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
echo
echo "ratio = cairn publishes/s / git CLI commits/s (git default fsync settings)."
[ -z "$VERDICT" ] || echo "$VERDICT"
