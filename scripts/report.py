"""Gather runs into a table: ``python scripts/report.py --workdirs=runs/a,runs/b --out=runs/table``.

``--workdirs`` also takes glob patterns (``'runs/kdv_*'``). Writes report.md and report.csv.
"""

import glob
import sys

from absl import app, flags

from qsal_jax.experiments.cli import one_line_flag_parser

flags.DEFINE_list("workdirs", None, "Run directories or glob patterns.")
flags.DEFINE_string("out", "runs/report", "Directory for report.md and report.csv.")
flags.DEFINE_list("metrics", [], "Which errors to tabulate (names in qsal_jax.reporting.report.METRIC_LABELS, "
                  "e.g. one_step_nrmse,rollout_nrmse_per_transition); default: the first three the runs declare.")
flags.mark_flag_as_required("workdirs")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from qsal_jax.reporting import report

    dirs = sorted({d for pattern in FLAGS.workdirs for d in (glob.glob(pattern) or [pattern])})
    try:
        print(report.write_report(dirs, FLAGS.out, tuple(FLAGS.metrics) or None))
    except (OSError, ValueError) as e:  # a run without a summary, a damaged one, an unknown metric
        sys.exit(f"error: {e}")
    except KeyError as e:  # a summary written by something else than a run
        sys.exit(f"error: a run's summary.json lacks the field {e}; run that run's command again to write it")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
