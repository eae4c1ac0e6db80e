#!/usr/bin/env bash
# The static read benchmark (see tools/bench/README.md, "Static read
# benchmark"): wrk against `cairn serve` and against nginx with the shipped
# configuration (tools/deploy/nginx/), both serving the same static root,
# side by side in one run.
#
#   tools/bench/static_read.sh                       # ROUNDS=5 DURATION=10s CONNECTIONS=32
#   SKIP_BUILD=1 ROUNDS=3 DURATION=5s tools/bench/static_read.sh
#
# A fresh registry in a temp dir (`cairn init`, bench-prefill with PACKAGES
# packages: index files and package, owners and version documents; the
# prefill writes no blobs, so blobs are in the list only if some exist),
# BLOBS real publishes for blobs and signatures, the list of URL paths
# (every such file under DATA/static, shuffled with a fixed seed, at least 900), then `cairn serve` (CAIRN_RATE_LIMIT=off) and
# nginx (1 worker, the shipped config rendered with BENCH=1: access_log
# off, open_file_cache, keepalive_requests 100000), both pinned to
# SERVER_CPU, with nginx's upstream = that cairn. Before the clock: both
# must answer 200 with the same body for a sample of the paths. Then ROUNDS
# interleaved rounds (cairn, nginx, cairn, nginx, …) of DURATION each, wrk
# pinned to WRK_CPU, for two variants: `plain` (no Accept-Encoding, the
# main figure) and `gzip` (`Accept-Encoding: gzip`). Prints a markdown
# table per variant (per round requests/s and latency, medians) and the
# ratio cairn/nginx of the median requests/s.
#
# Environment:
#   PACKAGES      packages the prefill writes                     (2000)
#   BLOBS         packages published through the API, for blobs   (300)
#   ROUNDS        rounds per server and variant                   (5)
#   DURATION      wrk duration of one round                       (10s)
#   CONNECTIONS   wrk connections                                 (32)
#   THREADS       wrk threads                                     (1)
#   WARMUP        unmeasured wrk run per server and variant first (2s; 0 = none)
#   VARIANTS      which variants to run                           ("plain gzip")
#   SERVER_CPU    CPU of both servers (taskset -c)                (1)
#   WRK_CPU       CPU of wrk (taskset -c)                         (0)
#   SEED          seed of the path shuffle                        (42)
#   SAMPLE        paths compared between the servers first        (50)
#   MIN_PATHS     fewest paths accepted                           (900)
#   NGINX, WRK    the binaries                                    (nginx, wrk on PATH or /usr/sbin/nginx)
#   SKIP_BUILD    1 = do not run cargo build                      (0)
#   KEEP          1 = keep the temp dir (data dir, logs, wrk output) (0)
#   BENCH_TMP     parent of the temp dir                          ($TMPDIR or /tmp)
#   STEP_TIMEOUT  seconds allowed to any one step but the servers (900)
set -euo pipefail

PACKAGES=${PACKAGES:-2000}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
VARIANTS=${VARIANTS:-"plain gzip"}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
SEED=${SEED:-42}
SAMPLE=${SAMPLE:-50}
MIN_PATHS=${MIN_PATHS:-900}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[static-read %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
need() { command -v "$1" >/dev/null || die "missing command: $1"; }
need timeout
need taskset
need curl
need awk
need cmp
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
WRK=${WRK:-$(command -v wrk || echo /usr/bin/wrk)}
[ -x "$NGINX" ] || die "nginx not found (set NGINX)"
[ -x "$WRK" ] || die "wrk not found (set WRK)"
LUA=$ROOT/tools/bench/static_read/paths.lua
RENDER=$ROOT/tools/deploy/nginx/render.sh
[ -f "$LUA" ] && [ -x "$RENDER" ] || die "missing $LUA or $RENDER"

# "10s", "2m", "500ms" or a plain number of seconds -> whole seconds (rounded up).
secs() {
    case "$1" in
        *ms) echo $(((${1%ms} + 999) / 1000)) ;;
        *s) echo "${1%s}" ;;
        *m) echo $((${1%m} * 60)) ;;
        *h) echo $((${1%h} * 3600)) ;;
        *) echo "$1" ;;
    esac
}
DUR_S=$(secs "$DURATION")
WARM_S=$(secs "$WARMUP")
[ "$DUR_S" -gt 0 ] 2>/dev/null || die "bad DURATION: $DURATION"
[ "$ROUNDS" -gt 0 ] 2>/dev/null || die "bad ROUNDS: $ROUNDS"
for v in $VARIANTS; do case "$v" in plain | gzip) ;; *) die "unknown variant: $v (plain, gzip)" ;; esac; done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn --example bench-prefill --example bench-publish-load >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
CAIRN=$TARGET/cairn
PREFILL=$TARGET/examples/bench-prefill
LOAD=$TARGET/examples/bench-publish-load
for b in "$CAIRN" "$PREFILL" "$LOAD"; do [ -x "$b" ] || die "missing $b (build it, or unset SKIP_BUILD)"; done

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-static-read.XXXXXX")
source "$ROOT/tools/bench/servers.sh"

