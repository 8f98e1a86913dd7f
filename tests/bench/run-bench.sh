#!/usr/bin/env bash
# ssehub vs nchan, side by side in one run on this machine (loopback only).
#
# Starts each system with its own fresh redis-server -- ssehub (redis +
# ssehub-broker + ssehub-node --threads 2) and nchan (nginx with 2 workers +
# libnginx-mod-nchan, Redis storage) -- and runs every scenario of issue 3 for
# each, --runs times, interleaving the systems run by run:
#   idle        idle memory: server RSS per connection (1 topic, and 1 topic per connection)
#   idle-h2     idle memory per HTTP/2 stream: 10k h2c streams held by h2load
#               (100 connections x 100 streams, 500 x 20), 1 topic
#   fanout      1 topic x 1k/5k/10k subscribers at rising rates, up to saturation
#   topics      10k subscribers over 1,000 topics, publish round-robin, rising rates
#   storm       10k subscribers reconnect at once 100 events behind (Last-Event-ID)
#               to the server they left
#   storm-cold  the same, but the server is killed and restarted while they
#               are away (a node failure: it has nothing of theirs in memory)
#   ingest      broker PUBLISH -> stored/s vs redis-benchmark on the same Redis
# Raw JSON goes to tests/bench/results/<timestamp>/. A complete run (both
# systems, every scenario, not --quick) is copied to results/latest/ and
# lib/report.sh writes BENCHMARKS.md and the charts in tests/bench/plot/ from
# it; any other run gets its report inside its own results directory.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/systems.sh
. "$BENCH_DIR/lib/systems.sh"
# shellcheck source=lib/clients.sh
. "$BENCH_DIR/lib/clients.sh"

usage() {
  cat <<'EOF'
usage: tests/bench/run-bench.sh [options]
  --runs N            runs of every scenario per system (default 3; medians are reported)
  --quick             short smoke run: 1 run, fewer connections and rates (~5 min)
  --systems LIST      comma-separated, from ssehub,nchan (default both)
  --scenarios LIST    comma-separated, from idle,idle-h2,fanout,topics,storm,storm-cold,ingest
                      (default all)
  --build-dir DIR     where ssehub-node, ssehub-broker and tests/bench/ssehub-* are (default build/)
  --no-install        do not install missing Debian packages
  --no-build          do not (re)build
  --no-report         keep the raw results only (no BENCHMARKS.md, no charts)
  --report-only DIR   only regenerate BENCHMARKS.md and the charts from results DIR
  -h, --help          this help
EOF
}

