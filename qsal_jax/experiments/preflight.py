"""Checks before a run touches its workdir: can it be built, and does it fit in memory?

`experiments.buildable.check_buildable` validates the config and builds the engine, turning the engine's own checks
(fields that must agree with each other) into one-line `ConfigError`s that name the field.

`dry_run` builds the engine and takes `jax.eval_shape` of the whole run state, so nothing is
allocated or compiled, then adds up what the run holds per device.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from qsal_jax.experiments.validation import ConfigError, first_line, get_field


def dry_run(config, built, make_state, log=print) -> dict[str, int]:
    """Take the abstract run state (``jax.eval_shape(make_state)``: nothing allocated or
    compiled) of the built engine (``built``: `online.build_engine`'s tuple) and check that it
    fits in memory; returns the bytes per part.

    A config that cannot be built (a 2D model on a 1D problem, a strategy setting the factory
    refuses) or would not fit (``buffer.capacity = 10**9``) fails here with a one-line
    `ConfigError` naming the field, before the workdir is touched.
    """
    engine, model, sim, optimizer = built
    try:
        shapes = jax.eval_shape(make_state)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ConfigError(f"model.name = {config.model.name!r}: cannot be built for problem {config.problem.name!r} "
                          f"with state shape {sim.state_shape} ({first_line(e)})") from None
    solver_steps = sim.num_steps + sim.warmup_steps
    if solver_steps > 100_000:
        log(f"warning: problem.kwargs: {solver_steps:,} solver steps per trajectory (num_steps × substeps); "
            "a simulation will take long")
    frame_bytes = int(np.prod(sim.state_shape)) * np.dtype(sim.dtype).itemsize
    parts = {
        # per device: a sharded buffer holds capacity / N items on each
        "buffer.capacity": _nbytes(shapes.buffer) // (engine.mesh.shape["data"] if engine.shard_buffer else 1),
        "model.ensemble_size": _nbytes(shapes.train),
        # a strategy's state (online Breed's M slots, OGAS's FIFO); twice: update writes a new one
        "strategy.settings": 2 * _nbytes(shapes.strategy),
        "eval.score_size": 2 * int(config.eval.score_size) * sim.num_frames * frame_bytes,  # solver + surrogate
        "online.clients_per_step": 2 * engine.clients_per_step * sim.num_frames * frame_bytes,
    }
    limit, where = available_memory()
    total = sum(parts.values())
    if total > 0.8 * limit:
        field = max(parts, key=parts.get)
        value = get_field(config, field)
        value = value.to_dict() if hasattr(value, "to_dict") else value  # a ConfigDict's repr spans lines
        raise ConfigError(f"{field} = {value!r}: the run needs {total / 2**30:.1f} GiB ({field} alone "
                          f"{parts[field] / 2**30:.1f} GiB) but the {where} has {limit / 2**30:.1f} GiB")
    return parts


def available_memory() -> tuple[int, str]:
    """(bytes, what) of the default device's memory, or of the machine's RAM for a CPU."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{device.platform} device"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "machine"


def _nbytes(tree) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)))

