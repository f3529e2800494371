#!/bin/bash
# Data-parallel throughput: one process x 2 threads against mpirun -np 2 (1 thread each), same recipe and batch,
# alternating, two rounds. Output: one JSON line per measurement.
B=${B:-.build/release/cifar-gan}
OUT=${OUT:-dp-bench.jsonl}
for round in 1 2; do
  for preset in original cnn sngan; do
    for mode in one two; do
      if [ $mode = one ]; then
        r=$($B bench --preset $preset --batch-size 64 --seconds 20 --json | tail -1)
      else
        r=$(mpirun --oversubscribe --allow-run-as-root -np 2 $B bench --preset $preset --batch-size 64 --seconds 20 --json | grep '^{' | tail -1)
      fi
      echo "{\"round\": $round, \"preset\": \"$preset\", \"mode\": \"$mode\", \"result\": $r}" >> $OUT
    done
  done
done
