# shellcheck shell=bash
# Starting and stopping the two systems under test for run-bench.sh, each
# with its own fresh redis-server on a free loopback port. Sourced, never run.
#
# system_start SYSTEM sets:
#   SYS_DIR         scratch directory of this instance (logs, config)
#   REDIS_PORT      its Redis
#   SERVER_PORT     the HTTP port subscribers connect to
#   SUB_TEMPLATE    subscriber URL with %d for the topic number
#   PUB_ARGS        ssehub-benchpub arguments that publish to topic %d
#   H2_PORT, H2_URL the port HTTP/2 clients (h2c by prior knowledge) connect
#                   to, and the stream URL of topic t0 there
# server_pids prints the processes to sample; server_restart kills the server
# and starts a new one on the same ports (Redis and the broker stay).

# shellcheck disable=SC2034 # set here, read by run-bench.sh
SYS_NAME=""
SYS_DIR=""
REDIS_PID=""
REDIS_PORT=""
SERVER_PID=""   # ssehub-node, or the nginx master
BROKER_PID=""
SERVER_PORT=""
SUB_TEMPLATE=""
PUB_ARGS=()
H2_PORT=""
H2_URL=""
SYS_SEQ=0
NODE_THREADS=2  # ssehub-node --threads, = nginx's worker_processes

NCHAN_MODULE=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}

# logcmd CMD...: note a command in the run's commands.log (when there is one).
logcmd() { if declare -F cmdlog >/dev/null; then cmdlog "$@"; fi; }

# start_redis DIR: a private redis-server without persistence.
start_redis() {
  local dir=$1
  REDIS_PORT=$(free_port) || { log "no free port for redis"; return 1; }
  mkdir -p "$dir"
  logcmd redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --maxclients 1000
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --maxclients 1000 >/dev/null 2>&1 &
  REDIS_PID=$!
  track "$REDIS_PID"
  redis_wait_ping "$REDIS_PORT" "$REDIS_PID" && return 0
  log "redis-server on port $REDIS_PORT did not start: $(tail -n 3 "$dir/redis.log" 2>/dev/null)"
  return 1
}

# http_status URL: the status code of a GET (000 when nothing answers).
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

# start_node: ssehub-node on SERVER_PORT, talking to REDIS_PORT (its log is
# appended to, so a restarted node's follows the first one's).
start_node() {
  logcmd "$BUILD_DIR/ssehub-node" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    --listen "127.0.0.1:$SERVER_PORT" --threads "$NODE_THREADS" --log-level warn
  "$BUILD_DIR/ssehub-node" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    --listen "127.0.0.1:$SERVER_PORT" --threads "$NODE_THREADS" --log-level warn \
    >>"$SYS_DIR/node.log" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID"
}

start_ssehub() {
  local i
  start_redis "$SYS_DIR/redis" || return 1
  logcmd "$BUILD_DIR/ssehub-broker" --redis-url "redis://127.0.0.1:$REDIS_PORT" --log-level warn
  "$BUILD_DIR/ssehub-broker" --redis-url "redis://127.0.0.1:$REDIS_PORT" --log-level warn \
    >"$SYS_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  track "$BROKER_PID"
  SERVER_PORT=$(free_port) || { log "no free port for ssehub-node"; return 1; }
  start_node
  for ((i = 0; i < 100; i++)); do
    if [[ $(http_status "http://127.0.0.1:$SERVER_PORT/readyz") == 200 &&
      $(redis-cli -p "$REDIS_PORT" PUBSUB NUMPAT 2>/dev/null) -ge 1 ]]; then
      SUB_TEMPLATE="http://127.0.0.1:$SERVER_PORT/events?topic=t%d"
      PUB_ARGS=(--redis "127.0.0.1:$REDIS_PORT" --channel-template 'sse:t%d')
      # The same cleartext port speaks h2c by prior knowledge.
      H2_PORT=$SERVER_PORT
      H2_URL="http://127.0.0.1:$SERVER_PORT/events?topic=t0"
      return 0
    fi
    if ! alive "$SERVER_PID" || ! alive "$BROKER_PID"; then break; fi
    sleep 0.1
  done
  log "ssehub did not become ready: $(tail -n 3 "$SYS_DIR/node.log" "$SYS_DIR/broker.log" 2>/dev/null)"
  return 1
}

