#!/usr/bin/env bash
# The test command: installs what is missing, builds build/ and build-asan/,
# runs the whole ctest suite (unit tests, end-to-end tests against real
# redis-server, broker and node processes) in each, and prints a summary.
# Extra arguments go to ctest, e.g. scripts/test.sh -R broker.
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
    LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-asan asan+ubsan "$@"
else
  note "tests (asan+ubsan)" "skipped (no build)"
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
