#!/usr/bin/env bash
# Redis Cluster shards (issue 7): how publish calls and deliveries spread
# over the masters, and whether more masters carry more load, on this
# machine (loopback only).
#
# For each master count (1 and 3 by default), --runs times, interleaved
# (1,3,1,3,...): a fresh Redis Cluster without replicas on free loopback
# ports, one ssehub-node (--threads 2) on it, ssehub-loadgen holding
# TOPICS x STREAMS SSE streams (topics t0..t<K-1>), then ssehub-benchpub
# --cluster --mode fcall --rate 0 (unpaced: saturation) publishing COUNT
# events round-robin over the same topics, each to the master of its slot.
# Measured per run: publishes stored per second (benchpub: FCALLs answered),
# deliveries per second at the clients (loadgen), each master's share of the
# calls (benchpub's per-master counts, and Redis' cmdstat_fcall), and the CPU
# seconds of every redis-server, the node and the clients during the publish.
# Raw JSON goes to tests/bench/results/cluster-<UTC stamp>/; a summary table
# (medians of the runs, and the ratio of the most masters to the fewest) is
# printed and kept in summary.json / summary.txt there.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/clients.sh
. "$BENCH_DIR/lib/clients.sh"

usage() {
  cat <<'EOF'
usage: tests/bench/cluster-scale.sh [options]
  --runs N            runs per master count, interleaved (default 3)
  --masters LIST      comma-separated master counts (default 1,3)
  --topics K          topics t0..t<K-1> (default 1000)
  --streams S         SSE streams per topic (default 2)
  --count C           events published per run, a multiple of K (default 400000)
  --size B            payload bytes (default 64)
  --redis-conns N     benchpub connections per master (default 2)
  --quick             smoke run: 1 run, 200 topics, 20,000 events
  --wait-quiet        before each run (1,3 pair), wait until no test suite or bench
                      runs (20 s polls, at most 20 min, then go on anyway)
  --build-dir DIR     where ssehub-node and tests/bench/ssehub-* are (default build/)
  -h, --help          this help
Build first with scripts/build.sh.
EOF
}

RUNS=3
MASTERS="1,3"
TOPICS=1000
STREAMS=2
COUNT=400000
PAYLOAD_SIZE=64
REDIS_CONNS=2
QUICK=0
WAIT_QUIET=0
BUILD_DIR="$ROOT/build"
runs_given=0 topics_given=0 count_given=0
while (($#)); do
  case $1 in
  --runs) RUNS=${2:?}; runs_given=1; shift ;;
  --masters) MASTERS=${2:?}; shift ;;
  --topics) TOPICS=${2:?}; topics_given=1; shift ;;
  --streams) STREAMS=${2:?}; shift ;;
  --count) COUNT=${2:?}; count_given=1; shift ;;
  --size) PAYLOAD_SIZE=${2:?}; shift ;;
  --redis-conns) REDIS_CONNS=${2:?}; shift ;;
  --quick) QUICK=1 ;;
  --wait-quiet) WAIT_QUIET=1 ;;
  --build-dir) BUILD_DIR=$(cd "${2:?}" && pwd); shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done
if ((QUICK)); then
  ((runs_given)) || RUNS=1
  ((topics_given)) || TOPICS=200
  ((count_given)) || COUNT=20000
fi
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || die "--runs takes 1..99"
[[ $MASTERS =~ ^[1-9][0-9]?(,[1-9][0-9]?)*$ ]] || die "--masters takes a comma-separated list of 1..99"
for v in TOPICS STREAMS COUNT PAYLOAD_SIZE REDIS_CONNS; do
  [[ ${!v} =~ ^[1-9][0-9]{0,8}$ ]] || die "bad value for ${v,,}: ${!v}"
done
((COUNT % TOPICS == 0)) || die "--count must be a multiple of --topics"
((TOPICS * STREAMS <= 19000)) || die "at most 19,000 streams (one load generator)"

