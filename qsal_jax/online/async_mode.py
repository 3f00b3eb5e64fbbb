"""The asynchronous mode: black-box solvers in K concurrent workers, feeding online training.

The fused engine (`qsal_jax.online.engine`) needs a solver written in JAX. Here the solver is
any picklable ``solve(lam [D]) -> [T, C, *grid]`` or an external program
(`qsal_jax.online.external.ExecutableSolver`), run by K workers of any
``concurrent.futures.Executor`` (by default a spawn-context process pool; a dask
``distributed.Client`` works too), as the Melissa framework runs its solver clients::

    workers                                  trainer loop (this process, one thread)
    solve(λ) → u [T, C, *grid]  ──result──▶  check → HostBuffer.push(T − 1 items)
                                             batch ← buffer.sample(B); jitted train_step
                                             strategy.update(per-sample losses)
                                ◀───λ────    a worker is free: λ, state = strategy.sample(latest state, 1)

Rules, in the order the loop applies them (`AsyncConfig` holds the numbers):

1. *Harvest* finished tasks. A valid trajectory (finite once cast to the buffer's float32) is
   pushed, and earns ``updates_per_simulation`` training steps (pacing); a fault (see
   `external`: error, crash, timeout, garbage, nonfinite) is logged and counted, never buffered:
   its λ is launched again unchanged up to ``crashes_before_redraw`` times, then the next launch
   re-draws λ from the strategy. More than ``max_faults`` faults in one session (a resumed run
   starts a new one) stop launching, and the run ends as a failure.
2. *Expire* tasks past ``task_timeout_s``. An owned pool is killed and rebuilt (a hung
   process cannot be cancelled); the other tasks it was running are resubmitted with the same
   λ and id ("requeued", not faults). A borrowed executor's task is only abandoned.
3. *Launch* while a slot is free, completed + in-flight < ``simulation_budget``, and the
   buffer has room (below capacity, or holding items seen ``seen_threshold`` times).
4. *Train* one step while the buffer is non-empty, once it has held ``watermark`` items (with
   pacing: while a step is owed).
   A step that diverges (a non-finite loss or parameter, or a loss ``divergence_factor`` times
   its running median) raises `AsyncDiverged` naming the last good checkpoint, before the
   diverged state can be checkpointed. Otherwise wait for the first task to finish, at most
   until the nearest deadline.
5. *Stop* when the budget's simulations have completed, after a final drain: training goes
   on until every held item has been trained on at least once (watermark ignored; with pacing,
   until the steps owed are taken). A run that
   ended on the fault limit, a refusing executor, or with no simulation completed reports why in
   ``summary.failure``, after a last checkpoint so that rerunning it resumes the work.

Latency: each launch records the training step and wall time at which λ was drawn; the first
training step that uses data from λ records the delay in steps and seconds.

Determinism: not promised (arrival order is real time). The record is: λ of launch ``id`` is
``strategy.sample(state, fold_in(sample_key, id), 1)`` with the state of the logged step, buffer
draws come from a generator seeded by the run key, and every launch, result, fault and first use
is logged with its id, λ and step.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import time
from collections import Counter
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.online.external import (FAULT_KINDS, WorkerPool, call_solver, check_picklable, check_trajectory,
                                      classify_exception, format_lam)
from qsal_jax.online import async_checkpoint
from qsal_jax.online.async_records import (AsyncConfig, AsyncDiverged, AsyncHooks, AsyncResult, AsyncSummary, Latency,
                                           Launch, check_trainer_args, summarize)
from qsal_jax.online.host_buffer import ITEM_DTYPE, HostBuffer, trajectory_items
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.training.divergence import divergence
from qsal_jax.training.step import Batch, tree_all_finite

logger = logging.getLogger(__name__)

Conditioning = Callable[[np.ndarray], np.ndarray]  # lam [D] -> cond [P]


class AsyncTrainer:
    """Static description of an asynchronous run; `run` executes one.

    Args:
      solver: picklable ``solve(lam float64 [D]) -> float [T, C, *grid]`` (or `ExecutableSolver`).
      strategy: the active-learning `Proposal`; strategies that score a candidate pool
        (`ScoredProposal`: SBAL, RAD) need a surrogate in the feedback and are not supported here.
      train_step: ``(TrainState, Batch) -> (TrainState, per_sample_loss [B], metrics)``, e.g.
        `qsal_jax.training.step.make_train_step`; metrics must hold ``loss``.
      config: `AsyncConfig`.
      executor: see `WorkerPool` (None: an owned spawn process pool of ``num_workers``).
      conditioning: ``lam [D] -> cond [P]`` fed to the model with each item (None: P = 0).
      trajectory_shape: the ``[T, C, *grid]`` every result must have (required: were the first
        result to fix it, one wrong first result would turn every later good one into garbage).
      hooks: `AsyncHooks`, what a driver (metrics, evaluation, λ records) is told as the run goes.
    """

    def __init__(
        self,
        solver: Callable[[np.ndarray], Any],
        strategy: Proposal,
        train_step: Callable,
        config: AsyncConfig = AsyncConfig(),
        *,
        executor: Any = None,
        conditioning: Conditioning | None = None,
        trajectory_shape: tuple[int, ...] | None = None,
        hooks: AsyncHooks = AsyncHooks(),
    ):
        check_trainer_args(solver, strategy, config, trajectory_shape)
        self.solver, self.strategy, self.train_step, self.config = solver, strategy, train_step, config
        self.executor, self.conditioning, self.hooks = executor, conditioning, hooks
        self.trajectory_shape = tuple(trajectory_shape)
        self.sample = jax.jit(strategy.sample, static_argnums=2)
        self.update = jax.jit(strategy.update)

    def restore(self, train_state: Any) -> tuple[Any, int] | None:
        """``(train state, step)`` of the newest intact checkpoint in ``checkpoint_dir``, or None."""
        run = _Run(self, None, train_state, self.strategy.init(jax.random.PRNGKey(0)), None, np.random.default_rng(0))
        restored = async_checkpoint.restore(run)
        return None if restored is None else (restored[0]["train"], restored[1])

    def run(self, train_state: Any, key: jax.Array, strategy_state: Any = None) -> AsyncResult:
        """Simulate and train until the budget is spent and the buffer drained.

        ``key`` seeds the strategy (when ``strategy_state`` is None), the λ draws and the buffer.
        """
        key_init, key_sample, key_buffer = jax.random.split(key, 3)
        if strategy_state is None:
            strategy_state = self.strategy.init(key_init)
        seed = int(jax.random.randint(key_buffer, (), 0, np.iinfo(np.int32).max))
        pool = WorkerPool(self.executor, self.config.num_workers)
        if pool.uses_processes:
            check_picklable(self.solver)
        run = _Run(self, pool, train_state, strategy_state, key_sample, np.random.default_rng(seed))
        if self.config.checkpoint_dir:
            run.resume(seed)
        if self.hooks.started is not None:
            self.hooks.started(run.resumed_from, run.next_id)
        return run.run()


def run_async(solver: Callable[[np.ndarray], Any], strategy: Proposal, train_step: Callable, train_state: Any,
              key: jax.Array, config: AsyncConfig | Any = None, *, executor: Any = None,
              conditioning: Conditioning | None = None, trajectory_shape: tuple[int, ...] | None = None,
              strategy_state: Any = None, hooks: AsyncHooks = AsyncHooks(), **overrides: Any) -> AsyncResult:
    """``AsyncTrainer(...).run(train_state, key)``; ``config`` may be a dict/ConfigDict, ``overrides`` fields."""
    if not isinstance(config, AsyncConfig) or overrides:
        config = AsyncConfig.from_config(dataclasses.asdict(config) if isinstance(config, AsyncConfig) else config,
                                         **overrides)
    trainer = AsyncTrainer(solver, strategy, train_step, config, executor=executor, conditioning=conditioning,
                           trajectory_shape=trajectory_shape, hooks=hooks)
    return trainer.run(train_state, key, strategy_state)


class _Task(NamedTuple):
    launch: Launch
    generation: int  # pool generation the task was submitted to
    deadline: float  # time.monotonic() after which it is a timeout
    attempt: int = 0  # launches of this λ before this one that faulted (crashes_before_redraw)


class _Run:
    """The mutable state of one run and the loop that advances it (see the module docstring)."""

    def __init__(self, trainer: AsyncTrainer, pool: WorkerPool, train_state, strategy_state, key, rng):
        c = trainer.config
        self.trainer, self.cfg, self.pool, self.key = trainer, c, pool, key
        self.train_state, self.strategy_state = train_state, strategy_state
        self.buffer = HostBuffer(c.buffer_capacity, c.buffer_policy, seen_threshold=c.seen_threshold, rng=rng)
        self.shape = trainer.trajectory_shape
        self.tasks: dict[cf.Future, _Task] = {}
        self.launches: dict[int, Launch] = {}
        self.latencies: dict[int, Latency] = {}
        self.faults = Counter({k: 0 for k in FAULT_KINDS})
        self.losses: list[float] = []
        self.step = self.completed = self.trained = self.next_id = 0
        self.resumed_from: int | None = None
        self.redraws_pending = self.redrawn = self.requeued = self.restarts = self.retried = 0
        self.retries: list[tuple[Launch, int]] = []  # faulty λ to launch again unchanged, with their attempt
        self.owed = 0.0  # training steps owed by pacing (updates_per_simulation per arrival)
        self.saved_s = time.monotonic()  # when the newest checkpoint was written (checkpoint_every_s)
        self.started = False
        self.stopped_early: str | None = None
        self.failure: str | None = None  # why the run did not do its work
        self.last_checkpoint: int | None = None  # step of the newest checkpoint written or resumed from
        self.fault_base = 0  # faults restored from a checkpoint: the limit counts this session's
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------ loop
    def run(self) -> AsyncResult:
        try:
            self.loop()
        finally:
            for fut in self.tasks:
                fut.cancel()
            self.pool.close(abandon=bool(self.tasks))
        if self.completed == 0 and self.failure is None:
            self.failure = "no simulation completed"
        unsaved = self.step != self.last_checkpoint and (self.step or self.completed)
        if self.cfg.checkpoints and unsaved:  # the final state is loadable; after a failure, the rerun resumes it
            self.save_checkpoint()
        return AsyncResult(self.train_state, self.strategy_state, self.summary())

    def loop(self) -> None:
        while True:
            self.harvest([f for f in self.tasks if f.done()])
            self.expire()
            self.launch()
            if self.can_train():
                self.train_once()
            elif self.tasks:
                cf.wait(list(self.tasks), timeout=self.wait_s(), return_when=cf.FIRST_COMPLETED)
            elif self.simulations_done():
                return
            else:  # unreachable: a full buffer of unseen items is past the watermark, so it trains
                raise RuntimeError(f"async run stalled: buffer {self.buffer.size}/{self.cfg.buffer_capacity}, no task")

    def simulations_done(self) -> bool:
        return not self.tasks and (self.completed >= self.cfg.simulation_budget or self.stopped_early is not None)

    def can_train(self) -> bool:
        if self.buffer.size == 0 or (self.cfg.max_train_steps is not None and self.step >= self.cfg.max_train_steps):
            return False
        if self.cfg.updates_per_simulation is not None:
            return self.owed >= 1 and (self.started or self.simulations_done())
        if self.simulations_done():
            return self.cfg.drain and self.buffer.num_unseen > 0
        return self.started

    def wait_s(self) -> float:
        nearest = min(task.deadline for task in self.tasks.values())
        return min(max(nearest - time.monotonic(), 0.0), 5.0)

    def now(self) -> float:
        return time.monotonic() - self.t0

    # ---------------------------------------------------------------- workers
    def launch(self) -> None:
        c = self.cfg
        while (len(self.tasks) < c.num_workers and self.stopped_early is None
               and self.completed + len(self.tasks) < c.simulation_budget and self.buffer.has_room()):
            if self.retries:  # a faulty λ first, unchanged (crashes_before_redraw)
                self.retried += 1
                self.submit(*self.retries.pop(0))
                continue
            lam_id = self.next_id
            self.next_id += 1
            lam, self.strategy_state = self.trainer.sample(self.strategy_state, jax.random.fold_in(self.key, lam_id), 1)
            launch = Launch(lam_id, np.asarray(lam, np.float64)[0], self.step, self.now())
            self.launches[lam_id] = launch
            if self.redraws_pending:
                self.redraws_pending -= 1
                self.redrawn += 1
            logger.info("launch id=%d step=%d lam=%s", lam_id, launch.step, format_lam(launch.lam))
            if self.trainer.hooks.launched is not None:
                self.trainer.hooks.launched(launch)
            self.submit(launch)

    def submit(self, launch: Launch, attempt: int = 0) -> None:
        for attempt in range(2):
            try:
                fut = self.pool.submit(call_solver, self.trainer.solver, launch.lam)
                break
            except (RuntimeError, cf.BrokenExecutor) as e:  # shut down, or broken before the task left
                if attempt or not self.restart_pool(self.pool.generation, blamed=False):
                    self.stop(f"the executor refused a task: {e}", failure=True)
                    return
        self.tasks[fut] = _Task(launch, self.pool.generation, time.monotonic() + self.cfg.task_timeout_s, attempt)

    def harvest(self, done: list[cf.Future]) -> None:
        for fut in done:
            task = self.tasks.pop(fut, None)
            if task is None:  # requeued by a pool restart earlier in this pass
                continue
            try:
                u = fut.result(timeout=0)
            except (cf.BrokenExecutor, cf.CancelledError) as e:
                self.fault(task, "crash", f"worker lost: {e!r}")
                self.restart_pool(task.generation)
            except Exception as e:
                self.fault(task, classify_exception(e), f"{type(e).__name__}: {e}")
            else:
                self.accept(task, u)

    def expire(self) -> None:
        now = time.monotonic()
        for fut, task in list(self.tasks.items()):
            if fut in self.tasks and now > task.deadline and not fut.done():
                del self.tasks[fut]
                fut.cancel()
                self.fault(task, "timeout", f"no result after {self.cfg.task_timeout_s:g} s")
                if not self.restart_pool(task.generation):
                    logger.warning("id=%d abandoned; a borrowed executor may keep its worker busy", task.launch.lam_id)

    def restart_pool(self, generation: int, *, blamed: bool = True) -> bool:
        """Rebuild an owned pool once per generation and requeue its unfinished tasks; unless a fault
        was counted for the break (``blamed``), the first task it failed counts as the crash."""
        if generation != self.pool.generation or not self.pool.restart():
            return False
        self.restarts += 1
        logger.warning("worker pool rebuilt (generation %d)", self.pool.generation)
        for fut, task in list(self.tasks.items()):
            ok = fut.done() and not fut.cancelled() and fut.exception() is None
            if task.generation < self.pool.generation and not ok:
                del self.tasks[fut]
                if not blamed and fut.done() and not fut.cancelled() and isinstance(fut.exception(), cf.BrokenExecutor):
                    blamed = True
                    self.fault(task, "crash", f"worker lost: {fut.exception()!r}")
                    continue
                self.requeued += 1
                logger.info("requeue id=%d lam=%s", task.launch.lam_id, format_lam(task.launch.lam))
                self.submit(task.launch, task.attempt)
        return True

    def fault(self, task: _Task, kind: str, reason: str) -> None:
        self.faults[kind] += 1
        launch = task.launch
        logger.warning("fault %s id=%d step=%d lam=%s: %s", kind, launch.lam_id, self.step, format_lam(launch.lam), reason)
        if sum(self.faults.values()) - self.fault_base > self.cfg.max_faults:
            kinds = ", ".join(f"{k} {v}" for k, v in self.faults.items() if v)
            self.stop(f"more than {self.cfg.max_faults} faults ({kinds})", failure=True)
        elif task.attempt < self.cfg.crashes_before_redraw:
            logger.info("retry id=%d attempt=%d lam=%s", launch.lam_id, task.attempt + 1, format_lam(launch.lam))
            self.retries.append((launch, task.attempt + 1))
        else:
            self.redraws_pending += 1

    def stop(self, reason: str, *, failure: bool = False) -> None:
        if self.stopped_early is None:
            logger.error("async run stops launching: %s", reason)
            self.stopped_early = reason
            if failure:
                self.failure = reason

    def accept(self, task: _Task, u: Any) -> None:
        launch = task.launch
        problem = check_trajectory(u, self.shape, ITEM_DTYPE)
        if problem is not None:
            self.fault(task, *problem)
            return
        conditioning = self.trainer.conditioning
        cond = np.zeros((0,), np.float32) if conditioning is None else conditioning(launch.lam)
        lost = self.buffer.push(trajectory_items(u, launch.lam, launch.lam_id, cond))
        self.completed += 1
        self.owed += self.cfg.updates_per_simulation or 0.0
        self.started |= self.buffer.size >= self.cfg.watermark
        logger.info("result id=%d step=%d frames=%d buffer=%d lost=%d", launch.lam_id, self.step, u.shape[0],
                    self.buffer.size, lost)
        if self.last_checkpoint is None and self.cfg.checkpoints:  # the first arrival is never lost
            self.save_checkpoint()

    # --------------------------------------------------------------- training
    def train_once(self) -> None:
        items, valid = self.buffer.sample(self.cfg.batch_size)
        batch = Batch(*(jnp.asarray(x) for x in (items.inputs, items.targets, items.cond, items.lam_id,
                                                  items.time_index)), weight=jnp.asarray(valid, jnp.float32))
        self.train_state, per_sample, metrics = self.trainer.train_step(self.train_state, batch)
        self.check_divergence(metrics)
        feedback = Feedback(lam=jnp.asarray(items.lam), lam_id=batch.lam_id, time_index=batch.time_index,
                            loss=per_sample, valid=jnp.asarray(valid),
                            step=jnp.asarray(self.train_state.step, jnp.int32))
        self.strategy_state = self.trainer.update(self.strategy_state, feedback)
        # Wait for the step: keeps wall-clock latencies honest and the host at most one step ahead.
        self.losses.append(float(metrics["loss"]))
        step, now = self.step, self.now()
        self.step += 1
        self.owed = max(self.owed - 1.0, 0.0)
        if self.cfg.max_train_steps is not None and self.step >= self.cfg.max_train_steps:
            self.stop(f"max_train_steps ({self.cfg.max_train_steps}) reached")
        self.trained += int(valid.sum())
        for lam_id in np.unique(items.lam_id[valid]).tolist():
            if lam_id not in self.latencies and lam_id in self.launches:  # launched before a resume: unknown
                launch = self.launches[lam_id]
                self.latencies[lam_id] = Latency(lam_id, step - launch.step, now - launch.time_s)
                logger.info("first use id=%d step=%d latency=%d steps %.3f s", lam_id, step,
                            step - launch.step, now - launch.time_s)

        if self.trainer.hooks.trained is not None:
            self.trainer.hooks.trained(self.step, self.train_state, self.record(int(valid.sum())))
        every, every_s = self.cfg.checkpoint_every, self.cfg.checkpoint_every_s
        if (every and self.step % every == 0) or (every_s and time.monotonic() - self.saved_s >= every_s):
            self.save_checkpoint()

    def check_divergence(self, metrics: dict) -> None:
        """Raise `AsyncDiverged` if the step just taken diverged (the shared `training.divergence` rule)."""
        loss = float(metrics["loss"])
        finite = metrics["finite"] if "finite" in metrics else tree_all_finite(self.train_state.params)
        why = divergence(loss, bool(finite), self.losses, self.cfg.divergence_factor)
        if why is None:
            return
        where = ("no checkpoint written" if self.last_checkpoint is None else
                 f"last good checkpoint: step {self.last_checkpoint} in {self.cfg.checkpoint_dir}")
        raise AsyncDiverged(f"surrogate diverged at training step {self.step + 1} ({why}); {where}; "
                            "try a lower optimizer.learning_rate")

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        if self.trainer.hooks.saving is not None:
            self.trainer.hooks.saving(self.step)
        async_checkpoint.save(self)
        self.saved_s = time.monotonic()

    def resume(self, seed: int) -> None:
        """Continue from the newest intact checkpoint in ``checkpoint_dir``, if there is one."""
        async_checkpoint.resume(self, seed)

    def record(self, batch_items: int) -> dict:
        """The numbers of the step just taken, for `AsyncHooks.trained`."""
        return {"train_loss": self.losses[-1], "buffer_size": self.buffer.size, "simulations": self.completed,
                "trained_samples": self.trained, "batch_items": batch_items, "owed_updates": self.owed,
                "faults": sum(self.faults.values()), "wall_s": self.now()}

    def summary(self) -> AsyncSummary:
        return summarize(self)
