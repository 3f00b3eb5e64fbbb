"""A finished (or interrupted) online run, back in a notebook: ``load_run(workdir)``.

    run = load_run("runs/kdv_breed")
    u_next = run.apply_fn(run.params, u, run.simulator.conditioning(lam))   # u: [B, C, *grid]

The config comes from the workdir's ``config.json`` and the parameters from its newest intact
checkpoint (digests checked), so what is loaded is what the run trained, not a re-run.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, NamedTuple

import ml_collections


class LoadedRun(NamedTuple):
    config: ml_collections.ConfigDict  # the run's config, as config.json recorded it
    apply_fn: Callable  # (params, u [B, C, *grid], cond [B, P]) -> u_next [B, C, *grid]
    params: Any  # the scored surrogate's parameters (member 0 of an ensemble)
    summary: dict | None  # summary.json, or None for a run that has not finished
    simulator: Any  # the run's `Simulator` (its space, conditioning and solver)
    step: int  # the online step of the checkpoint


def load_run(workdir: str) -> LoadedRun:
    """The run in ``workdir``: config, surrogate apply function, parameters and summary."""
    from qsal_jax.experiments.online import build_engine, init_state, scored_params
    from qsal_jax.experiments.workdir import config_hash
    from qsal_jax.training import checkpoint

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no config.json (not a run's workdir)")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if config.get("kind", "online") != "online":
        raise ValueError(f"{workdir}: a {config.kind} run; load_run reads online runs")
    engine, model, sim, optimizer = build_engine(config)
    like = init_state(engine, model, optimizer, config.seed)
    restored = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), like, config_hash=config_hash(config))
    if restored is None:
        raise FileNotFoundError(f"{workdir}: no checkpoint to load")
    state, step = restored
    summary = None
    if os.path.exists(os.path.join(workdir, "summary.json")):
        from qsal_jax.experiments.workdir import read_json

        summary = read_json(os.path.join(workdir, "summary.json"))
    return LoadedRun(config, engine.apply_fn, scored_params(engine, state), summary, sim, int(step))
