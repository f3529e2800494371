#!/usr/bin/env bash
# The quality-versus-time study of docs/results.md (issue 13): candidate recipes, each one class-conditional
# model trained for MINUTES (120), two side by side with one thread each; every run keeps a checkpoint per
# epoch, and `quality_vs_time.py evaluate` then scores the checkpoints nearest to 15, 30, 60 and 120 minutes.
#
#   CIFAR10_DIR=... experiments/quality-vs-time.sh OUT [MINUTES] [CANDIDATES...]
#   python3 experiments/quality_vs_time.py evaluate OUT --count 2000       # resumable; appends OUT/results.jsonl
#   python3 experiments/quality_vs_time.py summarize OUT --svg docs/results/quality-vs-time.svg
#
# Candidates run in pairs in the order given (a lone last one runs with one thread too, for the same
# conditions). A run that exists is resumed (`--resume`), so a stopped study continues where it was.
# CANDIDATE@CLASS trains the recipe in the original per-class mode (`--class CLASS`, run CANDIDATE-CLASS-sSEED)
# instead of one conditional model: the study's per-class rows.
set -euo pipefail
OUT=${1:?usage: quality-vs-time.sh OUT [MINUTES] [CANDIDATES...]}
MINUTES=${2:-120}
shift $(( $# >= 2 ? 2 : 1 ))
SEED=${SEED:-0}
BIN=${BIN:-$OUT/bin/cifar-gan}
mkdir -p "$OUT"
if [ ! -x "$BIN" ]; then
  mkdir -p "$(dirname "$BIN")"
  cp "$(dirname "$0")/../.build/release/cifar-gan" "$BIN"
  cp -r "$(dirname "$0")/../.build/release/cifar-gan_CIFARGAN.resources" "$(dirname "$BIN")/"
fi

declare -A FLAGS=(
  [cnn-transposed]="--preset cnn"                                         # SNGAN standard CNN (the preset: transposed convolutions in G)
  [cnn-nearest]="--preset cnn --upsampling nearest"                       # the same with nearest upsampling and 3×3 convolutions in G
  [cnn-lecam]="--preset cnn --lecam 0.3"
  [cnn-ada]="--preset cnn --ada-target 0.6"
  [cnn-decay]="--preset cnn --epochs 16 --lr-decay-start 0.5"             # a schedule tied to the budget (~16 epochs in 2 h)
  [cnn-decay45]="--preset cnn --epochs 5 --lr-decay-start 0.5"            # the same schedule for 45 minutes (~5 epochs)
  [cnn-dsteps2]="--preset cnn --d-steps 2"                                 # two D steps per G step (SNGAN uses 5 at 10× our budget)
  [modern]="--preset modern"                                           # the previous preset (original models + DiffAugment)
)
CANDIDATES=("$@")
[ ${#CANDIDATES[@]} -gt 0 ] || CANDIDATES=(cnn-nearest cnn-transposed)   # session 6's pair; next: cnn-lecam cnn-ada, cnn-decay modern

train() {   # candidate[@class]
  local recipe=${1%@*} target=--conditional run=$OUT/$1-s$SEED
  if [[ $1 == *@* ]]; then target="--class ${1#*@}"; run=$OUT/$recipe-${1#*@}-s$SEED; fi
  [ -n "${FLAGS[$recipe]+x}" ] || { echo "unknown candidate '$recipe' (known: ${!FLAGS[*]})" >&2; return 1; }
  if [ -f "$run/config.json" ]; then
    CIFAR_GAN_THREADS=1 "$BIN" train --resume "$run" --time-limit "$MINUTES" --quiet --no-download >> "$run.log" 2>&1
  else
    # shellcheck disable=SC2086
    CIFAR_GAN_THREADS=1 "$BIN" train $target ${FLAGS[$recipe]} --checkpoint-every 1 --keep-checkpoints 1000 --seed "$SEED" \
      --time-limit "$MINUTES" --run "$run" --quiet --no-download > "$run.log" 2>&1
  fi
}

for ((i = 0; i < ${#CANDIDATES[@]}; i += 2)); do
  echo "$(date -u +%T) ${CANDIDATES[*]:i:2}: $MINUTES minutes each"
  for c in "${CANDIDATES[@]:i:2}"; do train "$c" & done
  wait
done
echo "$(date -u +%T) done; evaluate with experiments/quality_vs_time.py evaluate $OUT"