RUNS=3
QUICK=0
SYSTEMS="ssehub,nchan"
ALL_SCENARIOS="idle,idle-h2,fanout,topics,storm,storm-cold,ingest"
SCENARIOS=$ALL_SCENARIOS
BUILD_DIR="$ROOT/build"
DO_INSTALL=1
DO_BUILD=1
DO_REPORT=1
REPORT_ONLY=""
runs_given=0
while (($#)); do
  case $1 in
  --runs) RUNS=${2:?}; runs_given=1; shift ;;
  --runs=*) RUNS=${1#*=}; runs_given=1 ;;
  --quick) QUICK=1 ;;
  --systems) SYSTEMS=${2:?}; shift ;;
  --systems=*) SYSTEMS=${1#*=} ;;
  --scenarios) SCENARIOS=${2:?}; shift ;;
  --scenarios=*) SCENARIOS=${1#*=} ;;
  --build-dir) BUILD_DIR=$(cd "${2:?}" && pwd); shift ;;
  --build-dir=*) BUILD_DIR=$(cd "${1#*=}" && pwd) ;;
  --no-install) DO_INSTALL=0 ;;
  --no-build) DO_BUILD=0 ;;
  --no-report) DO_REPORT=0 ;;
  --report-only) REPORT_ONLY=${2:?}; shift ;;
  --report-only=*) REPORT_ONLY=${1#*=} ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ $RUNS =~ ^[1-9][0-9]?$ ]] || die "--runs takes 1..99"
for scen in ${SCENARIOS//,/ }; do
  [[ ",$ALL_SCENARIOS," == *",$scen,"* ]] || die "unknown scenario $scen (known: $ALL_SCENARIOS)"
done

if [[ -n $REPORT_ONLY ]]; then
  exec "$BENCH_DIR/lib/report.sh" "$REPORT_ONLY"
fi

# ---- parameters ----------------------------------------------------------------
# Deliveries/s asked for at each step of a rising-rate ladder; a ladder stops
# at the first step that is not clean (saturation).
if ((QUICK)); then
  ((runs_given)) || RUNS=1
  IDLE_CONNS=2000
  FANOUT_SUBS="1000 2000"
  LADDER="100000 200000 400000 800000"
  STEP_SECONDS=2
  TOPICS_SUBS=2000
  TOPICS_TOPICS=200
  STORM_CONNS=2000
  INGEST_COUNT=50000
  NCHAN_INGEST_COUNT=5000
else
  IDLE_CONNS=10000
  FANOUT_SUBS="1000 5000 10000"
  LADDER="100000 200000 400000 800000 1600000 3200000 6400000"
  STEP_SECONDS=3
  TOPICS_SUBS=10000
  TOPICS_TOPICS=1000
  STORM_CONNS=10000
  INGEST_COUNT=200000
  NCHAN_INGEST_COUNT=20000
fi
SOURCES=50            # 127.0.0.2.. as client source addresses
LOADGEN_THREADS=${LOADGEN_THREADS:-2}  # epoll threads of the load generator
PAYLOAD_SIZE=64       # bytes of each event's data
MIN_PER_TOPIC=20      # events per topic at least, at low rates
DRAIN_SECONDS=5       # after the last publish, time for deliveries to finish
P99_LIMIT_US=1000000  # a step with p99 above 1 s is saturated
KEEP_UP=0.9           # a step publishing < 90% (delivering < 80%) of the asked rate ends the ladder
STORM_TOPICS=10       # the storm's clients are spread over this many topics
STORM_FROM=10         # events per topic every client has before the storm
STORM_BEHIND=100      # events per topic published while they are away
SCENARIO_LIMIT=600    # seconds one scenario (all its steps, one run) may take
H2_SHAPES="100x100 500x20"  # idle-h2: connections x streams per connection (10k streams)
H2_HOLD=15            # idle-h2: seconds h2load holds its streams (its -T/-N), then ends

# ---- dependencies and build -------------------------------------------------------

# pkg_installed PACKAGE: the Debian package is installed.
pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

install_deps() {
  local missing=() p policy=/usr/sbin/policy-rc.d own=0
  if [[ -x $ROOT/scripts/install-deps.sh ]]; then
    "$ROOT/scripts/install-deps.sh" >&2 || die "scripts/install-deps.sh failed"
  fi
  for p in redis-server redis-tools nginx libnginx-mod-nchan jq curl nghttp2-client iproute2; do
    pkg_installed "$p" || missing+=("$p")
  done
  command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); as root run: apt-get install -y ${missing[*]}"
  log "installing: ${missing[*]}"
  # Keep package scripts from starting a system nginx or redis during install.
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# ssehub run-bench: no service starts during install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  p=$?
  ((own)) && rm -f "$policy"
  ((p == 0)) || die "apt-get install failed for: ${missing[*]}"
}

build() {
  log "building into $BUILD_DIR"
  { cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    cmake --build "$BUILD_DIR" -j "$(nproc)"; } >"$WORK_DIR/build.log" 2>&1 ||
    { tail -n 30 "$WORK_DIR/build.log" >&2; die "build failed (log above)"; }
}

# ---- bookkeeping ------------------------------------------------------------------

bench_begin ssehub-bench "" system_stop

want() { [[ ",$2," == *",$1,"* ]]; }

LOADGEN="$BUILD_DIR/tests/bench/ssehub-loadgen"
BENCHPUB="$BUILD_DIR/tests/bench/ssehub-benchpub"

# ---- machine ----------------------------------------------------------------------

machine_json() {
  local cpu kernel redis nginx nchan gp rev dirty h2
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  kernel=$(uname -sr)
  redis=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
  nginx=$(nginx -v 2>&1 | sed 's#.*/##')
  nchan=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)
  gp=$(gnuplot --version 2>/dev/null)
  h2=$(h2load --version 2>/dev/null | head -n 1)
  rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
  jq -n --arg cpu "$cpu" --arg kernel "$kernel" --arg redis "$redis" --arg nginx "$nginx" \
    --arg nchan "$nchan" --arg gnuplot "$gp" --arg h2load "$h2" --arg rev "$rev" --argjson dirty "$dirty" \
    --argjson nproc "$(nproc)" --argjson mem_mb "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" \
    --argjson nofile "$(ulimit -n)" --arg stamp "$STAMP" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --argjson runs "$RUNS" --argjson quick "$QUICK" \
    --arg os "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")" \
    --argjson params "$(jq -n --argjson step "$STEP_SECONDS" --argjson from "$STORM_FROM" \
      --argjson behind "$STORM_BEHIND" --argjson stopics "$STORM_TOPICS" --argjson lt "$LOADGEN_THREADS" \
      --argjson sources "$SOURCES" --argjson size "$PAYLOAD_SIZE" --arg ladder "$LADDER" --arg subs "$FANOUT_SUBS" \
      --arg h2shapes "$H2_SHAPES" --argjson h2hold "$H2_HOLD" \
      '{step_seconds: $step, storm_from: $from, storm_behind: $behind, storm_topics: $stopics,
        loadgen_threads: $lt, sources: $sources, payload_size: $size,
        h2_shapes: ($h2shapes | split(" ") | map(split("x") | map(tonumber) | {connections: .[0], streams_per_connection: .[1]})),
        h2_hold_s: $h2hold,
        ladder: ($ladder | split(" ") | map(tonumber)), fanout_subscribers: ($subs | split(" ") | map(tonumber))}')" \
    '{stamp: $stamp, runs: $runs, quick: ($quick == 1), nproc: $nproc, cpu: $cpu, mem_mb: $mem_mb,
      kernel: $kernel, os: $os, open_files: $nofile, loadavg_at_start: $load, redis: $redis, nginx: $nginx,
      nchan_package: $nchan, gnuplot: $gnuplot, h2load: $h2load, ssehub_rev: $rev, ssehub_dirty: $dirty, params: $params}'
}

# ---- scenario pieces ----------------------------------------------------------------

