#!/usr/bin/env bash
# The result tables at GPU size, for a GPU machine: the :gpu variants of the 1D comparison (KdV and
# conservative KS: Uniform, online Breed and OGAS) and of the dimension sweep's largest point, 3 seeds
# each, scored like every table of RESULTS.md. Tables land in $OUT/<experiment>/report.md.
#
#   OUT=runs/gpu_results bash scripts/gpu_results.sh
#
# Not yet timed on a GPU: the :gpu sizes were chosen for about 8 minutes per comparison on one
# H200 from the benchmarks' throughput, and BENCHMARKS.md says what has been measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-runs/gpu_results}"
SEEDS="${SEEDS:-3}"
mkdir -p "$OUT"
run() {
  local start=$SECONDS
  echo "== $1"
  "$PY" scripts/quickstart.py --seeds="$SEEDS" "${@:2}"
  echo "   $1: $((SECONDS - start)) s" | tee -a "$OUT/times.txt"
}
run kdv --workdir "$OUT/kdv" --config_args=gpu --strategies=uniform,breed_online,ogas
run ks_conservative --workdir "$OUT/ks_cons" --config_args=ks_conservative,gpu --strategies=uniform,breed_online,ogas
run dimension_k128 --workdir "$OUT/dimension_k128" --config=configs/dimension_sweep.py --config_args=k128,gpu \
    --strategies=uniform,breed_online,ogas,sbal
# The authors' regime at their size: 10,000 simulations, 1.8 updates per simulation, the two-step
# objective and their presets, in 1D (configs/authors_1d.py:gpu) and on 2D Kolmogorov flow
# (online_2d's GPU size with 10,000 simulations and the two-step objective).
run authors_kdv --workdir "$OUT/authors_kdv" --config=configs/authors_1d.py --config_args=gpu \
    --strategies=uniform,breed_online,breed_generations,ogas
run authors_kolmogorov_2d --workdir "$OUT/authors_kolmogorov" --config=configs/online_2d.py --config_args=kolmogorov,gpu \
    --strategies=uniform,breed,ogas --set=online.num_steps=1250,online.train_steps_per_step=14,train.objective=two_step
for f in "$OUT"/*/report.md; do echo; echo "### $f"; head -12 "$f"; done
