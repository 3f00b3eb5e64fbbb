"""Timing and memory helpers shared by the benchmark suites: compile once, then wall times.

Every timed call is waited on (`jax.block_until_ready`), so asynchronous dispatch is never
timed as the work. ``reduce`` picks what a figure means: ``median`` (a typical call, the
default), ``min`` (a ceiling: the best the device showed) or ``mean``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

_REDUCE = {"median": np.median, "min": np.min, "mean": np.mean}


def wall_times(call: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call()``, each waited on."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return times


def time_fn(fn, *args, repeats: int = 5, warmup: int = 1, reduce: str = "median") -> float:
    """Seconds per call of a jitted ``fn(*args)`` after ``warmup`` calls (compilation excluded)."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    return float(_REDUCE[reduce](wall_times(lambda: fn(*args), repeats)))


def time_chain(fn, x, *, repeats: int = 5, warmup: int = 1, reduce: str = "median") -> float:
    """Seconds per call of ``x = fn(x)``: the state threads through the calls (donate it in
    ``fn`` and nothing is copied, as in a fused loop)."""
    for _ in range(warmup):
        x = jax.block_until_ready(fn(x))
    box = [x]

    def call():
        box[0] = fn(box[0])
        return box[0]

    return float(_REDUCE[reduce](wall_times(call, repeats)))


def interleaved_wall_times(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call in each of ``repeats`` rounds; a round runs every call once, back to
    back (in an order that rotates from round to round), so a change of load hits all of them
    alike and their ratios pair by round (`paired_ratio`)."""
    names = list(calls)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name] += wall_times(calls[name], 1)
    return times


def paired_ratio(numerator_times, denominator_times) -> tuple[float, list[float] | None]:
    """Geometric mean of the per-round ratios numerator / denominator and its 95 % t-interval
    (None with fewer than 2 rounds)."""
    logs = np.log(np.asarray(numerator_times, float) / np.asarray(denominator_times, float))
    centre = float(np.mean(logs))
    if len(logs) < 2:
        return float(np.exp(centre)), None
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(logs) - 1) * np.std(logs, ddof=1) / np.sqrt(len(logs)))
    return float(np.exp(centre)), [float(np.exp(centre - half)), float(np.exp(centre + half))]


def time_over(fn, args_list: Sequence[tuple], *, reduce: str = "median") -> float:
    """Seconds per call of ``fn(*args)`` with a fresh ``args`` from ``args_list`` each call
    (e.g. a new key per sample), already compiled."""
    it = iter(args_list)
    return float(_REDUCE[reduce](wall_times(lambda: fn(*next(it)), len(args_list))))


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


def peak_bytes(device: jax.Device | None = None) -> int | None:
    """Peak memory of ``device`` (default: the first) in bytes where the backend reports it
    (GPU/TPU), else None."""
    device = device or jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # some backends raise instead of returning None
        return None
    return None if not stats else int(stats.get("peak_bytes_in_use", 0)) or None
