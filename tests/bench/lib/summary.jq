# Medians of the runs in records.jsonl (slurped), per system and scenario:
# jq -s --slurpfile m machine.json -f summary.jq records.jsonl > summary.json

def median:
  map(select(. != null)) | sort
  | if length == 0 then null
    elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def lgcpu: if .loadgen == null then null else ((.loadgen.cpu_user_s // 0) + (.loadgen.cpu_sys_s // 0)) end;
# a short name for why a step was not clean or kept up
def category:
  if test("^fell behind") then "fell behind"
  elif test("p99") then "p99 > 1 s"
  elif test("holes") then "holes"
  elif test("duplicates") then "duplicates"
  elif test("incomplete") then "incomplete delivery"
  elif test("connected") then "not all connected"
  elif test("worker crashed") then "nchan worker crashed"
  elif test("server died") then "server died"
  elif test("publish errors") then "publish errors"
  else . end;
def ms(f): if f == null then null else f / 1000 end;
def cpu_medians:
  { loadgen_cpu_s: (map(lgcpu) | median),
    server_cpu_s: (map(.server_cpu_s) | median),
    redis_cpu_s: (map(.redis_cpu_s) | median),
    broker_cpu_s: (map(.broker_cpu_s) | median) };
# a storm variant (warm: "storm", cold: "storm-cold"), per system
def storms(scen):
  [.[] | select(.scenario == scen)] | group_by(.system) | map(
    { system: .[0].system, variant: (.[0].variant // "warm"), connections: .[0].connections, topics: .[0].topics,
      behind_per_topic: .[0].behind_per_topic, runs: length, ok_runs: (map(select(.ok)) | length),
      caught_up: (map(.loadgen.caught_up) | median),
      catchup_ms: (map(.loadgen.catchup_ms) | median),
      catchup_ms_runs: map(.loadgen.catchup_ms),
      holes: (map(.loadgen.holes // 0) | add),
      duplicates: (map(.loadgen.duplicates // 0) | add),
      redis_reads: (map(.redis_reads) | median),
      redis_cmds_total: (map(.redis_cmds_total) | median),
      redis_cmds_last: (last | .redis_cmds),
      restart_ready_ms: (map(.restart_ready_ms) | median),
      restart_ms: (map(.restart_ms) | median),
      startup_cmds_last: (last | .startup_cmds),
      reasons: (map(.reason // "" | select(. != "")) | unique) } + cpu_medians);

($m[0].params.ladder // [] | max // 0) as $top
| map(select(.failed_to_run | not)) as $r
| {
  idle: ([$r[] | select(.scenario == "idle")] | group_by([.system, .topics]) | map(
    { system: .[0].system, topics: .[0].topics, connections: .[0].connections, runs: length,
      ok_runs: (map(select(.ok)) | length),
      connected: (map(.loadgen.connected) | median),
      bytes_per_conn: (map(.bytes_per_conn) | median),
      bytes_per_conn_runs: map(.bytes_per_conn),
      rss_before_kb: (map(.rss_before_kb) | median),
      rss_held_kb: (map(.rss_held_kb) | median) } + cpu_medians)),

  # per HTTP/2 shape; figures are medians over the runs that held every
  # stream (over all runs when none did)
  idle_h2: ([$r[] | select(.scenario == "idle-h2")] | group_by([.system, .connections, .streams_per_conn]) | map(
    (if any(.ok) then map(select(.ok)) else . end) as $use
    | { system: .[0].system, connections: .[0].connections, streams_per_conn: .[0].streams_per_conn,
        streams: .[0].streams, runs: length, ok_runs: (map(select(.ok)) | length),
        streams_open: ($use | map(.streams_open) | median),
        bytes_per_stream: (if any(.ok) then ($use | map(.bytes_per_stream) | median) else null end),
        bytes_per_stream_runs: map(.bytes_per_stream),
        rss_before_kb: ($use | map(.rss_before_kb) | median),
        rss_held_kb: ($use | map(.rss_held_kb) | median),
        reasons: (map(.reason // "" | select(. != "")) | unique) } + ($use | cpu_medians))),

  ladders: ([$r[] | select(.scenario == "fanout" or .scenario == "topics")]
    | group_by([.system, .scenario, .subscribers, .topics]) | map(
      . as $g
      | ($g | map(.run) | unique) as $runs
      | { system: .[0].system, scenario: .[0].scenario, subscribers: .[0].subscribers, topics: .[0].topics,
          runs: ($runs | length),
          # per run: the best clean step (0 when none was clean)
          max_ok_per_run: [ $runs[] as $n
            | ([$g[] | select(.run == $n and .ok) | .loadgen.rate] | max // 0) ],
          max_ok_target_per_run: [ $runs[] as $n
            | ([$g[] | select(.run == $n and .ok) | .target_deliveries_per_s] | max // 0) ],
          steps: ($g | group_by(.target_deliveries_per_s) | map(
            { target: .[0].target_deliveries_per_s, publish_rate: .[0].publish_rate,
              runs: length, ok_runs: (map(select(.ok)) | length),
              kept_up_runs: (map(select(.ok and .kept_up)) | length),
              delivered_per_s: (map(.loadgen.rate) | median),
              p50_ms: (map(ms(.loadgen.latency_us.p50)) | median),
              p90_ms: (map(ms(.loadgen.latency_us.p90)) | median),
              p99_ms: (map(ms(.loadgen.latency_us.p99)) | median),
              p999_ms: (map(ms(.loadgen.latency_us.p999)) | median),
              max_ms: (map(ms(.loadgen.latency_us.max)) | median),
              holes: (map(.loadgen.holes // 0) | add),
              duplicates: (map(.loadgen.duplicates // 0) | add),
              publisher_rate: (map(.publisher.rate) | median),
              reasons: (map(.reason // "" | split("; ")[] | select(. != "") | category)
                        | group_by(.) | map("\(.[0]) (\(length)×)")),
              reasons_detail: (map(.reason | select(. != null and . != "")) | unique) } + cpu_medians)) }
      | .max_ok_delivered_per_s = (.max_ok_per_run | median)
      | .max_ok_target = (.max_ok_target_per_run | median)
      # the top of the ladder was clean: the real limit is higher
      | .ladder_top_clean = (.max_ok_target != null and .max_ok_target >= $top))),

  storm: ($r | storms("storm")),
  storm_cold: ($r | storms("storm-cold")),

  ingest: ([$r[] | select(.scenario == "ingest")] | group_by(.system) | map(
    { system: .[0].system, method: .[0].method, count: .[0].count, runs: length,
      ok_runs: (map(select(.ok)) | length),
      stored_per_s: (map(.stored_per_s) | median),
      redis_benchmark_fcall_per_s: (map(.redis_benchmark_fcall_per_s) | median),
      redis_benchmark_fenced_per_s: (map(.redis_benchmark_fenced_per_s // null) | median),
      redis_benchmark_publish_per_s: (map(.redis_benchmark_publish_per_s) | median),
      ratio_to_fcall: (map(.ratio_to_fcall) | median),
      ratio_to_fenced: (map(.ratio_to_fenced // null) | median),
      reasons: (map(.reason // "" | select(. != "")) | unique) } + cpu_medians))
}
