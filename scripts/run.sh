#!/usr/bin/env bash
# Runs a local ssehub cluster on loopback: installs what is missing, builds
# build/, then starts (whatever of it is not already running), in the
# background with pid files and logs under .run/:
#
#   redis    127.0.0.1:6379 with AOF (only when no Redis answers at
#            SSEHUB_REDIS_URL; a Redis that runs already is used and left alone)
#   broker1, broker2   ssehub-broker (one holds the leader lease and ingests)
#   node1..3 ssehub-node on 127.0.0.1:8081, :8082, :8083
#   lb       haproxy on 127.0.0.1:8080, rendered from deploy/lb/haproxy.cfg.in
#            (health checks on /readyz; the same config docker-compose uses)
#
# scripts/stop.sh stops exactly these. Running this again while everything
# is up only prints the URLs again; after a component died it starts that
# one again.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUN=$ROOT/.run
HOST=127.0.0.1
LB_PORT=8080
NODE_PORTS=(8081 8082 8083)
NODE_THREADS=1
BROKERS=(broker1 broker2)
BASE=http://$HOST:$LB_PORT
DEFAULT_REDIS_URL=redis://127.0.0.1:6379
REDIS_URL=${SSEHUB_REDIS_URL:-$DEFAULT_REDIS_URL}
WAIT=20

NODES=()
for i in "${!NODE_PORTS[@]}"; do NODES+=("node$((i + 1))"); done

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

# The program behind each component name.
prog_of() {
  case $1 in
    redis) echo redis-server ;;
    broker*) echo ssehub-broker ;;
    node*) echo ssehub-node ;;
    lb) echo haproxy ;;
  esac
}

