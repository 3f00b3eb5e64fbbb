"""A run's simulated data as HDF5 in The Well's layout (qsal_jax.experiments.export).

  python scripts/export.py --workdir=runs/quickstart/uniform_seed0 --out=runs/kdv_uniform.h5
  python scripts/export.py --workdir=runs/quickstart/uniform_seed0 --what=score_set --out=runs/kdv_scores.h5
  python scripts/export.py --workdir=runs/async_burgers --out=runs/async_burgers.h5

An asynchronous run's workdir (config kind "async") is exported by qsal_jax.experiments.async_export:
its solver command runs again on every λ the run launched.
"""

import sys

from absl import app, flags

flags.DEFINE_string("workdir", None, "A fused or asynchronous run's workdir.")
flags.DEFINE_string("out", None, "The HDF5 file to write.")
flags.DEFINE_enum("what", "launched", ["launched", "score_set"], "Every launched λ, or the run's score set.")
flags.mark_flags_as_required(["workdir", "out"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import json
    import os

    try:
        with open(os.path.join(FLAGS.workdir, "config.json")) as f:
            kind = json.load(f).get("kind", "online")
        if kind == "async":
            from qsal_jax.experiments.async_export import export_async_run as export_run
        else:
            from qsal_jax.experiments.export import export_run
        export_run(FLAGS.workdir, FLAGS.out, what=FLAGS.what)
    except (ImportError, OSError, ValueError, KeyError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
