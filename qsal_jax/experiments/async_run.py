"""Asynchronous experiments (``config.kind = "async"``): ``train_and_evaluate(config, workdir)``.

An external solver program per simulation (``solver.command``) in a worker pool, a surrogate in
the fused engine's residual form training on results as they arrive (`online.async_mode`), and
the workdir a fused run leaves (`experiments.online`):

  config.json, .lock     the config (a resume must match it); one run at a time
  metrics.jsonl          one record per training step (loss, buffer, simulations, steps owed by
                         pacing, faults), with ``test_*`` at each evaluation on the score set
  samples/launches.jsonl every λ launched: id, λ by name, training step, time, strategy, signal
  samples/lam_*.npy      the same λ, per checkpoint (what plots and exports read)
  checkpoints/           at the first arrival, then on the step and time schedule, and at the end
  tb/                    TensorBoard scalars under ``train/``, ``test/`` and ``run/``
  summary.json           score-set numbers, faults by kind, updates per simulation, latencies
  test_errors.npz, rollouts.npz, plot_inputs.json, *.png, report.md

Records are on disk before the checkpoint they belong to is written; a resumed run drops what
was logged past its checkpoint. A line says whether the run resumed or started fresh.
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

import numpy as np

from qsal_jax.experiments import test_sets
from qsal_jax.experiments.async_scores import external_score_set
from qsal_jax.experiments.async_setup import build
from qsal_jax.experiments.workdir import MetricLog, claim_workdir, lock_workdir, read_json
from qsal_jax.reporting.run_files import save_arrays
from qsal_jax.online.async_records import AsyncDiverged, AsyncFailed, AsyncHooks

PROGRESS_EVERY_S = 5.0


def check_config(config) -> None:
    """Every check `build` makes, nothing written (a ValueError naming the field)."""
    build(config, "/nonexistent-workdir")


class Records:
    """The run's records, as `AsyncHooks`: metric records, λ launched, evaluations and progress."""

    def __init__(self, workdir: str, c, parts, log):
        self.workdir, self.c, self.parts, self.log = workdir, c, parts, log
        self.metric_log = MetricLog(os.path.join(workdir, "metrics.jsonl"))
        self.samples = os.path.join(workdir, "samples")
        self.pending: list[dict] = []
        self.launches: list[Any] = []
        self.scores = None  # the score set, made at the first evaluation
        self.last_saved: int | None = None
        self.first_step_s: float | None = None  # wall time once the train step has compiled
        self.first_completed = 0
        self.shown_s = 0.0
        self.writer = None

    def hooks(self) -> AsyncHooks:
        return AsyncHooks(self.started, self.launched, self.trained, self.saving)

    def started(self, resumed: int | None, next_id: int) -> None:
        os.makedirs(self.samples, exist_ok=True)
        if resumed is None:
            self.log("no checkpoint in the workdir: started fresh")
        else:
            self.log(f"resumed from checkpoint at training step {resumed}")
        step = resumed or 0
        self.last_saved = resumed
        self.metric_log.truncate(step)
        path = os.path.join(self.samples, "launches.jsonl")
        if os.path.exists(path):  # keep the launches the checkpoint knows (a line cut by a kill is dropped)
            with open(path) as f:
                keep = [line for line in f if _launch_id(line) < (next_id if resumed is not None else 0)]
            with open(path, "w") as f:
                f.writelines(keep)
        for f in glob.glob(os.path.join(self.samples, "lam_*.npy")):
            if resumed is None or int(os.path.basename(f)[4:-4]) > step:
                os.remove(f)
        self.writer = _tensorboard(self.workdir, step)

    def launched(self, launch) -> None:
        self.launches.append(launch)

    def trained(self, step: int, train_state, record: dict) -> None:
        record = {"step": step, **record}
        now = time.perf_counter()
        if self.first_step_s is None:
            self.first_step_s, self.first_completed = now, record["simulations"]
        every = int(self.c.eval.get("every", 0))
        if every and step % every == 0:
            record.update({f"test_{k}": v for k, v in self.evaluate(train_state.params, step).items()})
        self.pending.append(record)
        if now - self.shown_s >= PROGRESS_EVERY_S or "test_mean" in record:
            self.shown_s = now
            self.progress(record, now)

    def evaluate(self, params, step: int) -> dict:
        """Five numbers of the one-step error on the score set; `AsyncDiverged` on a non-finite prediction."""
        if self.scores is None:
            self.scores = external_score_set(self.c, self.parts, log=self.log)
        errs = test_sets.score(self.parts.apply_fn, params, self.scores.u, self.scores.cond, rollout=False)
        bad = int(np.sum(~np.isfinite(errs["one_step"])))
        if bad:
            where = ("no checkpoint written" if self.last_saved is None else
                     f"last good checkpoint: step {self.last_saved} in {self.parts.run_config.checkpoint_dir}")
            raise AsyncDiverged(f"surrogate diverged at training step {step}: its one-step predictions of {bad} of "
                                f"the {errs['one_step'].size} score-set trajectories are not finite; {where}; "
                                "try a lower optimizer.learning_rate")
        return test_sets.five_numbers(errs["one_step"])

    def progress(self, r: dict, now: float) -> None:
        """One line: simulations done, their rate and the ETA since the first step (compile time left out)."""
        budget = self.parts.run_config.simulation_budget
        done = r["simulations"] - self.first_completed
        rate = done / (now - self.first_step_s) if now > self.first_step_s and done else float("nan")
        eta = (budget - r["simulations"]) / rate if rate == rate and rate > 0 else float("nan")
        test = f"  test_mean {r['test_mean']:.4g}" if "test_mean" in r else ""
        speed = f"{rate:6.2f} sims/s  eta {eta:6.0f}s" if eta == eta else "  (measuring rate and eta)"
        self.log(f"[{r['simulations']:>5d}/{budget} simulations] {speed}  step {r['step']}"
                 f"  loss {r['train_loss']:.4g}  buffer {r['buffer_size']}  faults {r['faults']}{test}")

    def saving(self, step: int) -> None:
        self.flush(step)
        self.last_saved = step

    def flush(self, step: int) -> None:
        """Write what is pending: records and launches (λ by name, with strategy and signal)."""
        if self.pending:
            self.metric_log.write(self.pending)
            if self.writer is not None:
                for r in self.pending:
                    for k, v in r.items():
                        if k != "step":
                            space = "test" if k.startswith("test_") else "train" if k == "train_loss" else "run"
                            self.writer.add_scalar(f"{space}/{k.removeprefix('test_').removeprefix('train_')}", v,
                                                   r["step"])
            self.pending = []
        if self.launches:
            names = self.parts.space.names
            signal = (self.c.get("train", None) or {}).get("loss", "mse")
            with open(os.path.join(self.samples, "launches.jsonl"), "a") as f:
                for x in self.launches:
                    f.write(json.dumps({"id": x.lam_id, "lam": dict(zip(names, map(float, x.lam))), "step": x.step,
                                        "time_s": round(x.time_s, 4), "strategy": self.c.strategy.name,
                                        "signal": signal}) + "\n")
            path = os.path.join(self.samples, f"lam_{step:08d}.npy")
            lam = np.stack([x.lam for x in self.launches]).astype(np.float32)
            save_arrays(path, np.concatenate([np.load(path), lam]) if os.path.exists(path) else lam)
            self.launches = []


