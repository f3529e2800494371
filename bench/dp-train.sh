#!/bin/bash
# Real runs, one epoch of cat (5,000 images), one process x 2 threads vs mpirun -np 2: seconds of the epoch from metrics.jsonl.
export CIFAR10_DIR=${CIFAR10_DIR:?point CIFAR10_DIR at the CIFAR-10 binary files}
B=${B:-.build/release/cifar-gan}
R=${R:-runs/dp-train}; mkdir -p $R
for round in 1 2; do
 for preset in original cnn; do
  for mode in one two; do
   d=$R/$preset-$mode-$round; rm -rf $d
   if [ $mode = one ]; then $B train --preset $preset --class cat --epochs 1 --seed 0 --quiet --run $d > $d.log 2>&1
   else mpirun --oversubscribe --allow-run-as-root -np 2 $B train --preset $preset --class cat --epochs 1 --seed 0 --quiet --run $d > $d.log 2>&1; fi
   echo "$round $preset $mode $(python3 -c "import json; m=[json.loads(l) for l in open('$d/metrics.jsonl')][-1]; print(m['seconds'], m['images_per_sec'], m['loss_d'], m.get('fid'))")" >> $R.txt
  done
 done
done
