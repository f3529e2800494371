#!/usr/bin/env bash
# The same-wall-clock comparison of docs/results.md: every recipe trains for the same minutes on this
# machine, then `cifar-gan evaluate` scores its final checkpoint with the built-in judge.
#
#   CIFAR10_DIR=... experiments/same-wall-clock.sh OUT [MINUTES] [ROWS...]
#
# Per-class rows train cat and automobile side by side, one thread each (both cores busy, the same
# conditions for every row). The conditional row trains one class-conditional model (the modern preset)
# for CONDITIONAL_MINUTES against the original recipe's ten per-class models sharing the same total time
# (CONDITIONAL_MINUTES/10 each), side by side. `evaluate` scores each run's default checkpoint: `best` for
# runs that measured FID during training (the modern preset, select_best), else `final`.
# Results: OUT/<row>/<class>/ (runs) and OUT/<row>/<class>.json (metrics); summarize.py makes the tables.
set -euo pipefail
OUT=${1:?usage: same-wall-clock.sh OUT [MINUTES] [ROWS...]}
MINUTES=${2:-8}
shift $(( $# >= 2 ? 2 : 1 ))
CONDITIONAL_MINUTES=${CONDITIONAL_MINUTES:-16}
SEED=${SEED:-0}   # the runs' seed (weights, data order, latents); evaluation always samples with seed 0
BIN=${BIN:-$OUT/bin/cifar-gan}
mkdir -p "$OUT"
if [ ! -x "$BIN" ]; then mkdir -p "$(dirname "$BIN")"; cp "$(dirname "$0")/../.build/release/cifar-gan" "$BIN"; fi

declare -A FLAGS=(
  [original]="--preset original"
  [non_saturating]="--loss non_saturating"
  [hinge]="--loss hinge"
  [spectral_norm]="--spectral-norm on"
  [ema]="--ema-decay 0.999"
  [diff_augment]="--diff-augment color,translation,cutout"
  [select_best]="--eval-every 1"
  [sngan]="--preset sngan"
  [modern]="--preset modern"
)
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(original non_saturating hinge spectral_norm ema diff_augment sngan modern conditional select_best)

evaluate() {   # run folder, output json, [class]
  "$BIN" evaluate --run "$1" ${3:+--class "$3"} --json > "$2.tmp" && mv "$2.tmp" "$2"
}

for row in "${ROWS[@]}"; do
  dir=$OUT/$row
  if [ "$row" = conditional ]; then
    per_class=$(python3 -c "print($CONDITIONAL_MINUTES / 10)")
    echo "$(date -u +%T) conditional (modern preset) ${CONDITIONAL_MINUTES} min vs original ten models ${per_class} min each"
    CIFAR_GAN_THREADS=1 "$BIN" train --conditional --preset modern --seed "$SEED" --time-limit "$CONDITIONAL_MINUTES" --run "$dir/conditional" --quiet --no-download > "$dir.conditional.log" 2>&1 &
    CIFAR_GAN_THREADS=1 "$BIN" train --class all --preset original --seed "$SEED" --time-limit "$per_class" --run "$dir/original-all" --quiet --no-download > "$dir.original-all.log" 2>&1 &
    wait
    evaluate "$dir/conditional" "$dir/conditional.json"
    evaluate "$dir/original-all" "$dir/original-all.json"
    continue
  fi
  echo "$(date -u +%T) $row: ${FLAGS[$row]} for $MINUTES min"
  for cls in cat automobile; do
    CIFAR_GAN_THREADS=1 "$BIN" train --class $cls ${FLAGS[$row]} --seed "$SEED" --time-limit "$MINUTES" --run "$dir/$cls" --quiet --no-download > "$dir.$cls.log" 2>&1 &
  done
  wait
  for cls in cat automobile; do evaluate "$dir/$cls" "$dir/$cls.json"; done
done
echo "$(date -u +%T) done"