# Counters sampled around a measurement: server, Redis and broker CPU.
cpu_mark() {
  MARK_SERVER=$(server_cpu)
  MARK_REDIS=$(cpu_ticks "$REDIS_PID")
  MARK_BROKER=$( [[ -n $BROKER_PID ]] && cpu_ticks "$BROKER_PID" || echo 0)
}
# cpu_delta_json: {"server_cpu_s", "redis_cpu_s", "broker_cpu_s"} since cpu_mark.
cpu_delta_json() {
  local s r b
  s=$(ticks_to_s $(( $(server_cpu) - MARK_SERVER )))
  r=$(ticks_to_s $(( $(cpu_ticks "$REDIS_PID") - MARK_REDIS )))
  b=0
  [[ -n $BROKER_PID ]] && b=$(ticks_to_s $(( $(cpu_ticks "$BROKER_PID") - MARK_BROKER )))
  printf '{"server_cpu_s":%s,"redis_cpu_s":%s,"broker_cpu_s":%s}' "$s" "$r" "$b"
}

# pub_cmd TOPICS RATE COUNT [SEQ_START]: the benchpub command line for this system.
pub_cmd() {
  PUB=("$BENCHPUB" "${PUB_ARGS[@]}" --topics "$1" --rate "$2" --count "$3" --size "$PAYLOAD_SIZE")
  [[ -n ${4:-} ]] && PUB+=(--seq-start "$4")
  return 0
}

# wait_stored COUNT LIMIT_S: ssehub only: wait until the broker made COUNT
# more FCALLs than at the last stored_mark (the publish is asynchronous).
stored_mark() { STORED0=$(redis_calls "$REDIS_PORT" fcall); }
wait_stored() {
  local want=$(( STORED0 + $1 )) limit=$2 i
  [[ $SYS_NAME == ssehub ]] || return 0
  for ((i = 0; i < limit * 50; i++)); do
    (( $(redis_calls "$REDIS_PORT" fcall) >= want )) && return 0
    sleep 0.02
  done
  return 1
}

# ---- 1. idle memory ----------------------------------------------------------------

scenario_idle() {
  local sys=$1 run=$2 topics conns=$IDLE_CONNS tag rss0 rss1 res i s connected
  for topics in 1 "$IDLE_CONNS"; do
    tag="$sys/idle-k$topics-r$run"
    system_start "$sys" || { record_failure "$sys" idle "$run" "system did not start"; return; }
    sleep 1
    rss0=$(server_rss)
    cpu_mark
    start_loadgen "$tag-loadgen" 300 --mode idle --url-template "$SUB_TEMPLATE" \
      --topics "$topics" --connections "$conns" --sources "$SOURCES" --hold 120
    loadgen_ready 90 || log "$tag: the load generator never reported ready"
    sleep 2
    # The largest of a few samples while the connections are held.
    rss1=0
    for i in 1 2 3 4; do
      s=$(server_rss)
      ((s > rss1)) && rss1=$s
      sleep 0.5
    done
    loadgen_finish 0
    res=$(last_json "$LG_OUT")
    connected=$(jq -r '.connected // 0' <<<"$res" 2>/dev/null)
    record "$(jq -n --arg sys "$sys" --argjson run "$run" --argjson topics "$topics" \
      --argjson conns "$conns" --argjson rss0 "$rss0" --argjson rss1 "$rss1" \
      --argjson lg "$res" --argjson cpu "$(cpu_delta_json)" --argjson connected "${connected:-0}" \
      '{system: $sys, scenario: "idle", run: $run, topics: $topics, connections: $conns,
        rss_before_kb: $rss0, rss_held_kb: $rss1,
        bytes_per_conn: (if $connected > 0 then (($rss1 - $rss0) * 1024 / $connected | round) else null end),
        ok: ($connected == $conns), loadgen: $lg} + $cpu')"
    log "$tag: ${connected:-0} connected, RSS $rss0 -> $rss1 KiB ($(( (rss1 - rss0) * 1024 / (connected > 0 ? connected : 1) )) B/conn)"
    system_stop
  done
}

# ---- 1b. idle memory per HTTP/2 stream ------------------------------------------------

# h2load_json FILE: the counts of h2load's final report as JSON (null when
# it printed none, e.g. killed before its -T ended it).
h2load_json() {
  awk '
    /^requests: / { gsub(/,/, ""); req = sprintf("\"total\":%d,\"started\":%d,\"done\":%d,\"succeeded\":%d,\"failed\":%d,\"errored\":%d,\"timeout\":%d", $2, $4, $6, $8, $10, $12, $14) }
    /^status codes: / { gsub(/,/, ""); st = sprintf("\"status_2xx\":%d,\"status_3xx\":%d,\"status_4xx\":%d,\"status_5xx\":%d", $3, $5, $7, $9) }
    /^traffic: / { n = split($0, p, /[()]/); tr = sprintf("\"bytes_total\":%d,\"bytes_headers\":%d,\"bytes_data\":%d", p[2], p[4], p[n - 1]) }
    /^Application protocol: / { proto = $3 }
    END { if (req != "" && st != "") print "{\"protocol\":\"" proto "\"," req "," st (tr != "" ? "," tr : "") "}"; else print "null" }' "$1" 2>/dev/null
}

