# shellcheck shell=bash
# Helpers shared by run-bench.sh and cluster-scale.sh: logging, free ports, the
# processes the bench starts (and stops on exit), /proc sampling (RSS, CPU)
# and Redis command counters. Sourced, never run.

# ---- logging ---------------------------------------------------------------

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# now_ms prints the wall clock in milliseconds.
now_ms() { date +%s%3N; }

# ---- processes ---------------------------------------------------------------

# Every process the bench starts in the background, so the EXIT trap can
# stop them (by pid, never by name).
BENCH_PIDS=()
track() { BENCH_PIDS+=("$@"); }

# alive PID: true while PID exists and is not a zombie.
alive() {
  local st
  [[ -r /proc/$1/stat ]] || return 1
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [[ -n $st && $st != Z ]]
}

# children_of PID: the pids whose parent is PID (nginx workers).
children_of() {
  cat /proc/[0-9]*/stat 2>/dev/null |
    sed -n 's/^\([0-9]*\) (.*) [A-Za-z] \([0-9]*\) .*/\1 \2/p' |
    awk -v pp="$1" '$2 == pp { print $1 }'
}

# stop_tracked: stops every process track() noted (the EXIT trap's last step).
stop_tracked() {
  local p
  for p in "${BENCH_PIDS[@]}"; do stop_pid "$p" 2 2>/dev/null; done
  return 0
}

# stop_pid PID [GRACE_S]: SIGTERM, then SIGKILL after GRACE_S seconds.
stop_pid() {
  local pid=$1 grace=${2:-5} i
  [[ -n $pid ]] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

# wait_pid PID TIMEOUT_S: wait (bounded) for PID to end; 1 if it did not.
wait_pid() {
  local pid=$1 limit=$2 i
  for ((i = 0; i < limit * 10; i++)); do
    alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  return 1
}

# wait_for_line FILE REGEX TIMEOUT_S [PID]: poll FILE until a line matches;
# gives up early when PID (the writer) has ended.
wait_for_line() {
  local file=$1 re=$2 limit=$3 pid=${4:-} i
  for ((i = 0; i < limit * 10; i++)); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    if [[ -n $pid ]] && ! alive "$pid"; then
      grep -qE "$re" "$file" 2>/dev/null
      return
    fi
    sleep 0.1
  done
  return 1
}

# ---- ports -------------------------------------------------------------------

USED_PORTS=" "
# free_port prints a loopback TCP port nobody listens on (below the
# ephemeral range so load-generator sockets never take it).
free_port() {
  local i p
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "
      echo "$p"
      return 0
    fi
  done
  return 1
}

# ---- /proc sampling ----------------------------------------------------------

# rss_kb PID...: the sum of VmRSS over PIDs, in KiB.
rss_kb() {
  local pid sum=0 v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# cpu_ticks PID...: user + system CPU time of PIDs, in clock ticks.
cpu_ticks() {
  local pid sum=0 v
  for pid in "$@"; do
    v=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }')
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
# ticks_to_s TICKS: seconds with two decimals.
ticks_to_s() { awk -v t="$1" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }'; }

# ---- Redis -------------------------------------------------------------------

# redis_cmdstats PORT: INFO commandstats as a JSON object {command: calls}.
redis_cmdstats() {
  redis-cli -p "$1" INFO commandstats 2>/dev/null | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_/ { sub(/^cmdstat_/, "", $1); printf "%s\"%s\":%s", (n++ ? "," : "{"), $1, $3 }
                   END { if (!n) printf "{"; print "}" }'
}

# redis_calls PORT COMMAND: calls of one command so far (0 if never called).
redis_calls() {
  redis-cli -p "$1" INFO commandstats 2>/dev/null | tr -d '\r' |
    awk -F'[:,=]' -v c="cmdstat_$2" '$1 == c { print $3; found = 1 } END { if (!found) print 0 }'
}

# redis_wait_ping PORT PID: wait (at most 10 s) until the redis-server PID
# answers PING on PORT; 1 if it did not (or ended).
redis_wait_ping() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]] && return 0
    alive "$2" || break
    sleep 0.1
  done
  return 1
}

# redis_settle PORT: wait (at most 10 s) until Redis has counted no new
# command for 0.5 s, INFO (ours) and PING (keep-alive probes) aside: a
# server that just started has then sent its start-up commands.
redis_settle() {
  local i same=0 prev="" cur
  for ((i = 0; i < 100; i++)); do
    cur=$(redis-cli -p "$1" INFO commandstats 2>/dev/null | tr -d '\r' |
      awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_info" && $1 != "cmdstat_ping" { print $1, $3 }')
    if [[ -n $prev && $cur == "$prev" ]]; then
      ((++same >= 5)) && return 0
    else
      same=0
    fi
    prev=$cur
    sleep 0.1
  done
  return 1
}

# ---- sockets -----------------------------------------------------------------

# tcp_established PORT: established TCP connections whose local port is PORT
# (the server's side of its clients' connections).
tcp_established() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }

# ---- JSON --------------------------------------------------------------------

# last_json FILE: the last line of FILE that is a JSON object and not an
# {"event": ...} progress line (the load generator's and publisher's result).
last_json() {
  local line
  line=$(grep -E '^[[:space:]]*\{' "$1" 2>/dev/null | grep -v '"event"' | tail -n 1)
  if [[ -n $line ]] && jq -e . >/dev/null 2>&1 <<<"$line"; then
    echo "$line"
  else
    echo 'null'
  fi
}
