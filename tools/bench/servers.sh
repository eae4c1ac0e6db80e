# Sourced by the read benchmarks (static_read.sh, private_read.sh): one
# `cairn serve` and one nginx with the shipped configuration in front of
# it, both pinned to SERVER_CPU, stopped by `cleanup` at exit. The caller
# defines `log`, `die`, WORK, CAIRN, NGINX and SERVER_CPU.

CAIRN_PID=
NGINX_PID=
stop() { # pid variable name
    local pid=${!1}
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        printf -v "$1" '%s' ""
    fi
}
cleanup() {
    stop NGINX_PID
    stop CAIRN_PID
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `cairn serve` (rate limits off) on DATA for at most SECONDS; sets
# CAIRN_PID, CAIRN_URL and CAIRN_ADDR (host:port).
start_cairn() { # data seconds
    CAIRN_RATE_LIMIT=off timeout "$2" taskset -c "$SERVER_CPU" "$CAIRN" serve --data "$1" \
        --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
    CAIRN_PID=$!
    for _ in $(seq 3000); do
        grep -q '^public key:' "$WORK/serve.out" 2>/dev/null && break
        kill -0 "$CAIRN_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; die "cairn serve exited"; }
        sleep 0.1
    done
    CAIRN_URL=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
    [ -n "$CAIRN_URL" ] || { cat "$WORK/serve.err" >&2; die "cairn serve did not start"; }
    CAIRN_ADDR=${CAIRN_URL#http://}
}

# nginx (1 worker, the configuration rendered with BENCH=1) over DATA's
# static root, upstream CAIRN_ADDR, on a free port, for at most SECONDS;
# sets NGINX_PID and NGINX_URL.
start_nginx() { # data seconds
    local run=$WORK/nginx port
    for _ in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        # A port nothing answers on; nginx's bind says the rest.
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
        BENCH=1 "$ROOT/tools/deploy/nginx/render.sh" "$1" "127.0.0.1:$port" "$CAIRN_ADDR" "$run" 1 >/dev/null
        timeout 30 "$NGINX" -t -q -p "$run" -c "$run/nginx.conf" || die "nginx -t failed"
        : >"$run/error.log"
        timeout "$2" taskset -c "$SERVER_CPU" "$NGINX" -p "$run" -c "$run/nginx.conf" \
            -g 'daemon off;' >"$WORK/nginx.out" 2>&1 &
        NGINX_PID=$!
        for _ in $(seq 50); do
            curl -s -o /dev/null "http://127.0.0.1:$port/index/config.json" && break
            kill -0 "$NGINX_PID" 2>/dev/null || break
            sleep 0.1
        done
        if curl -s -o /dev/null "http://127.0.0.1:$port/index/config.json"; then
            NGINX_URL=http://127.0.0.1:$port
            return
        fi
        stop NGINX_PID
    done
    cat "$run/error.log" "$WORK/nginx.out" >&2
    die "nginx did not start"
}
