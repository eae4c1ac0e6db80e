#!/usr/bin/env bash
# The private read benchmark (see tools/bench/README.md, "Private read
# benchmark"): what the check of a private organisation's reads costs
# (SPEC section 15: every read under /orgs/{org}/ authenticates the token
# and asks the database for the membership). wrk reads one small file, the
# public `index/config.json` and the private registry's
# `orgs/bench/index/config.json` with a member's token, from `cairn serve`
# and from nginx in front of it (the shipped configuration: auth_request
# asks cairn for every private read), in interleaved rounds; prints the
# median requests/s and p50 latency of each, and the ratio private/public
# for each server.
#
#   tools/bench/private_read.sh                       # ROUNDS=5 DURATION=5s CONNECTIONS=32
#   SKIP_BUILD=1 ROUNDS=3 DURATION=3s tools/bench/private_read.sh
#
# Environment:
#   ROUNDS        rounds per server and file                      (5)
#   DURATION      wrk duration of one round                       (5s)
#   CONNECTIONS   wrk connections                                 (32)
#   SERVER_CPU    CPU of both servers (taskset -c)                (1)
#   WRK_CPU       CPU of wrk (taskset -c)                         (0)
#   NGINX, WRK    the binaries                                    (on PATH or /usr/sbin/nginx)
#   SKIP_BUILD    1 = do not run cargo build                      (0)
#   KEEP          1 = keep the temp dir                           (0)
#   STEP_TIMEOUT  seconds allowed to any one step                 (900)
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[private-read %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
for c in timeout taskset curl awk; do command -v "$c" >/dev/null || die "missing command: $c"; done
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
WRK=${WRK:-$(command -v wrk || echo /usr/bin/wrk)}
[ -x "$NGINX" ] || die "nginx not found (set NGINX)"
[ -x "$WRK" ] || die "wrk not found (set WRK)"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || die "missing $CAIRN (build it, or unset SKIP_BUILD)"

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-private-read.XXXXXX")
source "$ROOT/tools/bench/servers.sh"

# ---- the registry, its private organisation and the servers ----------------
D=$WORK/data
timeout 60 "$CAIRN" init --data "$D" --public-url http://127.0.0.1:1 >"$WORK/token" 2>"$WORK/init.log" ||
    { cat "$WORK/init.log" >&2; die "cairn init failed"; }
sed -i 's/^search_interval *=.*/search_interval = 0/' "$D/registry.toml"
TOKEN=$(cat "$WORK/token")
start_cairn "$D" $((STEP_TIMEOUT * 4))
code=$(curl -s -o "$WORK/org.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"slug":"bench","visibility":"private"}' "$CAIRN_URL/api/v1/orgs")
[ "$code" = 201 ] || { cat "$WORK/org.json" >&2; die "creating the private organisation: $code"; }

start_nginx "$D" $((STEP_TIMEOUT * 4))

PUBLIC=/index/config.json
PRIVATE=/orgs/bench/index/config.json
# Before the clock: the private file needs the token, and both servers give it.
for url in "$CAIRN_URL" "$NGINX_URL"; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url$PRIVATE")" = 401 ] || die "$url: a private read without a token"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$url$PRIVATE")" = 200 ] ||
        die "$url: the member's private read"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url$PUBLIC")" = 200 ] || die "$url: the public read"
done
log "cairn at $CAIRN_URL, nginx at $NGINX_URL, both on CPU $SERVER_CPU; wrk on CPU $WRK_CPU"

# ---- the rounds ------------------------------------------------------------
# One wrk run: "requests/s p50_ms" (p50 in milliseconds).
run_wrk() { # url path header
    local out=$WORK/wrk.txt
    local -a auth=()
    [ -n "$3" ] && auth=(-H "$3")
    timeout $((${DURATION%s} + 60)) taskset -c "$WRK_CPU" "$WRK" -t1 -c"$CONNECTIONS" -d"$DURATION" \
        --latency "${auth[@]}" "$1$2" >"$out" 2>&1 || { echo "failed -"; return; }
    local rps p50
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(awk '$1 == "50%" { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 } printf "%.3f", v }' "$out")
    grep -q 'Non-2xx' "$out" && { echo "non-2xx -"; return; }
    echo "${rps:-failed} ${p50:--}"
}
declare -A RPS P50
for r in $(seq "$ROUNDS"); do
    for server in cairn nginx; do
        url=$CAIRN_URL
        [ "$server" = nginx ] && url=$NGINX_URL
        for file in public private; do
            path=$PUBLIC header=
            [ "$file" = private ] && path=$PRIVATE header="Authorization: Bearer $TOKEN"
            read -r rps p50 <<<"$(run_wrk "$url" "$path" "$header")"
            RPS[$server.$file]+="$rps "
            P50[$server.$file]+="$p50 "
            log "round $r $server $file: $rps requests/s, p50 $p50 ms"
        done
    done
done

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "| server | file | requests/s (median of $ROUNDS) | p50 ms (median) |"
echo "| --- | --- | --- | --- |"
for server in cairn nginx; do
    for file in public private; do
        echo "| $server | $file | $(median <<<"${RPS[$server.$file]}") | $(median <<<"${P50[$server.$file]}") |"
    done
done
for server in cairn nginx; do
    pub=$(median <<<"${RPS[$server.public]}")
    priv=$(median <<<"${RPS[$server.private]}")
    awk -v s="$server" -v a="$priv" -v b="$pub" 'BEGIN { if (b > 0) printf "%s: private/public requests/s = %.2f\n", s, a / b }'
done
