#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz/ (built by scripts/build.sh
# --fuzz) for a bounded time: first each file of regressions/<name>/ once,
# then fuzzing from a throwaway copy of corpus/<name>/ (the committed corpus
# never grows) with <name>.dict when there is one, FUZZ_JOBS targets at a
# time. A crash, leak, timeout or failed check fails the run; its
# reproducer is kept under BUILD_DIR/fuzz-artifacts/<name>/ and its path
# printed.
#
# usage: tests/fuzz/run.sh [BUILD_DIR]      (default build-fuzz/)
# environment:
#   FUZZ_SECONDS=N   seconds of fuzzing per target (default 30; 0 runs only
#                    the regression inputs and the seed corpus, once each)
#   FUZZ_JOBS=N      targets run at once (default 2)
#   FUZZ_TARGETS="cursor jwt"   only these targets (default: all)
# The last line is "fuzz: ok: T targets, N runs" or
# "fuzz: FAILED: F of T targets (names), N runs"; scripts/test.sh reads it.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build-fuzz}" 2>/dev/null && pwd) ||
  { echo "fuzz: FAILED: no build directory ${1:-$ROOT/build-fuzz} (scripts/build.sh --fuzz)"; exit 1; }
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-2}
[[ $SECONDS_PER_TARGET =~ ^[0-9]+$ && $JOBS =~ ^[1-9][0-9]*$ ]] ||
  { echo "fuzz: FAILED: FUZZ_SECONDS and FUZZ_JOBS must be whole numbers"; exit 1; }

if [[ -n ${FUZZ_TARGETS:-} ]]; then
  read -ra targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for src in "$HERE"/fuzz_*.c; do
    name=${src##*/fuzz_}
    targets+=("${name%.c}")
  done
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ssehub-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Options every run of a target gets. UBSan findings abort (the targets are
# built with -fno-sanitize-recover), so libFuzzer sees them as crashes.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
LIBFUZZER_ARGS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=0)

# Prints where a failed run left its input (libFuzzer's "Test unit written
# to" line, or the regression file it was running) and its last lines.
report_failure() {
  local name=$1 log=$2 what=$3
  local unit
  unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
  [[ -z $unit ]] && unit=$(sed -n 's/^Running: \(.*\)$/\1/p' "$log" | tail -n1)
  echo "---- fuzz_$name: $what failed; last lines of its log ----"
  tail -n 60 "$log"
  echo "---- reproducer: ${unit:-unknown} (rerun: $BUILD/fuzz_$name ${unit:-FILE}) ----"
}

# Runs one target: its regression inputs once each, then fuzzing. Writes
# "ok RUNS REGRESSIONS" or "FAILED WHY" to $WORK/$name.result; the log is
# kept with the artifacts when the target fails.
run_target() {
  local name=$1
  local bin="$BUILD/fuzz_$name" art="$BUILD/fuzz-artifacts/$name" log="$WORK/$name.log"
  local result="$WORK/$name.result" dict="$HERE/$name.dict" corpus="$WORK/$name.corpus"
  rm -rf "$art"
  mkdir -p "$art" "$corpus"
  if [[ ! -x $bin ]]; then
    echo "FAILED not built" >"$result"
    return
  fi
  local regressions=()
  if [[ -d $HERE/regressions/$name ]]; then
    while IFS= read -r -d '' f; do regressions+=("$f"); done \
      < <(find "$HERE/regressions/$name" -type f -print0 | sort -z)
  fi
  if ((${#regressions[@]} > 0)) &&
    ! "$bin" "${LIBFUZZER_ARGS[@]}" "${regressions[@]}" >"$log" 2>&1; then
    cp "$log" "$art/regressions.log"
    report_failure "$name" "$log" "a regression input" >"$WORK/$name.report"
    echo "FAILED regression input" >"$result"
    return
  fi
  [[ -d $HERE/corpus/$name ]] && cp -R "$HERE/corpus/$name/." "$corpus/"
  local args=("${LIBFUZZER_ARGS[@]}" -artifact_prefix="$art/")
  [[ -f $dict ]] && args+=(-dict="$dict")
  if ((SECONDS_PER_TARGET > 0)); then
    args+=(-max_total_time="$SECONDS_PER_TARGET")
  else
    args+=(-runs=0) # only the seed corpus, once
  fi
  if ! "$bin" "${args[@]}" "$corpus" >>"$log" 2>&1; then
    cp "$log" "$art/fuzz.log"
    report_failure "$name" "$log" "fuzzing" >"$WORK/$name.report"
    echo "FAILED crash" >"$result"
    return
  fi
  local runs
  runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n1)
  echo "ok ${runs:-0} ${#regressions[@]}" >"$result"
}

echo "fuzz: ${#targets[@]} targets, ${SECONDS_PER_TARGET} s each, $JOBS at a time, in $BUILD/"
running=0
for name in "${targets[@]}"; do
  if ((running >= JOBS)); then
    wait -n
    running=$((running - 1))
  fi
  run_target "$name" &
  running=$((running + 1))
done
wait

passed=0 total_runs=0 failed_names=()
for name in "${targets[@]}"; do
  read -r status rest <"$WORK/$name.result" 2>/dev/null || status=FAILED rest="no result"
  if [[ $status == ok ]]; then
    read -r runs nreg <<<"$rest"
    passed=$((passed + 1))
    total_runs=$((total_runs + runs))
    printf 'fuzz_%-12s ok: %s runs, %s regression inputs\n' "$name" "$runs" "$nreg"
  else
    failed_names+=("$name")
    [[ -f $WORK/$name.report ]] && cat "$WORK/$name.report"
    printf 'fuzz_%-12s FAILED: %s\n' "$name" "$rest"
  fi
done

if ((${#failed_names[@]} == 0)); then
  echo "fuzz: ok: $passed targets, $total_runs runs"
  exit 0
fi
echo "fuzz: FAILED: ${#failed_names[@]} of ${#targets[@]} targets (${failed_names[*]}), $total_runs runs"
exit 1