NODE="$BUILD_DIR/ssehub-node"
LOADGEN="$BUILD_DIR/tests/bench/ssehub-loadgen"
BENCHPUB="$BUILD_DIR/tests/bench/ssehub-benchpub"
for f in "$NODE" "$LOADGEN" "$BENCHPUB"; do
  [[ -x $f ]] || die "$f not found: build first (scripts/build.sh)"
done
for c in redis-server redis-cli jq curl /usr/bin/time; do
  command -v "$c" >/dev/null 2>&1 || die "$c not found"
done

LOADGEN_THREADS=2       # epoll threads of the load generator
NODE_THREADS=2          # ssehub-node --threads
SOURCES=50              # 127.0.0.2.. as client source addresses
PUB_TIMEOUT=120         # benchpub --timeout: one publish phase at most
DRAIN_SECONDS=30        # after the publish, time for the deliveries to finish
CONNS=$((TOPICS * STREAMS))
PER_STREAM=$((COUNT / TOPICS))

# ---- bookkeeping ------------------------------------------------------------------

bench_begin ssehub-cluster cluster- stop_all
SYS_NAME="" # "<N>m": the prefix of commands.log lines
TAG=""      # "<N>m-r<run>": the names of this run's files in raw/

CL_PORTS=() # client port of each redis-server of the current cluster
CL_PIDS=()
NODE_PID=""
NODE_PORT=""

# ---- the cluster ------------------------------------------------------------------

# cluster_info_ok PORT N: the node says cluster_state:ok, serves all 16384
# slots and knows N nodes.
cluster_info_ok() {
  redis-cli -p "$1" CLUSTER INFO 2>/dev/null | tr -d '\r' |
    awk -F: -v n="$2" '$1 == "cluster_state" && $2 == "ok" { s++ }
                       $1 == "cluster_slots_ok" && $2 == 16384 { s++ }
                       $1 == "cluster_known_nodes" && $2 == n { s++ }
                       END { exit s == 3 ? 0 : 1 }'
}

# start_redis_node DIR: one cluster-enabled redis-server on a free port (and
# a free bus port below the ephemeral range); appends to CL_PORTS/CL_PIDS.
start_redis_node() {
  local dir=$1 port bus
  port=$(free_port) || { log "no free port for redis"; return 1; }
  bus=$(free_port) || { log "no free port for the cluster bus"; return 1; }
  mkdir -p "$dir/$port"
  local args=(--port "$port" --bind 127.0.0.1 --cluster-enabled yes
    --cluster-config-file "$dir/$port/nodes.conf" --cluster-port "$bus"
    --save '' --appendonly no --dir "$dir/$port")
  cmdlog redis-server "${args[@]}"
  redis-server "${args[@]}" --logfile "$dir/$port/redis.log" >/dev/null 2>&1 &
  CL_PIDS+=("$!")
  CL_PORTS+=("$port")
  track "$!"
  redis_wait_ping "$port" "${CL_PIDS[-1]}" && return 0
  log "redis-server on port $port did not start: $(tail -n 3 "$dir/$port/redis.log" 2>/dev/null)"
  return 1
}

# start_cluster N DIR: N masters, no replicas; returns once every node
# agrees the cluster is ok (at most 30 s).
start_cluster() {
  local n=$1 dir=$2 i p ok addrs=()
  CL_PORTS=() CL_PIDS=()
  for ((i = 0; i < n; i++)); do
    start_redis_node "$dir" || return 1
  done
  if ((n == 1)); then
    cmdlog redis-cli -p "${CL_PORTS[0]}" CLUSTER ADDSLOTSRANGE 0 16383
    [[ $(redis-cli -p "${CL_PORTS[0]}" CLUSTER ADDSLOTSRANGE 0 16383 2>&1) == OK ]] ||
      { log "CLUSTER ADDSLOTSRANGE failed"; return 1; }
  else
    for p in "${CL_PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    cmdlog redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes
    timeout -k 5 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
      >"$dir/create.log" 2>&1 || { log "cluster create failed: $(tail -n 3 "$dir/create.log")"; return 1; }
  fi
  for ((i = 0; i < 300; i++)); do
    ok=1
    for p in "${CL_PORTS[@]}"; do cluster_info_ok "$p" "$n" || { ok=0; break; }; done
    ((ok)) && return 0
    sleep 0.1
  done
  log "the cluster of $n did not become ok within 30 s"
  return 1
}

