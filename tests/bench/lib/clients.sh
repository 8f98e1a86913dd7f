# shellcheck shell=bash
# The frame of a bench run, for run-bench.sh and cluster-scale.sh: its
# directories and exit trap, and running its clients bounded (each command
# noted in commands.log, its output in raw/). Sourced, never run. The
# sourcing script sets BENCH_DIR, ROOT, LOADGEN, LOADGEN_THREADS and SYS_NAME
# (the prefix of its lines in commands.log), and calls bench_begin.

# bench_begin TMP_NAME RESULTS_PREFIX STOP_FN: sets WORK_DIR (a scratch
# directory under /tmp), STAMP (UTC), OUT_DIR (results/<prefix><stamp>), RAW
# and RECORDS, and traps EXIT to run STOP_FN, stop every tracked process and
# remove WORK_DIR; INT and TERM exit with 130.
bench_begin() {
  WORK_DIR=$(mktemp -d "/tmp/$1.XXXXXX") || die "mktemp failed"
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  OUT_DIR="$BENCH_DIR/results/$2$STAMP"
  RAW="$OUT_DIR/raw"
  RECORDS="$OUT_DIR/records.jsonl"
  BENCH_STOP_FN=$3
  trap bench_cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$BENCH_STOP_FN" 2>/dev/null
  stop_tracked
  rm -rf "$WORK_DIR"
  exit "$rc"
}

# cmdlog ARGS...: note an exact command in commands.log.
cmdlog() {
  local a line="$SYS_NAME:"
  for a in "$@"; do
    a=${a//"$ROOT"\//}
    a=${a//"$WORK_DIR"/\$TMPDIR}
    if [[ $a =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then line+=" $a"; else line+=" '${a//\'/\'\\\'\'}'"; fi
  done
  echo "$line" >>"$OUT_DIR/commands.log"
}

# run_fg NAME TIMEOUT CMD...: run bounded; stdout/stderr to raw/NAME.{out,err}.
run_fg() {
  local name=$1 t=$2
  shift 2
  cmdlog "$@"
  # In the background + wait, so that a signal to the script is handled at
  # once (bash defers traps while a foreground command runs).
  timeout -k 5 "$t" "$@" >"$RAW/$name.out" 2>"$RAW/$name.err" &
  local pid=$!
  track "$pid"
  wait "$pid"
}

# start_bg NAME TIMEOUT CMD...: the same in the background; sets BG_PID.
start_bg() {
  local name=$1 t=$2
  shift 2
  cmdlog "$@"
  timeout -k 5 "$t" "$@" >"$RAW/$name.out" 2>"$RAW/$name.err" &
  BG_PID=$!
  track "$BG_PID"
}

# start_loadgen NAME TIMEOUT ARGS...: ssehub-loadgen in the background, its
# stdin on a FIFO (fd 7) so the bench can say "stop"; sets LG_PID.
start_loadgen() {
  local name=$1 t=$2 fifo="$WORK_DIR/loadgen.fifo"
  shift 2
  exec 7>&-
  rm -f "$fifo"
  mkfifo "$fifo"
  exec 7<>"$fifo"
  cmdlog "$LOADGEN" --threads "$LOADGEN_THREADS" "$@"
  timeout -k 5 "$t" "$LOADGEN" --threads "$LOADGEN_THREADS" "$@" <"$fifo" \
    >"$RAW/$name.out" 2>"$RAW/$name.err" &
  LG_PID=$!
  LG_OUT="$RAW/$name.out"
  track "$LG_PID"
}

# loadgen_ready: wait (bounded) for its {"event":"ready"} line.
loadgen_ready() { wait_for_line "$LG_OUT" '"event" *: *"ready"' "${1:-90}" "$LG_PID"; }

# loadgen_finish GRACE_S: let it end by itself within GRACE_S, else tell it to
# stop (it still prints its result), else kill it.
loadgen_finish() {
  if ! wait_pid "$LG_PID" "$1"; then
    echo stop >&7 2>/dev/null
    wait_pid "$LG_PID" 15 || { log "loadgen did not stop; killing it"; stop_pid "$LG_PID" 2; }
  fi
  exec 7>&-
  return 0
}

# record JSON: append one result object to records.jsonl.
record() { jq -c . <<<"$1" >>"$RECORDS" || log "warning: bad record: $1"; }
