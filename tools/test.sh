#!/usr/bin/env bash
# The README's test command: installs the system packages the tests use
# (git, minisign, nginx with its brotli module, varnish, python3, chromium,
# node, postgresql: the database tests start their own server from its
# binaries, prometheus for its promtool)
# and the site tests' npm packages, and the Python packages the log's
# independent check (cryptography) and the S3 tests (moto's server) use
# when they are missing, then runs `cargo test` with any arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
command -v minisign >/dev/null || need+=(minisign)
command -v nginx >/dev/null || need+=(nginx-light)
# tests/testsuite/cdn.rs: Varnish in front, purged by cairn.
command -v varnishd >/dev/null || need+=(varnish)
command -v python3 >/dev/null || need+=(python3 python3-pip)
# The site's browser tests: Debian's chromium, driven by playwright-core.
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs npm)
[ -f /usr/lib/nginx/modules/ngx_http_brotli_filter_module.so ] || need+=(libnginx-mod-http-brotli-filter)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# The TLS test of Postgres makes its CA and certificate with openssl.
command -v openssl >/dev/null || need+=(openssl)
# tests/testsuite/ops.rs checks the metrics scrape with promtool.
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
  # The package starts a system nginx on port 80; the tests start their own.
  { $sudo service nginx stop || $sudo pkill -x nginx || true; } >/dev/null 2>&1
  # varnish's package starts a system varnishd on 6081 (where systemd runs);
  # the tests start their own (tests/testsuite/support/varnish.rs).
  { $sudo service varnish stop || true; } >/dev/null 2>&1
  # postgresql's package starts a system cluster on 5432; the tests start
  # their own clusters (tests/testsuite/support/pg.rs) and need none.
  { $sudo service postgresql stop || true; } >/dev/null 2>&1
  # prometheus's package starts a server listening on every interface;
  # the tests need its promtool alone.
  { $sudo service prometheus stop || $sudo pkill -x prometheus || true; } >/dev/null 2>&1
fi

# tests/log_check.py verifies the transparency log with its own Ed25519.
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography ||
  python3 -m pip install -q --break-system-packages cryptography

# tests/testsuite/mail.rs delivers to a real SMTP server, aiosmtpd.
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q aiosmtpd ||
  python3 -m pip install -q --break-system-packages aiosmtpd

# tests/testsuite/feeds.rs reads the Atom feeds with a real feed parser.
python3 -c 'import feedparser' 2>/dev/null || python3 -m pip install -q feedparser ||
  python3 -m pip install -q --break-system-packages feedparser

# tests/testsuite/s3.rs runs against moto's S3-compatible server.
python3 -c 'import moto.server, flask' 2>/dev/null || python3 -m pip install -q 'moto[server]' ||
  python3 -m pip install -q --break-system-packages 'moto[server]'
# ...and against s3s-fs, a Rust one (0.14.1: its newer releases need a newer
# rustc than Debian's); built once into ~/.cargo/bin.
command -v s3s-fs >/dev/null || cargo install -q --locked s3s-fs --version 0.14.1 --features binary

# playwright-core and axe-core, as pinned by tools/site-test/package-lock.json
# (playwright-core downloads no browser; the tests use /usr/bin/chromium).
[ -d tools/site-test/node_modules/playwright-core ] ||
  (cd tools/site-test && npm ci --no-audit --no-fund --loglevel=error)
# oauth2-mock-server, the OpenID provider of tests/testsuite/identity.rs,
# as pinned by tools/oidc-test/package-lock.json.
[ -d tools/oidc-test/node_modules/oauth2-mock-server ] ||
  (cd tools/oidc-test && npm ci --no-audit --no-fund --loglevel=error)

cargo test "$@"
