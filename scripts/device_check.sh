#!/usr/bin/env bash
# Device check for a GPU machine: tests that touch device code, the benchmarks at GPU sizes with
# roofline annotation, a short table last; full JSON in $OUT (default runs/device_check).
#
#   WHEELS_DIR=/path/to/wheels bash scripts/device_check.sh        # GPU machine, < 8 min
#   bash scripts/device_check.sh --cpu                              # CPU sizes, anywhere
#
# The machine brings JAX (with CUDA), flax, optax, diffrax and orbax; the rest comes as wheels in
# $WHEELS_DIR (made by scripts/fetch_wheels.sh on a networked machine), installed without network
# and without touching the installed jax/jaxlib/flax/optax/numpy. Set PYTHON to pick the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-runs/device_check}"
export OUT
mkdir -p "$OUT"

if [ -n "${WHEELS_DIR:-}" ]; then
  # Pin what the machine already has, so a wheel's dependency cannot swap the CUDA build of jax.
  "$PY" -m pip freeze 2>/dev/null | grep -iE '^(jax|jaxlib|jax-cuda[0-9a-z_-]*|flax|optax|numpy|diffrax|orbax-checkpoint)==' \
    > "$OUT/constraints.txt" || true
  timeout 180 "$PY" -m pip install -q --no-index --find-links "$WHEELS_DIR" -c "$OUT/constraints.txt" \
    $("$PY" scripts/device_check.py --packages) \
    && echo "[wheels] installed from $WHEELS_DIR" \
    || echo "[wheels] install failed; continuing with what is installed"
fi

timeout "${DEVICE_CHECK_TIMEOUT:-470}" "$PY" scripts/device_check.py --out="$OUT" "$@"
