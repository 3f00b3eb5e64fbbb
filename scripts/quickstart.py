"""The main job: a small online active-learning experiment on the CPU.

Online Breed against Uniform on KdV (1D, λ = (A0, A1, φ0, φ1)) at an equal simulation
budget, two seeds each, scored on a cached 512-trajectory scrambled-Halton score set; prints
progress, then the comparison table, and says where the table and plots are. A few minutes on
2 CPU cores. Every table of RESULTS.md is this script with other flags (see the Makefile).

  python scripts/quickstart.py --workdir runs/quickstart
  python scripts/quickstart.py --workdir runs/kdv --strategies=uniform,breed_online,ogas --seeds=5
"""

import os
import sys

from absl import app, flags, logging

flags.DEFINE_string("workdir", "runs/quickstart", "Root directory of the runs.")
flags.DEFINE_list("strategies", ["uniform", "breed_online"], "Strategies to compare.")
flags.DEFINE_integer("seeds", 2, "Seeds per strategy (first_seed .. first_seed + seeds - 1).")
flags.DEFINE_integer("first_seed", 0, "First seed (a confirmation run on fresh seeds: e.g. 5).")
flags.DEFINE_string("config_args", "", "Extra config arguments, e.g. 'tiny' for a seconds-long run, 'nrmse', 'ks'.")
flags.DEFINE_string("config", "configs/online_1d.py", "Config file whose get_config takes strategy names as arguments.")
flags.DEFINE_string("label", "", "Name of this variant in the tables, e.g. 'importance-weighted'.")
flags.DEFINE_string("baseline_runs", "", "A root whose uniform_seed<k> runs join the report (compare a variant with them).")
flags.DEFINE_list("set", [], "Config overrides for every run, e.g. 'train.importance_clip=10,strategy.settings.alpha_max=0.35'.")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, "
                    "'default' ($QSAL_CACHE/xla) or 'off'.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        run()
    except KeyboardInterrupt:  # finished runs keep their summaries; the one running resumes
        from qsal_jax.experiments.cli import interrupted, latest_run

        last = latest_run(FLAGS.workdir)
        sys.exit(f"error: {os.path.basename(last) + ': ' if last else ''}{interrupted(last)}")


def run():
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
    if FLAGS.compilation_cache != "off":
        from qsal_jax.experiments.cache import enable_compilation_cache

        enable_compilation_cache(None if FLAGS.compilation_cache == "default" else FLAGS.compilation_cache)
    from qsal_jax.experiments.cache import check_cache_dir
    from qsal_jax.experiments.compare import compare
    from qsal_jax.experiments.config_args import join_overrides, parse_override
    from qsal_jax.experiments.online import RunStopped
    from qsal_jax.experiments.validation import ConfigError
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    try:
        check_cache_dir()  # the score set is kept there: a bad $QSAL_CACHE is one line, before any work
        overrides = dict(parse_override(o) for o in join_overrides(FLAGS.set))
        table = compare(FLAGS.config, FLAGS.strategies, range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds), FLAGS.workdir, config_args=FLAGS.config_args,
                        overrides=overrides, label=FLAGS.label, baseline_runs=FLAGS.baseline_runs)
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print("\n" + table)
    print(f"\ntable: {os.path.join(FLAGS.workdir, 'report.md')} (and report.csv)")
    print(f"plots: {FLAGS.workdir}/<strategy>_seed<k>/*.png")


if __name__ == "__main__":
    app.run(main)
