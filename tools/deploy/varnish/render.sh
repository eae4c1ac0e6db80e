#!/usr/bin/env bash
# Renders cairn.vcl.template into OUT with the origin Varnish fronts, and
# prints OUT's path.
#
#   tools/deploy/varnish/render.sh BACKEND OUT
#   varnishd -F -a 127.0.0.1:6081 -f "$PWD/OUT" -n /var/lib/varnish/cairn -s malloc,256m
#
#   BACKEND  host:port of `cairn serve`, e.g. 127.0.0.1:7878 (the origin
#            must send cairn's s-maxage: see ../README.md)
#   OUT      the VCL file to write (varnishd wants an absolute -f path)
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BACKEND OUT" >&2; exit 2; }
BACKEND=$1 OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
case "$BACKEND" in
    *[!A-Za-z0-9.:-]* | *:*:* | :* | *:) echo "$0: BACKEND must be host:port: $BACKEND" >&2; exit 2 ;;
    *:*) ;;
    *) echo "$0: BACKEND must be host:port: $BACKEND" >&2; exit 2 ;;
esac
HOST=${BACKEND%:*} PORT=${BACKEND##*:}
# Comment lines keep their placeholder names.
sed -e "/^[[:space:]]*#/!s|@BACKEND_HOST@|$HOST|g" \
    -e "/^[[:space:]]*#/!s|@BACKEND_PORT@|$PORT|g" \
    "$HERE/cairn.vcl.template" >"$OUT.tmp"
if grep -n '^[^#]*@[A-Z_]*@' "$OUT.tmp" >&2; then
    echo "$0: placeholders left in $OUT.tmp" >&2
    exit 1
fi
mv "$OUT.tmp" "$OUT"
echo "$OUT"
