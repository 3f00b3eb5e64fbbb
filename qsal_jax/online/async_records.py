"""What the asynchronous mode is told and what it reports: its settings (`AsyncConfig`), the
record of each launch and its latency, and the summary of a run (`AsyncSummary`, `AsyncResult`).
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class AsyncConfig:
    """Settings of an asynchronous run.

    Attributes:
      num_workers: K concurrent simulations (and size of the default process pool).
      simulation_budget: stop after this many valid trajectories (faults do not count).
      batch_size: B items per training step (short batches are zero-padded, weight 0).
      buffer_capacity, buffer_policy, seen_threshold: the `HostBuffer`.
      watermark: training starts once the buffer has held this many items.
      task_timeout_s: a task without a result after this long (from submission) is a fault.
      max_faults: stop launching after this many faults, so a broken solver ends the run.
      drain: train on the items left when the budget is reached.
      max_train_steps: optional cap on training steps (None: no cap).
      updates_per_simulation: pacing, the training steps owed per valid trajectory that arrives
        (fractions accumulate; the authors' 1.8 batches per simulation). A step is taken while
        one is owed and the buffer holds items; after the budget, the steps still owed are taken
        (``drain`` is then unused). None: train whenever the buffer holds items (no pacing).
      crashes_before_redraw: a λ whose simulation faults is launched again, unchanged, up to this
        many times, then a fresh λ is drawn (Melissa's setting of that name; 0: redraw at once).
      divergence_factor: a training loss above this many times the median of the last
        ``SCALE_WINDOW`` losses is divergence, as a non-finite loss or parameter is (inf: only the
        latter); the run then stops with `AsyncDiverged` and writes no checkpoint of that state.
      checkpoint_dir, checkpoint_every: save the train state, the strategy state, the host buffer
        and the counters at the first arrival, then every ``checkpoint_every`` training steps and
        every ``checkpoint_every_s`` seconds (0: never; both 0: no checkpoint); a run given a
        directory that holds a checkpoint resumes from it (simulations in flight when it stopped
        are launched again, so the budget counts completed trajectories exactly).
      config_hash: stored in each checkpoint; a resume under another hash is refused.
    """

    num_workers: int = 2
    simulation_budget: int = 16
    batch_size: int = 16
    buffer_capacity: int = 1024
    buffer_policy: str = "fifo"
    seen_threshold: int = 1
    watermark: int = 64
    task_timeout_s: float = 600.0
    max_faults: int = 100
    drain: bool = True
    max_train_steps: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    checkpoint_every_s: float = 0.0
    updates_per_simulation: float | None = None
    crashes_before_redraw: int = 0
    divergence_factor: float = 1e4
    config_hash: str | None = None

    def __post_init__(self):
        if self.num_workers < 1 or self.simulation_budget < 1 or self.batch_size < 1:
            raise ValueError(f"num_workers, simulation_budget and batch_size must be >= 1: {self}")
        if not 1 <= self.watermark <= self.buffer_capacity:
            raise ValueError(f"watermark ({self.watermark}) must lie in [1, buffer_capacity = {self.buffer_capacity}]")
        if self.batch_size > self.buffer_capacity:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed buffer_capacity ({self.buffer_capacity})")
        if not self.task_timeout_s > 0:
            raise ValueError(f"task_timeout_s must be > 0, got {self.task_timeout_s}")
        if self.checkpoint_every < 0 or (self.checkpoint_every and not self.checkpoint_dir):
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) must be >= 0 and needs a checkpoint_dir")
        if not self.checkpoint_every_s >= 0 or (self.checkpoint_every_s and not self.checkpoint_dir):
            raise ValueError(f"checkpoint_every_s ({self.checkpoint_every_s}) must be >= 0 and needs a checkpoint_dir")
        if self.updates_per_simulation is not None and not 0 < self.updates_per_simulation < float("inf"):
            raise ValueError(f"updates_per_simulation must be > 0 and finite (None: no pacing), "
                             f"got {self.updates_per_simulation}")
        if not isinstance(self.crashes_before_redraw, int) or self.crashes_before_redraw < 0:
            raise ValueError(f"crashes_before_redraw must be an integer >= 0, got {self.crashes_before_redraw!r}")
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1 (inf: off), got {self.divergence_factor}")

    @classmethod
    def from_config(cls, config: Any = None, **overrides: Any) -> AsyncConfig:
        """From a dict or ``ConfigDict`` plus keyword overrides; unknown fields are an error."""
        fields = dict(config.to_dict() if hasattr(config, "to_dict") else (config or {}), **overrides)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown async field(s) {sorted(unknown)}")
        return cls(**fields)


    @property
    def checkpoints(self) -> bool:
        return bool(self.checkpoint_dir) and bool(self.checkpoint_every or self.checkpoint_every_s)


class AsyncHooks(NamedTuple):
    """What a driver is told while a run goes on (each None: not told). Called in the trainer loop."""

    started: Any = None  # (resumed step or None, next launch id): before the first launch
    launched: Any = None  # (Launch): a fresh λ was submitted
    trained: Any = None  # (step, train_state, {"train_loss", "buffer_size", ...}): a step was taken
    saving: Any = None  # (step): a checkpoint of ``step`` is about to be written (flush records first)


class Launch(NamedTuple):
    lam_id: int  # unique id of the simulation
    lam: np.ndarray  # [D] float64, box units
    step: int  # training steps done when λ was drawn (= updates the strategy state had seen)
    time_s: float  # seconds since the run started


class Latency(NamedTuple):
    lam_id: int
    steps: int  # training steps between the draw of λ and the first step that used its data
    seconds: float  # wall time between the same two events


@dataclasses.dataclass(frozen=True)
class AsyncSummary:
    """What a run did. ``latency_*`` hold ``mean``, ``median``, ``max`` and ``count``."""

    num_launched: int  # fresh λ submitted (replacements included, requeues not)
    num_completed: int  # valid trajectories pushed to the buffer
    num_train_steps: int
    num_trained_samples: int  # valid items in training batches (repeats counted)
    num_items_pushed: int
    num_evicted_unseen: int  # items overwritten before any training used them
    faults: dict[str, int]  # kind -> count, every kind of `external.FAULT_KINDS` present
    num_redrawn: int  # replacement tasks launched with a fresh λ after a fault
    num_requeued: int  # tasks resubmitted unchanged after their pool was rebuilt
    num_pool_restarts: int
    latency_steps: dict[str, float]
    latency_s: dict[str, float]
    losses: tuple[float, ...]  # objective of each training step
    launches: tuple[Launch, ...]
    latencies: tuple[Latency, ...]
    wall_s: float
    stopped_early: str | None  # why launching stopped before the budget, or None
    failure: str | None = None  # why the run did not do its work (fault limit, no simulation), or None
    num_retried: int = 0  # faulty simulations launched again with the same λ (crashes_before_redraw)

    def metrics(self) -> dict[str, float]:
        """Flat scalars for a metrics writer."""
        out = {f"faults/{k}": float(v) for k, v in self.faults.items()}
        out.update({f"latency_steps/{k}": float(v) for k, v in self.latency_steps.items()})
        out.update({f"latency_s/{k}": float(v) for k, v in self.latency_s.items()})
        for name in ("num_launched", "num_completed", "num_train_steps", "num_trained_samples", "num_items_pushed",
                     "num_evicted_unseen", "num_redrawn", "num_requeued", "num_retried", "num_pool_restarts", "wall_s"):
            out[name] = float(getattr(self, name))
        out["final_loss"] = self.losses[-1] if self.losses else float("nan")
        return out


class AsyncResult(NamedTuple):
    train_state: Any
    strategy_state: Any
    summary: AsyncSummary


def describe(values: list[float]) -> dict[str, float]:
    """``mean``, ``median``, ``max`` and ``count`` of ``values`` (NaN statistics when empty)."""
    if not values:
        return {"mean": float("nan"), "median": float("nan"), "max": float("nan"), "count": 0}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "max": max(values),
            "count": len(values)}


class AsyncDiverged(RuntimeError):
    """The surrogate diverged; the message is one line naming the last good checkpoint."""


class AsyncFailed(RuntimeError):
    """The run did not do its work (``AsyncSummary.failure``); rerunning it resumes from its checkpoint."""


def check_trainer_args(solver: Any, strategy: Any, config: AsyncConfig, trajectory_shape: Any) -> None:
    """`AsyncTrainer`'s checks of its arguments against each other; ValueError naming the setting."""
    from qsal_jax.online.external import ExecutableSolver
    from qsal_jax.proposals.base import ScoredProposal

    if isinstance(strategy, ScoredProposal):
        raise ValueError("async mode: strategies scoring a candidate pool (SBAL, RAD) need a surrogate in the "
                         "feedback; not supported")
    if isinstance(solver, ExecutableSolver) and solver.timeout_s >= config.task_timeout_s:
        # Otherwise the worker is killed first and its program, in a session of its own, outlives it.
        raise ValueError(f"ExecutableSolver.timeout_s ({solver.timeout_s:g}) must be below "
                         f"task_timeout_s ({config.task_timeout_s:g})")
    if trajectory_shape is None:
        raise ValueError("async mode: trajectory_shape is required, the [T, C, *grid] every solver result must have")
    if len(trajectory_shape) < 3 or trajectory_shape[0] < 2:
        raise ValueError(f"async mode: trajectory_shape {tuple(trajectory_shape)} must be [T >= 2, C, *grid]: "
                         "a trajectory of one frame holds no training pair")
    if trajectory_shape[0] - 1 > config.buffer_capacity:
        raise ValueError(f"async mode: a trajectory of {trajectory_shape[0]} frames gives {trajectory_shape[0] - 1} "
                         f"items, more than buffer_capacity = {config.buffer_capacity}; raise buffer_capacity")


def summarize(run: Any) -> AsyncSummary:
    """The `AsyncSummary` of an `async_mode` run so far."""
    lat = [run.latencies[i] for i in sorted(run.latencies)]
    return AsyncSummary(
        num_launched=len(run.launches), num_completed=run.completed, num_train_steps=run.step,
        num_trained_samples=run.trained, num_items_pushed=run.buffer.num_pushed,
        num_evicted_unseen=run.buffer.num_evicted_unseen, faults=dict(run.faults), num_redrawn=run.redrawn,
        num_requeued=run.requeued, num_pool_restarts=run.restarts, num_retried=run.retried,
        latency_steps=describe([float(x.steps) for x in lat]), latency_s=describe([x.seconds for x in lat]),
        losses=tuple(run.losses), launches=tuple(run.launches[i] for i in sorted(run.launches)),
        latencies=tuple(lat), wall_s=run.now(), stopped_early=run.stopped_early, failure=run.failure,
    )

