#!/usr/bin/env bash
# The trusted-publishing exchange benchmark (see tools/bench/README.md,
# "Trusted publishing exchange"): what `POST /api/v1/trusted_publishing/tokens`
# costs with the issuer's JWKS cached (SPEC section 17: the JWT's signature
# checked against the cached key, its jti recorded once, the matching trust
# configurations looked up, a 30-minute token issued and audit-logged),
# against the peer `GET /api/v1/whoami` with a token (one authenticated
# database read) on the same server, in the same run, one keep-alive
# connection, one request at a time. The provider is oauth2-mock-server
# (tools/oidc-test); every JWT is minted before the clock starts. Also
# prints what provenance adds to an index line, in bytes.
#
#   tools/bench/trusted_exchange.sh                 # REQUESTS=300 ROUNDS=3
#   SKIP_BUILD=1 REQUESTS=100 ROUNDS=1 tools/bench/trusted_exchange.sh
#
# Environment:
#   REQUESTS      exchanges (and whoami calls) per round           (300)
#   ROUNDS        rounds, alternating which goes first              (3)
#   SERVER_CPU    CPU of cairn (taskset -c)                         (1)
#   SKIP_BUILD    1 = do not run cargo build                        (0)
#   KEEP          1 = keep the temp dir                             (0)
#   STEP_TIMEOUT  seconds allowed to any one step                   (600)
set -euo pipefail

REQUESTS=${REQUESTS:-300}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { printf '[trusted-exchange %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
for c in timeout taskset curl python3 node; do command -v "$c" >/dev/null || die "missing command: $c"; done
[ -d tools/oidc-test/node_modules/oauth2-mock-server ] ||
    (cd tools/oidc-test && npm ci --no-audit --no-fund --loglevel=error)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    timeout "$STEP_TIMEOUT" cargo build --release --bin cairn >&2
fi
CAIRN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cairn
[ -x "$CAIRN" ] || die "missing $CAIRN (build it, or unset SKIP_BUILD)"

WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/cairn-trusted-exchange.XXXXXX")
source "$ROOT/tools/bench/servers.sh"
PROVIDER_PID=
cleanup_provider() { [ -n "$PROVIDER_PID" ] && kill "$PROVIDER_PID" 2>/dev/null || true; }
trap 'cleanup_provider; cleanup' EXIT

# ---- the provider, the registry, a package trusting one repository --------
PORT=$((20000 + RANDOM % 40000))
timeout $((STEP_TIMEOUT * 4)) node tools/oidc-test/provider.mjs "$PORT" >"$WORK/provider.out" 2>&1 &
PROVIDER_PID=$!
for _ in $(seq 100); do grep -q '^listening' "$WORK/provider.out" && break; sleep 0.1; done
ISSUER=$(sed -n 's/^listening //p' "$WORK/provider.out")
[ -n "$ISSUER" ] || { cat "$WORK/provider.out" >&2; die "the provider did not start"; }

D=$WORK/data
timeout 60 "$CAIRN" init --data "$D" --public-url http://127.0.0.1:1 >"$WORK/token" 2>"$WORK/init.log" ||
    { cat "$WORK/init.log" >&2; die "cairn init failed"; }
sed -i 's/^search_interval *=.*/search_interval = 0/' "$D/registry.toml"
printf '\n[[trusted_publishing]]\nissuer = "%s"\naudience = "bench"\n' "$ISSUER" >>"$D/registry.toml"
TOKEN=$(cat "$WORK/token")
start_cairn "$D" $((STEP_TIMEOUT * 4))
log "cairn at $CAIRN_URL on CPU $SERVER_CPU, provider at $ISSUER"

CAIRN_URL=$CAIRN_URL ISSUER=$ISSUER TOKEN=$TOKEN REQUESTS=$REQUESTS ROUNDS=$ROUNDS \
    timeout "$STEP_TIMEOUT" python3 - <<'PY'
import gzip, http.client, io, json, os, statistics, sys, tarfile, time, urllib.parse

cairn = urllib.parse.urlparse(os.environ["CAIRN_URL"])
issuer = os.environ["ISSUER"]
token = os.environ["TOKEN"]
n, rounds = int(os.environ["REQUESTS"]), int(os.environ["ROUNDS"])

def conn(url):
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)

