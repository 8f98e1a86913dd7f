#!/usr/bin/env bash
# Run by ssehub-loadgen (--between) in the reconnect storm while every client
# is away: publish the events the clients will miss, wait until the system has
# stored them, then snapshot Redis' command counters so that the reads the
# reconnects cause can be counted from here.
#   storm-between.sh REDIS_PORT XADDS_TO_WAIT_FOR SNAPSHOT_FILE PUB_OUT -- PUBLISHER...
# XADDS_TO_WAIT_FOR: for ssehub, Redis' XADD count (INFO commandstats) that
# means everything is stored (0 = do not wait: nchan's HTTP publish answers
# once stored).
set -uo pipefail
port=$1 want=$2 snapshot=$3 pub_out=$4
shift 4
[[ ${1:-} == -- ]] && shift

calls() {
  redis-cli -p "$port" INFO commandstats 2>/dev/null | tr -d '\r' |
    awk -F'[:,=]' -v c="cmdstat_$1" '$1 == c { print $3; f = 1 } END { if (!f) print 0 }'
}

timeout -k 5 60 "$@" >"$pub_out" 2>&1 || echo "storm-between: publisher exited with $?" >&2
if ((want > 0)); then
  for ((i = 0; i < 1500; i++)); do # at most ~30 s
    (($(calls xadd) >= want)) && break
    sleep 0.02
  done
fi
redis-cli -p "$port" INFO commandstats 2>/dev/null | tr -d '\r' |
  awk -F'[:,=]' '/^cmdstat_/ { sub(/^cmdstat_/, "", $1); printf "%s\"%s\":%s", (n++ ? "," : "{"), $1, $3 }
                 END { if (!n) printf "{"; print "}" }' >"$snapshot"
exit 0
