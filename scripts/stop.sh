#!/usr/bin/env bash
# Stops what scripts/run.sh started, and only that: the processes whose pid
# files are in .run/ (the load balancer, nodes and brokers first, then the
# Redis run.sh started, never a Redis that was already running). Nodes get
# SIGINT (they end their streams within about a second instead of draining
# over drain_seconds), the others SIGTERM; SIGKILL for whatever still runs
# after 10 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$ROOT/.run
GRACE=10

say() { printf 'stop.sh: %s\n' "$*"; }

# True while the process lives (a zombie does not count).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null || echo Z)
  [[ $state != Z ]]
}

# Prints the pid in .run/$1.pid when that process is alive and its command
# line names $2 (a pid reused by another program does not count).
running_pid() {
  local file="$RUN/$1.pid" pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

stopped=0

# Stops a group of name:program[:signal] entries together: the signal
# (default TERM) to each, wait up to GRACE seconds for all, SIGKILL the
# rest; removes their pid files.
stop_group() {
  local entry name prog sig pid pids=() names=()
  for entry in "$@"; do
    IFS=: read -r name prog sig <<<"$entry"
    if pid=$(running_pid "$name" "$prog"); then
      say "stopping $name (pid $pid)"
      kill "-${sig:-TERM}" "$pid" 2>/dev/null || true
      pids+=("$pid") names+=("$name")
      stopped=$((stopped + 1))
    elif [[ -f $RUN/$name.pid ]]; then
      say "$name is not running (removing a stale pid file)"
      rm -f "$RUN/$name.pid"
    fi
  done
  ((${#pids[@]})) || return 0
  local polls=$((GRACE * 5)) i left
  while :; do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || break
    ((polls-- > 0)) || break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if alive "${pids[i]}"; then
      say "${names[i]} (pid ${pids[i]}) still running after ${GRACE} s: SIGKILL"
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
    rm -f "$RUN/${names[i]}.pid"
  done
}

# node and broker: the single-node layout of an earlier run.sh.
stop_group lb:haproxy \
  node1:ssehub-node:INT node2:ssehub-node:INT node3:ssehub-node:INT node:ssehub-node:INT \
  broker1:ssehub-broker broker2:ssehub-broker broker:ssehub-broker
stop_group redis:redis-server
rm -f "$RUN/haproxy.sock"

if ((stopped)); then
  say "stopped"
else
  say "nothing to stop"
fi
