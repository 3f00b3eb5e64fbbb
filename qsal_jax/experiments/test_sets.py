"""Fixed test sets of λ and the per-sample errors every strategy is scored on.

A test set is a regular n × n grid over a 2D slice of λ (the heat-map axes, other
parameters at mid-box) plus uniform random λ over the whole box, simulated once with a
fixed key (not part of any strategy's simulation budget). Each test trajectory gets two
numbers (`qsal_jax.training.evaluate`): the mean one-step nRMSE over its frames, and the
mean nRMSE of an autoregressive rollout of the surrogate from its first frame.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.simulation.simulator import Simulator
from qsal_jax.training.evaluate import evaluate, summary_stats


class TestSet(NamedTuple):
    lam: jax.Array  # [M, D]
    u: jax.Array  # [M, T, C, *grid]
    cond: jax.Array  # [M, P]
    is_grid: np.ndarray  # [M] bool: member of the heat-map grid (first n*n rows)
    valid: np.ndarray  # [M] bool: the solver trajectory is finite
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
    valid = np.asarray(traj.finite)
    is_grid = np.asarray(is_grid)
    # Blown-up random points are dropped; blown-up grid points keep their slot (NaN in the heat
    # map) so the grid stays square.
    keep = valid | is_grid
    lam, u = lam[keep], traj.u[keep]
    return TestSet(lam, u, sim.conditioning(lam), is_grid[keep], valid[keep], axes_info)


def predict_mean(apply_fn, params, x, cond, ensemble_size: int):
    """Ensemble-mean prediction (the plain prediction when ``ensemble_size == 1``)."""
    if ensemble_size > 1:
        return jnp.mean(jax.vmap(apply_fn, in_axes=(0, None, None))(params, x, cond), axis=0)
    return apply_fn(params, x, cond)


def test_errors(apply_fn, params, test: TestSet, *, ensemble_size: int = 1, batch_size: int = 32) -> dict:
    """Per-trajectory ``one_step`` and ``rollout`` nRMSE, each ``[M]`` (NumPy); NaN where the
    test trajectory itself blew up (a grid slot kept for the heat map)."""
    model = lambda p, x, c: predict_mean(apply_fn, p, x, c, ensemble_size)
    errs = evaluate(model, params, test.u, test.cond, batch_size=batch_size)
    out = {k: np.where(test.valid, errs[k], np.nan) for k in ("one_step", "rollout")}
    return out


def five_numbers(errors) -> dict:
    """`summary_stats` (mean, std, max, p95, p99) over the finite entries: NaN marks test
    trajectories that blew up in the solver, not surrogate failures (those are inf and kept)."""
    e = np.asarray(errors, np.float64)
    return summary_stats(e[~np.isnan(e)])


def unevenness(errors) -> float:
    """How uneven the error is over λ: mean of the hardest decile / median."""
    e = np.sort(np.asarray(errors, np.float64)[np.isfinite(errors)])
    if e.size < 10:
        return float("nan")
    return float(e[-max(1, e.size // 10):].mean() / np.median(e))
