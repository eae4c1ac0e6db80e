#!/usr/bin/env bash
# Renders cairn.conf.template into RUN_DIR/nginx.conf and prints its path.
#
#   tools/deploy/nginx/render.sh DATA_DIR LISTEN UPSTREAM RUN_DIR [WORKERS]
#   nginx -p RUN_DIR -c RUN_DIR/nginx.conf -g 'daemon off;'
#
#   DATA_DIR  the cairn data directory; nginx serves DATA_DIR/static
#   LISTEN    what nginx listens on, e.g. 127.0.0.1:8080
#   UPSTREAM  host:port of `cairn serve`, e.g. 127.0.0.1:7878
#   RUN_DIR   created if missing; gets nginx.conf, nginx.pid, error.log,
#             access.log (combined format) and tmp/
#   WORKERS   worker_processes (default: auto)
#
# Environment:
#   TLS_CERT, TLS_KEY  PEM files: nginx then listens with TLS and HTTP/2
#                  (cargo multiplexes its index reads over one HTTP/2
#                  connection; over HTTP/1.1 it makes them two at a time)
#   BROTLI_MODULE  path of ngx_http_brotli_filter_module.so (default: looked
#                  up in the usual module directories); BROTLI=0 leaves
#                  brotli out even when the module is there
#   BENCH=1        benchmark tuning: access_log off, open_file_cache
#                  (max=10000 inactive=60s, valid 60s), keepalive_requests
#                  100000. Not for production: a cached file descriptor
#                  serves a replaced file's old content until it is revalidated.
set -euo pipefail

usage() { echo "usage: $0 DATA_DIR LISTEN UPSTREAM RUN_DIR [WORKERS]" >&2; exit 2; }
[ $# -ge 4 ] && [ $# -le 5 ] || usage
DATA_DIR=$1 LISTEN=$2 UPSTREAM=$3 RUN_DIR=$4 WORKERS=${5:-auto}
HERE=$(cd "$(dirname "$0")" && pwd)
TEMPLATE=$HERE/cairn.conf.template

[ -d "$DATA_DIR/static" ] || { echo "$0: $DATA_DIR/static is not a directory" >&2; exit 1; }
STATIC_ROOT=$(cd "$DATA_DIR/static" && pwd -P)
case "$WORKERS" in auto | [1-9] | [1-9][0-9]) ;; *) echo "$0: bad WORKERS: $WORKERS" >&2; exit 2 ;; esac
# Characters that would break the nginx syntax or the sed below.
bad_chars() { case "$1" in *[[:space:]\;\{\}\"\'\|\\\#\&]*) echo "$0: unsupported character in: $1" >&2; exit 2 ;; esac; }
for v in "$STATIC_ROOT" "$RUN_DIR" "$LISTEN" "$UPSTREAM"; do bad_chars "$v"; done
mkdir -p "$RUN_DIR/tmp"
RUN_DIR=$(cd "$RUN_DIR" && pwd -P)
bad_chars "$RUN_DIR"

# The brotli filter module (Debian: libnginx-mod-http-brotli-filter).
BROTLI_SO=
if [ "${BROTLI:-1}" != 0 ]; then
    for so in ${BROTLI_MODULE:-} /usr/lib/nginx/modules/ngx_http_brotli_filter_module.so \
        /usr/lib64/nginx/modules/ngx_http_brotli_filter_module.so \
        /usr/local/nginx/modules/ngx_http_brotli_filter_module.so \
        /etc/nginx/modules/ngx_http_brotli_filter_module.so; do
        if [ -f "$so" ]; then BROTLI_SO=$so; break; fi
    done
fi
if [ -n "$BROTLI_SO" ]; then
    BROTLI_LOAD="load_module $BROTLI_SO;"
    # Same types and threshold as gzip; Vary comes from the template's add_header.
    BROTLI_CONF='            brotli on;\
            brotli_comp_level 5;\
            brotli_min_length 256;\
            brotli_types application/json text/plain text/markdown text/css\
                         text/javascript image/svg+xml application/atom+xml;   # text/html always'
else
    BROTLI_LOAD="# brotli: not loaded (module not found, or BROTLI=0): br is not offered"
    BROTLI_CONF='            # brotli: module not loaded'
fi

if [ -n "${TLS_CERT:-}" ]; then
    [ -f "$TLS_CERT" ] && [ -f "${TLS_KEY:-}" ] || { echo "$0: TLS_CERT and TLS_KEY must both be files" >&2; exit 2; }
    bad_chars "$TLS_CERT"; bad_chars "$TLS_KEY"
    TLS=' ssl http2'
    TLS_CONF="        ssl_certificate $TLS_CERT;\\
        ssl_certificate_key $TLS_KEY;"
else
    TLS=''
    TLS_CONF='        # TLS: none (TLS_CERT unset); a CDN or proxy in front terminates it'
fi

# Run by root (a test or benchmark as root): workers would otherwise run as
# `nobody`, which cannot read a mktemp -d (0700) data directory.
if [ "$(id -u)" = 0 ]; then USER_LINE="user root;"; else USER_LINE="# user: running unprivileged"; fi

OUT=$RUN_DIR/nginx.conf
# Comment lines keep their placeholder names.
NC='/^[[:space:]]*#/!'
sed -e "${NC}s|^@BROTLI@\$|$BROTLI_LOAD|" \
    -e "${NC}s|^@USER@\$|$USER_LINE|" \
    -e "${NC}s|^@BROTLI_CONF@\$|$BROTLI_CONF|" \
    -e "${NC}s|^@TLS_CONF@\$|$TLS_CONF|" \
    -e "${NC}s|@TLS@|$TLS|g" \
    -e "${NC}s|@LISTEN@|$LISTEN|g" \
    -e "${NC}s|@STATIC_ROOT@|$STATIC_ROOT|g" \
    -e "${NC}s|@UPSTREAM@|$UPSTREAM|g" \
    -e "${NC}s|@RUN_DIR@|$RUN_DIR|g" \
    -e "${NC}s|@WORKERS@|$WORKERS|g" \
    "$TEMPLATE" >"$OUT.tmp"

if [ "${BENCH:-0}" = 1 ]; then
    sed -i -e "s|^\(    access_log\) .*;\$|\1 off;|" \
        -e "s|^    keepalive_requests .*;\$|    keepalive_requests 100000;|" \
        -e "s|^    server_tokens off;\$|&\n    # BENCH=1 (render.sh): benchmark tuning, the files do not change during a run\n    open_file_cache max=10000 inactive=60s;\n    open_file_cache_valid 60s;|" \
        "$OUT.tmp"
    grep -q '^    access_log off;$' "$OUT.tmp" && grep -q 'open_file_cache_valid 60s;' "$OUT.tmp" &&
        grep -q 'keepalive_requests 100000;' "$OUT.tmp" || { echo "$0: BENCH edits did not apply" >&2; exit 1; }
fi
if grep -n '^[^#]*@[A-Z_]*@' "$OUT.tmp" >&2; then
    echo "$0: placeholders left in $OUT.tmp" >&2
    exit 1
fi
mv "$OUT.tmp" "$OUT"
echo "$OUT"
