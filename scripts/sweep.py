"""A strategy comparison repeated along one axis, at an equal simulation budget per point.

``--sweep=dimension``: does Breed's gain fall as dim(λ) grows while OGAS's holds? Uniform, Breed,
OGAS and SBAL on `configs/dimension_sweep.py` (conservative KS, K bumps) for D = 2K + 1 ∈
{5, 17, 65, 257}.
``--sweep=capacity``: does active learning help more as the surrogate grows? Uniform and online
Breed on KdV (`configs/online_1d.py`) with three FNOs and two transformers (9k to 550k parameters).

  python scripts/sweep.py --sweep=dimension --workdir runs/results/dimension_sweep
  python scripts/sweep.py --sweep=capacity --workdir runs/results/capacity_sweep
  python scripts/sweep.py --sweep=dimension --workdir /tmp/ds --points=k2,k8 --seeds=2 --config_args=tiny

Writes ``<workdir>/<point>/report.md`` per point, ``sweep.json``, ``sweep.md`` (U/S ratios with
95 % intervals per point) and ``ratio_vs_<axis>.png``. Finished runs are reused, so the same
command resumes a sweep (after a Ctrl-C too: it ends in one line naming the point and run).
"""

import os
import sys

from absl import app, flags, logging

from qsal_jax.experiments.cli import one_line_flag_parser

SWEEPS = {
    "dimension": dict(config="configs/dimension_sweep.py", strategies=["uniform", "breed_online", "ogas", "sbal"],
                      points=["k2", "k8", "k32", "k128"], axis="dim", x_label="dim(λ) = 2K + 1",
                      title="conservative KS, K bumps"),
    "capacity": dict(config="configs/online_1d.py", strategies=["uniform", "breed_online"],
                     points=["fno1d_tiny", "fno1d_medium", "fno1d_small", "vit1d_tiny", "vit1d_small"],
                     axis="parameters", x_label="surrogate parameters", title="KdV, FNO and transformer surrogates"),
}

flags.DEFINE_enum("sweep", "dimension", list(SWEEPS), "Which sweep.")
flags.DEFINE_string("workdir", None, "Root directory of the sweep.")
flags.DEFINE_list("strategies", None, "Strategies (uniform first); default: the sweep's.")
flags.DEFINE_list("points", None, "Sweep points (config arguments); default: the sweep's.")
flags.DEFINE_integer("seeds", 5, "Seeds per strategy and point.")
flags.DEFINE_string("config_args", "", "Extra config arguments, e.g. 'tiny'.")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, "
                    "'default' ($QSAL_CACHE/xla) or 'off'.")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def x_values(sweep: str, points, config: str, config_args: str) -> dict:
    """The x of each point: D = 2K + 1, or the surrogate's parameter count on the problem's grid."""
    if sweep == "dimension":
        return {p: 2 * int(p[1:]) + 1 for p in points}
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.online import build_engine, count_state_params

    out = {}
    for p in points:
        cfg = load_config(f"{config}:uniform,{','.join(filter(None, [p, config_args]))}")
        out[p] = count_state_params(*build_engine(cfg)[:2])
    return out


def main(argv):
    del argv
    try:
        run()
    except KeyboardInterrupt as e:  # the run in progress resumes from its checkpoint, finished ones are reused
        from qsal_jax.experiments.cli import interrupted_series
        from qsal_jax.experiments.sweep import finished_text

        total = len(FLAGS.points or SWEEPS[FLAGS.sweep]["points"]) * len(FLAGS.strategies or
                                                                         SWEEPS[FLAGS.sweep]["strategies"]) * FLAGS.seeds
        sys.exit(f"error: {interrupted_series(e, f'records so far are kept ({finished_text(FLAGS.workdir, total)})')}")


def check_arguments(config: str, strategies, points, config_args: str) -> None:
    """Every --strategies, --points and --config_args value a config argument of the sweep's
    config, before any run starts: one line naming the flag if not."""
    from qsal_jax.experiments.config_args import load_config

    if FLAGS.seeds < 1:
        raise ValueError(f"--seeds: {FLAGS.seeds}; a sweep needs at least 1 seed per strategy and point")
    if len(set(points)) < len(points) or len(set(strategies)) < len(strategies):
        raise ValueError("--points and --strategies: each value once")
    for flag, values in (("--strategies", strategies), ("--points", points), ("--config_args", [config_args])):
        for value in filter(None, values):
            try:
                load_config(f"{config}:{value}")
            except ValueError as e:
                raise ValueError(f"{flag}: {e}") from None
    for point in points:  # the arguments together (two problems, two sizes)
        for strategy in strategies:
            try:
                load_config(f"{config}:{','.join(filter(None, [strategy, point, config_args]))}")
            except ValueError as e:
                raise ValueError(f"--points {point} with --strategies {strategy} and --config_args "
                                 f"{config_args!r}: {e}") from None


def run():
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
    if FLAGS.compilation_cache != "off":
        from qsal_jax.experiments.cache import enable_compilation_cache

        enable_compilation_cache(None if FLAGS.compilation_cache == "default" else FLAGS.compilation_cache)
    from qsal_jax.experiments.sweep import plot_ratio_sweep, sweep, sweep_markdown
    from qsal_jax.experiments.online import RunStopped
    from qsal_jax.experiments.validation import ConfigError
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    spec = SWEEPS[FLAGS.sweep]
    points = FLAGS.points or spec["points"]
    strategies = FLAGS.strategies or spec["strategies"]
    try:
        check_arguments(spec["config"], strategies, points, FLAGS.config_args)
        tables = sweep(spec["config"], strategies, range(FLAGS.seeds), FLAGS.workdir, points,
                       config_args=FLAGS.config_args)
        xs = x_values(FLAGS.sweep, points, spec["config"], FLAGS.config_args)
        md = sweep_markdown(tables, xs, spec["axis"])
        with open(os.path.join(FLAGS.workdir, "sweep.md"), "w") as f:
            f.write(md + "\n")
        families = {p: p.split("_")[0].upper() for p in points} if FLAGS.sweep == "capacity" else None
        plot = plot_ratio_sweep(tables, xs, os.path.join(FLAGS.workdir, f"ratio_vs_{spec['axis']}.png"),
                                x_label=spec["x_label"], title=f"{spec['title']}, {FLAGS.seeds} seeds, equal budget",
                                families=families)
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print("\n" + md)
    print(f"\ntable: {FLAGS.workdir}/sweep.md; plot: {plot}")


if __name__ == "__main__":
    app.run(main, flags_parser=one_line_flag_parser(FLAGS))
