"""Train-step throughput of the surrogates: samples/s, ms/step, parameters, peak device memory.

``run(cfg) -> list[dict]``, one record per case::

    {"suite": "training", "name": "fno2d_small/64x64/b8", "samples_per_s": ..., "step_ms": ...,
     "params": ..., "peak_bytes": ... (None where the backend does not report it, e.g. CPU),
     "backend": "cpu", ...}

The timed step is the real jitted `train_step` (AdamW, clipping, per-sample losses) with state
donation, timed after ``warmup`` calls (compilation) over ``steps`` calls ending in
``block_until_ready``. ``cfg`` keys (all optional): ``gpu`` (bigger cases, including the 28M
FNO-2D at 128²), ``steps``, ``warmup``, ``bf16`` (also time each case in bfloat16 compute),
``cases`` (a list of ``{"model", "grid", "batch_size", "channels"}`` replacing the defaults).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from qsal_jax import models, training
from qsal_jax.benchmarks.timing import peak_bytes, time_chain

# (preset, grid, batch size); channels default to 1.
CPU_CASES = [
    {"model": "fno1d_small", "grid": (256,), "batch_size": 16},
    {"model": "fno2d_small", "grid": (64, 64), "batch_size": 8},
    {"model": "unet2d_small", "grid": (64, 64), "batch_size": 8},
]
GPU_CASES = [
    {"model": "fno1d_small", "grid": (1024,), "batch_size": 256},
    {"model": "fno2d_small", "grid": (128, 128), "batch_size": 64},
    {"model": "unet2d_medium", "grid": (128, 128), "batch_size": 32},
    {"model": "fno2d_28m", "grid": (128, 128), "batch_size": 32},
]


def time_train_step(
    model_name: str,
    grid: tuple[int, ...],
    batch_size: int,
    *,
    channels: int = 1,
    steps: int = 5,
    warmup: int = 2,
    compute_dtype: Any = None,
    **model_overrides: Any,
) -> dict[str, Any]:
    """Time the jitted train step of preset ``model_name`` (fields overridden by ``model_overrides``)
    on random ``[B, C, *grid]`` batches."""
    model = models.build(model_name, out_channels=channels, **model_overrides,
                         **({"dtype": compute_dtype} if compute_dtype else {}))
    k_init, k_x = jax.random.split(jax.random.key(0))
    x = jax.random.normal(k_x, (batch_size, channels) + tuple(grid), jnp.float32)
    batch = training.make_batch(x, jnp.roll(x, 1, axis=-1))
    optimizer = training.make_optimizer(learning_rate=1e-3, warmup_steps=10)
    state = training.create_train_state(k_init, model, x[:1], optimizer)
    step = training.make_train_step(model.apply, optimizer, compute_dtype=compute_dtype)

    seconds = time_chain(lambda s: step(s, batch)[0], state, repeats=steps, warmup=warmup, reduce="mean")

    device = jax.devices()[0]
    grid_str = "x".join(str(n) for n in grid)
    dtype = jnp.dtype(compute_dtype or jnp.float32).name
    return {
        "suite": "training",
        "name": f"{model_name}/{grid_str}/b{batch_size}" + ("" if dtype == "float32" else f"/{dtype}"),
        "model": model_name,
        "grid": list(grid),
        "batch_size": batch_size,
        "dtype": dtype,
        "samples_per_s": batch_size / seconds,
        "step_ms": 1e3 * seconds,
        "params": models.count_params(state.params),
        "peak_bytes": peak_bytes(device),
        "backend": jax.default_backend(),
        "device": device.device_kind,
    }


def run(cfg: dict | None = None) -> list[dict]:
    """Benchmark every case of ``cfg`` (see the module docstring); returns one record per case."""
    cfg = dict(cfg or {})
    gpu = bool(cfg.get("gpu", False))
    cases = cfg.get("cases") or (GPU_CASES if gpu else CPU_CASES)
    steps = int(cfg.get("steps", 20 if gpu else 5))
    warmup = int(cfg.get("warmup", 3 if gpu else 2))
    dtypes = [None, jnp.bfloat16] if cfg.get("bf16", False) else [None]
    records = []
    for case in cases:
        for dtype in dtypes:
            records.append(
                time_train_step(
                    case["model"],
                    tuple(case["grid"]),
                    int(case["batch_size"]),
                    channels=int(case.get("channels", 1)),
                    steps=steps,
                    warmup=warmup,
                    compute_dtype=dtype,
                )
            )
    return records


if __name__ == "__main__":
    import json
    import sys

    for r in run(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}):
        print(json.dumps(r))
