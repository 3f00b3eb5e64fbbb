"""Checkpoints of an asynchronous run: what `async_mode` saves at the first arrival, then every
``checkpoint_every`` training steps or ``checkpoint_every_s`` seconds, and resumes from.

A checkpoint holds the train state, the strategy state, the host buffer (every slot, seen count
and stamp) and the run's counters, written with `qsal_jax.training.checkpoint` (per-leaf digests,
atomic steps, fallback to the newest intact one). Tasks in flight are not saved: a resumed run
launches again until the budget's trajectories have completed, so the budget is exact. Batch
draws after a resume come from a generator seeded by the run and the step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections import Counter
from typing import Any

import jax
import numpy as np

from qsal_jax.online.external import FAULT_KINDS
from qsal_jax.online.host_buffer import trajectory_items
from qsal_jax.training import checkpoint

logger = logging.getLogger("qsal_jax.online.async_mode")

COUNTERS = ("step", "completed", "trained", "next_id", "redrawn", "requeued", "restarts", "retried")


def _tree(run: Any) -> dict:
    _allocate_buffer(run)
    return {"train": run.train_state, "strategy": run.strategy_state, "buffer": run.buffer.state_arrays(),
            "counters": np.asarray([getattr(run, k) for k in COUNTERS], np.int64),
            "faults": np.asarray([run.faults[k] for k in FAULT_KINDS], np.int64),
            "owed": np.asarray(run.owed, np.float64)}  # training steps owed by pacing


def _allocate_buffer(run: Any) -> None:
    """Storage shaped by the declared trajectory shape, so a fresh run has a checkpoint template."""
    lam, _ = run.trainer.sample(run.strategy_state, jax.random.PRNGKey(0), 1)
    lam = np.asarray(lam, np.float64)[0]
    cond = np.zeros((0,), np.float32) if run.trainer.conditioning is None else run.trainer.conditioning(lam)
    run.buffer.allocate(trajectory_items(np.zeros(run.shape, np.float32), lam, -1, cond))


@contextlib.contextmanager
def _interrupt_deferred():
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise it as KeyboardInterrupt.

    An interrupt inside orbax's save surfaces as a traceback from its threads and leaves the step
    unwritten; after the block it lands in the trainer loop, which shuts the pool down. Only the
    main thread can set a signal handler: elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def save(run: Any) -> None:
    """Write checkpoint ``run.step`` under ``run.cfg.checkpoint_dir`` (a Ctrl-C waits for it)."""
    with _interrupt_deferred():
        checkpoint.save(run.cfg.checkpoint_dir, run.step, _tree(run), config_hash=run.cfg.config_hash)
    run.last_checkpoint = run.step
    logger.info("checkpoint step=%d completed=%d", run.step, run.completed)


def restore(run: Any) -> tuple[dict, int] | None:
    """``(tree, step)`` of the newest intact checkpoint of ``run``'s directory (None: there is none)."""
    return checkpoint.restore_latest(run.cfg.checkpoint_dir, _tree(run), config_hash=run.cfg.config_hash)


def resume(run: Any, seed: int) -> None:
    """Load the newest intact checkpoint into ``run`` (nothing when the directory holds none)."""
    restored = restore(run)
    if restored is None:
        return
    tree, step = restored
    run.train_state, run.strategy_state = tree["train"], tree["strategy"]
    run.buffer.load_state_arrays(tree["buffer"])
    for name, value in zip(COUNTERS, np.asarray(tree["counters"]).tolist()):
        setattr(run, name, int(value))
    run.faults = Counter(dict(zip(FAULT_KINDS, (int(x) for x in np.asarray(tree["faults"])))))
    run.fault_base = sum(run.faults.values())
    run.owed = float(np.asarray(tree["owed"]))
    run.buffer.reseed(np.random.default_rng([seed, run.step]))
    run.started = run.buffer.num_pushed >= run.cfg.watermark
    run.resumed_from = run.last_checkpoint = step
    logger.warning("resumed from checkpoint step=%d (completed %d of %d simulations)", step, run.completed,
                   run.cfg.simulation_budget)