# start_nginx: nginx with this instance's nginx.conf (written by start_nchan).
start_nginx() {
  logcmd nginx -p "$SYS_DIR" -e "$SYS_DIR/error.log" -c "$SYS_DIR/nginx.conf"
  nginx -p "$SYS_DIR" -e "$SYS_DIR/error.log" -c "$SYS_DIR/nginx.conf" \
    >>"$SYS_DIR/nginx.out" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID"
}

start_nchan() {
  local i code
  start_redis "$SYS_DIR/redis" || return 1
  SERVER_PORT=$(free_port) || { log "no free port for nginx"; return 1; }
  H2_PORT=$(free_port) || { log "no free port for nginx (h2c)"; return 1; }
  mkdir -p "$SYS_DIR"/{body,proxy,fastcgi,uwsgi,scgi}
  sed -e "s#@DIR@#$SYS_DIR#g" -e "s#@PORT@#$SERVER_PORT#g" -e "s#@H2PORT@#$H2_PORT#g" \
    -e "s#@RPORT@#$REDIS_PORT#g" -e "s#@MODULE@#$NCHAN_MODULE#g" \
    "$BENCH_DIR/nchan/nginx.conf.in" >"$SYS_DIR/nginx.conf"
  start_nginx
  for ((i = 0; i < 100; i++)); do
    # A publish answers 201/202 only once the workers reach Redis.
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' -X POST -d warmup \
      "http://127.0.0.1:$SERVER_PORT/pub/warmup" 2>/dev/null || true)
    if [[ $code == 201 || $code == 202 ]]; then
      # shellcheck disable=SC2034 # read by run-bench.sh
      SUB_TEMPLATE="http://127.0.0.1:$SERVER_PORT/sub/t%d"
      # Pipelined keep-alive POSTs (each topic on one connection, in order),
      # as the Redis publisher pipelines: one request at a time would cap a
      # single topic at one publish per round trip.
      PUB_ARGS=(--http-template "http://127.0.0.1:$SERVER_PORT/pub/t%d" --window 32)
      # h2c by prior knowledge on a second listen of the same server.
      # shellcheck disable=SC2034 # read by run-bench.sh
      H2_URL="http://127.0.0.1:$H2_PORT/sub/t0"
      return 0
    fi
    alive "$SERVER_PID" || break
    sleep 0.1
  done
  log "nginx/nchan did not become ready: $(tail -n 3 "$SYS_DIR/error.log" "$SYS_DIR/nginx.out" 2>/dev/null)"
  return 1
}

# system_start SYSTEM: a fresh Redis and server (ssehub or nchan).
system_start() {
  SYS_NAME=$1
  SYS_SEQ=$((SYS_SEQ + 1))
  SYS_DIR="$WORK_DIR/$SYS_NAME-$SYS_SEQ"
  mkdir -p "$SYS_DIR"
  BROKER_PID=""
  case $SYS_NAME in
  ssehub) start_ssehub ;;
  nchan) start_nchan ;;
  *) die "unknown system $SYS_NAME" ;;
  esac || { system_stop; return 1; }
}

# server_pids: the processes whose memory and CPU count as the server's
# (ssehub-node; the nginx master and its current workers).
server_pids() {
  [[ -n $SERVER_PID ]] || return 0
  echo "$SERVER_PID"
  [[ $SYS_NAME == nchan ]] && children_of "$SERVER_PID"
  return 0
}

