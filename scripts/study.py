"""Run a study's missing runs, commit-ready records, and its report built from the records.

  python scripts/study.py --study=authors_kdv                      # every missing run, then the report
  python scripts/study.py --study=authors_kdv --max_runs=2         # two more runs, then the report
  python scripts/study.py --study=authors_kdv --report_only        # the tables from the records alone

Records go to docs/results/runs/<study>/<strategy>_s<seed>/ (qsal_jax.experiments.study); a run
whose record exists for the same config is skipped, so the command resumes a study anywhere
(after a Ctrl-C too: it ends in one line naming the run it landed in).
"""

import sys

from absl import app, flags, logging

from qsal_jax.experiments.cli import one_line_flag_parser

flags.DEFINE_string("study", None, "Study name (qsal_jax.experiments.study.STUDIES).")
flags.DEFINE_list("strategies", [], "Restrict to these strategies (default: all of the study).")
flags.DEFINE_list("seeds", [], "Restrict to these seeds (default: all of the study).")
flags.DEFINE_integer("max_runs", None, "Run at most this many missing runs, then report.", lower_bound=0)
flags.DEFINE_bool("report_only", False, "Build the report from the records; run nothing.")
flags.DEFINE_string("records", "docs/results/runs", "Root of the committed records.")
flags.DEFINE_string("scratch", "runs/studies", "Root of the runs' workdirs (checkpoints; not committed).")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, 'default' or 'off'.")
flags.mark_flag_as_required("study")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        run()
    except KeyboardInterrupt as e:  # the run in progress resumes from its checkpoint
        from qsal_jax.experiments.cli import interrupted_series
        from qsal_jax.experiments.study import records_text

        try:
            kept = f"records so far are kept ({records_text(FLAGS.study, FLAGS.records)})"
        except ValueError:  # an unknown study
            kept = "records so far are kept"
        sys.exit(f"error: {interrupted_series(e, kept)}")


def selection():
    """The --strategies and --seeds of the study, checked: one line naming the flag if not."""
    from qsal_jax.experiments.study import get_study

    try:
        study = get_study(FLAGS.study)
    except ValueError as e:
        raise ValueError(f"--study: {e}") from None
    unknown = [s for s in FLAGS.strategies if s not in study.strategies]
    if unknown:
        raise ValueError(f"--strategies: {', '.join(map(repr, unknown))} not in study {FLAGS.study} "
                         f"({', '.join(study.strategies)})")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise ValueError(f"--seeds: {','.join(FLAGS.seeds)!r} is not a list of whole numbers; give e.g. "
                         "--seeds=0,1") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"--seeds: {min(seeds)} is negative; seeds are whole numbers ≥ 0")
    return FLAGS.strategies or None, seeds or None


def run():
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
        strategies, seeds = selection()
        if not FLAGS.report_only:
            run_study(FLAGS.study, records_root=FLAGS.records, scratch=FLAGS.scratch, strategies=strategies,
                      seeds=seeds, max_runs=FLAGS.max_runs)
        print("\n" + study_report(FLAGS.study, records_root=FLAGS.records))
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
