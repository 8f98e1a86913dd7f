#!/usr/bin/env bash
# Runs a local ssehub on loopback: installs what is missing, builds build/,
# then starts (unless already running) a Redis when none answers at
# SSEHUB_REDIS_URL, one ssehub-broker and one ssehub-node on 127.0.0.1:8080,
# in the background with pid files and logs under .run/. scripts/stop.sh
# stops them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUN=$ROOT/.run
LISTEN=127.0.0.1:8080
BASE=http://$LISTEN
DEFAULT_REDIS_URL=redis://127.0.0.1:6379
REDIS_URL=${SSEHUB_REDIS_URL:-$DEFAULT_REDIS_URL}
HEALTH_WAIT=20

say() { printf 'run.sh: %s\n' "$*"; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

# Prints the pid in .run/$1.pid when that process is alive and its command
# line names $2 (a pid reused by another program does not count).
running_pid() {
  local file="$RUN/$1.pid" pid state
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null || echo Z)
  [[ $state != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

redis_ping() {
  [[ $(timeout 5 redis-cli -u "$REDIS_URL" PING 2>/dev/null) == PONG ]]
}

# Starts "$@" in its own session (so a Ctrl-C in this terminal or closing
# it does not reach it) with output to .run/$name.log and its pid in
# .run/$name.pid. The previous log is kept as .log.1.
start_bg() {
  local name=$1
  shift
  [[ -f $RUN/$name.log ]] && mv -f "$RUN/$name.log" "$RUN/$name.log.1"
  setsid "$@" </dev/null >"$RUN/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$RUN/$name.pid"
  involved+=("$name")
  say "started $name (pid $pid): $*"
  # Until the child has exec'd, its command line is this script's; wait
  # (briefly) so that running_pid's check of it means something.
  for _ in $(seq 1 50); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "${1##*/}" && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# The components this invocation started or found running: the logs worth
# showing when something fails (other logs are from earlier runs).
involved=()

show_logs() {
  local name
  for name in "${involved[@]}"; do
    [[ -f $RUN/$name.log ]] || continue
    printf '\n---- last lines of .run/%s.log ----\n' "$name" >&2
    tail -n 25 "$RUN/$name.log" >&2
  done
}

fail_start() {
  printf 'run.sh: error: %s\n' "$*" >&2
  show_logs
  printf '\nrun.sh: stopping what was started\n' >&2
  bash "$ROOT/scripts/stop.sh" >&2 || true
  exit 1
}

print_info() {
  local redis_line pid publish=redis-cli
  if pid=$(running_pid redis redis-server); then
    redis_line="$REDIS_URL (started by run.sh, pid $pid, data in .run/redis/)"
  else
    redis_line="$REDIS_URL (already running, not managed by run.sh)"
  fi
  [[ $REDIS_URL == "$DEFAULT_REDIS_URL" ]] || publish="redis-cli -u '$REDIS_URL'"
  cat <<EOF

ssehub is running
  node:    $BASE (pid $(running_pid node ssehub-node))
  broker:  pid $(running_pid broker ssehub-broker)
  redis:   $redis_line
  logs:    .run/node.log .run/broker.log$([[ -f $RUN/redis.pid ]] && echo ' .run/redis.log')

Try it:
  open the demo page   $BASE/?topic=demo
  subscribe            curl -N '$BASE/events?topic=demo'
  publish              $publish PUBLISH sse:demo 'hello world'

Stop everything with   scripts/stop.sh
EOF
}

# ------------------------------------------------------- already running?

if running_pid node ssehub-node >/dev/null && running_pid broker ssehub-broker >/dev/null; then
  say "already running (scripts/stop.sh stops it)"
  print_info
  exit 0
fi

# The node's port must be free before anything is started.
if ! running_pid node ssehub-node >/dev/null &&
  (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null; then
  die "something else already listens on $LISTEN"
fi

mkdir -p "$RUN/redis"

# ------------------------------------------------------- dependencies, build

bash "$ROOT/scripts/install-deps.sh" || die "installing dependencies failed"
bash "$ROOT/scripts/build.sh" || die "the build failed (see above)"
for bin in ssehub-broker ssehub-node; do
  [[ -x $ROOT/build/$bin ]] || die "build/$bin was not built"
done

# ------------------------------------------------------- redis

if pid=$(running_pid redis redis-server); then
  redis_ping || fail_start "the redis-server started earlier (pid $pid) does not answer at $REDIS_URL"
  say "redis started earlier is running (pid $pid)"
  involved+=(redis)
elif redis_ping; then
  rm -f "$RUN/redis.pid"
  say "using the Redis that answers at $REDIS_URL"
else
  rm -f "$RUN/redis.pid"
  # Only a local, password-less redis:// URL can be started here.
  [[ $REDIS_URL =~ ^redis://(127\.0\.0\.1|localhost)(:([0-9]+))?(/[0-9]*)?$ ]] ||
    die "no Redis answers at $REDIS_URL, and run.sh only starts one for
  redis://127.0.0.1:PORT or redis://localhost:PORT (no user or password);
  start that Redis yourself or unset SSEHUB_REDIS_URL"
  port=${BASH_REMATCH[3]:-6379}
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (scripts/install-deps.sh installs it)"
  start_bg redis redis-server --port "$port" --appendonly yes --dir "$RUN/redis" \
    --bind 127.0.0.1 --daemonize no
  for _ in $(seq 1 50); do
    redis_ping && break
    running_pid redis redis-server >/dev/null || fail_start "redis-server exited"
    sleep 0.2
  done
  redis_ping || fail_start "redis-server does not answer at $REDIS_URL after 10 s"
fi

# ------------------------------------------------------- broker and node

if pid=$(running_pid broker ssehub-broker); then
  say "ssehub-broker is running (pid $pid)"
  involved+=(broker)
else
  start_bg broker "$ROOT/build/ssehub-broker"
fi

if pid=$(running_pid node ssehub-node); then
  say "ssehub-node is running (pid $pid)"
  involved+=(node)
else
  start_bg node "$ROOT/build/ssehub-node" --listen "$LISTEN"
fi

deadline=$((SECONDS + HEALTH_WAIT))
until curl -sf --max-time 2 -o /dev/null "$BASE/healthz"; do
  running_pid node ssehub-node >/dev/null || fail_start "ssehub-node exited"
  running_pid broker ssehub-broker >/dev/null || fail_start "ssehub-broker exited"
  ((SECONDS < deadline)) || fail_start "$BASE/healthz did not answer within $HEALTH_WAIT s"
  sleep 0.25
done
running_pid broker ssehub-broker >/dev/null || fail_start "ssehub-broker exited"

print_info
