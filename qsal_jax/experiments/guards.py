"""When a fused online run must stop, and what its resume finds lost.

A run stops with `RunStopped` (one line, naming the last good checkpoint) when its surrogate
diverges, by the rule the asynchronous mode uses too (`training.divergence`): a non-finite loss
or parameter, or a training loss more than `DEFAULT_FACTOR` times the median of the run's recent
losses; or when the surrogate predicts a non-finite state on the score set at an evaluation; or
when the solver has rejected every simulation so far. The diverged state is never checkpointed.
"""

from __future__ import annotations

import numpy as np

from qsal_jax.experiments.progress import steps_text
from qsal_jax.reporting.run_files import MetricLog
from qsal_jax.training.divergence import DEFAULT_FACTOR, divergence

# Each record's loss is already the mean of train_steps_per_step batches, and a tiny run can
# explode within its first two records: one record is scale enough against a factor of 1e4.
MIN_SCALE_RECORDS = 1
ADVICE = "try a lower train.optimizer.learning_rate"


class RunStopped(RuntimeError):
    """The run cannot go on (diverged surrogate, a solver that rejects everything); one line."""


def last_good_checkpoint(ckpt_dir: str, step: int) -> str:
    """How a stop names the newest checkpoint written before it (``step`` 0: none)."""
    return f"last good checkpoint: step {step} in {ckpt_dir}" if step else "no checkpoint written"


def check_sync(metrics: dict, step: int, n: int, last_good: str, total_rejected: int, launched: int,
               losses: list) -> None:
    """Raise RunStopped if one of the ``n`` online steps after ``step`` diverged, or if the solver
    has rejected all ``launched`` simulations so far.

    ``metrics``: the engine's stacked metrics of the sync (``train_loss``, ``trained_samples``,
    ``finite``, each ``[n]``). ``losses``: the run's losses of the steps that trained, oldest
    first; this sync's are appended.
    """
    finite = np.asarray(metrics["finite"], bool)
    loss = np.asarray(metrics["train_loss"], np.float64)
    trained = np.asarray(metrics["trained_samples"]) > 0
    for i in range(n):
        if finite[i] and not trained[i]:
            continue  # below the watermark: no training, a loss of 0 that is no scale
        why = divergence(float(loss[i]), bool(finite[i]), losses, DEFAULT_FACTOR, min_scale_steps=MIN_SCALE_RECORDS)
        if why is not None:
            raise RunStopped(f"surrogate diverged at online step {step + i + 1} ({why}); {last_good}; {ADVICE}")
        losses.append(float(loss[i]))
    if launched and total_rejected == launched:
        raise RunStopped(f"the solver blew up for all {launched} simulations of the first {step + n} online steps; "
                         "raise problem.kwargs.substeps or narrow the amplitude range")


def check_predictions(one_step: np.ndarray, step: int, last_good: str) -> None:
    """Raise RunStopped if the surrogate predicts a non-finite state on the score set (``one_step``:
    ``[M]`` per-trajectory one-step errors, inf where a prediction was not finite)."""
    bad = int(np.sum(~np.isfinite(one_step)))
    if bad:
        raise RunStopped(f"surrogate diverged at online step {step}: its one-step predictions of {bad} of the "
                         f"{one_step.size} score-set trajectories are not finite; {last_good}; {ADVICE}")


def resumed_records(metric_log: MetricLog, start: int, log=None) -> list[float]:
    """The losses of the steps up to ``start`` that trained (the divergence rule's running scale,
    as an uninterrupted run had it), after a line through ``log`` naming the records of steps
    ``1..start`` that are missing. Every process of a run reads them (its workdir is shared, as
    its checkpoints are), so all decide alike."""
    if log is not None and start:
        lost = metric_log.missing_steps(start)
        if lost:
            log(f"warning: metrics.jsonl lacks the records of online step{'s' if len(lost) > 1 else ''} "
                f"{steps_text(lost)} (up to checkpoint {start}, lost or cut short); they are not rebuilt")
    return [r["train_loss"] for r in metric_log.read() if r.get("step", 0) <= start and r.get("trained_samples", 0) > 0]
