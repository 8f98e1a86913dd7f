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
# and server_pids / aux_pids print the processes to sample.

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
SYS_SEQ=0

NCHAN_MODULE=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}

# logcmd CMD...: note a command in the run's commands.log (when there is one).
logcmd() { if declare -F cmdlog >/dev/null; then cmdlog "$@"; fi; }

# start_redis DIR: a private redis-server without persistence.
start_redis() {
  local dir=$1 i
  REDIS_PORT=$(free_port) || { log "no free port for redis"; return 1; }
  mkdir -p "$dir"
  logcmd redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --maxclients 1000
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --maxclients 1000 >/dev/null 2>&1 &
  REDIS_PID=$!
  track "$REDIS_PID"
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] && return 0
    alive "$REDIS_PID" || break
    sleep 0.1
  done
  log "redis-server on port $REDIS_PORT did not start: $(tail -n 3 "$dir/redis.log" 2>/dev/null)"
  return 1
}

# http_status URL: the status code of a GET (000 when nothing answers).
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

start_ssehub() {
  local i
  start_redis "$SYS_DIR/redis" || return 1
  logcmd "$BUILD_DIR/ssehub-broker" --redis-url "redis://127.0.0.1:$REDIS_PORT" --log-level warn
  "$BUILD_DIR/ssehub-broker" --redis-url "redis://127.0.0.1:$REDIS_PORT" --log-level warn \
    >"$SYS_DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  track "$BROKER_PID"
  SERVER_PORT=$(free_port) || { log "no free port for ssehub-node"; return 1; }
  logcmd "$BUILD_DIR/ssehub-node" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    --listen "127.0.0.1:$SERVER_PORT" --threads 2 --log-level warn
  "$BUILD_DIR/ssehub-node" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    --listen "127.0.0.1:$SERVER_PORT" --threads 2 --log-level warn \
    >"$SYS_DIR/node.log" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID"
  for ((i = 0; i < 100; i++)); do
    if [[ $(http_status "http://127.0.0.1:$SERVER_PORT/readyz") == 200 &&
      $(redis-cli -p "$REDIS_PORT" PUBSUB NUMPAT 2>/dev/null) -ge 1 ]]; then
      SUB_TEMPLATE="http://127.0.0.1:$SERVER_PORT/events?topic=t%d"
      PUB_ARGS=(--redis "127.0.0.1:$REDIS_PORT" --channel-template 'sse:t%d')
      return 0
    fi
    if ! alive "$SERVER_PID" || ! alive "$BROKER_PID"; then break; fi
    sleep 0.1
  done
  log "ssehub did not become ready: $(tail -n 3 "$SYS_DIR/node.log" "$SYS_DIR/broker.log" 2>/dev/null)"
  return 1
}

start_nchan() {
  local i code
  start_redis "$SYS_DIR/redis" || return 1
  SERVER_PORT=$(free_port) || { log "no free port for nginx"; return 1; }
  mkdir -p "$SYS_DIR"/{body,proxy,fastcgi,uwsgi,scgi}
  sed -e "s#@DIR@#$SYS_DIR#g" -e "s#@PORT@#$SERVER_PORT#g" \
    -e "s#@RPORT@#$REDIS_PORT#g" -e "s#@MODULE@#$NCHAN_MODULE#g" \
    "$BENCH_DIR/nchan/nginx.conf.in" >"$SYS_DIR/nginx.conf"
  logcmd nginx -p "$SYS_DIR" -e "$SYS_DIR/error.log" -c "$SYS_DIR/nginx.conf"
  nginx -p "$SYS_DIR" -e "$SYS_DIR/error.log" -c "$SYS_DIR/nginx.conf" \
    >"$SYS_DIR/nginx.out" 2>&1 &
  SERVER_PID=$!
  track "$SERVER_PID"
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
  SERVER_PID="" BROKER_PID="" REDIS_PID=""
  # Keep the servers' own logs with the results (warnings, crashes).
  if [[ -n ${RAW:-} && -d $SYS_DIR ]]; then
    for p in "$SYS_DIR"/*.log "$SYS_DIR"/redis/redis.log; do
      [[ -s $p ]] && cp "$p" "$RAW/$SYS_NAME/instance-$SYS_SEQ-$(basename "$p")"
    done
  fi
  return 0
}
