"""A finished (or interrupted) online run, back in a notebook: ``load_run(workdir)``.

    run = load_run("runs/kdv_breed")
    u = run.predict(lam)                 # λ [B, D] -> the surrogate's trajectories [B, T, C, *grid]
    u = run.rollout(u0, 10, lam=lam)     # any start u0 [B, C, *grid] -> [B, 11, C, *grid]
    u_next = run.apply_fn(run.params, u0, run.simulator.conditioning(lam))   # one step
    run.strategy_state                   # what the strategy had learned (e.g. OGAS's generator)

The config comes from the workdir's ``config.json`` and the parameters from its newest intact
checkpoint (digests checked), so what is loaded is what the run trained, not a re-run.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from qsal_jax.training.evaluate import surrogate_rollout


_jitted_rollout = jax.jit(surrogate_rollout, static_argnums=(0, 3))  # one compile per apply_fn and length


class LoadedRun(NamedTuple):
    config: ml_collections.ConfigDict  # the run's config, as config.json recorded it
    apply_fn: Callable  # (params, u [B, C, *grid], cond [B, P]) -> u_next [B, C, *grid]
    params: Any  # the scored surrogate's parameters (member 0 of an ensemble)
    summary: dict | None  # summary.json, or None for a run that has not finished
    simulator: Any  # the run's `Simulator` (its space, conditioning and solver); None for an async run
    step: int  # the online step of the checkpoint
    strategy_state: Any = None  # the strategy's state at that checkpoint (None for an async run)

    def rollout(self, u0, num_steps: int, *, lam=None):
        """The surrogate's autoregressive rollout from ``u0 [B, C, *grid]`` (or one ``[C, *grid]``):
        ``[B, num_steps + 1, C, *grid]``, u0 first. ``lam [B, D]`` (or ``[D]``) is required when the
        surrogate is conditioned on λ (the run's ``simulator.cond_names``)."""
        if self.simulator is None:
            raise ValueError("rollout: this async run's solver is a program, not a JAX simulator; step "
                             "run.apply_fn(run.params, u, cond) yourself")
        u0 = jnp.asarray(u0, jnp.float32)
        state_shape = tuple(self.simulator.state_shape)
        single = u0.shape == state_shape
        u0 = u0[None] if single else u0
        if u0.shape[1:] != state_shape:
            raise ValueError(f"rollout: u0 must be [B, *{state_shape}] or {state_shape}, got {tuple(u0.shape)}")
        if int(num_steps) < 0:
            raise ValueError(f"rollout: num_steps must be >= 0, got {num_steps}")
        cond = None
        if self.simulator.cond_names:
            if lam is None:
                raise ValueError(f"rollout: this surrogate is conditioned on {list(self.simulator.cond_names)}; pass lam")
            lam = jnp.atleast_2d(jnp.asarray(lam, self.simulator.dtype))
            if lam.shape != (u0.shape[0], self.simulator.space.dim):
                raise ValueError(f"rollout: lam must be [{u0.shape[0]}, {self.simulator.space.dim}], got {tuple(lam.shape)}")
            cond = self.simulator.conditioning(lam)
        us = jnp.concatenate([u0[:, None], _jitted_rollout(self.apply_fn, self.params, u0, int(num_steps), cond)], axis=1)
        return us[0] if single else us

    def predict(self, lam):
        """What the surrogate says the simulator returns for ``lam [B, D]`` (or ``[D]``): the solver's
        initial state of each λ rolled out over the run's frames, ``[B, T, C, *grid]``."""
        if self.simulator is None:
            raise ValueError("predict: this async run's solver is a program, not a JAX simulator")
        lam = jnp.asarray(lam, self.simulator.dtype)
        single = lam.ndim == 1
        lam = jnp.atleast_2d(lam)
        if lam.ndim != 2 or lam.shape[1] != self.simulator.space.dim:
            raise ValueError(f"predict: lam must be [B, {self.simulator.space.dim}], got {tuple(lam.shape)}")
        u0 = jax.jit(jax.vmap(self.simulator.initial_state))(lam)
        us = self.rollout(u0, self.simulator.num_frames - 1, lam=lam)
        return us[0] if single else us


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
    summary_path = os.path.join(workdir, "summary.json")
    if config.get("kind", "online") == "async":
        from qsal_jax.experiments.async_run import restore_trained
        from qsal_jax.experiments.workdir import read_json

        restored = restore_trained(config, workdir)
        if restored is None:
            raise FileNotFoundError(f"{workdir}: no checkpoint to load")
        apply_fn, params, step = restored
        summary = read_json(summary_path) if os.path.exists(summary_path) else None
        return LoadedRun(config, apply_fn, params, summary, None, step)  # the solver is a program, not JAX
    if config.get("kind", "online") != "online":
        raise ValueError(f"{workdir}: a {config.kind} run; load_run reads online and async runs")
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
    return LoadedRun(config, engine.apply_fn, scored_params(engine, state), summary, sim, int(step), state.strategy)
