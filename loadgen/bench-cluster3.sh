#!/usr/bin/env bash
# Three nodes on one Redis, side by side in one run: rf-broadcast with partition routing,
# rf-broadcast with interest (channel) routing, and soketi 1.6.1 (its Redis adapter), each
# freshly started per scenario, alternating kinds within a round. A private redis-server on
# port 6390 serves all of them (so its CPU and bytes are theirs alone). Subscribers spread
# round-robin over the three nodes; every event is published through node 1.
#
#   a  1,000 subscribers on 100 channels, 1,000 events/s
#   b  3,000 private channels with one subscriber each, 3,000 events/s (the per-user case)
#   c  one channel, 1,500 subscribers (500 per node), rising rates: the highest rate with
#      nothing lost and p99 under 100 ms
#
# Per run, one JSON line in loadgen/results/cluster3-*.jsonl (the load generator's, plus
# redis_out_bytes: what Redis sent during the run, and node_redis_in_bytes: what each node
# received on its connections to Redis, from the kernel's TCP counters via `ss`).
#
#   SOKETI_DIR=/path/with/node_modules/@soketi/soketi loadgen/bench-cluster3.sh [ROUNDS] [SCENARIOS]
#   (see ../shared/peers.md or BENCHMARKS.md for installing soketi; without it only rf runs)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-1}"
SCENARIOS="${2:-a b c}"
BIN="${RF_BIN:-$ROOT/target/release/rf-broadcast}"
LOADGEN="${LOADGEN_BIN:-$ROOT/target/release/rf-loadgen}"
SOKETI_DIR="${SOKETI_DIR:-}"
OUT="${OUT:-$ROOT/loadgen/results/cluster3-$(date +%Y%m%d-%H%M%S).jsonl}"
RPORT=6390
LADDER="${LADDER:-50 100 200 400 800}"
WORK="$(mktemp -d)"
PIDS=()
REDIS_PID=""

stop_nodes() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
  sleep 1
}
finish() {
  stop_nodes
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap finish EXIT

redis-server --port $RPORT --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do redis-cli -p $RPORT ping >/dev/null 2>&1 && break; sleep 0.1; done

KINDS=(rf-partition rf-channel)
if [ -n "$SOKETI_DIR" ] && [ -f "$SOKETI_DIR/node_modules/@soketi/soketi/bin/server.js" ]; then
  KINDS+=(soketi)
else
  echo "# soketi not found (SOKETI_DIR): rf-broadcast only"
fi

start_nodes() { # kind
  local kind=$1 prefix="bench-$$-$RANDOM"
  for n in 1 2 3; do
    local port=$((6400 + n))
    case "$kind" in
      rf-*)
        "$BIN" --host 127.0.0.1 --port $port --log-level warn --metrics false \
          --max-connections-per-ip 0 --max-pending-handshakes 0 \
          --adapter redis --redis-url "redis://127.0.0.1:$RPORT" --redis-prefix "$prefix" \
          --redis-routing "${kind#rf-}" >"$WORK/node$n.log" 2>&1 &
        ;;
      soketi)
        cat >"$WORK/soketi-$n.json" <<JSON
{
  "host": "127.0.0.1", "port": $port,
  "metrics.host": "127.0.0.1", "metrics.port": $((9620 + n)),
  "cluster.address": "127.0.0.1", "cluster.hostname": "127.0.0.1",
  "cluster.unicast": "127.0.0.1:$((11020 + n))", "cluster.port": $((11020 + n)),
  "appManager.array.apps.0.id": "app-id",
  "appManager.array.apps.0.key": "app-key",
  "appManager.array.apps.0.secret": "app-secret",
  "appManager.array.apps.0.enableClientMessages": true,
  "appManager.array.apps.0.maxConnections": 100000,
  "adapter.driver": "redis", "adapter.redis.prefix": "$prefix",
  "database.redis.host": "127.0.0.1", "database.redis.port": $RPORT
}
JSON
        node "$SOKETI_DIR/node_modules/@soketi/soketi/bin/server.js" start \
          --config="$WORK/soketi-$n.json" >"$WORK/node$n.log" 2>&1 &
        ;;
    esac
    PIDS+=($!)
  done
  for n in 1 2 3; do
    for _ in $(seq 1 100); do
      curl -s -o /dev/null "http://127.0.0.1:$((6400 + n))/" && break
      sleep 0.1
    done
  done
  sleep 1.5
}

