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
for f in "$OUT"/*/report.md; do echo; echo "### $f"; head -12 "$f"; done
