# Charts of BENCHMARKS.md, drawn by tests/bench/lib/report.sh:
#   gnuplot -e "datadir='DIR'; outdir='DIR'; series='ssehub-1000 nchan-1000 ...'; subtitle='...'" charts.gp
# Data files (written by report.sh from summary.json):
#   throughput.dat   subscribers, ssehub, nchan: delivered/s at zero loss
#   latency.dat      percentile label, ssehub ms, nchan ms (at the common load)
#   memory.dat       label, ssehub KB, nchan KB per idle connection
#   lat-SYSTEM-SUBS.dat  delivered/s, p99 ms, clean (1/0) per ladder step

if (!exists("datadir")) datadir = "."
if (!exists("outdir")) outdir = "."
if (!exists("series")) series = ""
if (!exists("subtitle")) subtitle = ""
if (!exists("has_throughput")) has_throughput = 1
if (!exists("has_latency")) has_latency = 1
if (!exists("has_memory")) has_memory = 1
if (!exists("loadlabel")) loadlabel = "1,000 subscribers x 100 msg/s"

set terminal pngcairo size 900,540 enhanced font "DejaVu Sans,11"
set datafile missing "NaN"
set key bmargin center horizontal
set grid ytics
set border 3
set tics nomirror
ssehub_color = "#1f77b4"
nchan_color = "#d62728"
color(s) = (strstrt(s, "ssehub") > 0 ? ssehub_color : nchan_color)

# ---- throughput vs subscribers ----
if (has_throughput) {
set output outdir."/throughput.png"
set title "Delivered events/s at zero loss, 1 topic\n{/*0.8 ".subtitle."}"
set xlabel "subscribers"
set ylabel "deliveries per second"
set format y "%.1s%c"
set logscale x
set xtics ("1k" 1000, "2k" 2000, "5k" 5000, "10k" 10000)
set xrange [700:14000]
set yrange [0:*]
plot datadir."/throughput.dat" using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc rgb ssehub_color title "ssehub", \
     ""                      using 1:3 with linespoints lw 2 pt 5 ps 1.3 lc rgb nchan_color title "nchan + Redis"
unset logscale x
unset xrange
unset xtics
set xtics
}

# ---- latency distribution at a common load ----
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
if (has_latency) {
set output outdir."/latency.png"
set title "Publish-to-receive latency at ".loadlabel."\n{/*0.8 ".subtitle."}"
set xlabel ""
set ylabel "milliseconds (log scale)"
set format y "%g"
set logscale y
set yrange [*:*]
plot datadir."/latency.dat" using 2:xtic(1) lc rgb ssehub_color title "ssehub", \
     ""                    using 3 lc rgb nchan_color title "nchan + Redis"
unset logscale y
}

# ---- memory per idle connection ----
if (has_memory) {
set output outdir."/memory.png"
set title "Server RSS per idle SSE connection (HTTP/1.1)\n{/*0.8 ".subtitle."}"
set xlabel ""
set ylabel "KB per connection"
set yrange [0:*]
plot datadir."/memory.dat" using 2:xtic(1) lc rgb ssehub_color title "ssehub", \
     ""                   using 3 lc rgb nchan_color title "nchan + Redis", \
     ""                   using ($0 - 0.15):($2):(sprintf("%.2f", $2)) with labels offset 0,0.8 notitle, \
     ""                   using ($0 + 0.15):($3):(sprintf("%.2f", $3)) with labels offset 0,0.8 notitle
}

# ---- p99 latency as the load rises ----
if (strlen(series) > 0) {
  set output outdir."/latency-vs-load.png"
  set style data linespoints
  set title "p99 latency vs delivered events/s, 1 topic (filled: clean and kept up in every run)\n{/*0.8 ".subtitle."}"
  set xlabel "delivered events per second"
  set ylabel "p99 latency, ms (log scale)"
  set logscale xy
  set format x "%.0s%c"
  set format y "%g"
  set xrange [*:*]
  set yrange [*:*]
  set key inside top left reverse Left maxrows 3 width -2
  subsof(s) = s[strstrt(s, "-") + 1:]
  dtof(s) = (subsof(s) eq "1000" ? 1 : (subsof(s) eq "5000" || subsof(s) eq "2000") ? 2 : 3)
  plot for [s in series] datadir."/lat-".s.".dat" using 1:2 with lines lw 2 dt dtof(s) lc rgb color(s) \
         title sprintf("%s, %gk subscribers", s[1:strstrt(s, "-") - 1], (subsof(s) + 0) / 1000.0), \
       for [s in series] datadir."/lat-".s.".dat" using 1:($3 > 0 ? $2 : 1/0) with points pt 7 ps 1.2 lc rgb color(s) notitle, \
       for [s in series] datadir."/lat-".s.".dat" using 1:($3 > 0 ? 1/0 : $2) with points pt 6 ps 1.5 lc rgb color(s) notitle
}