# One HTTP/2 (h2c by prior knowledge) connection multiplexes streams; a
# browser page with several EventSources on one origin opens them all on one
# connection. h2load opens C connections with M streams each to one topic
# and, as SSE responses never end, holds them until its own -T/-N (H2_HOLD s)
# closes them and it prints its report. Memory is measured as in idle while
# they are held; the streams are counted three ways: the server's side of
# the established TCP connections (ss) before and after the RSS samples,
# the server's own count (nchan_stub_status; ssehub-node's /metrics), and
# h2load's report: every stream answered 2xx and was
# still open (ended by the timeout, none done) when the hold ended.
scenario_idle_h2() {
  local sys=$1 run=$2 shape conns per n tag rss0 rss1 s i est0 est1 held subs subs_min h2pid h2 line
  for shape in $H2_SHAPES; do
    conns=${shape%x*} per=${shape#*x}
    n=$((conns * per))
    tag="$sys/idle-h2-c$conns-m$per-r$run"
    system_start "$sys" || { record_failure "$sys" idle-h2 "$run" "system did not start"; return; }
    sleep 1
    rss0=$(server_rss)
    cpu_mark
    start_bg "$tag-h2load" $((H2_HOLD + 30)) h2load -c "$conns" -m "$per" -n "$n" -t 1 \
      -T "$H2_HOLD" -N "$H2_HOLD" -H 'Accept: text/event-stream' "$H2_URL"
    h2pid=$BG_PID
    # All connections up, with time to spare for the measurement before -T.
    est0=0
    for ((i = 0; i < (H2_HOLD - 6) * 10; i++)); do
      est0=$(tcp_established "$H2_PORT")
      ((est0 >= conns)) && break
      alive "$h2pid" || break
      sleep 0.1
    done
    sleep 2 # let the last streams' requests be handled
    # The largest of a few samples while the streams are held.
    rss1=0 subs_min=""
    for i in 1 2 3 4; do
      s=$(server_rss)
      ((s > rss1)) && rss1=$s
      subs=$(server_stream_count)
      [[ -n $subs ]] && { [[ -z $subs_min ]] || ((subs < subs_min)); } && subs_min=$subs
      sleep 0.5
    done
    est1=$(tcp_established "$H2_PORT")
    held=0
    alive "$h2pid" && held=1
    wait_pid "$h2pid" $((H2_HOLD + 15)) || { log "$tag: h2load did not end; killing it"; stop_pid "$h2pid" 2; }
    h2=$(h2load_json "$RAW/$tag-h2load.out")
    record "$(jq -n --arg sys "$sys" --argjson run "$run" --argjson conns "$conns" --argjson per "$per" \
      --argjson n "$n" --argjson est0 "$est0" --argjson est1 "$est1" --argjson held "$held" \
      --argjson subs "${subs_min:-null}" --argjson rss0 "$rss0" --argjson rss1 "$rss1" \
      --argjson h2 "$h2" --argjson cpu "$(cpu_delta_json)" --arg err "$(head -c 300 "$RAW/$tag-h2load.err" 2>/dev/null)" '
      # streams known to be open through the whole measurement
      (if $h2 == null or $est1 < $conns or $held == 0 then 0
       else ([$h2.status_2xx, $h2.timeout, (if $subs != null then $subs else $n end)] | min) end) as $open
      | {system: $sys, scenario: "idle-h2", run: $run, connections: $conns, streams_per_conn: $per,
         streams: $n, streams_open: $open, established_before: $est0, established_after: $est1,
         server_streams: $subs, rss_before_kb: $rss0, rss_held_kb: $rss1,
         bytes_per_stream: (if $open > 0 then (($rss1 - $rss0) * 1024 / $open | round) else null end),
         h2load: $h2,
         reason: (if $h2 == null then "no h2load report" + (if $err != "" then ": \($err)" else "" end)
                  elif $h2.protocol != "h2c" then "h2load spoke \($h2.protocol), not h2c"
                  elif $h2.status_2xx < $n then "\($h2.status_2xx) of \($n) streams answered 2xx (3xx \($h2.status_3xx), 4xx \($h2.status_4xx), 5xx \($h2.status_5xx); \($h2.errored - $h2.timeout) reset or lost)"
                  elif $est0 < $conns then "only \($est0) of \($conns) connections established"
                  elif $held == 0 or $est1 < $conns then "the streams ended before the measurement did (\($est1) connections left)"
                  elif $h2.timeout < $n then "only \($h2.timeout) of \($n) streams still open at the end of the hold (\($h2.done) ended early)"
                  elif $subs != null and $subs < $n then "the server counted \($subs) of \($n) subscribers"
                  else "" end)}
      | .ok = (.reason == "") | . + $cpu')"
    line=$(tail -n 1 "$RECORDS")
    log "$tag: $(jq -r '"\(.streams_open) of \(.streams) streams open (\(.established_after) connections\(if .server_streams != null then ", server: \(.server_streams)" else "" end)), RSS \(.rss_before_kb) -> \(.rss_held_kb) KiB (\(.bytes_per_stream // "?") B/stream)\(if .reason != "" then "; \(.reason)" else "" end)"' <<<"$line")"
    system_stop
  done
}

# record_failure SYS SCENARIO RUN REASON: a scenario that could not run at all.
record_failure() {
  record "$(jq -n --arg sys "$1" --arg scen "$2" --argjson run "$3" --arg reason "$4" \
    '{system: $sys, scenario: $scen, run: $run, ok: false, reason: $reason, failed_to_run: true}')"
  log "$1/$2 run $3: $4"
}

# ---- 2./3. rising-rate ladders --------------------------------------------------------

# ladder_step SYS RUN SCENARIO SUBS TOPICS TARGET: one rate; sets STEP_OK.
ladder_step() {
  local sys=$1 run=$2 scen=$3 subs=$4 topics=$5 target=$6
  local rate per_topic count tag res pub reason crashes0 pub_s warn0 warn1 newwarn
  rate=$(( (target * topics + subs - 1) / subs ))        # msg/s over all topics
  per_topic=$(( rate * STEP_SECONDS / topics ))
  ((per_topic < MIN_PER_TOPIC)) && per_topic=$MIN_PER_TOPIC
  count=$(( per_topic * topics ))
  pub_s=$(( (count + rate - 1) / rate ))                 # publishing time at the asked rate
  tag="$sys/$scen-s$subs-k$topics-d$target-r$run"
  STEP_OK=0
  crashes0=$(nchan_worker_crashes)
  warn0=$(broker_warnings)
  start_loadgen "$tag-loadgen" $((pub_s + 300)) --mode fanout --url-template "$SUB_TEMPLATE" \
    --topics "$topics" --connections "$subs" --sources "$SOURCES" \
    --expect "$per_topic" --duration $((pub_s + 200))
  loadgen_ready 90 || log "$tag: the load generator never reported ready"
  sleep 1 # let the last subscriptions reach Redis
  cpu_mark
  pub_cmd "$topics" "$rate" "$count"
  run_fg "$tag-pub" $((pub_s * 3 + 30)) "${PUB[@]}"
  # Deliveries may lag the publisher: the loadgen ends when every client has
  # all events; what has not arrived DRAIN_SECONDS after the last publish is late.
  loadgen_finish "$DRAIN_SECONDS"
  res=$(last_json "$LG_OUT")
  pub=$(last_json "$RAW/$tag-pub.out")
  reason=$(jq -r --argjson pub "$pub" --argjson subs "$subs" --argjson exp "$per_topic" \
    --argjson p99max "$P99_LIMIT_US" '
      if . == null then "no loadgen result"
      elif (.connected // 0) < $subs then "only \(.connected // 0) of \($subs) connected"
      elif (.holes // 0) > 0 then "\(.holes) holes"
      elif (.duplicates // 0) > 0 then "\(.duplicates) duplicates"
      elif (.events // 0) < $subs * $exp then "incomplete: \(.events // 0) of \($subs * $exp) events"
      elif (.latency_us.p99 // 0) > $p99max then "p99 \(.latency_us.p99 / 1000 | floor) ms > 1 s"
      elif $pub == null then "no publisher result"
      elif ($pub.errors // 0) > 0 then "\($pub.errors) publish errors"
      else "" end' <<<"$res")
  server_alive || reason="${reason:+$reason; }server died"
  (($(nchan_worker_crashes) > crashes0)) && reason="${reason:+$reason; }nchan worker crashed"
  # What the broker logged during this step (message drops, lost lease).
  warn1=$(broker_warnings)
  newwarn=$(jq -r --argjson a "$warn0" '[to_entries[] | select(.value > ($a[.key] // 0)) | .key] | join(", ")' <<<"$warn1")
  [[ -n $reason && -n $newwarn ]] && reason="$reason; broker: $newwarn"
  [[ -z $reason ]] && STEP_OK=1
  # A clean step that delivered well below the asked rate (the publish path
  # or the fan-out fell behind) ends the ladder too: asking more gives no more.
  # (The delivered rate is events / (first to last arrival), which latency
  # spread lowers a little, hence the looser bound on it.)
  STEP_KEPT_UP=$(jq -r --argjson t "$target" --argjson r "$rate" --argjson f "$KEEP_UP" --argjson pub "$pub" \
    'if . != null and $pub != null and ($pub.rate // 0) >= $r * $f and (.rate // 0) >= $t * ($f - 0.1) then 1 else 0 end' <<<"$res")
  if ((STEP_OK && !STEP_KEPT_UP)); then
    reason=$(jq -r --argjson t "$target" --argjson r "$rate" --argjson pub "$pub" \
      '"fell behind: published \(($pub.rate // 0) / $r * 100 | floor)%, delivered \((.rate // 0) / $t * 100 | floor)% of the asked rate"' <<<"$res")
  fi
  record "$(jq -n --arg sys "$sys" --arg scen "$scen" --argjson run "$run" --argjson subs "$subs" \
    --argjson topics "$topics" --argjson target "$target" --argjson rate "$rate" --argjson count "$count" \
    --argjson per_topic "$per_topic" --argjson ok "$STEP_OK" --arg reason "$reason" --argjson kept "$STEP_KEPT_UP" \
    --argjson lg "$res" --argjson pub "$pub" --argjson cpu "$(cpu_delta_json)" --arg newwarn "$newwarn" \
    '{system: $sys, scenario: $scen, run: $run, subscribers: $subs, topics: $topics, broker_new_warnings: $newwarn,
      target_deliveries_per_s: $target, publish_rate: $rate, count: $count, expect_per_conn: $per_topic,
      ok: ($ok == 1), kept_up: ($kept == 1), reason: $reason, loadgen: $lg, publisher: $pub} + $cpu')"
  log "$tag: $( ((STEP_OK)) && echo clean || echo "SATURATED")$( ((STEP_KEPT_UP)) || echo ", behind")${reason:+ ($reason)}; $(jq -r \
    'if . == null then "-" else "\(.rate // 0 | floor)/s delivered, p50 \((.latency_us.p50 // 0) / 1000) ms, p99 \((.latency_us.p99 // 0) / 1000) ms, loadgen cpu \(((.cpu_user_s // 0) + (.cpu_sys_s // 0)) * 100 | round / 100) s" end' <<<"$res")"
}

# ladder SYS RUN SCENARIO SUBS TOPICS: rising rates on a fresh system.
ladder() {
  local sys=$1 run=$2 scen=$3 subs=$4 topics=$5 target deadline=$((SECONDS + SCENARIO_LIMIT))
  system_start "$sys" || { record_failure "$sys" "$scen" "$run" "system did not start"; return; }
  for target in $LADDER; do
    if ((SECONDS > deadline)); then
      log "$sys/$scen: scenario time limit reached"
      break
    fi
    ladder_step "$sys" "$run" "$scen" "$subs" "$topics" "$target"
    ((STEP_OK && STEP_KEPT_UP)) || break
  done
  system_stop
}

scenario_fanout() {
  local s
  for s in $FANOUT_SUBS; do ladder "$1" "$2" fanout "$s" 1; done
}

scenario_topics() { ladder "$1" "$2" topics "$TOPICS_SUBS" "$TOPICS_TOPICS"; }

# ---- 4. reconnect storm ----------------------------------------------------------------

# storm SYS RUN VARIANT: STORM_CONNS clients over STORM_TOPICS topics read to
# event STORM_FROM, all close, STORM_BEHIND more events per topic are
# published and stored, and all reconnect at once with Last-Event-ID.
#   warm: they come back to the same server, seconds later (loadgen --between)
#   cold: while they are away the server is SIGKILLed and a new one started
#         on the same port (Redis and ssehub's broker stay): a node failure,
#         the clients reconnect to a server that has never seen their topics.
scenario_storm() { storm "$1" "$2" warm; }
scenario_storm_cold() { storm "$1" "$2" cold; }

storm() {
  local sys=$1 run=$2 variant=$3 n=$STORM_CONNS k=$STORM_TOPICS scen=storm tag res before after stored
  local want=0 between_cmd lg_between=() restart_ms=null ready_ms=null t0 reason=""
  [[ $variant == cold ]] && scen=storm-cold
  tag="$sys/$scen-r$run"
  system_start "$sys" || { record_failure "$sys" "$scen" "$run" "system did not start"; return; }
  before="$RAW/$tag-redis-before.json"
  after="$RAW/$tag-redis-after.json"
  stored="$RAW/$tag-redis-stored.json"
  # While every client is away, lib/storm-between.sh publishes STORM_BEHIND
  # more events per topic, waits until they are stored and snapshots Redis'
  # command counters: the warm storm's reads are counted from there. The
  # cold one restarts the server after that and counts from the restart on
  # (once Redis has seen the new server's start-up commands).
  pub_cmd "$k" 0 $((STORM_BEHIND * k)) $((STORM_FROM + 1))
  [[ $sys == ssehub ]] && want=$(( $(redis_calls "$REDIS_PORT" xadd) + (STORM_FROM + STORM_BEHIND) * k ))
  local between=("$BENCH_DIR/lib/storm-between.sh" "$REDIS_PORT" "$want")
  if [[ $variant == warm ]]; then
    between_cmd="$(printf '%q ' "${between[@]}" "$before" "$RAW/$tag-between-pub.out" -- "${PUB[@]}")"
    lg_between=(--between "$between_cmd")
  else
    between+=("$stored" "$RAW/$tag-between-pub.out" -- "${PUB[@]}")
  fi
  # cold: without --between the load generator waits for "go" on stdin
  start_loadgen "$tag-loadgen" 400 --mode storm --url-template "$SUB_TEMPLATE" \
    --topics "$k" --connections "$n" --sources "$SOURCES" \
    --storm-from "$STORM_FROM" --storm-to $((STORM_FROM + STORM_BEHIND)) "${lg_between[@]}" --duration 60
  loadgen_ready 90 || log "$tag: the load generator never reported ready"
  sleep 1
  cpu_mark
  pub_cmd "$k" 0 $((STORM_FROM * k)) 1
  run_fg "$tag-pub" 60 "${PUB[@]}"
  if [[ $variant == cold ]]; then
    if wait_for_line "$LG_OUT" '"event" *: *"closed"' 90 "$LG_PID"; then
      run_fg "$tag-between" 120 "${between[@]}"
      t0=$(now_ms)
      if server_restart; then
        restart_ms=$(( $(now_ms) - t0 ))
        ready_ms=$RESTART_READY_MS
      else
        reason="the server did not come back after the restart"
      fi
      redis_cmdstats "$REDIS_PORT" >"$before"
      cpu_mark # the new server's CPU, from here
    else
      reason="the load generator never closed its streams"
    fi
    echo go >&7 2>/dev/null
  fi
  loadgen_finish 200
  redis_cmdstats "$REDIS_PORT" >"$after"
  res=$(last_json "$LG_OUT")
  [[ -s $before ]] || echo '{}' >"$before"
  [[ -s $stored ]] || echo '{}' >"$stored"
  record "$(jq -n --arg sys "$sys" --arg scen "$scen" --arg variant "$variant" --argjson run "$run" --argjson n "$n" --argjson k "$k" \
    --argjson from "$STORM_FROM" --argjson behind "$STORM_BEHIND" --argjson lg "$res" --arg reason "$reason" \
    --argjson restart_ms "$restart_ms" --argjson ready_ms "$ready_ms" --slurpfile s "$stored" \
    --slurpfile b "$before" --slurpfile a "$after" --argjson cpu "$(cpu_delta_json)" '
    def delta($x; $y): [$y | keys[] | select(. != "info") | {key: ., value: ($y[.] - ($x[.] // 0))} | select(.value > 0)] | from_entries;
    ($b[0] // {}) as $b | ($a[0] // {}) as $a | ($s[0] // {}) as $s
    | delta($b; $a) as $d
    | {system: $sys, scenario: $scen, variant: $variant, run: $run, connections: $n, topics: $k,
       storm_from: $from, behind_per_topic: $behind, loadgen: $lg,
       redis_cmds: $d,
       redis_cmds_total: ([$d[]] | add // 0),
       # Redis counts the commands a script or function runs as well as the
       # call itself: count the top-level reads. ssehub reads through
       # FCALL_RO (plain XRANGE/XREVRANGE/XREAD only if it made none);
       # nchan through its Lua scripts (EVALSHA).
       redis_reads: (def n(re): [$d | to_entries[] | select(.key | test(re)) | .value] | add // 0;
                     if $sys == "ssehub"
                     then (n("^(fcall_ro|evalsha_ro|eval_ro)$") as $f | if $f > 0 then $f else n("^(xrange|xrevrange|xread)$") end)
                     else n("^(evalsha|eval)$") end),
       reason: $reason,
       ok: ($reason == "" and $lg != null and ($lg.caught_up // 0) >= $n and ($lg.holes // 0) == 0 and ($lg.duplicates // 0) == 0)}
    # cold: how long the restart took (until the new server was ready, and
    # until Redis had settled too) and the start-up commands of the new server
    # (from the stored snapshot to the one after the restart; not counted)
    + (if $variant == "cold" then {restart_ready_ms: $ready_ms, restart_ms: $restart_ms,
                                   startup_cmds: (if $s == {} then null else delta($s; $b) end)} else {} end)
    + $cpu')"
  log "$tag: $(jq -r 'if . == null then "no result" else "\(.caught_up // 0) caught up in \(.catchup_ms // "?") ms, holes \(.holes // "?"), dups \(.duplicates // "?")" end' <<<"$res"); Redis: $(tail -n 1 "$RECORDS" | jq -r '"\(.redis_reads) reads, \(.redis_cmds_total) commands\(if .restart_ms != null then "; restart: ready after \(.restart_ready_ms) ms, settled after \(.restart_ms) ms, start-up commands (not counted): \(.startup_cmds | tojson)" else "" end)\(if .reason != "" then "; \(.reason)" else "" end)"')"
  system_stop
}

# ---- 5. broker ingest ----------------------------------------------------------------------

# rb_rps OUTFILE: requests/s from redis-benchmark -q output.
rb_rps() { tr '\r' '\n' <"$1" | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1; }

scenario_ingest() {
  local sys=$1 run=$2 tag="$1/ingest-r$2" t0 t1 c0 c1 deadline res rbf rbp stored data n
  system_start "$sys" || { record_failure "$sys" ingest "$run" "system did not start"; return; }
  if [[ $sys == ssehub ]]; then
    # Stored = XADDs counted by Redis (one per event, inside ssehub_publish;
    # the broker's other FCALLs, lease renewals, add none).
    n=$INGEST_COUNT
    c0=$(redis_calls "$REDIS_PORT" xadd)
    pub_cmd 100 0 "$n"
    cpu_mark
    t0=$(now_ms)
    start_bg "$tag-pub" 120 "${PUB[@]}"
    t1=""
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
      c1=$(redis_calls "$REDIS_PORT" xadd)
      if ((c1 - c0 >= n)); then t1=$(now_ms); break; fi
      sleep 0.02
    done
    wait_pid "$BG_PID" 120 || stop_pid "$BG_PID"
    stored=null
    [[ -n $t1 ]] && stored=$(awk -v n="$n" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1000 / (ms > 0 ? ms : 1) }')
    c1=$(( $(redis_calls "$REDIS_PORT" xadd) - c0 ))
    data=$(printf '%0*d' "$PAYLOAD_SIZE" 0)
    run_fg "$tag-rb-fcall" 120 redis-benchmark -p "$REDIS_PORT" -n "$n" -P 64 -q \
      FCALL ssehub_publish 1 'ssehub:{bench}:s' "$data"
    # the broker's own form: 2 keys and the lease fence (without the ingest
    # position `in`, which must rise from call to call and redis-benchmark
    # cannot make rise; it costs one more hash field written per call)
    run_fg "$tag-rb-fenced" 120 redis-benchmark -p "$REDIS_PORT" -n "$n" -P 64 -q \
      FCALL ssehub_publish 2 'ssehub:{bench2}:s' 'ssehub:{bench2}:m' "$data" fence 1
    run_fg "$tag-rb-publish" 120 redis-benchmark -p "$REDIS_PORT" -n "$n" -P 64 -q \
      PUBLISH bench:ch "$data"
    rbf=$(rb_rps "$RAW/$tag-rb-fcall.out")
    rbff=$(rb_rps "$RAW/$tag-rb-fenced.out")
    rbp=$(rb_rps "$RAW/$tag-rb-publish.out")
    record "$(jq -n --arg sys "$sys" --argjson run "$run" --argjson n "$n" --argjson stored "$stored" \
      --argjson rbf "${rbf:-null}" --argjson rbff "${rbff:-null}" --argjson rbp "${rbp:-null}" --argjson pub "$(last_json "$RAW/$tag-pub.out")" \
      --argjson ms "$(( ${t1:-$(now_ms)} - t0 ))" --argjson cpu "$(cpu_delta_json)" --argjson c1 "$c1" \
      --argjson warn "$(broker_warnings)" '
      {system: $sys, scenario: "ingest", run: $run, count: $n, method: "PUBLISH sse:t%d via ssehub-broker",
       stored_per_s: $stored, elapsed_ms: $ms, stored: $c1, publisher: $pub, broker_warnings: $warn,
       reason: (if $stored == null then "only \($c1) of \($n) stored within 60 s" + (if ($warn | length) > 0 then " (broker: \($warn | keys | join(", ")))" else "" end) else "" end),
       redis_benchmark_fcall_per_s: $rbf, redis_benchmark_fenced_per_s: $rbff, redis_benchmark_publish_per_s: $rbp,
       ratio_to_fcall: (if $stored != null and $rbf != null and $rbf > 0 then $stored / $rbf else null end),
       ratio_to_fenced: (if $stored != null and $rbff != null and $rbff > 0 then $stored / $rbff else null end),
       ok: ($stored != null)} + $cpu')"
    log "$tag: $( [[ $stored == null ]] && echo "only $c1 of $n stored within 60 s $(broker_warnings)" || echo "stored $stored/s"); redis-benchmark FCALL ${rbf:-?}/s, fenced FCALL ${rbff:-?}/s, PUBLISH ${rbp:-?}/s"
  else
    # nchan has no broker: its publish path is an HTTP POST that answers once
    # the message is stored in Redis; the publisher's own rate is the figure.
    n=$NCHAN_INGEST_COUNT
    pub_cmd 100 0 "$n"
    cpu_mark
    run_fg "$tag-pub" 120 "${PUB[@]}"
    res=$(last_json "$RAW/$tag-pub.out")
    record "$(jq -n --arg sys "$sys" --argjson run "$run" --argjson n "$n" --argjson pub "$res" \
      --argjson cpu "$(cpu_delta_json)" '
      {system: $sys, scenario: "ingest", run: $run, count: $n, method: "HTTP POST /pub/t%d",
       stored_per_s: (if $pub == null or ($pub.errors // 0) > 0 then null else $pub.rate end),
       publisher: $pub, ok: ($pub != null and ($pub.errors // 0) == 0)} + $cpu')"
    log "$tag: $(jq -r 'if . == null then "no result" else "\(.sent) sent, \(.errors) errors, \(.rate | floor)/s" end' <<<"$res")"
  fi
  system_stop
}

# ---- main ------------------------------------------------------------------------------------

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
((DO_INSTALL)) && install_deps
((DO_BUILD)) && build
for b in "$BUILD_DIR/ssehub-node" "$BUILD_DIR/ssehub-broker" "$LOADGEN" "$BENCHPUB"; do
  [[ -x $b ]] || die "$b is missing (build first, or pass --build-dir)"
done
for t in redis-server redis-cli redis-benchmark nginx jq curl timeout; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (run without --no-install)"
done
if want idle-h2 "$SCENARIOS"; then
  for t in h2load ss; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found, needed by idle-h2 (run without --no-install)"
  done
fi
[[ -f $NCHAN_MODULE ]] || die "nchan module $NCHAN_MODULE not found (libnginx-mod-nchan)"

if awk '{ exit !($1 > 1.0) }' /proc/loadavg; then
  log "warning: load average $(cut -d' ' -f1-3 /proc/loadavg) before the start: other work on this machine will distort the figures"
fi
mkdir -p "$RAW/ssehub" "$RAW/nchan"
: >"$RECORDS"
machine_json >"$OUT_DIR/machine.json"
log "results in ${OUT_DIR#"$ROOT"/}; $RUNS run(s)$( ((QUICK)) && echo ', quick')"
started=$SECONDS
for ((run = 1; run <= RUNS; run++)); do
  for sys in ssehub nchan; do
    want "$sys" "$SYSTEMS" || continue
    for scen in ${ALL_SCENARIOS//,/ }; do
      want "$scen" "$SCENARIOS" || continue
      log "== run $run/$RUNS: $sys $scen"
      "scenario_${scen//-/_}" "$sys" "$run"
    done
  done
done
jq -n --argjson s $((SECONDS - started)) --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  '{duration_s: $s, loadavg_at_end: $load}' >"$OUT_DIR/duration.json"
log "measurements took $((SECONDS - started)) s"

# Only a complete run (both systems, every scenario, not --quick) becomes
# results/latest, BENCHMARKS.md and tests/bench/plot/; any other run gets its
# report and charts inside its own results directory.
if ((!QUICK)) && [[ $SYSTEMS == "ssehub,nchan" && $SCENARIOS == "$ALL_SCENARIOS" ]]; then
  rm -rf "$BENCH_DIR/results/latest"
  cp -r "$OUT_DIR" "$BENCH_DIR/results/latest"
  if ((DO_REPORT)); then
    "$BENCH_DIR/lib/report.sh" "$BENCH_DIR/results/latest" || die "report failed"
  fi
  log "done: ${OUT_DIR#"$ROOT"/} (also results/latest, BENCHMARKS.md, tests/bench/plot/)"
else
  if ((DO_REPORT)); then
    BENCHMARKS_MD="$OUT_DIR/BENCHMARKS.md" PLOT_OUT="$OUT_DIR/plot" "$BENCH_DIR/lib/report.sh" "$OUT_DIR" ||
      die "report failed"
  fi
  log "done: ${OUT_DIR#"$ROOT"/} (report in BENCHMARKS.md there; a partial or quick run leaves results/latest and the root BENCHMARKS.md alone)"
fi
