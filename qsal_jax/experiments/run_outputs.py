"""What a finished online run leaves besides its checkpoints: the summary, and the files the
figures are drawn from (`plots.plot_run`).

``run_summary`` is the content of ``summary.json``; ``score_heatmap_grid`` and
``write_plot_files`` write ``heatmap_errors.npz``, ``rollouts.npz`` and ``plot_inputs.json`` and
draw the figures (here, or in a child process).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.experiments import test_sets
from qsal_jax.experiments.validation import heatmap_axes
from qsal_jax.reporting.run_files import save_arrays, write_json


def run_summary(config, engine, state, scores, errs, wall: float) -> dict:
    """``summary.json`` of a run: what it was, what it simulated and trained, the strategy's own
    diagnostics, and the five numbers of every score-set error (`test_sets.summarise`)."""
    sim = engine.simulator
    return {
        "experiment": config.get("name", sim.name),
        "problem": sim.name,
        "strategy": config.strategy.name,
        "label": config.get("label") or config.strategy.name,
        "seed": config.seed,
        "train_loss": config.train.loss,
        "signal_metric": config.strategy.get("signal_metric") or config.train.loss,
        "simulations": int(state.next_lam_id),
        "rejected_simulations": int(state.num_rejected),
        "trained_samples": int(state.num_trained),
        "wall_seconds_this_process": wall,
        "score_set": scores.info,
        "scored_member": 0 if engine.ensemble_size > 1 else None,
        "train_objective": engine.objective,
        **{k.split("/", 1)[1]: float(v) for k, v in jax.device_get(engine.strategy_diagnostics(state.strategy)).items()},
        **test_sets.summarise(errs),
    }


def write_plot_files(workdir, config, engine, params, scores, errs, grid, plots_in_child: bool) -> dict:
    """The rollouts and plot inputs, then the figures; returns what the summary records of them."""
    from qsal_jax.reporting import plots

    save_rollouts(workdir, engine.apply_fn, params, scores, errs)
    _write_plot_inputs(workdir, config, engine.simulator.space, grid)
    if plots_in_child:
        return {"plots_process": plots.draw_in_child(workdir).pid}
    plots.plot_run(workdir)
    return {}


def score_heatmap_grid(workdir, config, engine, params):
    """Simulate and score the heat-map grid (plots only) into ``heatmap_errors.npz``; the grid or None."""
    e, sim = config.eval, engine.simulator
    if not e.get("grid_size", 0):
        return None
    grid = test_sets.make_heatmap_grid(sim, dict(config.problem.get("kwargs", {})), heatmap_axes(e, sim.space),
                                       e.grid_size)
    grid_errs = test_sets.score(engine.apply_fn, params, grid.u, grid.cond)
    save_arrays(os.path.join(workdir, "heatmap_errors.npz"), lam=grid.lam, valid=grid.valid,
             one_step=np.where(grid.valid, grid_errs["one_step"], np.nan),
             rollout=np.where(grid.valid, grid_errs["rollout"], np.nan), x=grid.axes[2], y=grid.axes[3])
    return grid


def _write_plot_inputs(workdir, config, space, grid) -> None:
    """What `plots.plot_run` needs besides the run's files: title, grid axes and their ranges."""
    info = {"title": f"{config.strategy.name}, seed {config.seed}", "dim": space.dim, "grid_axes": None}
    if grid is not None:
        names = list(grid.axes[:2])
        info.update(grid_axes=names, axis_index=[space.index(a) for a in names],
                    axis_range=[[float(space.low[space.index(a)]), float(space.high[space.index(a)])] for a in names])
    write_json(os.path.join(workdir, "plot_inputs.json"), info)


def save_rollouts(workdir, apply_fn, params, scores, errs) -> None:
    """Solver and surrogate rollouts of the score set's best, median and worst λ (by the
    per-trajectory rollout error) into ``rollouts.npz``, for `plots.plot_run`."""
    from qsal_jax.training.evaluate import surrogate_rollout

    order = np.argsort(np.where(np.isfinite(errs["rollout"]), errs["rollout"], np.inf))
    picks = {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}
    idx = np.asarray(list(picks.values()))
    u = np.asarray(scores.u)[idx]
    pred = surrogate_rollout(apply_fn, params, jnp.asarray(u[:, 0]), u.shape[1] - 1,
                             jnp.asarray(np.asarray(scores.cond)[idx]))
    pred = np.concatenate([u[:, :1], np.asarray(pred)], axis=1)
    labels = [f"{k} (rollout nRMSE {errs['rollout'][i]:.3g})" for k, i in picks.items()]
    save_arrays(os.path.join(workdir, "rollouts.npz"), u=u, pred=pred, labels=np.asarray(labels))