# function_loaded PORT: the master has the publish function.
function_loaded() { redis-cli -p "$1" FUNCTION LIST 2>/dev/null | grep -q '^ssehub_publish$'; }

# start_node: ssehub-node on the cluster (seed: the first node); returns once
# /readyz answers 200 and every master has the function library.
start_node() {
  local i p ok
  NODE_PORT=$(free_port) || { log "no free port for ssehub-node"; return 1; }
  local args=(--threads "$NODE_THREADS" --redis-url "redis://127.0.0.1:${CL_PORTS[0]}"
    --listen "127.0.0.1:$NODE_PORT" --log-level warn)
  cmdlog "$NODE" "${args[@]}"
  "$NODE" "${args[@]}" >>"$WORK_DIR/$SYS_NAME-node.log" 2>&1 &
  NODE_PID=$!
  track "$NODE_PID"
  for ((i = 0; i < 200; i++)); do
    ok=0
    if [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$NODE_PORT/readyz" 2>/dev/null) == 200 ]]; then
      ok=1
      for p in "${CL_PORTS[@]}"; do function_loaded "$p" || { ok=0; break; }; done
    fi
    ((ok)) && return 0
    alive "$NODE_PID" || break
    sleep 0.1
  done
  log "ssehub-node did not become ready: $(tail -n 3 "$WORK_DIR/$SYS_NAME-node.log" 2>/dev/null)"
  return 1
}

# stop_all: the node and every redis-server of the cluster; their logs are
# kept in raw/.
stop_all() {
  local p
  [[ -n $NODE_PID ]] && stop_pid "$NODE_PID" 10
  for p in "${CL_PIDS[@]}"; do stop_pid "$p" 5; done
  NODE_PID="" CL_PIDS=()
  if [[ -n $SYS_NAME && -d ${RAW:-} ]]; then
    [[ -s $WORK_DIR/$SYS_NAME-node.log ]] && cp "$WORK_DIR/$SYS_NAME-node.log" "$RAW/$TAG-node.log"
    for p in "${CL_PORTS[@]}"; do
      [[ -s $WORK_DIR/$TAG/$p/redis.log ]] && cp "$WORK_DIR/$TAG/$p/redis.log" "$RAW/$TAG-redis-$p.log"
    done
  fi
  rm -f "$WORK_DIR/$SYS_NAME-node.log"
  return 0
}

# ---- sampling ---------------------------------------------------------------------

# machine_ticks: "busy total" clock ticks of all CPUs since boot (/proc/stat).
machine_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }

# masters_mark: every master's CPU ticks and FCALL count, as JSON
# {"127.0.0.1:P": {"pid", "cpu_ticks", "fcall"}}.
masters_mark() {
  local i
  for i in "${!CL_PORTS[@]}"; do
    jq -n --arg a "127.0.0.1:${CL_PORTS[i]}" --argjson pid "${CL_PIDS[i]}" \
      --argjson t "$(cpu_ticks "${CL_PIDS[i]}")" --argjson f "$(redis_calls "${CL_PORTS[i]}" fcall)" \
      '{($a): {pid: $pid, cpu_ticks: $t, fcall: $f}}'
  done | jq -s 'add'
}

# others_running: how many processes of a test suite or another bench run
# (every run records it: figures taken beside them are distorted).
OTHERS='scripts/test.sh|ctest|run-bench.sh'
others_running() { pgrep -fc "$OTHERS" || true; }

# wait_quiet: wait (20 s polls, at most 20 min) until others_running is 0.
wait_quiet() {
  local i
  for ((i = 0; i < 60; i++)); do
    (($(others_running) == 0)) && return 0
    ((i == 0)) && log "waiting for the machine to be quiet (pgrep -f '$OTHERS')"
    sleep 20
  done
  log "warning: still not quiet after 20 min; measuring anyway"
  return 1
}

