#!/bin/bash
# Data-parallel throughput: one process (all cores) against mpirun -np 2 (one thread each), same recipe and global
# batch, alternating, two rounds. One JSON line per measurement in $OUT.
#   bench/dp-bench.sh                                                  # float32, original cnn sngan, 20 s each
#   PRESETS="original cnn" PRECISIONS="fp32 bf16" BENCH_SECONDS=10 bench/dp-bench.sh
B=${B:-.build/release/cifar-gan}
OUT=${OUT:-dp-bench.jsonl}
PRESETS=${PRESETS:-original cnn sngan}
PRECISIONS=${PRECISIONS:-fp32}
BENCH_SECONDS=${BENCH_SECONDS:-20}
for round in 1 2; do
  for preset in $PRESETS; do
    for precision in $PRECISIONS; do
      for mode in one two; do
        flags="bench --preset $preset --batch-size 64 --seconds $BENCH_SECONDS --precision $precision --json"
        if [ $mode = one ]; then
          r=$($B $flags | tail -1)
        else
          r=$(mpirun --oversubscribe --allow-run-as-root -np 2 $B $flags | grep '^{' | tail -1)
        fi
        echo "{\"round\": $round, \"preset\": \"$preset\", \"precision\": \"$precision\", \"mode\": \"$mode\", \"result\": $r}" >> "$OUT"
      done
    done
  done
done
