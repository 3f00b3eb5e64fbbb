"""Does Breed's gain fall as dim(λ) grows while OGAS's holds? Uniform, Breed, OGAS and SBAL at an
equal simulation budget on `configs/dimension_sweep.py` for D = 2K + 1 ∈ {5, 17, 65, 257}.

  python scripts/dimension_sweep.py --workdir runs/results/dimension_sweep
  python scripts/dimension_sweep.py --workdir /tmp/ds --points=k2,k8 --seeds=2 --config_args=tiny

Writes ``<workdir>/<point>/report.md`` per point, ``sweep.json``, ``sweep.md`` (U/S ratios with
95 % intervals per D) and ``ratio_vs_dim.png``. Finished runs are reused.
"""

import os
import sys

from absl import app, flags, logging

flags.DEFINE_string("workdir", "runs/results/dimension_sweep", "Root directory of the sweep.")
flags.DEFINE_list("strategies", ["uniform", "breed_online", "ogas", "sbal"], "Strategies (uniform first).")
flags.DEFINE_list("points", ["k2", "k8", "k32", "k128"], "Numbers of bumps K (D = 2K + 1).")
flags.DEFINE_integer("seeds", 5, "Seeds per strategy and point.")
flags.DEFINE_string("config_args", "", "Extra config arguments, e.g. 'tiny'.")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, "
                    "'default' ($QSAL_CACHE/xla) or 'off'.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.compilation_cache != "off":
        from qsal_jax.experiments.cache import enable_compilation_cache

        enable_compilation_cache(None if FLAGS.compilation_cache == "default" else FLAGS.compilation_cache)
    from qsal_jax.experiments.sweep import plot_ratio_sweep, sweep, sweep_markdown
    from qsal_jax.experiments.validation import ConfigError

    try:
        tables = sweep("configs/dimension_sweep.py", FLAGS.strategies, range(FLAGS.seeds), FLAGS.workdir, FLAGS.points,
                       config_args=FLAGS.config_args)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    dims = {p: 2 * int(p[1:]) + 1 for p in FLAGS.points}
    md = sweep_markdown(tables, dims, "D")
    with open(os.path.join(FLAGS.workdir, "sweep.md"), "w") as f:
        f.write(md + "\n")
    plot = plot_ratio_sweep(tables, dims, os.path.join(FLAGS.workdir, "ratio_vs_dim.png"), x_label="dim(λ) = 2K + 1",
                            title=f"conservative KS, K bumps, {FLAGS.seeds} seeds, equal budget")
    print("\n" + md)
    print(f"\ntable: {FLAGS.workdir}/sweep.md; plot: {plot}")


if __name__ == "__main__":
    app.run(main)
