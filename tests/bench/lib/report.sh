#!/usr/bin/env bash
# Turns one results directory of run-bench.sh into summary.json, the charts
# (tests/bench/plot/*.png) and BENCHMARKS.md at the repo root.
#   tests/bench/lib/report.sh tests/bench/results/latest
# Hand-written notes between the notes markers of BENCHMARKS.md are kept.
set -euo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=$(cd "$LIB/.." && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
DIR=$(cd "${1:?usage: report.sh RESULTS_DIR}" && pwd)
OUT_MD=${BENCHMARKS_MD:-$ROOT/BENCHMARKS.md}
PLOT_OUT=${PLOT_OUT:-$BENCH_DIR/plot}

[[ -s $DIR/records.jsonl && -s $DIR/machine.json ]] || { echo "report.sh: no records in $DIR" >&2; exit 1; }
jq -s --slurpfile m "$DIR/machine.json" -f "$LIB/summary.jq" "$DIR/records.jsonl" >"$DIR/summary.json"

# ---- chart data --------------------------------------------------------------
data="$DIR/plot-data"
rm -rf "$data"
mkdir -p "$data" "$PLOT_OUT"
jq -r '
  def v: if . == null then "NaN" else tostring end;
  .ladders | map(select(.scenario == "fanout")) as $f
  | ($f | map(.subscribers) | unique)[] as $n
  | [$n, ($f | map(select(.subscribers == $n and .system == "ssehub")) | first | .max_ok_delivered_per_s | v),
         ($f | map(select(.subscribers == $n and .system == "nchan")) | first | .max_ok_delivered_per_s | v)] | join(" ")' \
  "$DIR/summary.json" >"$data/throughput.dat"
jq -r '
  def v: if . == null then "NaN" else tostring end;
  (.ladders | map(select(.scenario == "fanout" and .subscribers == 1000))
   | map({key: .system, value: (.steps | map(select(.target == 100000)) | first)}) | from_entries) as $c
  | ["p50", "p90", "p99", "p999"][] as $p
  | ["\"" + ($p | sub("p999"; "p99.9")) + "\"", ($c.ssehub["\($p)_ms"] | v), ($c.nchan["\($p)_ms"] | v)] | join(" ")' \
  "$DIR/summary.json" >"$data/latency.dat"
jq -r '
  def v: if . == null then "NaN" else (. / 1024 | tostring) end;
  .idle as $i | ($i | map(.topics) | unique)[] as $k
  | ["\"" + (if $k == 1 then "1 topic" else "\($k) topics (1 per connection)" end) + "\"",
     ($i | map(select(.topics == $k and .system == "ssehub")) | first | .bytes_per_conn | v),
     ($i | map(select(.topics == $k and .system == "nchan")) | first | .bytes_per_conn | v)] | join(" ")' \
  "$DIR/summary.json" >"$data/memory.dat"
series=""
while read -r sys subs; do
  [[ -n $sys ]] || continue
  jq -r --arg s "$sys" --argjson n "$subs" '
    .ladders[] | select(.scenario == "fanout" and .system == $s and .subscribers == $n) | .steps[]
    | select(.delivered_per_s != null and .p99_ms != null and .delivered_per_s > 0)
    | "\(.delivered_per_s) \(.p99_ms) \(if .kept_up_runs == .runs then 1 else 0 end)"' \
    "$DIR/summary.json" >"$data/lat-$sys-$subs.dat"
  [[ -s $data/lat-$sys-$subs.dat ]] && series+="$sys-$subs "
done < <(jq -r '.ladders[] | select(.scenario == "fanout") | "\(.system) \(.subscribers)"' "$DIR/summary.json")

# has DATAFILE: the file has a number besides its first column (else gnuplot
# stops on a chart without points).
has() { awk '{ for (i = 2; i <= NF; i++) if ($i != "NaN" && $i ~ /^[0-9.eE+-]+$/) f = 1 } END { exit !f }' "$1" 2>/dev/null; }
flags=""
for c in throughput latency memory; do
  if has "$data/$c.dat"; then flags+="has_$c=1; "; else flags+="has_$c=0; "; fi
done
rm -f "$PLOT_OUT"/{throughput,latency,memory,latency-vs-load}.png
subtitle=$(jq -r '"\(.nproc) cores, \(.cpu | gsub("\\s+"; " ")), \(.runs) run(s)\(if .quick then ", quick" else "" end), \(.stamp)"' "$DIR/machine.json")
if command -v gnuplot >/dev/null 2>&1; then
  gnuplot -e "datadir='$data'; outdir='$PLOT_OUT'; series='${series% }'; subtitle='$subtitle'; $flags" \
    "$BENCH_DIR/plot/charts.gp" 2>"$data/gnuplot.log" ||
    { cat "$data/gnuplot.log" >&2; echo "report.sh: gnuplot failed" >&2; }
else
  echo "report.sh: gnuplot not found; no charts" >&2
fi

# ---- BENCHMARKS.md -------------------------------------------------------------
# One exact command per scenario and system, from commands.log.
cmds=$(
  for sys in ssehub nchan; do
    for pat in "redis-server" "ssehub-broker" "ssehub-node" "nginx -p" "--mode idle" "h2load" "--mode fanout" \
      "--channel-template|--http-template" "--mode storm" "redis-benchmark -p [0-9]+ -n [0-9]+ -P 64 -q FCALL" \
      "-q FCALL ssehub_publish 2" "redis-benchmark -p [0-9]+ -n [0-9]+ -P 64 -q PUBLISH"; do
      line=$(grep -E -m1 -- "^$sys: .*($pat)" "$DIR/commands.log" 2>/dev/null || true)
      [[ -n $line ]] || continue
      key=${pat%%|*}
      key=${key//\[0-9\]+/N}
      jq -n --arg k "$sys: $key" --arg v "${line#*: }" '{($k): $v}'
    done
  done | jq -s 'add // {}'
)
notes=""
if [[ -f $OUT_MD ]]; then
  notes=$(awk '/<!-- notes:end/ { f = 0 } f { print } /<!-- notes:begin/ { f = 1 }' "$OUT_MD")
fi
[[ -n $notes ]] || notes="
(Findings and analysis go here: where a target is missed, by how much and why, with the profile that shows where the time goes.)
"
# where the charts are, relative to the Markdown file
imgdir=$(realpath -m --relative-to="$(dirname "$OUT_MD")" "$PLOT_OUT")
resdir=$(realpath -m --relative-to="$(dirname "$OUT_MD")" "$BENCH_DIR/results/$(jq -r .stamp "$DIR/machine.json")")
latestdir=$(realpath -m --relative-to="$(dirname "$OUT_MD")" "$BENCH_DIR/results/latest")
charts=$(cd "$PLOT_OUT" && for f in throughput latency memory latency-vs-load; do if [[ -f $f.png ]]; then echo "$f"; fi; done | jq -R . | jq -s .)
# shellcheck disable=SC2016 # a jq variable, not a shell one
jq -r --slurpfile m "$DIR/machine.json" --argjson cmds "$cmds" --arg imgdir "$imgdir" --argjson charts "$charts" --arg resdir "$resdir" --arg latestdir "$latestdir" --arg notes "$notes" \
  --argjson duration "$(jq '.duration_s // 0' "$DIR/duration.json" 2>/dev/null || echo 0)" \
  -f <(printf '%s\n' '$m[0] as $machine |'; cat "$LIB/report.jq") "$DIR/summary.json" >"$OUT_MD.tmp"
mv "$OUT_MD.tmp" "$OUT_MD"
echo "report.sh: wrote ${OUT_MD#"$ROOT"/} and $(jq length <<<"$charts") chart(s) in ${PLOT_OUT#"$ROOT"/}" >&2
