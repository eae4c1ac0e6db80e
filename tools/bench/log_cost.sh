#!/usr/bin/env bash
# What the transparency log costs (see tools/bench/README.md, "log cost"):
# the same script, machine and client against two servers, `cairn` built
# from this tree (the log on) and PEER, a cairn built without the log (the
# commit before it, 5969ccf, built by the caller:
#   git worktree add /tmp/cairn-old 5969ccf && (cd /tmp/cairn-old && cargo build --release --bin cairn)
#   PEER=$CARGO_TARGET_DIR/release/cairn ... copied aside before rebuilding this tree).
#
# Both servers: a fresh registry each, `cairn serve` on 127.0.0.1, side by
# side; every measurement alternates between them (peer, then this tree):
#   publish p50   bench-publish-load, N1 publishes with 1 client, N16 with 16
#   install       the install benchmark's graph (PACKAGES packages, 1 version,
#                 tools/bench/install/graph.py), then RUNS cold installs of
#                 bench-pkg-000 (empty cache and config: first contact, no
#                 kept checkpoint) by this tree's client: with the log on it
#                 checks the checkpoint and every line's inclusion
#   wire bytes    one more cold install through tools/bench/wire/proxy.py:
#                 the answer bytes the client received from the registry URL
#                 (config, index files and the log; blobs come from `dl`,
#                 the server itself); the difference is what the log's
#                 checks fetch (checkpoint, tiles, entry bundles)
# Prints a markdown table of medians and the ratios log / no log, and the
# client's own timing of the log's checks (a debug line of `install`): the
# servers differ in more than the log (the peer is older code), so that
# timing is what isolates the verification's cost.
#
#   PEER=/tmp/cairn-nolog tools/bench/log_cost.sh
#   PEER=/tmp/cairn-nolog RUNS=3 PACKAGES=100 tools/bench/log_cost.sh
set -euo pipefail
PACKAGES=${PACKAGES:-300}
RUNS=${RUNS:-9}
N1=${N1:-200}
N16=${N16:-800}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -x "${PEER:-}" ] || { log "set PEER to a cairn binary built without the log (see the header)"; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin cairn --example bench-publish-load >&2
fi
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-logcost.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
python3 tools/bench/install/graph.py spec --packages "$PACKAGES" --versions 1 >"$WORK/graph.json"

ms() { python3 -c 'import sys,time; print(int(time.time()*1000))'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# start BINARY LABEL: a fresh registry served by BINARY; its URL and token
# in $WORK/LABEL.url and $WORK/LABEL.token.
start() {
    local bin=$1 d=$WORK/$2 sport
    sport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin" init --data "$d" --public-url "http://127.0.0.1:$sport" >"$WORK/$2.token" 2>/dev/null
    CAIRN_RATE_LIMIT=off CAIRN_LOG=warn timeout 1800 "$bin" serve --data "$d" --listen "127.0.0.1:$sport" >"$d.out" 2>"$d.err" &
    PIDS+=($!)
    for _ in $(seq 300); do grep -q '^public key:' "$d.out" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/^listening on //p' "$d.out" >"$WORK/$2.url"
}
url() { cat "$WORK/$1.url"; }
token() { cat "$WORK/$1.token"; }
# publish_p50 LABEL CLIENTS COUNT
publish_p50() {
    timeout 600 "$T/examples/bench-publish-load" --url "$(url "$1")" --token "$(token "$1")" --clients "$2" --count "$3" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_ms"])'
}
# cold_install LABEL URL: the wall ms of one cold install of bench-pkg-000.
cold_install() {
    local h=$WORK/$1-home t0 t1
    rm -rf "$h" && mkdir -p "$h/p"
    t0=$(ms)
    (cd "$h/p" && CAIRN_LOG=warn,cairn::client::install=debug CAIRN_CONFIG_DIR=$h/config CAIRN_CACHE_DIR=$h/cache \
        timeout 600 "$T/cairn" install bench-pkg-000 --registry "$2" >/dev/null 2>"$h.err") ||
        { cat "$h.err" >&2; exit 1; }
    t1=$(ms)
    # The client's own timing of the log's checks (index lines, checkpoint, proofs).
    sed 's/\x1b\[[0-9;]*m//g' "$h.err" | grep -o "the log's checks done ms=[0-9]*" | grep -o '[0-9]*$' >>"$WORK/$1.checks" || true
    [ "$(ls "$h/p/cairn_packages" | wc -l)" = "$PACKAGES" ] || { log "$1: the install did not install $PACKAGES packages"; exit 1; }
    echo $((t1 - t0))
}

# Both servers run side by side, and each measurement alternates between
# them, so a noisy neighbour (the machine is shared) hits both alike.
start "$PEER" nolog
start "$T/cairn" log
for l in nolog log; do publish_p50 "$l" 1 "$N1" >"$WORK/$l.p1"; done
for l in nolog log; do publish_p50 "$l" 16 "$N16" >"$WORK/$l.p16"; done
for l in nolog log; do
    timeout 900 python3 tools/bench/install/graph.py publish --url "$(url $l)" --token "$(token $l)" --spec "$WORK/graph.json" >/dev/null
done
for r in $(seq "$RUNS"); do
    for l in nolog log; do cold_install "$l" "$(url $l)" >>"$WORK/$l.installs"; done
done
for l in nolog log; do
    # The same cold install through the counting proxy.
    port=$((20000 + RANDOM % 20000))
    python3 tools/bench/wire/proxy.py "$port" "$(url $l | sed 's|^http://||')" "$WORK/$l.wire" &
    PIDS+=($!)
    sleep 0.5
    cold_install "$l" "http://127.0.0.1:$port" >/dev/null
    sleep 0.5
    echo "$(cat "$WORK/$l.p1") $(cat "$WORK/$l.p16") $(median <"$WORK/$l.installs") $(tail -1 "$WORK/$l.wire" | awk '{print $1}')" >"$WORK/$l.txt"
    log "$l: $(cat "$WORK/$l.txt") (publish p50 1 and 16 clients, install median, bytes)"
done
python3 - "$WORK" "$PACKAGES" "$RUNS" <<'PY'
import sys
work, n, runs = sys.argv[1], sys.argv[2], sys.argv[3]
a = [float(x) for x in open(f"{work}/nolog.txt").read().split()]
b = [float(x) for x in open(f"{work}/log.txt").read().split()]
rows = [("publish p50, 1 client (ms)", 0), ("publish p50, 16 clients (ms)", 1),
        (f"cold install of {n} packages, median of {runs} (ms)", 2), ("bytes received by that install", 3)]
print("| | no log (5969ccf) | log | log / no log |\n|---|---|---|---|")
for name, i in rows:
    print(f"| {name} | {a[i]:.0f} | {b[i]:.0f} | {b[i] / a[i]:.3f} |")
print(f"\nwhat the log's checks fetched in one cold install: {b[3] - a[3]:.0f} bytes")
import statistics
checks = [int(x) for x in open(f"{work}/log.checks").read().split()]
c = statistics.median(checks)
print(f"the log's checks inside the cold installs with the log, as the client times them: median {c:.0f} ms of {b[2]:.0f} ms, "
      f"{c / (b[2] - c) * 100:.1f}% over the install without them")
PY
