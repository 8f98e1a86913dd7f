#!/usr/bin/env bash
# Configures and builds ssehub: build/ (release, RelWithDebInfo) by default,
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer) with --asan,
# build-fuzz/ (clang, the libFuzzer targets of tests/fuzz/) with --fuzz.
# Dependencies must be installed (scripts/install-deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
usage: scripts/build.sh [--asan | --fuzz]
  (default)  configure and build into build/
  --asan     configure with -DSSEHUB_SANITIZE=ON and build into build-asan/
  --fuzz     configure with clang and -DSSEHUB_FUZZ=ON and build the fuzz
             targets into build-fuzz/ (run them with tests/fuzz/run.sh)
EOF
}

dir=build
cmake_args=()
tools=(cmake pkg-config cc)
for arg in "$@"; do
  case $arg in
    --asan) dir=build-asan; cmake_args+=(-DSSEHUB_SANITIZE=ON) ;;
    --fuzz) dir=build-fuzz; cmake_args+=(-DSSEHUB_FUZZ=ON -DCMAKE_C_COMPILER=clang); tools+=(clang) ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "build.sh: $tool not found; run scripts/install-deps.sh first" >&2; exit 1; }
done

fail() {
  echo "build.sh: $1 of $dir/ FAILED (errors above)" >&2
  exit 1
}

echo "build.sh: configuring $dir/"
cmake -S "$ROOT" -B "$ROOT/$dir" "${cmake_args[@]}" || fail "configure"
echo "build.sh: building $dir/ with $(nproc) jobs"
cmake --build "$ROOT/$dir" --parallel "$(nproc)" || fail "build"
echo "build.sh: $dir/ is up to date"
