#!/bin/bash
# Debug console cost (BENCHMARKS.md, "Debug console cost"): fan-out with the console off, then
# on with a headless Chromium watching the live log, twice (off on off on). Needs
# `cargo build --release -p rf-broadcast -p rf-loadgen` and compat-tests/setup.sh. Results: one
# JSON line per run in $OUT (default /tmp/console-bench.jsonl).
set -u
cd "$(dirname "$0")/.."
BIN=target/release/rf-broadcast
LG=target/release/rf-loadgen
out=${OUT:-/tmp/console-bench.jsonl}
: > $out
run() { # mode scenario-args...
  local mode=$1; shift
  local flags=(--port 6401 --metrics false --log-level warn)
  [ "$mode" = on ] && flags+=(--console --console-port 9702)
  $BIN "${flags[@]}" > /dev/null 2>&1 &
  local pid=$!
  sleep 0.5
  local watch=
  if [ "$mode" = on ]; then
    (cd compat-tests && exec node bench/console-watch.mjs http://127.0.0.1:9702 40 > /dev/null 2>&1) &
    watch=$!
    sleep 3
  fi
  $LG --url ws://127.0.0.1:6401 --server-pid $pid "$@" 2>/dev/null | tail -1 | sed "s/^/{\"mode\":\"$mode\",\"r\":/; s/\$/}/" >> $out
  [ -n "$watch" ] && kill $watch 2>/dev/null
  kill $pid; wait $pid 2>/dev/null
  sleep 1
}
for i in 1 2; do
  for m in off on; do
    run $m fanout --subs 1000 --channels 100 --rate 1000 --duration 10
    run $m fanout --subs 10000 --channels 1 --rate 10 --duration 10
  done
done