# ---- the registry ----------------------------------------------------------
D=$WORK/data
log "init + prefill: $PACKAGES packages"
timeout 60 "$CAIRN" init --data "$D" --public-url http://127.0.0.1:1 >"$WORK/token" 2>"$WORK/init.log" ||
    { cat "$WORK/init.log" >&2; die "cairn init failed"; }
timeout "$STEP_TIMEOUT" "$PREFILL" --data "$D" --packages "$PACKAGES" 2>&1 | sed 's/^/    /' >&2
# No background job of `serve` may take the servers' CPU during a round:
# the search timer would rebuild the shards once, since the prefill wrote none.
if grep -q '^search_interval *=' "$D/registry.toml"; then
    sed -i 's/^search_interval *=.*/search_interval = 0/' "$D/registry.toml"
else
    sed -i '1i search_interval = 0' "$D/registry.toml"
fi
sync

# ---- the servers -----------------------------------------------------------
N_VARIANTS=$(wc -w <<<"$VARIANTS")
SERVER_TIMEOUT=$((STEP_TIMEOUT + N_VARIANTS * (ROUNDS * (DUR_S + 5) + WARM_S + 5) * 2 + 600))
log "cairn serve on CPU $SERVER_CPU"
start_cairn "$D" "$SERVER_TIMEOUT"
log "cairn at $CAIRN_URL"

# Blobs: BLOBS real publishes through the write API (the prefill writes none).
if [ "${BLOBS:-300}" -gt 0 ]; then
    log "publishing ${BLOBS:-300} packages for their blobs"
    timeout "$STEP_TIMEOUT" "$LOAD" --url "$CAIRN_URL" --token "$(cat "$WORK/token")" --clients 4 \
        --count "${BLOBS:-300}" --prefix zqblob --warmup 0 >"$WORK/publish.json" 2>"$WORK/publish.err" ||
        { cat "$WORK/publish.err" >&2; die "publishing the blob packages failed"; }
    sync
fi

# ---- the paths -------------------------------------------------------------
# Index files (config.json and every package file), the package, owners and
# version documents, and blobs with their signatures if any; no hidden
# (temporary) file, only characters that need no escaping in a URL.
PATHS=$WORK/paths.txt
(
    cd "$D/static"
    for dir in index api/v1/packages blobs; do
        if [ -d "$dir" ]; then find "$dir" -type f ! -path '*/.*' -printf '/%p\n'; fi
    done
) | grep -E '^/[A-Za-z0-9._/+-]+$' | LC_ALL=C sort |
    awk -v seed="$SEED" 'BEGIN { srand(seed) } { printf "%.15f\t%s\n", rand(), $0 }' |
    LC_ALL=C sort -k1,1 | cut -f2- >"$PATHS"
N_PATHS=$(wc -l <"$PATHS")
N_INDEX=$(grep -c '^/index/' "$PATHS" || true)
N_DOCS=$(grep -c '^/api/' "$PATHS" || true)
N_BLOBS=$(grep -c '^/blobs/' "$PATHS" || true)
log "paths: $N_PATHS ($N_INDEX index files, $N_DOCS documents, $N_BLOBS blobs and signatures)"
[ "$N_PATHS" -ge "$MIN_PATHS" ] || die "only $N_PATHS paths (need $MIN_PATHS): raise PACKAGES"


start_nginx "$D" "$SERVER_TIMEOUT"
log "nginx at $NGINX_URL ($("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 1 worker, upstream $CAIRN_ADDR)"

