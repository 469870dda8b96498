#!/bin/bash
# Slow consumers: 100 subscribers that stop reading beside 100 that read, against the same
# 100 readers alone, for three --socket-send-buffer values, two rounds (BENCHMARKS.md).
cd "$(dirname "$0")/.."
B=target/release/rf-broadcast; L=target/release/rf-loadgen; P=6304
for round in 1 2; do
for sb in 0 131072 65536; do
  $B --port $P --max-connections-per-ip 0 --log-level warn --socket-send-buffer $sb & PID=$!
  for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:$P/up && break; sleep 0.1; done
  $L --url ws://127.0.0.1:$P --server-pid $PID --label slow100-sndbuf$sb slow-consumer --subs 200 --slow 100 --channels 1 --rate 200 --payload 8192 --duration 20 --stall-after 1 > /tmp/sc.out 2>&1
  kill $PID; wait $PID 2>/dev/null
  tail -1 /tmp/sc.out >> loadgen/results/slow100-$(git rev-parse --short HEAD).jsonl
  echo "sndbuf=$sb $(grep -E 'fast e2e' /tmp/sc.out) | $(grep -E 'server CPU' /tmp/sc.out)"
  $B --port $P --max-connections-per-ip 0 --log-level warn --socket-send-buffer $sb & PID=$!
  for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:$P/up && break; sleep 0.1; done
  $L --url ws://127.0.0.1:$P --server-pid $PID --label noslow-sndbuf$sb fanout --subs 100 --channels 1 --rate 200 --payload 8192 --duration 20 > /tmp/sc.out 2>&1
  kill $PID; wait $PID 2>/dev/null
  tail -1 /tmp/sc.out >> loadgen/results/slow100-$(git rev-parse --short HEAD).jsonl
  echo "baseline sndbuf=$sb $(grep -E 'e2e latency' /tmp/sc.out)"
done
done
