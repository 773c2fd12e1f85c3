#!/usr/bin/env bash
# Train every fold of a cross-validation at once on one machine, then evaluate and make the ensemble.
#
#   benchmarks/gpu_cv.sh RECIPE DATA OUT [DEVICE] [extra flairseg cv options, e.g. --set model.features=32]
#
# One process per fold (they share the GPU, or the CPU cores with DEVICE=cpu), each resumable:
# rerunning the script continues unfinished folds. Logs go to OUT/fold-<k>.log; the final
# `flairseg cv` predicts every case out of fold and writes OUT/report and OUT/ensemble.json.
set -euo pipefail
recipe=$1 data=$2 out=$3 device=${4:-cuda}
shift $(( $# < 4 ? $# : 4 ))
folds=$(python -c "import json,sys; print(json.load(open(sys.argv[1])).get('folds', 5))" "$recipe")
mkdir -p "$out"
threads=$(( $(nproc) / folds > 0 ? $(nproc) / folds : 1 ))
start=$(date +%s)
for ((k = 0; k < folds; k++)); do
  flairseg cv --config "$recipe" --data "$data" -o "$out" --fold "$k" --device "$device" --threads "$threads" --quiet "$@" \
    > "$out/fold-$k.log" 2>&1 &
done
wait
echo "folds trained in $(( $(date +%s) - start )) s"
flairseg cv --config "$recipe" --data "$data" -o "$out" --device "$device" --quiet "$@"
