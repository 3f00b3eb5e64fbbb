"""Online active-learning experiments: ``train_and_evaluate(config, workdir)``.

Builds the simulator, surrogate, strategy and `OnlineEngine` from an ml_collections
config (see ``configs/online_1d.py``), runs the fused loop with host syncs every
``online.steps_per_sync`` steps, and leaves in the workdir:

  config.json        the config the run was made with (a resume must match it)
  metrics.jsonl      one record per online step (+ evaluation records)
  samples/*.npy      the λ each sync drew (for sampling-density plots)
  checkpoints/       orbax checkpoints of the whole OnlineState
  tb/                TensorBoard events
  summary.json       the five numbers on the score set (per trajectory and per transition,
                     one-step and rollout), its size and draw, budget and wall time (inf as "inf")
  test_errors.npz    every score-set error, per trajectory and per (trajectory, frame)
  heatmap_errors.npz, rollouts.npz, plot_inputs.json
                     what the figures are drawn from (plots only; `plots.plot_run`)
  *.png              heat map, sampling density, error over training, rollouts (plots only);
                     with ``plots_in_child`` a child process draws them and writes figures.json

Killed at any point and started again with the same command, a run resumes from its
last checkpoint and ends with the same numbers as an uninterrupted one. A run that diverges
stops with one line and checkpoints nothing of the diverged state (`guards`).
"""

from __future__ import annotations

import functools
import glob
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax import models
from qsal_jax.experiments import preflight, run_outputs, test_sets
from qsal_jax.experiments.guards import RunStopped, check_predictions, check_sync, last_good_checkpoint, resumed_records
from qsal_jax.experiments.side_work import SideWork
from qsal_jax.experiments.validation import ConfigError, build_strategy, first_line, validate_config
from qsal_jax.experiments.workdir import (MetricLog, PhaseTimes, Progress, claim_workdir, config_hash, lock_workdir,
                                         write_json)
from qsal_jax.online.engine import OnlineEngine
from qsal_jax.reporting.run_files import save_arrays
from qsal_jax.simulation import get_problem
from qsal_jax.training import checkpoint
from qsal_jax.training.sharding import is_primary, local_replica, place, sync_processes, to_host
from qsal_jax.training.state import create_train_state, make_optimizer
from qsal_jax.training.step import bind_train_step
from qsal_jax.training.surrogate import surrogate_apply


def build_engine(config):
    """(engine, model, simulator) from a config; no arrays are created."""
    sim = get_problem(config.problem.name, **dict(config.problem.get("kwargs", {})))
    model_cfg = dict(config.model)
    model_cfg.pop("ensemble_size", None)
    residual = model_cfg.pop("residual", True)
    model_cfg.setdefault("out_channels", sim.state_shape[0])
    if config.train.get("bf16", False):
        model_cfg["dtype"] = jnp.bfloat16  # the module computes in bf16; master weights stay float32
    try:
        model = models.get_model(model_cfg)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"model = {dict(config.model)}: {first_line(e)}") from None
    apply_fn = surrogate_apply(model, residual)  # u_{t+1} = u_t + f_θ(u_t), as the async mode trains
    optimizer = make_optimizer(dict(config.train.optimizer))
    compute_dtype = jnp.bfloat16 if config.train.get("bf16", False) else None
    step = bind_train_step(apply_fn, optimizer, loss_name=config.train.loss, compute_dtype=compute_dtype,
                           signal_name=config.strategy.get("signal_metric") or None)
    # The driver's context goes to every strategy; the flops are traced only if one asks (OGAS's "auto").
    flops = functools.cache(lambda: surrogate_step_flops(step, model, sim, optimizer, config))
    strategy = build_strategy(config, sim, flops, log=lambda line: print(line, flush=True))
    engine = OnlineEngine(
        simulator=sim,
        strategy=strategy,
        train_step=step,
        apply_fn=apply_fn,
        clients_per_step=config.online.clients_per_step,
        train_steps_per_step=config.online.train_steps_per_step,
        batch_size=config.train.batch_size,
        buffer_capacity=config.buffer.capacity,
        buffer_policy=config.buffer.policy,
        seen_threshold=config.buffer.seen_threshold,
        watermark=config.buffer.watermark,
        signal=config.strategy.get("signal", "loss"),
        ensemble_size=config.model.get("ensemble_size", 1),
        mesh=_mesh(config.online.get("shard", "auto")),
        importance_clip=float(config.train.get("importance_clip", 0.0)),
        shard_buffer=bool(config.buffer.get("sharded", False)),
        objective=config.train.get("objective", "one_step"),
    )
    return engine, model, sim, optimizer


