#!/usr/bin/env bash
# What missed-message recovery costs on fan-out: the same load generator against the same
# release binary started three ways, alternating a b c (and a cluster pair d e when REDIS=1),
# each freshly started. Prints server CPU-s per million deliveries, e2e p99 and lost per run.
#
#   off        recovery off, plain clients (the baseline)
#   buffered   --recovery-window 120, plain clients (every publish buffered, no cursors)
#   lineage    --recovery-window 120, every subscriber on a lineage path (buffers, cursors,
#              acknowledgement pings and pongs)
#   redis-off / redis-lineage (REDIS=1): one node with --adapter redis, recovery off vs on with
#              lineage subscribers (numbered publishes through Redis)
#
#   loadgen/bench-recovery.sh [ROUNDS]        raw lines: loadgen/results/recovery-*.jsonl
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-2}"
BIN="${RF_BIN:-$ROOT/target/release/rf-broadcast}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/rf-loadgen}"
OUT="${OUT:-$ROOT/loadgen/results/recovery-$(date +%Y%m%d-%H%M%S).jsonl}"
PORT=6213
SCENARIO="${SCENARIO:-fanout --subs 1000 --channels 100 --rate 1000 --duration 10}"
VARIANTS=(off buffered lineage)
[ "${REDIS:-0}" = 1 ] && VARIANTS+=(redis-off redis-lineage)
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; sleep 1; }
trap stop EXIT
start() { # variant
  local flags=(--host 127.0.0.1 --port $PORT --log-level warn --metrics false
    --max-connections-per-ip 0 --max-pending-handshakes 0)
  case "$1" in
    buffered | lineage) flags+=(--recovery-window 120) ;;
    redis-off) flags+=(--adapter redis --redis-prefix "rf-bench-$$-$RANDOM") ;;
    redis-lineage) flags+=(--adapter redis --redis-prefix "rf-bench-$$-$RANDOM" --recovery-window 120) ;;
  esac
  "$BIN" "${flags[@]}" >/tmp/bench-recovery.log 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/up" && break; sleep 0.1; done
  sleep 0.5
}
mkdir -p "$(dirname "$OUT")"
echo "# $(date -u +%FT%TZ) $(git -C "$ROOT" rev-parse --short HEAD) $SCENARIO -> $OUT"
for round in $(seq 1 "$ROUNDS"); do
  for variant in "${VARIANTS[@]}"; do
    start "$variant"
    lineage=()
    case "$variant" in *lineage) lineage=(--lineage) ;; esac
    # shellcheck disable=SC2086
    "$LOADGEN_BIN" --url "ws://127.0.0.1:$PORT" --server-pid "$PID" --label "$variant/r$round" \
      "${lineage[@]}" $SCENARIO | grep '^{"' >>"$OUT"
    stop
    tail -1 "$OUT" | python3 -c 'import sys,json; d=json.loads(sys.stdin.read()); print(d["label"], "cpu-s/M", d.get("server_cpu_s_per_million"), "p99", d.get("e2e",{}).get("p99_ms"), "lost", d.get("lost"), "dup", d.get("duplicated"))'
  done
done
