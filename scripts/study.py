"""Run a study's missing runs, commit-ready records, and its report built from the records.

  python scripts/study.py --study=authors_kdv                      # every missing run, then the report
  python scripts/study.py --study=authors_kdv --max_runs=2         # two more runs, then the report
  python scripts/study.py --study=authors_kdv --report_only        # the tables from the records alone

Records go to docs/results/runs/<study>/<strategy>_s<seed>/ (qsal_jax.experiments.study); a run
whose record exists for the same config is skipped, so the command resumes a study anywhere.
"""

import sys

from absl import app, flags, logging

flags.DEFINE_string("study", None, "Study name (qsal_jax.experiments.study.STUDIES).")
flags.DEFINE_list("strategies", [], "Restrict to these strategies (default: all of the study).")
flags.DEFINE_list("seeds", [], "Restrict to these seeds (default: all of the study).")
flags.DEFINE_integer("max_runs", None, "Run at most this many missing runs, then report.")
flags.DEFINE_bool("report_only", False, "Build the report from the records; run nothing.")
flags.DEFINE_string("records", "docs/results/runs", "Root of the committed records.")
flags.DEFINE_string("scratch", "runs/studies", "Root of the runs' workdirs (checkpoints; not committed).")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, 'default' or 'off'.")
flags.mark_flag_as_required("study")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.compilation_cache != "off":
        from qsal_jax.experiments.cache import enable_compilation_cache

        enable_compilation_cache(None if FLAGS.compilation_cache == "default" else FLAGS.compilation_cache)
    from qsal_jax.experiments.online import RunStopped
    from qsal_jax.experiments.study import run_study, study_report
    from qsal_jax.experiments.validation import ConfigError
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    try:
        if not FLAGS.report_only:
            run_study(FLAGS.study, records_root=FLAGS.records, scratch=FLAGS.scratch,
                      strategies=FLAGS.strategies or None, seeds=[int(s) for s in FLAGS.seeds] or None,
                      max_runs=FLAGS.max_runs)
        print("\n" + study_report(FLAGS.study, records_root=FLAGS.records))
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
