"""Run one experiment: ``python scripts/train.py --config=configs/online_1d.py:breed --workdir=runs/x``.

Thin on purpose: the work happens in `qsal_jax.experiments` (importable from a notebook).
Run it again with the same arguments after an interruption and it resumes.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from qsal_jax.experiments.cli import interrupted, one_line_flag_parser

config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics, plots and summary.json go.")
flags.DEFINE_bool("overwrite", False, "Start afresh even if the workdir holds a run of another config.")
flags.DEFINE_list("set", [], "Overrides that may add a field the config lacks (a strategy setting, "
                  "train.importance_clip), e.g. --set=strategy.settings.min_rows=3.")
flags.DEFINE_bool("plots_in_child", True, "An online run's figures are drawn by a child process after the run "
                  "(figures.json in the workdir when done), so the run ends as soon as its numbers are written.")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, "
                    "'default' ($QSAL_CACHE/xla) or 'off'.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        run()
    except KeyboardInterrupt:  # the lock is released and the queued checkpoint written on the way out
        sys.exit(f"error: {interrupted(FLAGS.workdir)}")


def run():
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
    from qsal_jax.training.sharding import maybe_initialize_distributed

    # One of several processes (Slurm, Open MPI, a TPU slice, or JAX_COORDINATOR_ADDRESS with
    # JAX_NUM_PROCESSES and JAX_PROCESS_ID): join the others before anything touches a device.
    maybe_initialize_distributed()
    if FLAGS.compilation_cache != "off":
        from qsal_jax.experiments.cache import enable_compilation_cache

        enable_compilation_cache(None if FLAGS.compilation_cache == "default" else FLAGS.compilation_cache)
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.cache import check_cache_dir
    from qsal_jax.experiments.buildable import check_buildable
    from qsal_jax.experiments.online import RunStopped
    from qsal_jax.experiments.validation import ConfigError
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    from qsal_jax.experiments.config_args import apply_command_line

    config = FLAGS.config
    try:
        note = apply_command_line(config, FLAGS["config"], FLAGS.set)
    except ValueError as e:
        sys.exit(f"error: --set: {e}")
    if note:
        print(note, flush=True)
    try:
        online = config.get("kind", "online") == "online"
        if online:
            check_cache_dir()  # the score set is kept there: a bad $QSAL_CACHE is one line, before any work
            check_buildable(config)  # settings only the engine checks, refused before the workdir is touched
        run_experiment(config, FLAGS.workdir, overwrite=FLAGS.overwrite,
                       **({"plots_in_child": FLAGS.plots_in_child} if online else {}))
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
