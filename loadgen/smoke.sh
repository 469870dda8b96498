#!/usr/bin/env bash
# loadgen smoke: a few seconds of `rf-loadgen fanout` against the rf-broadcast binary, checking
# correctness only (every event delivered once: 0 lost, 0 duplicated, no failed connection),
# never timing. Ends with the line `loadgen smoke: N passed, N failed`.
#
#   RF_BIN       server binary (default: target/debug/rf-broadcast in this repo)
#   LOADGEN_BIN  load generator binary (default: built here with `cargo build -p rf-loadgen`)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RF_BIN="${RF_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/rf-broadcast}"
SERVER_PID=""
OUT="$(mktemp -d)"

finish() {
    local ok=$1
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$OUT"
    if [ "$ok" = 1 ]; then
        echo "loadgen smoke: 1 passed, 0 failed"
        exit 0
    fi
    echo "loadgen smoke: 0 passed, 1 failed"
    exit 1
}

if [ -z "${LOADGEN_BIN:-}" ]; then
    cargo build -q -p rf-loadgen || { echo "smoke: cargo build -p rf-loadgen failed"; finish 0; }
    LOADGEN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rf-loadgen"
fi
[ -x "$RF_BIN" ] || { echo "smoke: no server binary at $RF_BIN (build it or set RF_BIN)"; finish 0; }
[ -x "$LOADGEN_BIN" ] || { echo "smoke: no load generator at $LOADGEN_BIN"; finish 0; }

# A free loopback port: ask the kernel for one, else probe a random range.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + RANDOM % 20000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo 0
}

# /up answers 200 when the server is ready.
is_up() {
    if command -v curl >/dev/null 2>&1; then
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/up")" = 200 ]
        return
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /up HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
        && head -1 <&3 | grep -q ' 200') 2>/dev/null
}

started=0
for attempt in 1 2 3; do
    PORT=$(free_port)
    "$RF_BIN" --host 127.0.0.1 --port "$PORT" --app-id app-id --app-key app-key --app-secret app-secret \
        --log-level warn >"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if is_up "$PORT"; then started=1; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ "$started" = 1 ] && break
    kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
done
if [ "$started" != 1 ]; then
    echo "smoke: rf-broadcast did not come up"; cat "$OUT/server.log"; finish 0
fi

"$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --server-pid "$SERVER_PID" --label smoke \
    fanout --subs 50 --channels 5 --rate 100 --duration 3 --drain 5 >"$OUT/loadgen.out" 2>&1
rc=$?
cat "$OUT/loadgen.out"
json=$(grep '^{"' "$OUT/loadgen.out" | tail -1)
num() { printf '%s' "$json" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }
lost=$(num lost); dup=$(num duplicated); delivered=$(num delivered); failed=$(num conn_failed)
echo "smoke: exit=$rc delivered=${delivered:-?} lost=${lost:-?} duplicated=${dup:-?} conn_failed=${failed:-?}"
if [ "$rc" = 0 ] && [ -n "$json" ] && [ "${lost:-1}" = 0 ] && [ "${dup:-1}" = 0 ] \
    && [ "${failed:-1}" = 0 ] && [ "${delivered:-0}" -gt 0 ]; then
    finish 1
fi
echo "--- server log"; tail -20 "$OUT/server.log"
finish 0