def surrogate_step_flops(step, model, sim, optimizer, config) -> float:
    """Analytic flops of one train step of the whole surrogate (all ensemble members) at the
    config's batch size, from abstract shapes: what OGAS's ``train_every="auto"`` is sized against."""
    from qsal_jax.training.cost import jaxpr_cost
    from qsal_jax.training.step import make_batch

    x = jnp.zeros((1,) + sim.state_shape, sim.dtype)
    cond = jnp.zeros((1, len(sim.cond_names)), sim.dtype)
    state = jax.eval_shape(lambda k: create_train_state(k, model, x, optimizer, sample_cond=cond), jax.random.PRNGKey(0))
    b = int(config.train.batch_size)
    batch = jax.eval_shape(lambda: make_batch(jnp.zeros((b,) + sim.state_shape, sim.dtype),
                                              jnp.zeros((b,) + sim.state_shape, sim.dtype),
                                              jnp.zeros((b, len(sim.cond_names)), sim.dtype)))
    return int(config.model.get("ensemble_size", 1)) * jaxpr_cost(step, state, batch)[0]


def resolve_ogas_schedule(settings: dict, sim, surrogate_flops: float) -> dict:
    """OGAS settings with ``train_every="auto"`` replaced by its k for this surrogate (printed).
    The engine does not need it (OGAS reads the flops from the driver's context); a report does."""
    from qsal_jax.proposals.ogas import make_ogas

    resolved = make_ogas(sim.space, **dict(settings, surrogate_step_flops=surrogate_flops)).settings
    k = resolved["train_every"]
    print(f"ogas: train_every=auto -> {k} (a training round {resolved['generator_round_flops']:.3g} flops, "
          f"a surrogate step {surrogate_flops:.3g}, share {resolved['generator_share']:g})", flush=True)
    return dict(settings, train_every=k, surrogate_step_flops=surrogate_flops)


def _mesh(shard):
    """``online.shard``: True, False or "auto" (shard over all devices of an accelerator backend)."""
    if shard == "auto":
        shard = jax.device_count() > 1 and jax.default_backend() != "cpu"
    if not shard:
        return None
    from qsal_jax.training.sharding import make_mesh

    return make_mesh()


def init_state(engine: OnlineEngine, model, optimizer, seed: int):
    sim = engine.simulator
    key = jax.random.PRNGKey(seed)
    key, model_key = jax.random.split(key)
    x = jnp.zeros((1,) + sim.state_shape, sim.dtype)
    cond = jnp.zeros((1, len(sim.cond_names)), sim.dtype)
    make = lambda k: create_train_state(k, model, x, optimizer, sample_cond=cond)
    if engine.ensemble_size > 1:
        train = jax.vmap(make)(jax.random.split(model_key, engine.ensemble_size))
    else:
        train = make(model_key)
    return engine.init(key, train)


def count_state_params(engine: OnlineEngine, model) -> int:
    """Parameters of one surrogate (one ensemble member) on the engine's state shape."""
    from qsal_jax.models import count_params

    sim = engine.simulator
    x = jnp.zeros((1,) + sim.state_shape, sim.dtype)
    cond = jnp.zeros((1, len(sim.cond_names)), sim.dtype)
    return count_params(jax.eval_shape(model.init, jax.random.PRNGKey(0), x, cond))


def check_config(config) -> None:
    """The online kind's validation (`validation.validate_config`): nothing is built."""
    validate_config(config)


def _scalars(metrics: dict, i: int) -> dict:
    return {k: float(v[i]) for k, v in metrics.items() if k != "lam"}


def scored_params(engine: OnlineEngine, state):
    """Parameters every strategy is scored with: member 0 of an ensemble, so that an ensemble's
    averaging never flatters a comparison against single models."""
    params = state.train.params
    if engine.ensemble_size > 1:
        params = jax.tree_util.tree_map(lambda x: x[0], params)
    return params


def train_and_evaluate(config, workdir: str, *, overwrite: bool = False, log=print, plots_in_child: bool = False) -> dict:
    """Run (or resume) one online experiment; returns the summary written to ``summary.json``.

    The workdir is locked for the whole run: a second run on it fails at once. In a
    multi-process run (`training.sharding.maybe_initialize_distributed`) every process runs the
    same program and writes checkpoints collectively; only process 0 takes the lock, scores, logs
    and writes metrics, samples, plots and the summary (the others return ``{"process_index": i}``).
    """
    if not is_primary():
        return _train_and_evaluate(config, workdir, overwrite=overwrite, log=lambda *a, **k: None, plots_in_child=False)
    with lock_workdir(workdir):  # before claim_workdir: an overwrite must happen under the lock
        return _train_and_evaluate(config, workdir, overwrite=overwrite, log=log, plots_in_child=plots_in_child)