# ---- same answers before the clock -----------------------------------------
# SAMPLE paths spread over the list: 200 from both, identical bodies (plain
# and, decoded, with gzip); Content-Type and Content-Encoding compared too
# (a difference is reported, not fatal: the serving rules have their own test).
check_sample() {
    local n=0 bad=0 warn=0 step p i
    step=$(((N_PATHS + SAMPLE - 1) / SAMPLE))
    for ((i = 1; i <= N_PATHS; i += step)); do
        p=$(sed -n "${i}p" "$PATHS")
        n=$((n + 1))
        local -a info=()
        for s in cairn nginx; do
            local url=$CAIRN_URL
            [ "$s" = nginx ] && url=$NGINX_URL
            info+=("$(curl -s -o "$WORK/check.$s" -w '%{http_code} %{content_type}' "$url$p")")
            info+=("$(curl -s --compressed -H 'Accept-Encoding: gzip' -o "$WORK/check.$s.gz" \
                -w '%{http_code} %header{content-encoding}' "$url$p")")
        done
        if [ "${info[0]%% *}" != 200 ] || [ "${info[2]%% *}" != 200 ] ||
            [ "${info[1]%% *}" != 200 ] || [ "${info[3]%% *}" != 200 ] ||
            ! cmp -s "$WORK/check.cairn" "$WORK/check.nginx" ||
            ! cmp -s "$WORK/check.cairn.gz" "$WORK/check.nginx.gz" ||
            ! cmp -s "$WORK/check.cairn" "$WORK/check.cairn.gz"; then
            log "  MISMATCH $p: cairn [${info[0]}] [gzip: ${info[1]}], nginx [${info[2]}] [gzip: ${info[3]}]"
            bad=$((bad + 1))
        elif [ "${info[0]}" != "${info[2]}" ] || [ "${info[1]}" != "${info[3]}" ]; then
            [ "$warn" -lt 5 ] && log "  note $p: cairn [${info[0]}] [gzip: ${info[1]}], nginx [${info[2]}] [gzip: ${info[3]}]"
            warn=$((warn + 1))
        fi
    done
    log "sample: $n paths, $bad with different status or body, $warn with different Content-Type or Content-Encoding"
    [ "$bad" -eq 0 ]
}
check_sample || die "the servers do not give the same answers"

