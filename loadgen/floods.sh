#!/usr/bin/env bash
# Do other clients keep their latency during a flood? (issue 12 item 5; RELIABILITY.md,
# "Floods"). For each row a fresh rf-broadcast with default limits (but
# --max-connections-per-ip 0: every process here shares 127.0.0.1), `rf-loadgen fanout`
# measuring normal subscribers' publish-to-delivery latency (e2e p50/p99/max, lost), and, in
# every row but the first, `rf-loadgen flood --kind KIND` in another process at the same time.
# Prints one table row per flood and how the server answered the flood. Figures, not a test:
# it fails only when a run itself fails.
#
#   loadgen/floods.sh [SECONDS]      seconds of fan-out per row (default 10)
#   RF_BIN / LOADGEN_BIN             binaries (default: debug builds here, built if missing;
#                                    for figures worth quoting use release builds:
#                                    cargo build --release -p rf-loadgen --bin rf-broadcast)
#   FANOUT_ARGS                      default "--subs 500 --channels 50 --rate 200"
#   KINDS                            default "connect-burst subscribe client-events never-read"
#   FLOOD_ARGS_<kind with _>         e.g. FLOOD_ARGS_connect_burst="--conns 10000 --every 3"
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_EACH=${1:-10}
RF_BIN="${RF_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/rf-broadcast}"
FANOUT_ARGS=${FANOUT_ARGS:---subs 500 --channels 50 --rate 200}
KINDS=${KINDS:-connect-burst subscribe client-events never-read}
: "${FLOOD_ARGS_connect_burst:=--conns 10000 --every 3}"
: "${FLOOD_ARGS_subscribe:=--conns 10 --rate 20000}"
: "${FLOOD_ARGS_client_events:=--conns 100 --rate 20000}"
: "${FLOOD_ARGS_never_read:=--conns 200 --rate 200}"
OUT="$(mktemp -d)"
SERVER_PID=""
FLOOD_PID=""

cleanup() {
    [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null && wait "$FLOOD_PID" 2>/dev/null
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    FLOOD_PID=""
    SERVER_PID=""
}
trap 'cleanup; rm -rf "$OUT"' EXIT

if [ -z "${LOADGEN_BIN:-}" ]; then
    cargo build -q -p rf-loadgen || { echo "floods: cargo build -p rf-loadgen failed"; exit 1; }
    LOADGEN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rf-loadgen"
fi
[ -x "$RF_BIN" ] || { echo "floods: no server binary at $RF_BIN (build it or set RF_BIN)"; exit 1; }

start_server() {
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    "$RF_BIN" --host 127.0.0.1 --port "$PORT" --app-id app-id --app-key app-key \
        --app-secret app-secret --max-connections-per-ip 0 --metrics false --log-level warn \
        >"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/up" 2>/dev/null)" = 200 ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "floods: rf-broadcast did not come up"; cat "$OUT/server.log"; exit 1
}

# The fan-out's figures, from its JSON line: p50 p99 max lost delivered conn_failed.
fanout_figures() {
    grep '^{"' "$1" | tail -1 | python3 -c '
import json, sys
j = json.load(sys.stdin)
e = j.get("e2e", {})
print(e.get("p50_ms", "?"), e.get("p99_ms", "?"), e.get("max_ms", "?"),
      j.get("lost", "?"), j.get("delivered", "?"), j.get("conn_failed", "?"))'
}

# How the server answered the flood, on one line.
flood_answers() {
    grep '^{"' "$1" | tail -1 | python3 -c '
import json, sys
j = json.load(sys.stdin)
a = j.get("answers", {})
print("sent %s; " % j.get("sent", "?") + "; ".join("%s %s" % (v, k) for k, v in sorted(a.items())))'
}

failed=0
rows=()
for kind in none $KINDS; do
    start_server
    flood_args=""
    if [ "$kind" != none ]; then
        var="FLOOD_ARGS_${kind//-/_}"
        flood_args=${!var:-}
        # shellcheck disable=SC2086
        "$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --label "flood-$kind" \
            flood --kind "$kind" --duration $((SECONDS_EACH + 4)) $flood_args \
            >"$OUT/flood.out" 2>&1 &
        FLOOD_PID=$!
        sleep 1
    fi
    # shellcheck disable=SC2086
    "$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --server-pid "$SERVER_PID" --label "beside-$kind" \
        fanout $FANOUT_ARGS --duration "$SECONDS_EACH" --drain 3 >"$OUT/fanout.out" 2>&1
    rc=$?
    answers="-"
    if [ -n "$FLOOD_PID" ]; then
        wait "$FLOOD_PID"
        frc=$?
        FLOOD_PID=""
        answers=$(flood_answers "$OUT/flood.out" 2>/dev/null || echo "flood run failed (exit $frc)")
        [ "$frc" = 0 ] || { failed=1; tail -5 "$OUT/flood.out"; }
    fi
    if [ "$rc" != 0 ]; then
        failed=1
        echo "floods: fanout beside $kind failed (exit $rc)"; tail -5 "$OUT/fanout.out"
        rows+=("| $kind | failed | | | | | $answers |")
    else
        read -r p50 p99 max lost delivered cfail < <(fanout_figures "$OUT/fanout.out")
        rows+=("| $kind | $p50 | $p99 | $max | $delivered | $lost | $cfail | $answers |")
        echo "floods: $kind: fanout e2e p50 $p50 ms, p99 $p99 ms, max $max ms, lost $lost; $answers"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        failed=1
        echo "floods: the server died during $kind"; tail -20 "$OUT/server.log"
    fi
    cleanup
done

echo
echo "fanout: $FANOUT_ARGS, ${SECONDS_EACH} s per row; server $RF_BIN"
echo "| flood | e2e p50 ms | e2e p99 ms | e2e max ms | delivered | lost | failed connections | how the server answered the flood |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $failed