# ---- one run ----------------------------------------------------------------------

# run_one MASTERS RUN: one measurement; appends a record to records.jsonl.
run_one() {
  local n=$1 run=$2 m0 m1 node0 node1 mach0 mach1 pub lg tm others0 load0
  SYS_NAME="${n}m" TAG="${n}m-r$run"
  log "$TAG: starting a cluster of $n master(s)"
  if ! start_cluster "$n" "$WORK_DIR/$TAG" || ! start_node; then
    record "$(jq -n --argjson n "$n" --argjson run "$run" '{masters: $n, run: $run, ok: false, why: "did not start"}')"
    stop_all
    return
  fi
  start_loadgen "$TAG-loadgen" $((PUB_TIMEOUT + DRAIN_SECONDS + 120)) --mode fanout \
    --url-template "http://127.0.0.1:$NODE_PORT/events?topic=t%d" --topics "$TOPICS" \
    --connections "$CONNS" --sources "$SOURCES" --expect "$PER_STREAM" --duration $((PUB_TIMEOUT + DRAIN_SECONDS))
  if ! loadgen_ready 90; then
    log "$TAG: the load generator never reported ready"
    loadgen_finish 0
    record "$(jq -n --argjson n "$n" --argjson run "$run" --argjson lg "$(last_json "$LG_OUT")" \
      '{masters: $n, run: $run, ok: false, why: "streams not ready", loadgen: $lg}')"
    stop_all
    return
  fi
  sleep 1
  others0=$(others_running) load0=$(cut -d' ' -f1 /proc/loadavg)
  m0=$(masters_mark) node0=$(cpu_ticks "$NODE_PID") mach0=$(machine_ticks)
  run_fg "$TAG-benchpub" $((PUB_TIMEOUT + 30)) /usr/bin/time -o "$RAW/$TAG-benchpub.time" \
    -f '{"cpu_user_s":%U,"cpu_sys_s":%S}' "$BENCHPUB" --cluster --mode fcall \
    --redis "127.0.0.1:${CL_PORTS[0]}" --redis-conns "$REDIS_CONNS" --topics "$TOPICS" \
    --rate 0 --count "$COUNT" --size "$PAYLOAD_SIZE" --timeout "$PUB_TIMEOUT"
  m1=$(masters_mark) node1=$(cpu_ticks "$NODE_PID") mach1=$(machine_ticks)
  loadgen_finish "$DRAIN_SECONDS"
  pub=$(last_json "$RAW/$TAG-benchpub.out")
  lg=$(last_json "$LG_OUT")
  tm=$(jq -c . "$RAW/$TAG-benchpub.time" 2>/dev/null || echo null)
  record "$(jq -n --argjson n "$n" --argjson run "$run" --argjson pub "$pub" --argjson lg "$lg" \
    --argjson tm "$tm" --argjson m0 "$m0" --argjson m1 "$m1" --argjson hz "$CLK_TCK" \
    --argjson node "$((node1 - node0))" --arg mach0 "$mach0" --arg mach1 "$mach1" \
    --argjson count "$COUNT" --argjson want "$((COUNT * STREAMS))" --argjson conns "$CONNS" \
    --argjson others0 "$others0" --argjson others1 "$(others_running)" --argjson load0 "$load0" '
    ($mach0 | split(" ") | map(tonumber)) as $a | ($mach1 | split(" ") | map(tonumber)) as $b |
    ($pub.masters // []) as $pm | ([$pm[].acked] | add // 0) as $acked |
    {masters: $n, run: $run,
     ok: ($pub != null and $pub.errors == 0 and $pub.acked == $count and $lg != null
          and $lg.events == $want and $lg.connected == $conns),
     stored_per_s: $pub.rate, publish_s: $pub.elapsed_s, acked: $pub.acked, errors: $pub.errors,
     first_error: $pub.first_error,
     deliveries_per_s: $lg.rate, deliveries: $lg.events, deliveries_wanted: $want,
     holes: $lg.holes, missing: $lg.missing, duplicates: $lg.duplicates,
     latency_us: $lg.latency_us,
     per_master: [$pm[] | . as $x | {addr, topics, acked,
       share: (if $acked > 0 then .acked / $acked else null end),
       fcall: ($m1[$x.addr].fcall - $m0[$x.addr].fcall),
       cpu_s: (($m1[$x.addr].cpu_ticks - $m0[$x.addr].cpu_ticks) / $hz)}
       | . + {core_use: (if $pub.elapsed_s > 0 then .cpu_s / $pub.elapsed_s else null end)}],
     redis_cpu_s: ([$m1 | keys[] as $k | $m1[$k].cpu_ticks - $m0[$k].cpu_ticks] | add / $hz),
     node_cpu_s: ($node / $hz),
     loadgen_cpu_s: (if $lg then $lg.cpu_user_s + $lg.cpu_sys_s else null end),
     benchpub_cpu_s: (if $tm then $tm.cpu_user_s + $tm.cpu_sys_s else null end),
     machine_busy: (if $b[1] > $a[1] then ($b[0] - $a[0]) / ($b[1] - $a[1]) else null end),
     others_running: {before: $others0, after: $others1}, loadavg_1m_before: $load0,
     benchpub: $pub, loadgen: $lg}')"
  log "$TAG: $(tail -n 1 "$RECORDS" | jq -r '"\(if .others_running.before + .others_running.after > 0 then "(NOT QUIET) " else "" end)stored \(.stored_per_s // 0 | floor)/s, delivered \(.deliveries_per_s // 0 | floor)/s (\(.deliveries // 0) of \(.deliveries_wanted)), Redis CPU \(.redis_cpu_s) s, shares \([.per_master[].share * 100 | round] | map(tostring + "%") | join(" "))"')"
  stop_all
}

# ---- summary ----------------------------------------------------------------------

# summarize: summary.json (medians per master count over the complete runs,
# and the ratios of the most masters to the fewest, of the medians and run
# by run) and a printed table.
summarize() {
  jq -s --arg masters "$MASTERS" '
    def median: sort | if length == 0 then null
      elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    ($masters | split(",") | map(tonumber)) as $ms |
    [$ms[] as $n | [.[] | select(.masters == $n and .ok)] as $rs |
      {masters: $n, runs: ($rs | length),
       quiet: ([$rs[] | select(.others_running.before == 0 and .others_running.after == 0)] | length),
       failed: ([.[] | select(.masters == $n and (.ok | not))] | length),
       stored_per_s: ([$rs[].stored_per_s] | median),
       deliveries_per_s: ([$rs[].deliveries_per_s] | median),
       redis_cpu_s: ([$rs[].redis_cpu_s] | median),
       redis_us_per_event: ([$rs[] | .redis_cpu_s / .acked * 1e6] | median),
       publish_s: ([$rs[].publish_s] | median),
       node_cpu_s: ([$rs[].node_cpu_s] | median),
       loadgen_cpu_s: ([$rs[].loadgen_cpu_s] | median),
       benchpub_cpu_s: ([$rs[].benchpub_cpu_s] | median),
       machine_busy: ([$rs[].machine_busy] | median),
       per_master: [range(0; $n) as $i |
         {topics: $rs[0].per_master[$i].topics,
          share: ([$rs[].per_master[$i].share] | median),
          fcall_share: ([$rs[] | .per_master[$i].fcall / ([.per_master[].fcall] | add)] | median),
          cpu_s: ([$rs[].per_master[$i].cpu_s] | median),
          core_use: ([$rs[].per_master[$i].core_use] | median)}]}] as $by |
    ($by | min_by(.masters)) as $lo | ($by | max_by(.masters)) as $hi |
    {by_masters: $by,
     ratio: {of: "\($hi.masters):\($lo.masters)",
       stored: (if $lo.stored_per_s then $hi.stored_per_s / $lo.stored_per_s else null end),
       deliveries: (if $lo.deliveries_per_s then $hi.deliveries_per_s / $lo.deliveries_per_s else null end),
       stored_by_run: [range(1; 100) as $r |
         ([.[] | select(.run == $r and .ok and .masters == $lo.masters)][0]) as $a |
         ([.[] | select(.run == $r and .ok and .masters == $hi.masters)][0]) as $b |
         select($a != null and $b != null) | $b.stored_per_s / $a.stored_per_s]}}' "$RECORDS" >"$OUT_DIR/summary.json"
  jq -r '
    def n0: if . == null then "-" else (round | tostring | [scan("\\d+?(?=(?:\\d{3})*$)")] | join(",")) end;
    def f2: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
    def pct: if . == null then "-" else ((. * 100 | round | tostring) + "%") end;
    (["masters", "runs", "stored/s", "deliveries/s", "share per master (acked)", "Redis CPU s per master",
      "core use per master", "Redis CPU s", "Redis us/event", "node CPU s", "clients CPU s", "machine busy"] | @tsv),
    (.by_masters[] | [.masters, "\(.runs) ok (\(.quiet) quiet), \(.failed) failed", (.stored_per_s | n0), (.deliveries_per_s | n0),
      ([.per_master[].share | pct] | join(" / ")), ([.per_master[].cpu_s | f2] | join(" / ")),
      ([.per_master[].core_use | pct] | join(" / ")), (.redis_cpu_s | f2), (.redis_us_per_event | f2),
      (.node_cpu_s | f2), ((.loadgen_cpu_s // 0) + (.benchpub_cpu_s // 0) | f2), (.machine_busy | pct)] | @tsv),
    (.ratio | ["ratio \(.of)", "", "\(.stored | f2)x", "\(.deliveries | f2)x",
      "stored by run: \([.stored_by_run[] | f2] | join(", "))", "", "", "", "", "", "", ""] | @tsv)' \
    "$OUT_DIR/summary.json" | column -t -s $'\t' >"$OUT_DIR/summary.txt" 2>/dev/null ||
    jq . "$OUT_DIR/summary.json" >"$OUT_DIR/summary.txt"
  cat "$OUT_DIR/summary.txt"
}

# ---- main -------------------------------------------------------------------------

mkdir -p "$RAW" || die "cannot create $RAW"
jq -n --arg stamp "$STAMP" --argjson nproc "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  --arg redis "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
  --arg rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --argjson dirty "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)" \
  --argjson runs "$RUNS" --arg masters "$MASTERS" --argjson topics "$TOPICS" --argjson streams "$STREAMS" \
  --argjson count "$COUNT" --argjson size "$PAYLOAD_SIZE" --argjson rconns "$REDIS_CONNS" --argjson quick "$QUICK" \
  '{stamp: $stamp, nproc: $nproc, cpu: $cpu, loadavg_at_start: $load, redis: $redis, ssehub_rev: $rev,
    ssehub_dirty: $dirty, runs: $runs, masters: ($masters | split(",") | map(tonumber)), topics: $topics,
    streams_per_topic: $streams, count: $count, payload_size: $size, redis_conns_per_master: $rconns,
    quick: ($quick == 1)}' >"$OUT_DIR/machine.json"
log "results in ${OUT_DIR#"$ROOT"/}: $RUNS run(s) of masters $MASTERS, $TOPICS topics x $STREAMS streams, $COUNT events"
t0=$(date +%s)
for ((run = 1; run <= RUNS; run++)); do
  ((WAIT_QUIET)) && wait_quiet
  for n in ${MASTERS//,/ }; do
    run_one "$n" "$run"
  done
done
jq -n --argjson s $(($(date +%s) - t0)) --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  '{duration_s: $s, loadavg_at_end: $load}' >"$OUT_DIR/duration.json"
summarize
log "done in $(($(date +%s) - t0)) s: ${OUT_DIR#"$ROOT"/}"