is_running() { running_pid "$1" "$(prog_of "$1")" >/dev/null; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

redis_ping() {
  [[ $(timeout 5 redis-cli -u "$REDIS_URL" PING 2>/dev/null) == PONG ]]
}

http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
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
  say "started $name (pid $pid): ${*#"$ROOT/"}"
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

# Waits until "$@" succeeds, at most WAIT seconds, failing the start when a
# process it depends on ($check_alive, names) exits meanwhile.
wait_until() {
  local what=$1 deadline=$((SECONDS + WAIT)) name
  shift
  until "$@"; do
    for name in "${check_alive[@]}"; do
      is_running "$name" || fail_start "$name exited (while waiting for $what)"
    done
    ((SECONDS < deadline)) || fail_start "$what: not within $WAIT s"
    sleep 0.25
  done
}

node_ready() { [[ $(http_status "http://$HOST:$1/readyz") == 200 ]]; }
lb_ready() { [[ $(http_status "$BASE/readyz") == 200 ]]; }
# A broker ingests: its pattern subscription (sse:*) is in place.
broker_subscribed() {
  local n
  n=$(timeout 5 redis-cli -u "$REDIS_URL" PUBSUB NUMPAT 2>/dev/null) || return 1
  [[ $n =~ ^[0-9]+$ ]] && ((n > 0))
}

print_info() {
  local redis_line pid publish=redis-cli i name
  if pid=$(running_pid redis redis-server); then
    redis_line="$REDIS_URL (started by run.sh, pid $pid, AOF in .run/redis/)"
  else
    redis_line="$REDIS_URL (already running, not managed by run.sh)"
  fi
  [[ $REDIS_URL == "$DEFAULT_REDIS_URL" ]] || publish="redis-cli -u '$REDIS_URL'"
  printf '\nssehub is running\n'
  printf '  load balancer  %-28s haproxy, pid %s\n' "$BASE" "$(running_pid lb haproxy || echo '?')"
  for i in "${!NODES[@]}"; do
    name=${NODES[i]}
    printf '  %-14s %-28s pid %s, /readyz %s\n' "$name" "http://$HOST:${NODE_PORTS[i]}" \
      "$(running_pid "$name" ssehub-node || echo '?')" "$(http_status "http://$HOST:${NODE_PORTS[i]}/readyz")"
  done
  for name in "${BROKERS[@]}"; do
    printf '  %-14s %-28s pid %s\n' "$name" "" "$(running_pid "$name" ssehub-broker || echo '?')"
  done
  printf '  %-14s %s\n' redis "$redis_line"
  cat <<EOF
  logs           .run/*.log (JSON lines); haproxy config .run/haproxy.cfg,
                 its admin socket .run/haproxy.sock

Try it:
  open the dashboard   $BASE/?topic=demo   (events live, and the cluster: every node, its streams and topics)
  subscribe            curl -N '$BASE/events?topic=demo'
  publish              $publish PUBLISH sse:demo 'hello world'

Stop everything with   scripts/stop.sh
EOF
}

# ------------------------------------------------------- already running?

all_running() {
  local name
  for name in "${BROKERS[@]}" "${NODES[@]}" lb; do is_running "$name" || return 1; done
  is_running redis || redis_ping
}

if all_running; then
  say "already running (scripts/stop.sh stops it)"
  print_info
  exit 0
fi

# The single-node layout of an earlier run.sh (node on 8080): stop it first.
if is_running node || is_running broker; then
  say "stopping the single-node setup an earlier run.sh started"
  bash "$ROOT/scripts/stop.sh"
fi

# The ports of what is to be started must be free before anything starts.
busy=()
is_running lb || ! port_open "$LB_PORT" || busy+=("$HOST:$LB_PORT")
for i in "${!NODES[@]}"; do
  is_running "${NODES[i]}" || ! port_open "${NODE_PORTS[i]}" || busy+=("$HOST:${NODE_PORTS[i]}")
done
((${#busy[@]} == 0)) || die "something else already listens on ${busy[*]}"

mkdir -p "$RUN/redis"

# ------------------------------------------------------- dependencies, build

bash "$ROOT/scripts/install-deps.sh" || die "installing dependencies failed"
bash "$ROOT/scripts/build.sh" || die "the build failed (see above)"
for bin in ssehub-broker ssehub-node; do
  [[ -x $ROOT/build/$bin ]] || die "build/$bin was not built"
done
command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] ||
  die "haproxy not found (scripts/install-deps.sh installs it)"
HAPROXY=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)

# Every SSE client holds a descriptor in its node and two in haproxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------- redis

check_alive=()
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
  start_bg redis redis-server --port "$port" --appendonly yes --appendfsync everysec \
    --maxmemory-policy noeviction --dir "$RUN/redis" --bind 127.0.0.1 --daemonize no
  check_alive=(redis)
  wait_until "redis at $REDIS_URL" redis_ping
fi

# ------------------------------------------------------- brokers and nodes

for name in "${BROKERS[@]}"; do
  if pid=$(running_pid "$name" ssehub-broker); then
    say "$name is running (pid $pid)"
    involved+=("$name")
  else
    start_bg "$name" "$ROOT/build/ssehub-broker" --redis-url "$REDIS_URL"
  fi
done

for i in "${!NODES[@]}"; do
  name=${NODES[i]}
  if pid=$(running_pid "$name" ssehub-node); then
    say "$name is running (pid $pid)"
    involved+=("$name")
  else
    start_bg "$name" "$ROOT/build/ssehub-node" --listen "$HOST:${NODE_PORTS[i]}" \
      --threads "$NODE_THREADS" --redis-url "$REDIS_URL" --node-id "$name"
  fi
done

for i in "${!NODES[@]}"; do
  check_alive=("${BROKERS[@]}" "${NODES[i]}")
  wait_until "${NODES[i]} ready (http://$HOST:${NODE_PORTS[i]}/readyz)" node_ready "${NODE_PORTS[i]}"
done
check_alive=("${BROKERS[@]}")
wait_until "a broker subscribed to the ingest channels" broker_subscribed

# ------------------------------------------------------- load balancer

servers=()
for i in "${!NODES[@]}"; do servers+=("${NODES[i]}=$HOST:${NODE_PORTS[i]}"); done
sh "$ROOT/deploy/lb/render.sh" --bind-addr "$HOST" --stats-socket "$RUN/haproxy.sock" \
  "$LB_PORT" "${servers[@]}" >"$RUN/haproxy.cfg.new" || die "rendering the haproxy config failed"
"$HAPROXY" -c -q -f "$RUN/haproxy.cfg.new" || die "haproxy refuses .run/haproxy.cfg.new (see above)"

if pid=$(running_pid lb haproxy); then
  if cmp -s "$RUN/haproxy.cfg.new" "$RUN/haproxy.cfg"; then
    say "lb is running (pid $pid)"
    involved+=(lb)
  else
    say "the haproxy config changed: restarting lb (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do running_pid lb haproxy >/dev/null || break; sleep 0.1; done
  fi
fi
mv -f "$RUN/haproxy.cfg.new" "$RUN/haproxy.cfg"
if ! is_running lb; then
  port_open "$LB_PORT" && fail_start "something else listens on $HOST:$LB_PORT"
  start_bg lb "$HAPROXY" -db -f "$RUN/haproxy.cfg"
fi
check_alive=(lb)
wait_until "the load balancer ($BASE/readyz)" lb_ready

print_info
