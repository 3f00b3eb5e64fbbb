"""Run the asynchronous mode: ``python scripts/train_async.py --config=configs/async_burgers.py --workdir=runs/x``.

The config's ``solver.command`` (any executable) runs once per simulation in a process pool (or
on a dask cluster) while a surrogate trains on results as they arrive; the workdir holds what a
fused run's does (`qsal_jax.experiments.async_run`): config.json, metrics.jsonl, the λ launched,
checkpoints, TensorBoard scalars, summary.json, figures and report.md. The same command resumes
an interrupted run from its last checkpoint and leaves a finished one as it is.

Every setting is checked before anything is written: a refused config leaves no workdir behind.
A run that did not do its work (the fault limit, no simulation completed) or whose surrogate
diverged exits non-zero with one line and writes no ``summary.json``, so the same command resumes it.
"""

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


def run(c, workdir: str, overwrite: bool = False) -> dict:
    """`async_run.train_and_evaluate` (kept for callers of this script's function)."""
    from qsal_jax.experiments.async_run import train_and_evaluate

    return train_and_evaluate(c, workdir, overwrite=overwrite, log=lambda line: print(line, flush=True))


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.online.async_records import AsyncDiverged, AsyncFailed
    from qsal_jax.training.checkpoint import CheckpointError

    try:
        run(FLAGS.config, FLAGS.workdir, FLAGS.overwrite)
    except (WorkdirError, CheckpointError, OSError, ValueError, AsyncDiverged, AsyncFailed) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:  # the pool is already shut down (`AsyncTrainer.run` closes it on the way out)
        sys.exit("error: interrupted; run the same command to resume from the last checkpoint")
    print(f"summary: {os.path.join(FLAGS.workdir, 'summary.json')}")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
