"""Fixed test sets of λ and the per-sample errors every strategy is scored on.

A test set is a regular n × n grid over a 2D slice of λ (the heat-map axes, other
parameters at mid-box) plus uniform random λ over the whole box, simulated once with a
fixed key (not part of any strategy's simulation budget). Trajectories that blow up are
dropped from the set. Each test trajectory gets two numbers: the mean one-step nRMSE
over its frames, and the nRMSE of an autoregressive rollout of the surrogate from its
first frame.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.simulation.simulator import Simulator
from qsal_jax.training.losses import nrmse


class TestSet(NamedTuple):
    lam: jax.Array  # [M, D]
    u: jax.Array  # [M, T, C, *grid]
    cond: jax.Array  # [M, P]
    is_grid: np.ndarray  # [M] bool: member of the heat-map grid (first n*n rows)
    grid_axes: tuple  # (x name, y name, x values [n], y values [n]) or ()


def make_test_set(sim: Simulator, *, grid_size: int, grid_axes=(), num_random: int, seed: int = 12345) -> TestSet:
    parts, is_grid, axes_info = [], [], ()
    if grid_size and grid_axes:
        lam_grid, ax, ay = sim.space.grid_2d(grid_axes[0], grid_axes[1], grid_size, dtype=sim.dtype)
        parts.append(lam_grid)
        is_grid += [True] * lam_grid.shape[0]
        axes_info = (grid_axes[0], grid_axes[1], ax, ay)
    if num_random:
        parts.append(sim.space.sample_uniform(jax.random.PRNGKey(seed), num_random, sim.dtype))
        is_grid += [False] * num_random
    lam = jnp.concatenate(parts)
    traj = jax.jit(sim.simulate)(lam)
    keep = np.asarray(traj.finite)
    is_grid = np.asarray(is_grid)
    if not keep.all() and grid_size and grid_axes and not keep[: grid_size**2].all():
        # A blown-up grid point keeps its slot (error NaN in the heat map) so the grid stays square.
        keep[: grid_size**2] = True
    lam, u = lam[keep], traj.u[keep]
    return TestSet(lam, u, sim.conditioning(lam), is_grid[keep], axes_info)


def predict_mean(apply_fn, params, x, cond, ensemble_size: int):
    """Ensemble-mean prediction (the plain prediction when ``ensemble_size == 1``)."""
    if ensemble_size > 1:
        return jnp.mean(jax.vmap(apply_fn, in_axes=(0, None, None))(params, x, cond), axis=0)
    return apply_fn(params, x, cond)


def test_errors(apply_fn, params, test: TestSet, *, ensemble_size: int = 1, chunk: int = 64) -> dict:
    """Per-trajectory ``one_step`` and ``rollout`` nRMSE, each ``[M]`` (NumPy)."""
    m, t = test.u.shape[:2]

    @jax.jit
    def errors(params, u, cond):
        b = u.shape[0]
        x = u[:, :-1].reshape((-1,) + u.shape[2:])
        c = jnp.repeat(cond, t - 1, axis=0)
        pred = predict_mean(apply_fn, params, x, c, ensemble_size)
        one_step = nrmse(pred, u[:, 1:].reshape(pred.shape)).reshape(b, t - 1).mean(axis=1)

        def body(v, _):
            v = predict_mean(apply_fn, params, v, cond, ensemble_size)
            return v, v

        _, roll = jax.lax.scan(body, u[:, 0], None, length=t - 1)  # [T-1, b, ...]
        roll = jnp.moveaxis(roll, 0, 1)
        rollout = nrmse(roll.reshape(b, -1), u[:, 1:].reshape(b, -1))
        return one_step, rollout

    outs = [errors(params, test.u[i : i + chunk], test.cond[i : i + chunk]) for i in range(0, m, chunk)]
    return {
        "one_step": np.concatenate([np.asarray(o[0]) for o in outs]),
        "rollout": np.concatenate([np.asarray(o[1]) for o in outs]),
    }


def five_numbers(errors) -> dict:
    """The project's comparison numbers: mean, std, max, p95, p99 of per-sample errors."""
    e = np.asarray(errors, np.float64)
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {k: float("nan") for k in ("mean", "std", "max", "p95", "p99")}
    return {
        "mean": float(e.mean()),
        "std": float(e.std()),
        "max": float(e.max()),
        "p95": float(np.percentile(e, 95)),
        "p99": float(np.percentile(e, 99)),
    }


def unevenness(errors) -> float:
    """How uneven the error is over λ: mean of the hardest decile / median."""
    e = np.sort(np.asarray(errors, np.float64)[np.isfinite(errors)])
    if e.size < 10:
        return float("nan")
    return float(e[-max(1, e.size // 10):].mean() / np.median(e))
