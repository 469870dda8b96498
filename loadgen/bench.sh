#!/usr/bin/env bash
# Side-by-side benchmark: every scenario against rf-broadcast and soketi, alternating
# (A B A B), each run against a freshly started server. Writes the JSON lines to $OUT and prints
# each run's summary. Loopback only; every run is bounded (see the durations below).
#
#   loadgen/bench.sh [ROUNDS]        (default 2)
#   RF_BIN        rf-broadcast binary (default target/release/rf-broadcast)
#   LOADGEN_BIN   load generator (default target/release/rf-loadgen)
#   SOKETI_DIR    soketi install, see shared/peers.md (default /work/peers/soketi)
#   SOKETI_CONFIG its config file, port 6101 (default $SOKETI_DIR/config-bench.json)
#   OUT           JSON lines file (default loadgen/results/bench-<date>.jsonl)
#   ONLY          run only the scenarios whose name matches this regex
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-2}"
RF_BIN="${RF_BIN:-$ROOT/target/release/rf-broadcast}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/rf-loadgen}"
SOKETI_DIR="${SOKETI_DIR:-/work/peers/soketi}"
SOKETI_CONFIG="${SOKETI_CONFIG:-$SOKETI_DIR/config-bench.json}"
RF_PORT=6201
SOKETI_PORT=6101
mkdir -p "$ROOT/loadgen/results"
OUT="${OUT:-$ROOT/loadgen/results/bench-$(date +%Y%m%d-%H%M%S).jsonl}"
ONLY="${ONLY:-.}"

SCENARIOS=(
  "connections|connections --conns 10000 --rate 2000 --hold 5"
  "fanout-1k|fanout --subs 1000 --channels 100 --rate 1000 --duration 10"
  "fanout-10k|fanout --subs 10000 --channels 1 --rate 10 --duration 10"
  "saturate|saturate --subs 100 --channels 8 --ladder 1,2,4,8 --step 5"
  "client-events|client-events --pairs 50 --rate 5000 --duration 10"
  "slow-consumer|slow-consumer --subs 20 --slow 5 --channels 1 --rate 500 --payload 8192 --duration 20"
  "churn|churn --subs 1000 --channels 100 --rate 500 --duration 10 --churn-rate 500 --hold-ms 1000"
)

PID=""
wait_port() { # port
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  return 1
}
start_server() { # name
  if [ "$1" = rf-broadcast ]; then
    "$RF_BIN" --host 127.0.0.1 --port $RF_PORT --client-event-rate 100000 --max-connections-per-ip 0 --max-pending-handshakes 0 --log-level warn >/tmp/bench-rf.log 2>&1 &
    PID=$!; PORT=$RF_PORT
  else
    (cd "$SOKETI_DIR" && exec node node_modules/@soketi/soketi/bin/server.js start --config="$SOKETI_CONFIG") >/tmp/bench-soketi.log 2>&1 &
    PID=$!; PORT=$SOKETI_PORT
  fi
  wait_port $PORT || { echo "bench: $1 did not start"; stop_server; return 1; }
  sleep 0.5
}
stop_server() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  PID=""
  sleep 1
}
trap stop_server EXIT

echo "# $(date -u +%FT%TZ) commit $(git -C "$ROOT" rev-parse --short HEAD) nproc $(nproc) -> $OUT"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SCENARIOS[@]}"; do
    name="${entry%%|*}"; args="${entry#*|}"
    [[ "$name" =~ $ONLY ]] || continue
    for server in rf-broadcast soketi; do
      start_server $server || continue
      # shellcheck disable=SC2086
      "$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --server-pid "$PID" --label "$server/$name/r$round" $args \
        | tee /tmp/bench-run.out
      grep '^{"' /tmp/bench-run.out >>"$OUT"
      stop_server
    done
  done
done
echo "# results in $OUT"
