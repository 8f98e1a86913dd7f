#!/usr/bin/env bash
# Runs the Mercure project's own conformance suite against an ssehub node
# (acceptance for the Mercure-compatible API). The suite is AGPL and not part
# of this repository: get it yourself, e.g.
#
#   git clone --depth 1 --branch v0.24.2 https://github.com/dunglas/mercure /tmp/mercure
#   scripts/mercure-conformance.sh /tmp/mercure/conformance-tests [--tls]
#
# It starts a redis-server on a free loopback port and a node (built in
# build/) with the suite's key `!ChangeThisMercureHubJWTSecretKey!` and
# anonymous subscribers on, installs @playwright/test into a
# temporary directory (npm), and runs the suite's spec file there in Debian's
# headless Chromium (/usr/bin/chromium) with CUSTOM_ID=1 (publisher ids are
# kept). --tls serves HTTPS with HTTP/2 from a self-signed certificate.
# Exits with the suite's status; everything it started is stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=${1:?usage: scripts/mercure-conformance.sh CONFORMANCE_TESTS_DIR [--tls]}
TLS=${2:-}
[[ -f $SUITE/mercure.spec.ts ]] || { echo "no mercure.spec.ts in $SUITE" >&2; exit 2; }
[[ -x $ROOT/build/ssehub-node ]] || "$ROOT/scripts/build.sh"

WORK=$(mktemp -d /tmp/ssehub-conformance.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
NPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" PING >/dev/null 2>&1 && break; sleep 0.1; done

args=(--redis-url "redis://127.0.0.1:$RPORT" --listen "127.0.0.1:$NPORT"
  --jwt-key '!ChangeThisMercureHubJWTSecretKey!' --log-level warn)
BASE=http://127.0.0.1:$NPORT
if [[ $TLS == --tls ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/key.pem" \
    -out "$WORK/cert.pem" -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
  PPORT=$(free_port)
  args+=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --listen-plain "127.0.0.1:$PPORT")
  BASE=https://localhost:$NPORT
  READY=http://127.0.0.1:$PPORT/readyz
else
  READY=$BASE/readyz
fi
"$ROOT/build/ssehub-node" "${args[@]}" >"$WORK/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "$READY" >/dev/null && break; sleep 0.1; done
curl -sf "$READY" >/dev/null || { echo "the node did not get ready:" >&2; cat "$WORK/node.log" >&2; exit 1; }

cp "$SUITE/mercure.spec.ts" "$WORK/"
cat >"$WORK/playwright.config.ts" <<'CONF'
import type { PlaywrightTestConfig } from "@playwright/test";
const config: PlaywrightTestConfig = {
  testDir: ".",
  timeout: 10000,
  workers: 2,
  reporter: "list",
  use: {
    baseURL: process.env.BASE_URL,
    ignoreHTTPSErrors: true,
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
    },
  },
  projects: [{ name: "chromium", use: { browserName: "chromium" } }],
};
export default config;
CONF
printf '{"name":"ssehub-mercure-conformance","private":true}\n' >"$WORK/package.json"
(cd "$WORK" && npm install --no-audit --no-fund --silent @playwright/test@1.56.1 >/dev/null)
echo "running the Mercure conformance suite against $BASE/.well-known/mercure"
cd "$WORK"
CUSTOM_ID=1 BASE_URL=$BASE/.well-known/mercure npx playwright test
