#!/bin/bash
# ab.sh N reps : medians of /s and cpu us/chunk for js/baseline with reader
cd /work/main
for i in $(seq 1 $2); do for m in js baseline; do node .scratch/w.mjs $m $1 r; done; done > /tmp/ab.out 2>&1
python3 - <<'P'
import statistics as st, collections
d=collections.defaultdict(lambda:([],[]))
for l in open('/tmp/ab.out'):
    p=l.split()
    if len(p)<7: print(l.strip()); continue
    d[p[0]][0].append(int(p[2])); d[p[0]][1].append(float(p[6]))
for k,(r,c) in d.items(): print(k, "rate med", st.median(r), r, "cpu med", st.median(c))
P
