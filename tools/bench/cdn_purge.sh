#!/usr/bin/env bash
# What the CDN purge saves (see tools/bench/README.md, "CDN purge"): one
# hour of simulated reads through a shared cache in front of cairn, on a
# simulated clock, in two configurations of the same trace:
#   ttl     no purge: the cache keeps index files and documents for their
#           max-age=60, then fetches them again from the origin
#   purge   [cdn] with a purge: s-maxage=86400, and each publish purges the
#           URLs it changed; the cache fetches a URL again only then
# Counts the requests and bytes that reach the origin for index files and
# package documents (blobs are immutable and pages keep max-age=60 in
# both, so they cost the same either way and are left out), the purge
# requests the CDN receives, and the reads the ttl cache answered with an
# index file older than a publish (the purge cache answers none: the
# Varnish tests check that, tests/testsuite/cdn.rs).
#
# The trace (seeded, SEED): PACKAGES packages read with Zipf popularity
# (exponent READ_ZIPF), READS_PER_S reads a second of which INDEX_SHARE are
# index files and the rest package documents, PUBLISHES_PER_HOUR publishes
# over packages drawn with exponent PUBLISH_ZIPF. One simulated hour warms
# the caches, the next is counted. Sizes (gzip, as a CDN stores them): an
# index file LINE_BYTES per version (versions per package: 1 + a geometric
# draw of mean VERSIONS-1), a package document DOC_BYTES. A publish sends
# URLS_PER_PUBLISH purges (25: what the first version of a package changed
# in serving::the_cdn_purge_hook_receives_the_paths_a_write_changed, the
# index file, documents, pages with their directory URLs, blob, signature,
# log files, search delta, summaries).
#   tools/bench/cdn_purge.sh
#   READS_PER_S=35 PUBLISHES_PER_HOUR=42 tools/bench/cdn_purge.sh
set -euo pipefail
export SEED=${SEED:-42} PACKAGES=${PACKAGES:-20000} READ_ZIPF=${READ_ZIPF:-1.0}
export PUBLISH_ZIPF=${PUBLISH_ZIPF:-0.8} READS_PER_S=${READS_PER_S:-347}
export INDEX_SHARE=${INDEX_SHARE:-0.75} PUBLISHES_PER_HOUR=${PUBLISHES_PER_HOUR:-417}
export LINE_BYTES=${LINE_BYTES:-120} VERSIONS=${VERSIONS:-7} DOC_BYTES=${DOC_BYTES:-3000}
export TTL=${TTL:-60} URLS_PER_PUBLISH=${URLS_PER_PUBLISH:-25}

timeout "${STEP_TIMEOUT:-300}" python3 - <<'EOF'
import bisect, itertools, os, random

env = os.environ
seed, packages = int(env["SEED"]), int(env["PACKAGES"])
reads_per_s, index_share = int(env["READS_PER_S"]), float(env["INDEX_SHARE"])
publishes_per_hour, ttl = int(env["PUBLISHES_PER_HOUR"]), int(env["TTL"])
line_bytes, versions, doc_bytes = int(env["LINE_BYTES"]), float(env["VERSIONS"]), int(env["DOC_BYTES"])
urls_per_publish = int(env["URLS_PER_PUBLISH"])
rng = random.Random(seed)

def zipf(exponent):
    return list(itertools.accumulate(1 / (i + 1) ** exponent for i in range(packages)))

read_cum, publish_cum = zipf(float(env["READ_ZIPF"])), zipf(float(env["PUBLISH_ZIPF"]))
def draw(cum):
    return bisect.bisect_left(cum, rng.random() * cum[-1])

# Versions per package: 1 + geometric with mean VERSIONS - 1.
p = 1 / versions
count = []
for _ in range(packages):
    n = 1
    while rng.random() > p:
        n += 1
    count.append(n)

def size(url):
    kind, pkg = url
    return line_bytes * count[pkg] if kind == "index" else doc_bytes

HOUR = 3600
ttl_expires, ttl_fetched_at = {}, {}
purge_cached = set()
changed_at = {}   # url -> simulated second of its last change
stats = {k: 0 for k in ("reads", "ttl_req", "ttl_bytes", "purge_req", "purge_bytes", "stale", "publishes", "purges")}
publish_p = publishes_per_hour / HOUR
for t in range(2 * HOUR):
    counted = t >= HOUR
    # Publishes at this second: a new version changes the index file and the document.
    n_pub = sum(1 for _ in range(3) if rng.random() < publish_p / 3)
    for _ in range(n_pub):
        pkg = draw(publish_cum)
        count[pkg] += 1
        for url in (("index", pkg), ("doc", pkg)):
            changed_at[url] = t
            purge_cached.discard(url)
        if counted:
            stats["publishes"] += 1
            stats["purges"] += urls_per_publish
    for _ in range(reads_per_s):
        pkg = draw(read_cum)
        url = ("index", pkg) if rng.random() < index_share else ("doc", pkg)
        b = size(url)
        if counted:
            stats["reads"] += 1
        # ttl: fetched when absent or older than max-age.
        if ttl_expires.get(url, -1) <= t:
            ttl_expires[url], ttl_fetched_at[url] = t + ttl, t
            if counted:
                stats["ttl_req"] += 1
                stats["ttl_bytes"] += b
        elif counted and url[0] == "index" and changed_at.get(url, -1) >= ttl_fetched_at[url]:
            stats["stale"] += 1
        # purge: fetched when absent (never read, or purged since).
        if url not in purge_cached:
            purge_cached.add(url)
            if counted:
                stats["purge_req"] += 1
                stats["purge_bytes"] += b

s = stats
mb = lambda b: f"{b / 1e6:.1f} MB"
print(f"one simulated hour: {s['reads']:,} reads of index files and documents, {s['publishes']} publishes")
print()
print("| configuration | origin requests | origin bytes | hit ratio | purge requests to the CDN | stale index reads |")
print("| --- | --- | --- | --- | --- | --- |")
print(f"| max-age=60, no purge | {s['ttl_req']:,} | {mb(s['ttl_bytes'])} | {1 - s['ttl_req'] / s['reads']:.2%} | 0 | {s['stale']:,} |")
print(f"| s-maxage=86400 + purge | {s['purge_req']:,} | {mb(s['purge_bytes'])} | {1 - s['purge_req'] / s['reads']:.2%} | {s['purges']:,} | 0 |")
print()
print(f"saved by the purge: {s['ttl_req'] - s['purge_req']:,} origin requests ({1 - s['purge_req'] / s['ttl_req']:.0%}), "
      f"{mb(s['ttl_bytes'] - s['purge_bytes'])} ({1 - s['purge_bytes'] / s['ttl_bytes']:.0%}) an hour")
EOF
