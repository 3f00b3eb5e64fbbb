"""The end of an asynchronous experiment: the final score, ``summary.json``, figures and ``report.md``.

The same files and names as a fused run's end (`experiments.online`), so `report`, `plots` and
`load_run` read both: the score-set numbers under `test_sets.summarise`'s names, plus what only an
asynchronous run has: faults by kind, latencies, and the updates it made per simulation.
"""

from __future__ import annotations

import os

import numpy as np

from qsal_jax.experiments import run_outputs, test_sets
from qsal_jax.experiments.async_scores import external_score_set
from qsal_jax.experiments.workdir import write_json
from qsal_jax.reporting.run_files import save_arrays
from qsal_jax.online.async_records import AsyncDiverged


def final_errors(records, params, step: int) -> dict:
    """One-step and rollout errors on the score set; `AsyncDiverged` on a non-finite one-step prediction."""
    if records.scores is None:
        records.scores = external_score_set(records.c, records.parts, log=records.log)
    errs = test_sets.score(records.parts.apply_fn, params, records.scores.u, records.scores.cond)
    bad = int(np.sum(~np.isfinite(errs["one_step"])))
    if bad:
        raise AsyncDiverged(f"surrogate diverged by training step {step}: its one-step predictions of {bad} of the "
                            f"{errs['one_step'].size} score-set trajectories are not finite; the final checkpoint "
                            f"holds this state; try a lower optimizer.learning_rate")
    return errs


def finish(c, workdir: str, parts, records, result, wall_s: float, log) -> dict:
    """Score the final surrogate, write summary.json, test_errors.npz, the figures and report.md."""
    s = result.summary
    params = result.train_state.params
    errs = final_errors(records, params, s.num_train_steps)
    scores = records.scores
    summary = {
        "experiment": c.get("name", "async"),
        "kind": "async",
        "problem": c.eval.get("problem", None) or c.get("name", "async"),
        "strategy": c.strategy.name,
        "label": c.get("label", None) or c.strategy.name,
        "seed": int(c.seed),
        "train_loss": (c.get("train", None) or {}).get("loss", "mse"),
        "signal_metric": (c.get("train", None) or {}).get("loss", "mse"),
        "simulations": s.num_completed,
        "trained_samples": s.num_trained_samples,
        "updates_per_simulation": s.num_train_steps / max(s.num_completed, 1),
        "updates_per_simulation_setting": parts.run_config.updates_per_simulation,
        "buffer_policy": parts.run_config.buffer_policy,
        "stopped_early": s.stopped_early,
        "wall_seconds_this_process": wall_s,
        "score_set": scores.info,
        **s.metrics(),
        **test_sets.summarise(errs),
    }
    save_arrays(os.path.join(workdir, "test_errors.npz"), lam=scores.lam, **errs)
    if c.get("plots", True):
        from qsal_jax.reporting import plots, report

        run_outputs.save_rollouts(workdir, parts.apply_fn, params, scores, errs)
        write_json(os.path.join(workdir, "plot_inputs.json"),
                   {"title": f"{c.strategy.name} (async), seed {c.seed}", "dim": parts.space.dim, "grid_axes": None})
        plots.plot_run(workdir)
    if records.writer is not None:
        records.writer.close()
    write_json(os.path.join(workdir, "summary.json"), summary, indent=1)  # strict JSON: inf as "inf"
    if c.get("plots", True):
        report.write_report([workdir], workdir, scalars=("updates_per_simulation", "simulations"))
    log(f"{s.num_completed} simulations completed, {s.num_train_steps} training steps "
        f"({summary['updates_per_simulation']:.2f} per simulation), faults {sum(s.faults.values())}; "
        "score set ({}), per-trajectory one-step nRMSE: ".format(scores.info["size"])
        + "  ".join(f"{k} {v:.4g}" for k, v in summary["one_step_nrmse"].items()))
    return summary
