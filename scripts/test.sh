#!/usr/bin/env bash
# The test command: installs what is missing, builds build/ and build-asan/,
# runs the whole ctest suite (unit tests, end-to-end tests against real
# redis-server, broker and node processes) in each, then builds build-fuzz/
# and runs every libFuzzer target for a bounded time (tests/fuzz/run.sh),
# and prints a summary.
# Extra arguments go to ctest, e.g. scripts/test.sh -R broker.
# Environment:
#   FUZZ_SECONDS=N  seconds each fuzz target runs (default 30, two targets at
#                   a time: about 2 min for the step); FUZZ_SECONDS=0 skips
#                   the fuzz step (build included), e.g. for quick local runs.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

summary=()
failed=0
total_passed=0
total_failed=0

note() { summary+=("$(printf '%-28s %s' "$1" "$2")"); }
banner() { printf '\n==== %s ====\n' "$*"; }

# Runs ctest in build dir $1 (label $2) with the extra arguments; adds the
# counts from ctest's closing line to the totals.
run_ctest() {
  local dir=$1 label=$2
  shift 2
  local log="$dir/ctest.log" rc
  banner "ctest ($label) in $dir/"
  (cd "$dir" && ctest --output-on-failure --no-tests=error -j2 "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # "95% tests passed, 1 tests failed out of 20"
  local line pass=0 fail=0 total
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)
  if [[ -n $line ]]; then
    fail=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    pass=$((total - fail))
  fi
  total_passed=$((total_passed + pass))
  total_failed=$((total_failed + fail))
  if ((rc == 0)); then
    note "tests ($label)" "ok: $pass passed"
  else
    failed=1
    if [[ -n $line ]]; then
      note "tests ($label)" "FAILED: $pass passed, $fail failed"
    else
      note "tests ($label)" "FAILED: ctest exit $rc (no tests run?)"
    fi
  fi
}

banner "install dependencies"
if bash scripts/install-deps.sh; then
  note "install-deps" "ok"
else
  note "install-deps" "FAILED"
  failed=1
fi
deps_ok=$((failed == 0))

built_release=0
built_asan=0
if ((failed == 0)); then
  banner "build (release) into build/"
  if bash scripts/build.sh; then
    note "build (release)" "ok"
    built_release=1
  else
    note "build (release)" "FAILED"
    failed=1
  fi
  banner "build (asan+ubsan) into build-asan/"
  if bash scripts/build.sh --asan; then
    note "build (asan+ubsan)" "ok"
    built_asan=1
  else
    note "build (asan+ubsan)" "FAILED"
    failed=1
  fi
else
  note "builds" "skipped (dependencies missing)"
fi

if ((built_release)); then
  run_ctest build release "$@"
else
  note "tests (release)" "skipped (no build)"
fi

if ((built_asan)); then
  # (assignments before a function call are exported to what it runs)
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-asan asan+ubsan "$@"
else
  note "tests (asan+ubsan)" "skipped (no build)"
fi

# Builds build-fuzz/ and runs every fuzz target for FUZZ_SECONDS; counts
# each target as one test passed or failed.
run_fuzz() {
  local seconds=$1 log=build-fuzz/fuzz.log rc line
  banner "build (fuzz) into build-fuzz/"
  if ! bash scripts/build.sh --fuzz; then
    note "build (fuzz)" "FAILED"
    failed=1
    return
  fi
  note "build (fuzz)" "ok"
  banner "fuzz ($seconds s per target) in build-fuzz/"
  FUZZ_SECONDS=$seconds bash tests/fuzz/run.sh build-fuzz 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # "fuzz: ok: 7 targets, 123 runs" or "fuzz: FAILED: 1 of 7 targets (jwt), 123 runs"
  line=$(grep -E '^fuzz: (ok|FAILED): ' "$log" | tail -n1)
  local pass fail
  pass=$(grep -cE '^fuzz_[a-z_]+ +ok: ' "$log")
  fail=$(grep -cE '^fuzz_[a-z_]+ +FAILED: ' "$log")
  total_passed=$((total_passed + pass))
  total_failed=$((total_failed + fail))
  [[ -n $line ]] || line="fuzz: FAILED: tests/fuzz/run.sh exit $rc"
  note "fuzz" "${line#fuzz: }"
  if ((rc != 0)); then
    failed=1
    total_failed=$((total_failed + (fail == 0)))
    local repro
    while IFS= read -r repro; do
      note "  reproducer" "$repro"
    done < <(sed -n 's/^---- reproducer: \(.*\) (rerun: .*/\1/p' "$log")
  fi
}

fuzz_seconds=${FUZZ_SECONDS:-30}
if [[ $fuzz_seconds == 0 ]]; then
  note "fuzz" "skipped (FUZZ_SECONDS=0)"
elif [[ ! $fuzz_seconds =~ ^[0-9]+$ ]]; then
  note "fuzz" "FAILED: FUZZ_SECONDS=$fuzz_seconds is not a number of seconds"
  failed=1
elif ((!deps_ok)); then
  note "fuzz" "skipped (dependencies missing)"
else
  run_fuzz "$fuzz_seconds"
fi

banner "summary"
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "test.sh: FAILED"
else
  echo "test.sh: all ok"
fi
echo "test.sh: $total_passed passed, $total_failed failed"
exit "$failed"
