#!/usr/bin/env bash
# Publish-to-searchable latency (see tools/bench/README.md, "Search
# freshness"): COUNT publishes one after another to a fresh `cairn serve`,
# each polled for right after its 201 through cargo's search API (cairn)
# and through the static search files that `cairn search` and the site read
# (served by nginx with the shipped configuration). The 201 itself is the
# peer figure: search can be no faster than the publish it follows.
#
#   tools/bench/search_fresh.sh
#   SKIP_BUILD=1 COUNT=50 tools/bench/search_fresh.sh
#
# Environment:
#   COUNT          publishes                                       (200)
#   PACKAGES       packages prefilled first (with search shards)   (2000)
#   SKIP_BUILD     1 = do not run cargo build                      (0)
#   KEEP           1 = keep the temp dir                           (0)
#   BENCH_TMP      parent of the temp dir                          ($TMPDIR or /tmp)
#   STEP_TIMEOUT   seconds allowed to any one step                 (900)
set -euo pipefail

COUNT=${COUNT:-200}
PACKAGES=${PACKAGES:-2000}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[fresh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for c in cargo python3 nginx curl timeout; do command -v "$c" >/dev/null || { log "missing command: $c"; exit 1; }; done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn --example bench-prefill --example bench-search-fresh >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in cairn examples/bench-prefill examples/bench-search-fresh; do
    [ -x "$TARGET/$b" ] || { log "missing $TARGET/$b"; exit 1; }
done

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-fresh.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

D=$WORK/data
NGINX_PORT=$(free_port)
log "init + prefill: $PACKAGES packages, then their search shards"
timeout 60 "$TARGET/cairn" init --data "$D" --public-url "http://127.0.0.1:$NGINX_PORT" >"$WORK/token" 2>/dev/null
timeout "$STEP_TIMEOUT" "$TARGET/examples/bench-prefill" --data "$D" --packages "$PACKAGES" 2>/dev/null
timeout "$STEP_TIMEOUT" "$TARGET/cairn" rebuild search --data "$D" >/dev/null
CAIRN_RATE_LIMIT=off CAIRN_LOG=warn timeout 7200 "$TARGET/cairn" serve --data "$D" --listen 127.0.0.1:0 \
    >"$WORK/serve.out" 2>"$WORK/serve.log" &
PIDS+=($!)
for _ in $(seq 600); do grep -q '^public key:' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { log "cairn serve did not start: $(cat "$WORK/serve.log")"; exit 1; }
"$ROOT/tools/deploy/nginx/render.sh" "$D" "127.0.0.1:$NGINX_PORT" "${URL#http://}" "$WORK/nginx" 1 >/dev/null
timeout 7200 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx.err" &
PIDS+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PORT/index/config.json" 2>/dev/null && break; sleep 0.1; done
log "cairn on $URL, nginx on 127.0.0.1:$NGINX_PORT; $COUNT publishes"
timeout "$STEP_TIMEOUT" "$TARGET/examples/bench-search-fresh" --url "$URL" --token "$(cat "$WORK/token")" \
    --static-url "http://127.0.0.1:$NGINX_PORT" --count "$COUNT" >"$WORK/report.json"
python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['publishes']} publishes, one after another; times from sending the PUT, in ms; "
      f"{r['extraPolls']} polls beyond the first in all")
print()
print("| until | p50 | p99 | max |")
print("| --- | ---: | ---: | ---: |")
for key, label in (("publishMs", "the 201 (peer: the publish itself)"),
                   ("cargoSearchMs", "found by cargo's search API (`GET /api/v1/crates?q=`)"),
                   ("staticSearchMs", "found by `cairn search`'s code on the static files, through nginx")):
    s = r[key]
    print(f"| {label} | {s['p50']} | {s['p99']} | {s['max']} |")
PY
