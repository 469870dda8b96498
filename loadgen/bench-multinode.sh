#!/bin/bash
# Two rf-broadcast nodes joined through the local Redis; subscribers spread over both, all
# events published to node A: cross-node fan-out figures.
cd "$(dirname "$0")/.."
B=target/release/rf-broadcast; L=target/release/rf-loadgen
PREFIX="bench-$$"
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for sc in "fanout --subs 1000 --channels 100 --rate 1000 --duration 10" "fanout --subs 10000 --channels 1 --rate 10 --duration 10"; do
  $B --port 6401 --max-connections-per-ip 0 --log-level warn --adapter redis --redis-url redis://127.0.0.1:6379 --redis-prefix $PREFIX & A=$!
  $B --port 6402 --max-connections-per-ip 0 --log-level warn --adapter redis --redis-url redis://127.0.0.1:6379 --redis-prefix $PREFIX & Bp=$!
  for p in 6401 6402; do for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:$p/up && break; sleep 0.1; done; done
  sleep 1
  a0=$(cpu $A); b0=$(cpu $Bp); r0=$(awk '{print $14+$15}' /proc/$(pgrep -x redis-server | head -1)/stat)
  $L --url ws://127.0.0.1:6401 --url ws://127.0.0.1:6402 --publish-url http://127.0.0.1:6401 --server-pid $A --label multinode $sc > /tmp/mn.out 2>&1
  a1=$(cpu $A); b1=$(cpu $Bp); r1=$(awk '{print $14+$15}' /proc/$(pgrep -x redis-server | head -1)/stat)
  kill $A $Bp; wait $A $Bp 2>/dev/null
  tail -1 /tmp/mn.out >> loadgen/results/multinode-$(git rev-parse --short HEAD).jsonl
  echo "[$sc]"
  grep -E "delivered|lost|e2e latency" /tmp/mn.out | head -4
  echo "  CPU ticks (1/100 s) over the whole run incl. connect: node A $((a1-a0)), node B $((b1-b0)), redis $((r1-r0))"
done
