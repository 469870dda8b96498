#!/usr/bin/env bash
# Runs the fuzz targets (RELIABILITY.md, "Fuzzing"): each for SECONDS (default 600), from its
# committed seeds (fuzz/seeds/T) plus what earlier runs found (fuzz/corpus/T, not committed),
# at nice 19. A crash leaves its input in fuzz/artifacts/T/ and fails the run.
#   fuzz/run.sh [SECONDS] [TARGET...]      default: every target, one after another
#   JOBS=2 fuzz/run.sh 300                 two targets at a time
#   FUZZ_TARGET_DIR=DIR                    build there instead of fuzz/target (the test command
#                                          keeps one under ~/.cache so fresh clones reuse it)
#   FUZZ_BUILD_ARGS=--dev                  unoptimised build (quicker to build; the test
#                                          command's 10 s runs use it)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`, which
# scripts/prepare.sh runs when nightly is there); the test command
# runs `fuzz/run.sh 10` and skips it, saying so, when either is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(frames subscribe signin channel_name signature http_query http_body apps_file)
fi
JOBS=${JOBS:-1}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz --locked; scripts/prepare.sh does it)"
  exit 0
fi

DIR_ARGS=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  DIR_ARGS=(--target-dir "$FUZZ_TARGET_DIR")
fi
# shellcheck disable=SC2206
DIR_ARGS+=(${FUZZ_BUILD_ARGS:-})
nice -n 19 cargo +nightly fuzz build "${DIR_ARGS[@]}" || { echo "fuzz: the targets do not build"; exit 1; }

LOGS=fuzz/logs
mkdir -p "$LOGS"
run_one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t"
  nice -n 19 cargo +nightly fuzz run "${DIR_ARGS[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$LOGS/$t.log" 2>&1
  local rc=$?
  local last
  last=$(grep -E '^#[0-9]+' "$LOGS/$t.log" | tail -1)
  local execs
  execs=$(grep -E '^stat::number_of_executed_units' "$LOGS/$t.log" | awk '{print $2}')
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok, ${SECONDS_EACH}s, ${execs:-?} executions; $last"
  else
    echo "fuzz $t: FAILED (exit $rc), input in fuzz/artifacts/$t/; log $LOGS/$t.log"
    grep -m5 -E 'panicked|ERROR: |SUMMARY' "$LOGS/$t.log"
  fi
  return $rc
}

failed=0
pids=()
for t in "${TARGETS[@]}"; do
  if [ "$JOBS" -gt 1 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
    run_one "$t" &
    pids+=($!)
  else
    run_one "$t" || failed=$((failed + 1))
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
total=${#TARGETS[@]}
echo "fuzz: $((total - failed)) passed, $failed failed"
[ $failed -eq 0 ]