# ---- the rounds ------------------------------------------------------------
# One wrk run; prints the STATIC_READ line of paths.lua (or "failed",
# "timeout") with wrk's own CPU use appended (wrk_cpu=%: near 100 x THREADS,
# wrk itself is the limit).
run_wrk() { # url variant duration label
    local enc= t TIMEFORMAT='%U %S %R'
    [ "$2" = gzip ] && enc=gzip
    local out=$WORK/wrk-$4.txt
    if t=$( { time timeout $(($(secs "$3") + 60)) taskset -c "$WRK_CPU" "$WRK" -t"$THREADS" -c"$CONNECTIONS" \
        -d"$3" --timeout 10s --latency -s "$LUA" "$1" -- "$PATHS" $enc >"$out" 2>&1; } 2>&1); then
        local line
        line=$(grep '^STATIC_READ ' "$out" || echo "STATIC_READ failed")
        echo "$line wrk_cpu=$(awk -v u="${t%% *}" -v r="${t##* }" -v s="$(cut -d' ' -f2 <<<"$t")" \
            'BEGIN { if (r > 0) printf "%.0f", (u + s) / r * 100; else print "-" }')"
    else
        echo "STATIC_READ timeout"
    fi
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
errs() { local l=$1 e=0 f v; for f in errors_connect errors_read errors_write errors_timeout non_2xx_3xx; do
    v=$(field "$l" $f); e=$((e + ${v:-0})); done; echo "$e"; }

declare -A RES=()
if [ "$WARM_S" -gt 0 ]; then
    for v in $VARIANTS; do
        for s in cairn nginx; do
            url=$CAIRN_URL
            [ "$s" = nginx ] && url=$NGINX_URL
            log "warm-up $v $s ($WARMUP)"
            run_wrk "$url" "$v" "$WARMUP" "warmup-$v-$s" >/dev/null
        done
    done
fi
for r in $(seq "$ROUNDS"); do
    for v in $VARIANTS; do
        for s in cairn nginx; do
            url=$CAIRN_URL
            [ "$s" = nginx ] && url=$NGINX_URL
            line=$(run_wrk "$url" "$v" "$DURATION" "$v-$s-$r")
            RES[$v,$s,$r]=$line
            log "round $r $v $s: $(field "$line" rps) req/s, p50 $(field "$line" p50_us) us, p99 $(field "$line" p99_us) us, errors $(errs "$line"), wrk CPU $(field "$line" wrk_cpu)%"
        done
    done
done
kill -0 "$CAIRN_PID" 2>/dev/null || die "cairn serve died during the run"
kill -0 "$NGINX_PID" 2>/dev/null || die "nginx died during the run"

# ---- the tables ------------------------------------------------------------
median() { tr ' ' '\n' | { grep -E '^[0-9.]+$' || true; } | sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    if (NR % 2) printf "%.2f\n", a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ms() { awk -v u="$1" 'BEGIN { if (u == "") print "-"; else printf "%.2f", u / 1000 }'; }
mbps() { awk -v b="$1" -v d="$2" 'BEGIN { if (b == "" || d == "" || d == 0) print "-"; else printf "%.1f", b / (d / 1e6) / 1048576 }'; }

echo
echo "cairn static read benchmark: $PACKAGES packages, $N_PATHS paths ($N_INDEX index files, $N_DOCS documents, $N_BLOBS blobs), wrk -t$THREADS -c$CONNECTIONS -d$DURATION x $ROUNDS rounds"
echo "$(nproc) CPUs, $(uname -sr); servers on CPU $SERVER_CPU, wrk on CPU $WRK_CPU; $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') (1 worker, open_file_cache), $("$WRK" -v 2>&1 | head -n1 | awk '{ print $1, $2 }'); cairn $("$CAIRN" --version 2>/dev/null | awk '{ print $NF }')"
SUMMARY=()
for v in $VARIANTS; do
    echo
    case "$v" in
        plain) echo "### plain (no Accept-Encoding)" ;;
        gzip) echo "### gzip (Accept-Encoding: gzip)" ;;
    esac
    echo
    echo "| round | cairn req/s | cairn p50 ms | cairn p99 ms | cairn MiB/s | cairn errors | wrk CPU % | nginx req/s | nginx p50 ms | nginx p99 ms | nginx MiB/s | nginx errors | wrk CPU % |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    declare -A COL=()
    for r in $(seq "$ROUNDS"); do
        row="| $r"
        for s in cairn nginx; do
            l=${RES[$v,$s,$r]}
            rps=$(field "$l" rps) p50=$(field "$l" p50_us) p99=$(field "$l" p99_us)
            row+=" | ${rps:-${l#STATIC_READ }} | $(ms "$p50") | $(ms "$p99") | $(mbps "$(field "$l" bytes)" "$(field "$l" duration_us)") | $(errs "$l") | $(field "$l" wrk_cpu)"
            COL[$s,rps]+="${rps:-x} "
            COL[$s,p50]+="$(ms "$p50") "
            COL[$s,p99]+="$(ms "$p99") "
        done
        echo "$row |"
    done
    c_rps=$(median <<<"${COL[cairn,rps]}") n_rps=$(median <<<"${COL[nginx,rps]}")
    c_p50=$(median <<<"${COL[cairn,p50]}") n_p50=$(median <<<"${COL[nginx,p50]}")
    c_p99=$(median <<<"${COL[cairn,p99]}") n_p99=$(median <<<"${COL[nginx,p99]}")
    echo "| median | $c_rps | $c_p50 | $c_p99 | | | | $n_rps | $n_p50 | $n_p99 | | | |"
    ratio=$(awk -v a="$c_rps" -v b="$n_rps" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }')
    echo
    echo "ratio cairn/nginx (median req/s, $v): $ratio"
    SUMMARY+=("| $v | $c_rps | $n_rps | $ratio | $c_p50 | $n_p50 | $c_p99 | $n_p99 |")
    unset COL
done
echo
echo "### summary (medians over $ROUNDS rounds)"
echo
echo "| variant | cairn req/s | nginx req/s | cairn/nginx | cairn p50 ms | nginx p50 ms | cairn p99 ms | nginx p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${SUMMARY[@]}"
