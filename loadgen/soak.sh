#!/usr/bin/env bash
# The soak (RELIABILITY.md, "Soak"): `rf-loadgen soak` against a fresh rf-broadcast for
# SECONDS (default 60), mixing fan-out, churn, client events and presence joins/leaves. Passes
# when every message was delivered exactly once, every member event seen once, and the
# presence channel lists only the watchers; prints the server's RSS every SAMPLE seconds.
# Ends with the line `loadgen soak: N passed, N failed`.
#
#   loadgen/soak.sh                      the 60 s correctness run of the test command
#   loadgen/soak.sh 1800 60              the documented 30-minute soak, RSS every minute
#   RF_BIN / LOADGEN_BIN                 binaries (default: debug builds in this repo)
#   SOAK_ARGS="--rate 50 --subs 500"     more load (see `rf-loadgen soak --help`)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION=${1:-60}
SAMPLE=${2:-10}
RF_BIN="${RF_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/rf-broadcast}"
SERVER_PID=""
OUT="$(mktemp -d)"

finish() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$OUT"
    if [ "$1" = 1 ]; then
        echo "loadgen soak: 1 passed, 0 failed"
        exit 0
    fi
    echo "loadgen soak: 0 passed, 1 failed"
    exit 1
}

if [ -z "${LOADGEN_BIN:-}" ]; then
    cargo build -q -p rf-loadgen || { echo "soak: cargo build -p rf-loadgen failed"; finish 0; }
    LOADGEN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rf-loadgen"
fi
[ -x "$RF_BIN" ] || { echo "soak: no server binary at $RF_BIN (build it or set RF_BIN)"; finish 0; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$RF_BIN" --host 127.0.0.1 --port "$PORT" --app-id app-id --app-key app-key --app-secret app-secret \
    --client-events true --log-level warn --metrics-port 0 >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
up=0
for _ in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/up" 2>/dev/null)" = 200 ]; then up=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ "$up" = 1 ] || { echo "soak: rf-broadcast did not come up"; cat "$OUT/server.log"; finish 0; }

# shellcheck disable=SC2086
"$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --server-pid "$SERVER_PID" --label soak \
    soak --duration "$DURATION" --sample-secs "$SAMPLE" ${SOAK_ARGS:-} >"$OUT/loadgen.out" 2>&1
rc=$?
cat "$OUT/loadgen.out"
if [ "$rc" = 0 ] && grep '^{"' "$OUT/loadgen.out" | tail -1 | grep -q '"correct":true'; then
    finish 1
fi
echo "--- server log"; tail -20 "$OUT/server.log"
finish 0