redis_out() { redis-cli -p $RPORT info stats | awk -F: '/^total_net_output_bytes/ {print $2+0}'; }
# Bytes each node received from Redis so far: the sum of bytes_received over its TCP
# connections to the Redis port (ss -tinp: one line per socket, then its counters).
read_bytes() {
  ss -tinpH "dport = :$RPORT" | awk -v pids="${PIDS[*]}" '
    BEGIN { n = split(pids, p, " "); for (i = 1; i <= n; i++) sum[p[i]] = 0 }
    /users:/ { match($0, /pid=[0-9]+/); pid = substr($0, RSTART + 4, RLENGTH - 4); next }
    /bytes_received:/ { match($0, /bytes_received:[0-9]+/); if (pid in sum) sum[pid] += substr($0, RSTART + 15, RLENGTH - 15) }
    END { for (i = 1; i <= n; i++) printf "%s ", sum[p[i]] }'
}

run() { # kind label args...
  local kind=$1 label=$2
  shift 2
  local r0 b0 r1 b1 line
  r0=$(redis_out); b0=$(read_bytes)
  line=$("$LOADGEN" --url ws://127.0.0.1:6401 --url ws://127.0.0.1:6402 --url ws://127.0.0.1:6403 \
    --publish-url http://127.0.0.1:6401 --server-pid "${PIDS[0]}" --node-pid "${PIDS[1]}" \
    --node-pid "${PIDS[2]}" --redis-pid "$REDIS_PID" --label "$kind/$label" "$@" | grep '^{"')
  r1=$(redis_out); b1=$(read_bytes)
  echo "$line" | R0="$r0" R1="$r1" B0="$b0" B1="$b1" python3 -c '
import json, os, sys
d = json.loads(sys.stdin.read())
d["redis_out_bytes"] = int(os.environ["R1"]) - int(os.environ["R0"])
b0 = [int(x) for x in os.environ["B0"].split()]
b1 = [int(x) for x in os.environ["B1"].split()]
d["node_redis_in_bytes"] = [z - a for a, z in zip(b0, b1)]
print(json.dumps(d))' | tee -a "$OUT" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("%-28s %9s/s p50 %7s p99 %7s lost %s dup %s ooo %s nodes %s cpu-s/M redis %s cpu-s/M redis-out %.1f MB node-in %s MB" % (
  d["label"], round(d.get("delivered_per_s", 0)), d.get("e2e", {}).get("p50_ms"), d.get("e2e", {}).get("p99_ms"),
  d.get("lost"), d.get("duplicated"), d.get("out_of_order"), d.get("nodes_cpu_s_per_million"),
  d.get("redis_cpu_s_per_million"), d["redis_out_bytes"] / 1e6,
  [round(x / 1e6, 1) for x in d["node_redis_in_bytes"]]))'
}

mkdir -p "$(dirname "$OUT")"
echo "# $(date -u +%FT%TZ) rf $(git -C "$ROOT" rev-parse --short HEAD), kinds ${KINDS[*]} -> $OUT"
for round in $(seq 1 "$ROUNDS"); do
  for sc in $SCENARIOS; do
    for kind in "${KINDS[@]}"; do
      case "$sc" in
        a)
          start_nodes "$kind"
          run "$kind" "a/r$round" fanout --subs 1000 --channels 100 --rate 1000 --duration 10
          stop_nodes
          ;;
        b)
          start_nodes "$kind"
          run "$kind" "b/r$round" --channel-prefix private- fanout --subs 3000 --channels 3000 \
            --rate 3000 --duration 10
          stop_nodes
          ;;
        c)
          for rate in $LADDER; do
            start_nodes "$kind"
            run "$kind" "c$rate/r$round" fanout --subs 1500 --channels 1 --rate "$rate" --duration 8
            stop_nodes
          done
          ;;
      esac
    done
  done
done
