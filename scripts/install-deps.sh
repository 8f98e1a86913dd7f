#!/usr/bin/env bash
# Installs what ssehub needs to build, run and test on Debian 12: the apt
# packages that are missing (apt is not touched when all are present) and
# the repo's npm test clients. Safe to run again; fast when nothing is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

# What building ssehub needs (deploy/Dockerfile's build stage installs
# exactly these; tests/e2e/deploy.test.mjs checks that the lists agree).
BUILD_PACKAGES=(
  build-essential cmake pkg-config
  libh2o-evloop-dev libhiredis-dev libev-dev libjansson-dev libssl-dev
)
APT_PACKAGES=(
  "${BUILD_PACKAGES[@]}"
  redis-server redis-tools curl openssl nginx haproxy nghttp2-client chromium iproute2 iptables
  # clang and its sanitizer/libFuzzer runtime (only a Recommends of clang,
  # so named here for machines that install without recommends)
  clang libclang-rt-dev
)
# Installed without their recommended packages: docker-compose (1.29, to
# validate docker-compose.yml) would otherwise bring a whole container
# engine (docker.io, containerd, runc) that nothing here runs; prometheus
# its node exporter.
APT_PACKAGES_NO_RECOMMENDS=(
  docker-compose
  # promtool, to check deploy/prometheus (the server itself is not run)
  prometheus
)

# True when the Debian package is installed (not merely known or removed).
pkg_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- apt

missing=() missing_norec=()
for p in "${APT_PACKAGES[@]}"; do
  pkg_installed "$p" || missing+=("$p")
done
for p in "${APT_PACKAGES_NO_RECOMMENDS[@]}"; do
  pkg_installed "$p" || missing_norec+=("$p")
done
# Node.js comes with the base image (often not as a Debian package): only
# ask apt for it when the commands are absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if ((${#missing[@]} + ${#missing_norec[@]} == 0)); then
  say "all apt packages present"
else
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      die "not root and no sudo; as root run:
  apt-get update && apt-get install -y ${missing[*]}${missing_norec:+ && apt-get install -y --no-install-recommends ${missing_norec[*]}}"
    fi
  fi
  all_missing=("${missing[@]}" "${missing_norec[@]}")
  say "installing: ${all_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive

  # Keep the postinst scripts of redis-server and nginx from starting system
  # services (a Redis on 6379, an nginx on 80): a policy-rc.d that forbids
  # starts, only for the duration of this install, and only when the machine
  # has none of its own.
  POLICY=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $POLICY ]]; then
    "${SUDO[@]}" sh -c "printf '#!/bin/sh\n# ssehub install-deps: no service starts during install\nexit 101\n' > $POLICY && chmod 755 $POLICY"
    own_policy=1
  fi
  cleanup_policy() {
    if ((own_policy)) && grep -q 'ssehub install-deps' "$POLICY" 2>/dev/null; then
      "${SUDO[@]}" rm -f "$POLICY"
    fi
  }
  trap cleanup_policy EXIT

  redis_was_up=0
  port_open 6379 && redis_was_up=1

  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    die "apt-get update failed"
  if ((${#missing[@]})); then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" ||
      die "apt-get install failed for: ${missing[*]}"
  fi
  if ((${#missing_norec[@]})); then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing_norec[@]}" ||
      die "apt-get install failed for: ${missing_norec[*]}"
  fi

  # If a Redis service started anyway (a policy that allows starts), stop
  # the one the install started; a Redis that was already up is left alone.
  if ((!redis_was_up)) && port_open 6379 && [[ " ${missing[*]} " == *" redis-server "* ]]; then
    say "stopping the redis-server service the package started on 6379"
    if [[ -d /run/systemd/system ]]; then
      "${SUDO[@]}" systemctl stop redis-server 2>/dev/null || true
    elif [[ -x /etc/init.d/redis-server ]]; then
      "${SUDO[@]}" /etc/init.d/redis-server stop >/dev/null 2>&1 || true
    fi
  fi

  cleanup_policy
  trap - EXIT

  for p in "${APT_PACKAGES[@]}" "${APT_PACKAGES_NO_RECOMMENDS[@]}"; do
    pkg_installed "$p" || die "package $p is still not installed"
  done
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  say "warning: Node.js $(node -v 2>/dev/null || echo '?') found; the e2e tests need Node.js >= 20"
fi

# ---------------------------------------------------------------- npm

# npm writes node_modules/.package-lock.json on every install: the tree is
# current when that is newer than the lockfile and package.json.
stamp=node_modules/.package-lock.json
if [[ -f package-lock.json ]]; then
  if [[ ! -f $stamp || package-lock.json -nt $stamp || package.json -nt $stamp ]]; then
    say "npm ci"
    npm ci --no-audit --no-fund || die "npm ci failed"
  else
    say "node_modules up to date"
  fi
elif [[ -f package.json ]]; then
  say "npm install"
  npm install --no-audit --no-fund || die "npm install failed"
fi

say "done"