class _Opened(NamedTuple):
    engine: OnlineEngine
    scores: Any  # test_sets.ScoreSet on process 0, None on the others
    state: Any  # the OnlineState to continue from (fresh, or the newest intact checkpoint)
    start: int  # its online step
    losses: list  # the resumed records' train losses: the divergence rule's running scale
    metric_log: MetricLog


def _open_run(config, workdir: str, *, overwrite: bool, log, times: PhaseTimes) -> _Opened:
    """Build and check the run, make its score set, claim the workdir and resume from its newest
    intact checkpoint (what an interrupted run logged past it is dropped)."""
    with times("setup"):
        engine, model, sim, optimizer = built = build_engine(config)
        preflight.dry_run(config, built, lambda: init_state(engine, model, optimizer, config.seed), log=log)
    # The score set is made before the workdir is claimed: a config whose score set cannot be
    # simulated leaves nothing behind.
    e, primary, scores = config.eval, is_primary(), None
    if primary:
        with times("score_set"):
            scores = test_sets.make_score_set(sim, dict(config.problem.get("kwargs", {})), size=e.score_size,
                                              draw=e.get("score_draw", "halton"), seed=e.seed, log=log)
        claim_workdir(workdir, config, overwrite=overwrite, log=log)
    sync_processes(f"claimed {workdir}")  # no process reads checkpoints before an overwrite is done
    metric_log = MetricLog(os.path.join(workdir, "metrics.jsonl"))
    state = init_state(engine, model, optimizer, config.seed)
    if engine.mesh is not None:
        state = place(state, engine.state_shardings(state))
    restored = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), state, config_hash=config_hash(config))
    start = 0
    if restored is not None:
        state, start = restored
        log(f"resumed from checkpoint at online step {start}")
    losses = resumed_records(metric_log, start, log if primary else None)
    if primary:
        _drop_after(start, metric_log, os.path.join(workdir, "samples"))
        log(f"{sim.name}: λ in {sim.space.dim} dims, score set of {scores.info['size']} trajectories "
            f"({scores.info['draw']}), budget {config.online.num_steps * engine.clients_per_step} simulations, "
            f"strategy {config.strategy.name}")
    return _Opened(engine, scores, state, start, losses, metric_log)


