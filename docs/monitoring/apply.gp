set terminal pngcairo size 900,300 font 'sans,9'
set output 'apply.png'
set title "Dataplane programming time per node, median (felix_int_dataplane_apply_time_seconds)"
set xlabel 'seconds into the run'
set ylabel "ms"
set key outside right
set grid
set yrange [0:*]
set termoption noenhanced
set arrow from 21, graph 0 to 21, graph 1 nohead dt 2 lc rgb 'gray40'
set label 1 "workloads added" at 21, graph 0.95 offset 0.5,0 font 'sans,8' tc rgb 'gray30'
set arrow from 38, graph 0 to 38, graph 1 nohead dt 2 lc rgb 'gray40'
set label 2 "policy applied" at 38, graph 0.87 offset 0.5,0 font 'sans,8' tc rgb 'gray30'
set arrow from 74, graph 0 to 74, graph 1 nohead dt 2 lc rgb 'gray40'
set label 3 "host2 and host3 killed" at 74, graph 0.79 offset 0.5,0 font 'sans,8' tc rgb 'gray30'
set arrow from 99, graph 0 to 99, graph 1 nohead dt 2 lc rgb 'gray40'
set label 4 "host2 and host3 back" at 99, graph 0.71 offset 0.5,0 font 'sans,8' tc rgb 'gray30'
plot 'apply.tsv' index 0 using 1:2 with steps lw 2 title "host1", 'apply.tsv' index 1 using 1:2 with steps lw 2 title "host2", 'apply.tsv' index 2 using 1:2 with steps lw 2 title "host3"
