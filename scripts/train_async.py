"""Run the asynchronous mode: ``python scripts/train_async.py --config=configs/async_burgers.py --workdir=runs/x``.

An external solver program per simulation, in a process pool (or on a dask cluster), a surrogate
training on results as they arrive. Writes ``config.json``, ``checkpoints/`` and
``summary.json`` (faults, latencies, counts) into the workdir; the same command resumes an
interrupted run from its last checkpoint and leaves a finished one as it is.

Every setting is checked before anything is written: a refused config leaves no workdir behind.
A run that did not do its work (the fault limit, no simulation completed) or whose surrogate
diverged exits non-zero with one line and writes no ``summary.json``, so the same command resumes it.
"""

import json
import os
import sys
from typing import Any, NamedTuple

from absl import app, flags, logging
from ml_collections import config_flags

from qsal_jax.experiments.cli import one_line_flag_parser

config_flags.DEFINE_config_file("config", None, "Async config file (path[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints and summary.json go.")
flags.DEFINE_bool("overwrite", False, "Start afresh even if the workdir holds a run of another config.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
SOLVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "external_solver.py")
EXECUTORS = ("process", "dask")


def make_solver(c):
    """scripts/external_solver.py as an `ExecutableSolver` with the config's grid and scheme."""
    from qsal_jax.online.external import ExecutableSolver

    s = c.solver
    return ExecutableSolver((sys.executable, SOLVER, "--lam-file", "{lam}", "--out", "{out}",
                             "--num-points", str(s.num_points), "--num-frames", str(s.num_frames),
                             "--substeps", str(s.substeps), "--nu", str(s.nu)), timeout_s=float(s.timeout_s))


def make_executor(c):
    if c.executor.kind == "process":
        return None  # the asynchronous mode's own spawn pool of run.num_workers processes
    from dask.distributed import Client

    return Client(c.executor.address or None).get_executor()


def _field(name: str, build, *args, **kwargs):
    """``build(*args, **kwargs)``, its error (KeyError, ValueError, TypeError) as one ValueError naming ``name``."""
    try:
        return build(*args, **kwargs)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{name}: {e.args[0] if e.args else e}") from None


class Parts(NamedTuple):
    """What a run is built from, each part checked against the config field it comes from."""

    strategy: Any
    model: Any
    optimizer: Any
    run_config: Any  # AsyncConfig
    trajectory_shape: tuple


def build(c, workdir: str) -> Parts:
    """Check and build every cheap part of the run of config ``c``; ValueError naming the field.

    Runs before the workdir is touched, so a refused config leaves nothing behind.
    """
    from qsal_jax import models, proposals, training
    from qsal_jax.experiments.workdir import config_hash
    from qsal_jax.online.async_mode import AsyncConfig, AsyncTrainer
    from qsal_jax.simulation.param_space import ParamSpace

    n, t = int(c.solver.num_points), int(c.solver.num_frames)
    if t < 2:
        raise ValueError(f"solver.num_frames = {t}: a trajectory needs at least 2 frames to give a training pair")
    if c.executor.kind not in EXECUTORS:
        raise ValueError(f"executor.kind = {c.executor.kind!r}: must be one of {', '.join(EXECUTORS)}")
    space = _field("space", ParamSpace.box, {name: tuple(bounds) for name, bounds in c.space.items()})
    _field("strategy.name", proposals.get, c.strategy.name)
    strategy = _field("strategy.settings", proposals.build, c.strategy.name, space, **dict(c.strategy.settings))
    model = _field("model.name", models.build, c.model.name)
    optimizer = _field("optimizer", training.make_optimizer, dict(c.optimizer))
    run_config = _field("run", AsyncConfig.from_config, dict(c.run), config_hash=config_hash(c),
                        checkpoint_dir=os.path.join(os.path.abspath(workdir), "checkpoints"))
    shape = (t, 1, n)
    # Its own checks (buffer room for a trajectory, solver timeout below the task timeout), before any run.
    AsyncTrainer(make_solver(c), strategy, lambda s, b: s, run_config, trajectory_shape=shape)
    return Parts(strategy, model, optimizer, run_config, shape)


def run(c, workdir: str, overwrite: bool = False) -> dict:
    """Run (or resume) the async experiment of config ``c`` in ``workdir``; the summary written.

    Raises ValueError (a refused setting, nothing written), `AsyncDiverged`, or `AsyncFailed`
    (the fault limit, no simulation completed; no summary written, the same call resumes).
    """
    import jax
    import jax.numpy as jnp

    from qsal_jax import training
    from qsal_jax.experiments.workdir import lock_workdir, start_or_reuse
    from qsal_jax.online.async_mode import AsyncTrainer
    from qsal_jax.online.async_records import AsyncFailed

    parts = build(c, workdir)
    with lock_workdir(workdir):
        finished = start_or_reuse(workdir, c, overwrite=overwrite)  # a finished run of this config is kept
        if finished is not None:
            return finished
        key_model, key_run = jax.random.split(jax.random.PRNGKey(int(c.seed)))
        n = parts.trajectory_shape[-1]
        state = training.create_train_state(key_model, parts.model, jnp.zeros((1, 1, n), jnp.float32), parts.optimizer)
        step = training.make_train_step(parts.model.apply, parts.optimizer, donate=False)
        trainer = AsyncTrainer(make_solver(c), parts.strategy, step, parts.run_config, executor=make_executor(c),
                               trajectory_shape=parts.trajectory_shape)
        s = trainer.run(state, key_run).summary
        if s.failure is not None:
            faults = sum(s.faults.values())
            raise AsyncFailed(f"the run did not finish: {s.failure}; {s.num_completed} of "
                              f"{parts.run_config.simulation_budget} simulations completed, {faults} faults; "
                              "fix the cause and run the same command to resume")
        summary = {"experiment": c.name, "strategy": c.strategy.name, "seed": int(c.seed),
                   "stopped_early": s.stopped_early, **s.metrics()}
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
    return summary


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.online.async_records import AsyncDiverged, AsyncFailed
    from qsal_jax.training.checkpoint import CheckpointError

    try:
        s = run(FLAGS.config, FLAGS.workdir, FLAGS.overwrite)
    except (WorkdirError, CheckpointError, OSError, ValueError, AsyncDiverged, AsyncFailed) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:  # the pool is already shut down (`AsyncTrainer.run` closes it on the way out)
        sys.exit("error: interrupted; run the same command to resume from the last checkpoint")
    print(f"{s['num_completed']:.0f} simulations completed, {s['num_train_steps']:.0f} training steps, "
          f"final loss {s['final_loss']:.4g}, faults {sum(v for k, v in s.items() if k.startswith('faults/')):.0f}, "
          f"latency {s['latency_steps/mean']:.1f} steps (mean), {s['wall_s']:.1f} s")
    print(f"summary: {os.path.join(FLAGS.workdir, 'summary.json')}")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
