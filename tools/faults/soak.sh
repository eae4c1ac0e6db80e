#!/usr/bin/env bash
# A bounded soak: DURATION seconds (600) of concurrent publishes (CLIENTS=16,
# bench-publish-load in chunks of CHUNK publishes with fresh names; each
# chunk has a random prefix, so the names spread over the index's
# directories as real ones do rather than filling one) and static
# reads (wrk, 2 threads, 32 connections, over the registry's index files,
# documents and blobs) against one `cairn serve` on loopback. Every second
# it samples the server's RSS (printed every 10 s). Prints the publish latencies (p50 = median of
# the chunks' p50, p99 = the worst chunk's p99), wrk's read latencies, the
# errors, and the RSS series; fails if RSS grew more than 10% after the
# first minute: the lowest sample of each later minute (what the server
# keeps between its bursts) against the second minute's; the peak is
# printed beside it. The registry starts at PACKAGES (20 000) packages, so
# the bounded caches (SQLite's page cache per connection, the hot read
# cache) are warm when the minute ends rather than filling with a registry
# that grows 25-fold. Stops by itself; servers are stopped on exit.
#
#   tools/faults/soak.sh
#   DURATION=120 SEARCH_INTERVAL=0 tools/faults/soak.sh
set -euo pipefail
DURATION=${DURATION:-600}
CLIENTS=${CLIENTS:-16}
CHUNK=${CHUNK:-400}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for c in wrk curl awk; do command -v "$c" >/dev/null || { log "missing $c"; exit 1; }; done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin cairn --example bench-prefill --example bench-publish-load >&2
fi
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-soak.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

D=$WORK/data
timeout 60 "$T/cairn" init --data "$D" --public-url http://127.0.0.1:1 >"$WORK/token" 2>/dev/null
timeout 600 "$T/examples/bench-prefill" --data "$D" --packages "${PACKAGES:-20000}" 2>/dev/null
# SEARCH_INTERVAL=0 turns the search timer off (the job reads the whole
# index every minute: its memory grows with the registry, not with time).
if [ -n "${SEARCH_INTERVAL:-}" ]; then
    sed -i "s/^search_interval = .*/search_interval = $SEARCH_INTERVAL/" "$D/registry.toml"
fi
CAIRN_RATE_LIMIT=off CAIRN_LOG=${CAIRN_LOG:-warn} timeout $((DURATION + 300)) "$T/cairn" serve --data "$D" --listen 127.0.0.1:0 \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
for _ in $(seq 600); do grep -q '^public key:' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
# The server itself, not the `timeout` that started it.
SERVER=$(pgrep -n -P "${PIDS[0]}" -x cairn)
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
[ -n "$URL" ] || { cat "$WORK/serve.err" >&2; exit 1; }
( cd "$D/static" && find index api/v1/packages -type f ! -path '*/.*' -printf '/%p\n' | shuf -n 5000 --random-source=<(yes) ) >"$WORK/paths.txt"
log "cairn on $URL; $DURATION s of $CLIENTS publishing clients and wrk"

# Resident KiB: in all, anonymous (the heap), file-backed (mapped packs).
rss() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf "%s ", $2}' "/proc/$SERVER/status"; }
end=$((SECONDS + DURATION))
( started=$SECONDS
  while [ $SECONDS -lt $end ]; do echo "$((SECONDS - started)) $(rss)"; sleep 1; done ) >"$WORK/rss.txt" &
PIDS+=($!)
wrk -t2 -c32 -d"${DURATION}s" --latency -s tools/bench/static_read/paths.lua "$URL" -- "$WORK/paths.txt" \
    >"$WORK/wrk.txt" 2>&1 &
WRK=$!
PIDS+=("$WRK")
chunk=0
while [ $SECONDS -lt $end ]; do
    timeout 600 "$T/examples/bench-publish-load" --url "$URL" --token "$(cat "$WORK/token")" --clients "$CLIENTS" \
        --count "$CHUNK" --warmup 0 >>"$WORK/publish.jsonl" 2>/dev/null
    chunk=$((chunk + 1))
done
wait "$WRK" || true
sleep 1

python3 - "$WORK" <<'PY'
import json, re, statistics, sys
work = sys.argv[1]
chunks = [json.loads(l) for l in open(f"{work}/publish.jsonl") if l.strip()]
wrk = open(f"{work}/wrk.txt").read()
def lat(p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", wrk, re.M)
    if not m: return "?"
    v, u = float(m.group(1)), m.group(2)
    return round(v / 1000 if u == "us" else v * 1000 if u == "s" else v, 2)
rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
socket = re.search(r"Socket errors: (.*)", wrk)
# Sampled every second; printed every 10 s.
every = [tuple(map(int, l.split())) for l in open(f"{work}/rss.txt") if len(l.split()) == 4]
rows, shown = [], -10
for r in every:
    if r[0] >= shown + 10:
        rows.append(r)
        shown = r[0]
rss = [(t, k) for t, k, _, _ in every]
print(f"publishes: {sum(c['ok'] for c in chunks)} ok, {sum(c['errors'] for c in chunks)} errors, in {len(chunks)} chunks of {chunks[0]['count']} "
      f"({chunks[0]['clients']} clients); p50 {statistics.median(c['p50_ms'] for c in chunks):.1f} ms (median of chunks), "
      f"p99 {max(c['p99_ms'] for c in chunks):.1f} ms (worst chunk)")
print(f"reads (wrk -t2 -c32): {rps.group(1) if rps else '?'} req/s, p50 {lat(50)} ms, p99 {lat(99)} ms, "
      f"non-2xx {errors.group(1) if errors else 0}, socket errors: {socket.group(1) if socket else 'none'}")
print("RSS (s: MiB in all/anonymous/file-backed): " + ", ".join(f"{t}: {k / 1024:.0f}/{a / 1024:.0f}/{f / 1024:.0f}" for t, k, a, f in rows))
# The lowest sample of each minute: what the server holds between the
# bursts of its background work (pack merges, the search job).
floor = {}
for t, k in rss:
    floor[t // 60] = min(floor.get(t // 60, k), k)
print("RSS floor per minute (MiB): " + ", ".join(f"{k / 1024:.0f}" for _, k in sorted(floor.items())))
after = [k for t, k in rss if t >= 60]
if after:
    base, top = after[0], max(after)
    print(f"RSS peak: {top / 1024:.0f} MiB, {(top - base) / base * 100:+.1f}% over the sample at 60 s ({base / 1024:.0f} MiB)")
    # Growth is what the server keeps: the floor of each later minute
    # against the second minute's (a burst is not growth; its size is the
    # peak above).
    floors = [k for m, k in sorted(floor.items()) if m >= 1]
    growth = (max(floors) - floors[0]) / floors[0]
    print(f"RSS growth after the first minute (floor per minute): {floors[0] / 1024:.0f} -> at most {max(floors) / 1024:.0f} MiB: {growth * 100:+.1f}%")
    sys.exit(0 if growth <= 0.10 else 1)
PY
