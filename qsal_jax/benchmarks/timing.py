"""Timing helpers shared by the benchmark suites: compile once, then median wall time."""

from __future__ import annotations

import time

import jax
import numpy as np


def time_fn(fn, *args, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds per call of a jitted ``fn(*args)`` after ``warmup`` calls (compilation excluded)."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def backend_info() -> dict:
    dev = jax.devices()[0]
    return {"backend": jax.default_backend(), "device": getattr(dev, "device_kind", str(dev)), "num_devices": jax.device_count()}


def run_metadata(**extra) -> dict:
    """Date, versions and devices of a benchmark run (the ``meta`` block of its JSON)."""
    import datetime
    import platform

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        **extra,
    }


def peak_bytes() -> int | None:
    """Peak device memory in bytes where the backend reports it (GPU/TPU), else None."""
    stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
    return None if not stats else int(stats.get("peak_bytes_in_use", 0)) or None