def call(c, method, path, body=None, headers=None):
    h = dict(headers or {})
    if body is not None:
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()

def tarball(name, version):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for path, data in [("cairn.toml", f'[package]\nname = "{name}"\nversion = "{version}"\n'.encode()), ("README.md", b"bench")]:
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)

c = conn(cairn)
auth = {"Authorization": f"Bearer {token}"}
s, b = call(c, "PUT", "/api/v1/packages/widgets/0.1.0", tarball("widgets", "0.1.0"), {**auth, "Content-Type": "application/gzip"})
assert s == 201, (s, b)
trust = {"issuer": issuer, "repository": "acme/widgets", "workflow": "release.yml"}
s, b = call(c, "POST", "/api/v1/packages/widgets/trusted-publishers", trust, auth)
assert s == 201, (s, b)

idp = conn(urllib.parse.urlparse(issuer))
def mint(i):
    claims = {"jti": f"bench-{i}", "aud": "bench", "repository": "acme/widgets", "ref": "refs/tags/v0.2.0",
              "sha": "3f2a1c9e0b7d4f5a6c8e9d0b1a2c3d4e5f6a7b8c", "run_id": str(1000 + i), "environment": "release",
              "job_workflow_ref": "acme/widgets/.github/workflows/release.yml@refs/tags/v0.2.0"}
    s, b = call(idp, "POST", "/control/mint", {"claims": claims, "expiresIn": 3600})
    assert s == 200, (s, b)
    return json.loads(b)["jwt"]

jwts = [mint(i) for i in range(n * rounds + 1)]
# Warm: the JWKS fetched and cached; the first exchange publishes once for the line figure.
s, b = call(c, "POST", "/api/v1/trusted_publishing/tokens", {"jwt": jwts.pop()})
assert s == 200, (s, b)
ci = {"Authorization": f"Bearer {json.loads(b)['token']}", "Content-Type": "application/gzip"}
s, b = call(c, "PUT", "/api/v1/packages/widgets/0.2.0", tarball("widgets", "0.2.0"), ci)
assert s == 201, (s, b)

times = {"exchange": [], "whoami": []}
def run_exchange():
    for _ in range(n):
        jwt = jwts.pop()
        t = time.perf_counter()
        s, b = call(c, "POST", "/api/v1/trusted_publishing/tokens", {"jwt": jwt})
        times["exchange"].append((time.perf_counter() - t) * 1000)
        assert s == 200, (s, b)
def run_whoami():
    for _ in range(n):
        t = time.perf_counter()
        s, b = call(c, "GET", "/api/v1/whoami", None, auth)
        times["whoami"].append((time.perf_counter() - t) * 1000)
        assert s == 200, (s, b)
for r in range(rounds):
    for f in ([run_exchange, run_whoami] if r % 2 == 0 else [run_whoami, run_exchange]):
        f()

def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"| request | n | p50 ms | p99 ms |")
print(f"| --- | ---: | ---: | ---: |")
for k in ("exchange", "whoami"):
    print(f"| {k} | {len(times[k])} | {statistics.median(times[k]):.2f} | {q(times[k], 99):.2f} |")
print(f"exchange/whoami p50 ratio: {statistics.median(times['exchange']) / statistics.median(times['whoami']):.2f}")

s, b = call(c, "GET", "/index/wi/dg/widgets")
lines = b.decode().splitlines()
without, with_ = len(lines[0].encode()), len(lines[1].encode())
prov = json.dumps(json.loads(lines[1])["provenance"], separators=(",", ":"))
print(f"index line: {without} bytes without provenance, {with_} with (+{with_ - without}; the provenance object is {len(prov)} bytes)")
PY