def _launch_id(line: str) -> float:
    try:
        return json.loads(line)["id"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def _tensorboard(workdir: str, start: int):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # optional
        return None
    return SummaryWriter(os.path.join(workdir, "tb"), purge_step=start + 1 if start else None)


def _init_state(c, parts):
    import jax
    import jax.numpy as jnp

    from qsal_jax import training

    # The model key as the fused engine derives it (`online.init_state`): one seed, one initial surrogate.
    key_run, key_model = jax.random.split(jax.random.PRNGKey(int(c.seed)))
    x = jnp.zeros((1,) + tuple(parts.trajectory_shape[1:]), jnp.float32)
    cond = jnp.zeros((1, parts.cond_dim), jnp.float32)
    state = training.create_train_state(key_model, parts.model, x, parts.optimizer, sample_cond=cond)
    return state, key_run


def _executor(c):
    if c.executor.kind == "process":
        return None  # the asynchronous mode's own spawn pool of run.num_workers processes
    from dask.distributed import Client

    return Client(c.executor.address or None).get_executor()


def train_and_evaluate(config, workdir: str, *, overwrite: bool = False, log=print) -> dict:
    """Run (or resume) the async experiment of ``config`` in ``workdir``; returns ``summary.json``'s content.

    Raises ValueError (a refused setting, nothing written), `AsyncDiverged`, or `AsyncFailed`
    (the fault limit, no simulation completed; no summary written, the same call resumes).
    """
    from qsal_jax import training
    from qsal_jax.online.async_mode import AsyncTrainer

    c = config
    parts = build(c, workdir)
    with lock_workdir(workdir):
        claim_workdir(workdir, c, overwrite=overwrite, log=log)
        summary_path = os.path.join(workdir, "summary.json")
        if os.path.exists(summary_path):
            log(f"the run in {workdir} has finished; its summary is kept")
            return read_json(summary_path)
        state, key_run = _init_state(c, parts)
        loss = (c.get("train", None) or {}).get("loss", "mse")
        step = training.make_train_step(parts.apply_fn, parts.optimizer, loss_name=loss, donate=False)
        records = Records(workdir, c, parts, log)
        trainer = AsyncTrainer(parts.solver, parts.strategy, step, parts.run_config, executor=_executor(c),
                               conditioning=parts.conditioning, trajectory_shape=parts.trajectory_shape,
                               hooks=records.hooks())
        t0 = time.perf_counter()
        result = trainer.run(state, key_run)
        s = result.summary
        records.flush(s.num_train_steps)
        if s.failure is not None:
            faults = sum(s.faults.values())
            raise AsyncFailed(f"the run did not finish: {s.failure}; {s.num_completed} of "
                              f"{parts.run_config.simulation_budget} simulations completed, {faults} faults; "
                              "fix the cause and run the same command to resume")
        from qsal_jax.experiments.async_report import finish

        return finish(c, workdir, parts, records, result, time.perf_counter() - t0, log)


def restore_trained(c, workdir: str):
    """``(apply_fn, params, training step)`` of the newest intact checkpoint of the async run in
    ``workdir`` (its config ``c``), or None without one: what `runs.load_run` hands back."""
    from qsal_jax.online.async_mode import AsyncTrainer

    parts = build(c, workdir)
    state, _ = _init_state(c, parts)
    trainer = AsyncTrainer(parts.solver, parts.strategy, lambda s, b: s, parts.run_config,
                           conditioning=parts.conditioning, trajectory_shape=parts.trajectory_shape)
    restored = trainer.restore(state)
    return None if restored is None else (parts.apply_fn, restored[0].params, int(restored[1]))
