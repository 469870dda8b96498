#!/usr/bin/env bash
# A/B of the hub's event seam and the metrics observer on fan-out: the same load generator
# against (a) a release binary built before the seam, (b) today's binary with no observer
# (--metrics false), (c) today's binary with the metrics observer on (the default), alternating
# a b c a b c. Prints server CPU-s per million deliveries and e2e p99 per run.
#
#   BASE_BIN=/path/to/old/rf-broadcast loadgen/seam-ab.sh [ROUNDS]
#   BASE_FLAGS="--metrics false ..." adds flags to the base binary's start (e.g. when the base
#   is today's code with the seam compiled out rather than an older commit)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-2}"
BASE_BIN="${BASE_BIN:?the release binary to compare against}"
NEW_BIN="${NEW_BIN:-$ROOT/target/release/rf-broadcast}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/rf-loadgen}"
OUT="${OUT:-$ROOT/loadgen/results/seam-ab-$(date +%Y%m%d-%H%M%S).jsonl}"
PORT=6211
SCENARIOS=(
  "fanout-1k|fanout --subs 1000 --channels 100 --rate 1000 --duration 10"
  "fanout-10k|fanout --subs 10000 --channels 1 --rate 10 --duration 10"
)
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; sleep 1; }
trap stop EXIT
start() { # variant
  case "$1" in
    # shellcheck disable=SC2086
    before) "$BASE_BIN" --host 127.0.0.1 --port $PORT --log-level warn ${BASE_FLAGS:-} >/tmp/seam-ab.log 2>&1 & ;;
    no-observer) "$NEW_BIN" --host 127.0.0.1 --port $PORT --log-level warn --metrics false \
        --max-connections-per-ip 0 --max-pending-handshakes 0 >/tmp/seam-ab.log 2>&1 & ;;
    metrics) "$NEW_BIN" --host 127.0.0.1 --port $PORT --log-level warn --metrics-port 0 \
        --max-connections-per-ip 0 --max-pending-handshakes 0 >/tmp/seam-ab.log 2>&1 & ;;
  esac
  PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/up" && break; sleep 0.1; done
  sleep 0.5
}
mkdir -p "$(dirname "$OUT")"
echo "# $(date -u +%FT%TZ) base $BASE_BIN new $(git -C "$ROOT" rev-parse --short HEAD) -> $OUT"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SCENARIOS[@]}"; do
    name="${entry%%|*}"; args="${entry#*|}"
    for variant in before no-observer metrics; do
      start $variant
      # shellcheck disable=SC2086
      "$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --server-pid "$PID" --label "$variant/$name/r$round" $args \
        | grep '^{"' >>"$OUT"
      stop
      tail -1 "$OUT" | python3 -c 'import sys,json; d=json.loads(sys.stdin.read()); print(d["label"], "cpu-s/M", d.get("server_cpu_s_per_million"), "p99", d.get("e2e",{}).get("p99_ms"), "lost", d.get("lost"))'
    done
  done
done
