"""One-step and autoregressive-rollout errors of a surrogate on a test set of trajectories.

A test set is ``trajectories: [N, T, C, *grid]`` (N trajectories of T states each) with
``cond: [N, P]`` (P may be 0). Errors are per-sample nRMSE (`qsal_jax.training.losses.nrmse`),
returned per trajectory and time step; `summary_stats` reduces a vector of per-sample errors to
the five numbers every comparison in the project uses: mean, std, max, p95, p99.

Everything here is pure and jit-able: trajectories are processed ``batch_size`` at a time with
``lax.map`` (a scan over chunks, vmapped within a chunk), so memory stays bounded for large N,
and a rollout is a ``lax.scan`` of the model over time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.training.losses import get_loss

ApplyFn = Callable[..., jax.Array]  # (params, x [B, C, *grid], cond [B, P]) -> [B, C, *grid]


def _cond_or_empty(cond: jax.Array | None, n: int) -> jax.Array:
    return jnp.zeros((n, 0), jnp.float32) if cond is None else jnp.asarray(cond)


def _check_trajectories(trajectories: jax.Array, cond: jax.Array) -> None:
    if trajectories.ndim < 4:
        raise ValueError(f"trajectories must be [N, T, C, *grid]; got shape {trajectories.shape}")
    if trajectories.shape[1] < 2:
        raise ValueError(f"trajectories need T >= 2 time steps; got T={trajectories.shape[1]}")
    if cond.ndim != 2 or cond.shape[0] != trajectories.shape[0]:
        raise ValueError(f"cond must be [N, P] with N={trajectories.shape[0]}; got {cond.shape}")


def surrogate_rollout(apply_fn: ApplyFn, params: Any, u0: jax.Array, num_steps: int, cond: jax.Array | None = None) -> jax.Array:
    """Autoregressive rollout: ``u0: [B, C, *grid]`` → ``[B, num_steps, C, *grid]`` (float32).

    Output ``t`` is the model applied ``t + 1`` times to ``u0``; ``u0`` itself is not included.
    """
    cond = _cond_or_empty(cond, u0.shape[0])

    def step(u, _):
        u_next = apply_fn(params, u, cond).astype(jnp.float32)
        return u_next, u_next

    _, us = jax.lax.scan(step, u0.astype(jnp.float32), None, length=num_steps)
    return jnp.moveaxis(us, 0, 1)


def _per_sample(metric: str, pred: jax.Array, target: jax.Array) -> jax.Array:
    """Metric of one unbatched pair ``[C, *grid]`` → ``[]``."""
    return get_loss(metric)(pred[None], target[None].astype(jnp.float32))[0]


@functools.partial(jax.jit, static_argnames=("apply_fn", "batch_size", "metric"))
def one_step_errors(
    apply_fn: ApplyFn,
    params: Any,
    trajectories: jax.Array,
    cond: jax.Array | None = None,
    *,
    batch_size: int = 16,
    metric: str = "nrmse",
) -> jax.Array:
    """Teacher-forced error of ``u[t] -> u[t+1]`` for every pair: ``[N, T, C, *grid]`` → ``[N, T-1]``."""
    cond = _cond_or_empty(cond, trajectories.shape[0])
    _check_trajectories(trajectories, cond)

    def one(args):
        traj, c = args  # [T, C, *grid], [P]
        t = traj.shape[0] - 1
        pred = apply_fn(params, traj[:-1].astype(jnp.float32), jnp.broadcast_to(c, (t,) + c.shape))
        return jax.vmap(functools.partial(_per_sample, metric))(pred.astype(jnp.float32), traj[1:])

    return jax.lax.map(one, (trajectories, cond), batch_size=batch_size)


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_steps", "batch_size", "metric"))
def rollout_errors(
    apply_fn: ApplyFn,
    params: Any,
    trajectories: jax.Array,
    cond: jax.Array | None = None,
    *,
    num_steps: int | None = None,
    batch_size: int = 16,
    metric: str = "nrmse",
) -> jax.Array:
    """Error of the autoregressive rollout from ``u[0]`` at every step: → ``[N, num_steps]``.

    Entry ``[n, t]`` compares the model applied ``t + 1`` times with ``trajectories[n, t + 1]``;
    ``num_steps`` defaults to ``T - 1`` (the whole trajectory).
    """
    cond = _cond_or_empty(cond, trajectories.shape[0])
    _check_trajectories(trajectories, cond)
    steps = trajectories.shape[1] - 1 if num_steps is None else num_steps
    if not 1 <= steps <= trajectories.shape[1] - 1:
        raise ValueError(f"num_steps must be in [1, T-1={trajectories.shape[1] - 1}]; got {num_steps}")

    def one(args):
        traj, c = args
        preds = surrogate_rollout(apply_fn, params, traj[:1], steps, c[None])[0]  # [steps, C, *grid]
        return jax.vmap(functools.partial(_per_sample, metric))(preds, traj[1 : steps + 1])

    return jax.lax.map(one, (trajectories, cond), batch_size=batch_size)


def evaluate(
    apply_fn: ApplyFn,
    params: Any,
    trajectories: jax.Array,
    cond: jax.Array | None = None,
    *,
    num_steps: int | None = None,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Per-trajectory nRMSE ``[N]`` vectors of a model on a test set.

    Returns ``one_step`` (teacher-forced, averaged over time), ``rollout`` (autoregressive,
    averaged over the ``num_steps`` steps) and ``rollout_final`` (at the last step), plus the
    full ``[N, steps]`` arrays as ``one_step_by_time`` and ``rollout_by_time``. Feed any vector to
    `summary_stats`.
    """
    one = np.asarray(one_step_errors(apply_fn, params, trajectories, cond, batch_size=batch_size))
    roll = np.asarray(
        rollout_errors(apply_fn, params, trajectories, cond, num_steps=num_steps, batch_size=batch_size)
    )
    return {
        "one_step": one.mean(axis=1),
        "rollout": roll.mean(axis=1),
        "rollout_final": roll[:, -1],
        "one_step_by_time": one,
        "rollout_by_time": roll,
    }


def summary_stats(errors: Any) -> dict[str, float]:
    """``mean, std, max, p95, p99`` of a vector of per-sample errors.

    A non-finite error (a diverged rollout) is kept: it makes ``mean``/``max`` inf or NaN, which
    is the honest summary of a surrogate that blew up.
    """
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    if e.size == 0:
        raise ValueError("summary_stats needs at least one error")
    return {
        "mean": float(np.mean(e)),
        "std": float(np.std(e)),
        "max": float(np.max(e)),
        "p95": float(np.percentile(e, 95)),
        "p99": float(np.percentile(e, 99)),
    }
