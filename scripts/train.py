"""Run one experiment: ``python scripts/train.py --config=configs/online_1d.py:breed --workdir=runs/x``.

Thin on purpose: the work happens in `qsal_jax.experiments` (importable from a notebook).
Run it again with the same arguments after an interruption and it resumes.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics, plots and summary.json go.")
flags.DEFINE_bool("overwrite", False, "Start afresh even if the workdir holds a run of another config.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.online import RunStopped
    from qsal_jax.experiments.validation import ConfigError
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    try:
        run_experiment(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
