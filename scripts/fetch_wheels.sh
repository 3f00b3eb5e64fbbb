#!/usr/bin/env bash
# On a machine with network: download the wheels scripts/device_check.sh installs offline on a GPU
# machine that has JAX with CUDA, flax, optax, diffrax and orbax but not the rest.
#
#   PY_VERSION=3.11 JAX_VERSION=0.4.38 bash scripts/fetch_wheels.sh wheels/
#   rsync -a wheels/ gpu-machine:wheels/ && ssh gpu-machine 'cd qsal_jax && WHEELS_DIR=~/wheels bash scripts/device_check.sh'
#
# PY_VERSION and PLATFORMS (space-separated pip platform tags) must match the GPU machine
# (python -c 'import sys; print(sys.version)'; on ARM: PLATFORMS="manylinux_2_28_aarch64 manylinux2014_aarch64"). JAX_VERSION, if set, pins jax so that the
# resolved exponax/equinox/distrax versions work with the jax already installed there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-wheels}"
PY="${PYTHON:-python3}"
mkdir -p "$DEST"
PIN=()
if [ -n "${JAX_VERSION:-}" ]; then PIN=("jax==${JAX_VERSION}"); fi
PLATFORM_ARGS=()
for p in ${PLATFORMS:-manylinux_2_28_x86_64 manylinux2014_x86_64 linux_x86_64}; do PLATFORM_ARGS+=(--platform "$p"); done
"$PY" -m pip download -d "$DEST" --only-binary=:all: --python-version "${PY_VERSION:-3.11}" "${PLATFORM_ARGS[@]}" \
  "${PIN[@]}" $("$PY" scripts/device_check.py --packages)
echo "wheels in $DEST"