# server_restart: a node failure and its replacement. SIGKILLs the server
# (ssehub-node; the nginx master and its workers, all at once), starts a new
# one on the same ports with the same settings, and returns once it is ready
# (ssehub: /readyz answers 200 and Redis has counted a FUNCTION LOAD from each
# of its threads; nchan: /healthz answers 200 and all its workers run) and
# Redis has counted no new command for 0.5 s, so that the new server's
# start-up commands are over. Redis and ssehub's broker keep running. Sets
# RESTART_READY_MS: from the SIGKILL until the new server was ready (the
# settling aside). Returns 1 if the server did not come back.
RESTART_READY_MS=""
server_restart() {
  local pids p i f0=0 ok=0 t0
  RESTART_READY_MS=""
  mapfile -t pids < <(server_pids)
  ((${#pids[@]})) || return 1
  [[ $SYS_NAME == ssehub ]] && f0=$(redis_calls "$REDIS_PORT" 'function|load')
  t0=$(now_ms)
  kill -KILL "${pids[@]}" 2>/dev/null
  for p in "${pids[@]}"; do
    wait_pid "$p" 10 || { log "server process $p survived SIGKILL"; return 1; }
  done
  SERVER_PID=""
  case $SYS_NAME in
  ssehub) start_node ;;
  nchan) start_nginx ;;
  esac
  for ((i = 0; i < 200; i++)); do
    if [[ $SYS_NAME == ssehub ]]; then
      [[ $(http_status "http://127.0.0.1:$SERVER_PORT/readyz") == 200 ]] &&
        (($(redis_calls "$REDIS_PORT" 'function|load') >= f0 + NODE_THREADS)) && ok=1
    else
      [[ $(http_status "http://127.0.0.1:$SERVER_PORT/healthz") == 200 ]] &&
        (($(children_of "$SERVER_PID" | wc -l) >= NODE_THREADS)) && ok=1
    fi
    ((ok)) && break
    alive "$SERVER_PID" || break
    sleep 0.05
  done
  if ((!ok)); then
    log "$SYS_NAME did not come back after the restart: $(tail -n 3 "$SYS_DIR/node.log" "$SYS_DIR/error.log" 2>/dev/null)"
    return 1
  fi
  RESTART_READY_MS=$(( $(now_ms) - t0 ))
  redis_settle "$REDIS_PORT" || log "warning: Redis did not settle within 10 s of the restart"
  return 0
}

# server_stream_count: the streams the server says it holds (nchan: the
# subscribers of nchan_stub_status, over all workers; ssehub: the node's
# ssehub_node_connections on /metrics, over both protocols -- each worker
# thread publishes its figure once a second).
server_stream_count() {
  if [[ $SYS_NAME == nchan ]]; then
    curl -s -m 2 "http://127.0.0.1:$SERVER_PORT/nchan_status" 2>/dev/null |
      awk -F': *' '$1 == "subscribers" { print $2 + 0 }'
  else
    curl -s -m 2 "http://127.0.0.1:$SERVER_PORT/metrics" 2>/dev/null |
      awk '/^ssehub_node_connections\{/ { n += $2; seen = 1 } END { if (seen) print n + 0 }'
  fi
}

# server_rss / server_cpu: the server processes' summed VmRSS (KiB) and CPU
# time (clock ticks).
server_rss() { local p; mapfile -t p < <(server_pids); rss_kb "${p[@]}"; }
server_cpu() { local p; mapfile -t p < <(server_pids); cpu_ticks "${p[@]}"; }

# server_alive: the server and all its workers still run (nchan's master
# respawns a crashed worker: compare with the count at start).
server_alive() {
  alive "$SERVER_PID" || return 1
  [[ -z $BROKER_PID ]] || alive "$BROKER_PID" || return 1
  alive "$REDIS_PID"
}

# broker_warnings: {message: count} of the warnings and errors the broker
# logged so far ({} for nchan).
broker_warnings() {
  if [[ $SYS_NAME == ssehub && -s $SYS_DIR/broker.log ]]; then
    jq -cRn '[inputs | fromjson? | select(.level == "warn" or .level == "error") | .msg]
            | group_by(.) | map({key: .[0], value: length}) | from_entries' "$SYS_DIR/broker.log" 2>/dev/null || echo '{}'
  else
    echo '{}'
  fi
}

# nchan_worker_crashes: how many workers the error log says died.
nchan_worker_crashes() {
  [[ $SYS_NAME == nchan && -f $SYS_DIR/error.log ]] || { echo 0; return; }
  grep -c 'exited on signal' "$SYS_DIR/error.log" 2>/dev/null || true
}

system_stop() {
  local p workers
  if [[ -n $SERVER_PID ]]; then
    workers=$( [[ $SYS_NAME == nchan ]] && children_of "$SERVER_PID" )
    stop_pid "$SERVER_PID" 10
    for p in $workers; do stop_pid "$p" 2; done
  fi
  [[ -n $BROKER_PID ]] && stop_pid "$BROKER_PID" 5
  [[ -n $REDIS_PID ]] && stop_pid "$REDIS_PID" 5
  SERVER_PID="" BROKER_PID="" REDIS_PID="" H2_PORT="" H2_URL=""
  # Keep the servers' own logs with the results (warnings, crashes).
  if [[ -n ${RAW:-} && -d $SYS_DIR ]]; then
    for p in "$SYS_DIR"/*.log "$SYS_DIR"/redis/redis.log; do
      [[ -s $p ]] && cp "$p" "$RAW/$SYS_NAME/instance-$SYS_SEQ-$(basename "$p")"
    done
  fi
  return 0
}