def _train_and_evaluate(config, workdir: str, *, overwrite: bool, log, plots_in_child: bool) -> dict:
    times = PhaseTimes()  # where the wall time goes (summary.json: wall_split_s)
    engine, scores, state, start, losses, metric_log = _open_run(config, workdir, overwrite=overwrite, log=log,
                                                                 times=times)
    e, primary, chash = config.eval, is_primary(), config_hash(config)
    total, sync = config.online.num_steps, config.online.steps_per_sync
    ckpt_dir, samples_dir = os.path.join(workdir, "checkpoints"), os.path.join(workdir, "samples")
    scored = lambda st: local_replica(scored_params(engine, st))
    # On the device once: the worker and the main thread score it at the same time at the end.
    score_u, score_cond = (jnp.asarray(scores.u), jnp.asarray(scores.cond)) if primary else (None, None)
    score = lambda params, one_step, rollout: test_sets.score(engine.apply_fn, params, score_u, score_cond,
                                                              one_step=one_step, rollout=rollout)

    run = jax.jit(engine.run_steps, static_argnums=1, donate_argnums=0)
    writer = _tensorboard(workdir, start) if primary else None
    progress = Progress(total, start, log)
    wall = 0.0
    step = start
    last_checkpoint = start
    rejected = int(state.num_rejected)
    final_eval = None
    stopped = []  # set by the lane when an evaluation finds divergence: no later checkpoint is written

    def log_sync(records, evaluation, rejected_so_far, last_good):
        """Metric records (and TensorBoard, progress line) of one sync, on the side-work lane; the
        records are on disk before the lane writes the checkpoint queued behind them."""
        if stopped:  # the run has diverged: the steps the loop ran on meanwhile are not recorded
            return
        if evaluation is not None:
            one_step = evaluation.result()["one_step"]
            records[-1].update({f"test_{k}": v for k, v in test_sets.five_numbers(one_step).items()})
            if not np.isfinite(one_step).all():
                stopped.append(records[-1]["step"])
        metric_log.write(records)
        if stopped:  # after the record that shows it; before the checkpoint queued behind it
            check_predictions(one_step, records[-1]["step"], last_good)
        if writer is not None:
            for r in records:
                for k, v in r.items():
                    if k != "step":
                        writer.add_scalar(k, v, r["step"])
        progress.update(records[-1]["step"], loss=records[-1]["train_loss"], buffer=int(records[-1]["buffer_size"]),
                        rejected=rejected_so_far,
                        **({"test_mean": records[-1]["test_mean"]} if "test_mean" in records[-1] else {}))

    # Evaluations, metric records and checkpoint writes go to one worker thread, in order, while
    # the loop runs on; a multi-process run does them in step instead (its saves are collectives).
    # The lane is inside the checkpointer: a run stopped by an error finishes its queued writes first.
    with checkpoint.Checkpointer(ckpt_dir) as ckpt, SideWork(background=jax.process_count() == 1) as side:
        write_checkpoint = lambda at, snap: None if stopped else ckpt.write(at, snap)  # none of a diverged state
        while step < total:
            n = min(sync, total - step)
            t0 = time.perf_counter()
            with times("first_sync" if step == start else "loop"):  # the first includes compilation
                state, metrics = run(state, n)
                metrics = to_host(metrics)
            wall += time.perf_counter() - t0
            side.check()
            rejected += int(np.sum(metrics["rejected"]))
            last_good = last_good_checkpoint(ckpt_dir, last_checkpoint)
            check_sync(metrics, step, n, last_good, rejected, (step + n) * engine.clients_per_step, losses)
            step += n
            if primary:  # the others run the same steps, gathers and checkpoint saves (collectives), no more
                records = [{"step": step - n + i + 1, **_scalars(metrics, i)} for i in range(n)]
                save_arrays(os.path.join(samples_dir, f"lam_{step:08d}.npy"), np.asarray(metrics["lam"]))
                evaluation = None
                if (e.every and step % e.every == 0) or step == total:
                    with times("evaluation"):  # a copy: the loop's next call donates the state
                        params = jax.block_until_ready(jax.tree_util.tree_map(jnp.copy, scored(state)))
                    # The one-step errors; the final rollout is scored by this thread after the loop.
                    evaluation = side.submit("evaluation", score, params, True, False)
                    if step == total:
                        final_eval = evaluation
                side.submit("records", log_sync, records, evaluation, rejected, last_good)
            if step % config.online.checkpoint_every == 0 or step == total:
                with times("checkpoint"):
                    snap = checkpoint.snapshot(state, config_hash=chash)
                side.submit("checkpoint", write_checkpoint, step, snap)
                last_checkpoint = step

        if not primary:
            side.drain()
            return {"process_index": jax.process_index(), "simulations": int(state.next_lam_id)}
        # The final score: the rollout errors and the heat-map grid here, while the worker scores
        # the one-step errors (a resumed run that had already finished its steps scores both here).
        with times("evaluation"):
            errs = score(scored(state), final_eval is None, True)
        draw = config.get("plots", True)
        if draw:
            with times("plots"):
                grid = run_outputs.score_heatmap_grid(workdir, config, engine, scored(state))
        with times("evaluation"):
            if final_eval is not None:
                errs = {**final_eval.result(), **errs}  # one-step first, as before
            else:  # a resumed run that had finished its steps: its evaluation was not checked by the lane
                check_predictions(errs["one_step"], step, f"checkpoint {step} holds this state")
        with times("checkpoint"):
            side.drain()
    summary = run_outputs.run_summary(config, engine, state, scores, errs, wall)
    save_arrays(os.path.join(workdir, "test_errors.npz"), lam=scores.lam, **errs)
    if draw:
        with times("plots"):
            summary.update(run_outputs.write_plot_files(workdir, config, engine, scored(state), scores, errs, grid,
                                                        plots_in_child))
    if writer is not None:
        writer.close()
    summary["wall_split_s"] = times.split()
    summary["side_work_s"] = dict(side.busy_s)
    write_json(os.path.join(workdir, "summary.json"), summary, indent=1)  # strict JSON: inf as "inf"
    log(f"score set ({scores.info['size']}), per-trajectory one-step nRMSE: "
        + "  ".join(f"{k} {v:.4g}" for k, v in summary["one_step_nrmse"].items()))
    if draw and plots_in_child:
        log(f"figures: drawn by process {summary['plots_process']} into {workdir} "
            "(figures.json when done; plots.wait_for_figures)")
    return summary


def _drop_after(step: int, metric_log: MetricLog, samples_dir: str) -> None:
    """Forget what an interrupted run logged past its last checkpoint (resumed at ``step``)."""
    os.makedirs(samples_dir, exist_ok=True)
    metric_log.truncate(step)
    for f in glob.glob(os.path.join(samples_dir, "*.npy")):
        if int(os.path.basename(f).split("_")[1].split(".")[0]) > step:
            os.remove(f)


def _tensorboard(workdir, start: int = 0):
    """A TensorBoard writer; on a resume, events past ``start`` (logged after the last
    checkpoint, about to be logged again) are purged so no step appears twice."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # optional
        return None
    return SummaryWriter(os.path.join(workdir, "tb"), purge_step=start + 1 if start else None)
