# SPDX-License-Identifier: MIT
# plot.gp - throughput against threads, from hmbench throughput --dat files.
# gnuplot -e "out='x.png'; d1='e1.dat'; d2='e64.dat'; d3='w1.dat'; d4='w64.dat'; \
#   nproc=2; when='...'" plot.gp
# Each .dat: a header line (threads, then one name per implementation), then
# one line per thread count with M requests/s.
set terminal pngcairo size 1400,1000 font "sans,10"
set output out
set multiplot layout 2,2 title sprintf("hotmod and its baselines: throughput against threads (nproc = %d; %s)", nproc, when)
set key outside right top vertical autotitle columnhead font ",9"
set xlabel "threads"
set ylabel "M requests/s (log)"
set logscale y
set grid ytics mytics xtics
set xtics 1
set xrange [0.5:2 * nproc + 0.5]
n = 9
set title "empty handler, 1 module"
plot for [i=2:n] d1 using 1:i with linespoints lw 2 pt i
set title "empty handler, 64 modules"
plot for [i=2:n] d2 using 1:i with linespoints lw 2 pt i
set title "about 1 us handler, 1 module (direct+atomic, hotmod-getput, hotmod-stat not run)"
unset logscale y
set ylabel "M requests/s"
set yrange [0:*]
plot for [i=2:n] d3 using 1:i with linespoints lw 2 pt i
set title "about 1 us handler, 64 modules"
plot for [i=2:n] d4 using 1:i with linespoints lw 2 pt i
unset multiplot
