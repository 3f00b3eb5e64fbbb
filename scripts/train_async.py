"""Run the asynchronous mode: ``python scripts/train_async.py --config=configs/async_burgers.py --workdir=runs/x``.

An external solver program per simulation, in a process pool (or on a dask cluster), a surrogate
training on results as they arrive. Writes ``config.json``, ``checkpoints/`` and
``summary.json`` (faults, latencies, counts) into the workdir; the same command resumes an
interrupted run from its last checkpoint and leaves a finished one as it is.
"""

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from qsal_jax.experiments.cli import one_line_flag_parser

config_flags.DEFINE_config_file("config", None, "Async config file (path[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints and summary.json go.")
flags.DEFINE_bool("overwrite", False, "Start afresh even if the workdir holds a run of another config.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
SOLVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "external_solver.py")


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
    if c.executor.kind == "dask":
        from dask.distributed import Client

        return Client(c.executor.address or None).get_executor()
    raise ValueError(f"executor.kind = {c.executor.kind!r}: must be 'process' or 'dask'")


def run(c, workdir: str, overwrite: bool = False) -> dict:
    import jax
    import jax.numpy as jnp

    from qsal_jax import models, proposals, training
    from qsal_jax.experiments.workdir import lock_workdir, start_or_reuse
    from qsal_jax.online.async_mode import run_async
    from qsal_jax.simulation.param_space import ParamSpace

    with lock_workdir(workdir):
        finished = start_or_reuse(workdir, c, overwrite=overwrite)  # a finished run of this config is kept
        if finished is not None:
            return finished
        space = ParamSpace.box({name: tuple(bounds) for name, bounds in c.space.items()})
        strategy = proposals.build(c.strategy.name, space, **dict(c.strategy.settings))
        model = models.build(c.model.name)
        optimizer = training.make_optimizer(dict(c.optimizer))
        n, t = int(c.solver.num_points), int(c.solver.num_frames)
        key_model, key_run = jax.random.split(jax.random.PRNGKey(int(c.seed)))
        state = training.create_train_state(key_model, model, jnp.zeros((1, 1, n), jnp.float32), optimizer)
        step = training.make_train_step(model.apply, optimizer, donate=False)
        result = run_async(make_solver(c), strategy, step, state, key_run, dict(c.run), executor=make_executor(c),
                           trajectory_shape=(t, 1, n), checkpoint_dir=os.path.join(os.path.abspath(workdir), "checkpoints"))
        summary = {"experiment": c.name, "strategy": c.strategy.name, "seed": int(c.seed),
                   "stopped_early": result.summary.stopped_early, **result.summary.metrics()}
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
    return summary


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    try:
        s = run(FLAGS.config, FLAGS.workdir, FLAGS.overwrite)
    except (WorkdirError, CheckpointError, OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"{s['num_completed']:.0f} simulations completed, {s['num_train_steps']:.0f} training steps, "
          f"final loss {s['final_loss']:.4g}, faults {sum(v for k, v in s.items() if k.startswith('faults/')):.0f}, "
          f"latency {s['latency_steps/mean']:.1f} steps (mean), {s['wall_s']:.1f} s")
    print(f"summary: {os.path.join(FLAGS.workdir, 'summary.json')}")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
