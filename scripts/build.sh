#!/usr/bin/env bash
# Configures and builds ssehub: build/ (release, RelWithDebInfo) by default,
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer) with --asan.
# Dependencies must be installed (scripts/install-deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
usage: scripts/build.sh [--asan]
  (default)  configure and build into build/
  --asan     configure with -DSSEHUB_SANITIZE=ON and build into build-asan/
EOF
}

dir=build
cmake_args=()
for arg in "$@"; do
  case $arg in
    --asan) dir=build-asan; cmake_args+=(-DSSEHUB_SANITIZE=ON) ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

for tool in cmake pkg-config cc; do
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
