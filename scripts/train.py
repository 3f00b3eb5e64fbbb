"""Run one experiment: ``python scripts/train.py --config=configs/online_1d.py:breed --workdir=runs/x``.

Thin on purpose: the work happens in `qsal_jax.experiments` (importable from a notebook).
Run it again with the same arguments after an interruption and it resumes.
"""

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics, plots and summary.json go.")
flags.DEFINE_bool("overwrite", False, "Start afresh even if the workdir holds a run of another config.")
flags.DEFINE_list("set", [], "Overrides that may add a field the config lacks (a strategy setting, "
                  "train.importance_clip), e.g. --set=strategy.settings.min_rows=3.")
flags.DEFINE_string("compilation_cache", "default", "JAX persistent compilation cache: a directory, "
                    "'default' ($QSAL_CACHE/xla) or 'off'.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def parse_flags(argv):
    """absl's parser, with every parse failure (a bad flag, an override of a missing key, a config
    file that is missing or raises) reported in one line instead of a traceback."""
    for a in argv[1:]:
        if a.startswith("--config="):
            path = a.split("=", 1)[1].partition(":")[0]
            if not os.path.isfile(path):
                sys.exit(f"error: --config: config file {path!r} does not exist")
    try:
        return FLAGS(argv)
    except SyntaxError as e:
        sys.exit(f"error: --config: syntax error in {e.filename}, line {e.lineno}: {e.msg}")
    except (AttributeError, KeyError) as e:  # an override of a field the config lacks
        if "get_config" in str(e):
            sys.exit("error: --config: the config file has no get_config(arg) function")
        sys.exit(f"error: {_missing_field(e, argv)}")
    except flags.IllegalFlagValueError as e:
        if "--config must have a value other than None" in str(e) and any(a.startswith("--config=") for a in argv):
            sys.exit("error: --config: get_config() returned None; it must return an ml_collections.ConfigDict")
        sys.exit(f"error: {_one_line(e)}")
    except Exception as e:  # absl flag errors, and a config whose get_config or imports failed
        prefix = "" if isinstance(e, flags.Error) else f"--config: {type(e).__name__}: "
        sys.exit(f"error: {prefix}{_one_line(e)}")


def _missing_field(e: Exception, argv) -> str:
    """``--config.a.b=1`` where the config has no ``a.b``: name the flag, keep absl's suggestion."""
    text = _one_line(e)
    match = re.search(r"""['"]+([A-Za-z_][\w]*)['"]+""", text)
    name = match.group(1) if match else ""
    flag = next((a.split("=")[0] for a in argv[1:] if a.startswith("--config.") and name in a.split("=")[0].split(".")),
                "--config")
    hint = re.search(r"Did you mean .*\?", text)
    add = " (a strategy setting the config does not list: --set=strategy.settings.<name>=<value>)" \
        if flag.startswith("--config.strategy.settings.") else ""
    return f"{flag}: the config has no field {name!r}" + (f"; {hint.group(0).lower()}" if hint else "") + add


def _one_line(e: Exception) -> str:
    """The message of ``e`` on one line; for a message that embeds a traceback (ml_collections
    wraps a failing get_config so), the flag and the final exception line."""
    text = str(e).replace("\\n", "\n").replace("\\'", "'").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        head = lines[0].split(": Error whilst")[0]
        return f"{head}: {lines[-1]}"
    return " ".join(lines) or type(e).__name__


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
    from qsal_jax.training.sharding import maybe_initialize_distributed

    # One of several processes (Slurm, Open MPI, a TPU slice, or JAX_COORDINATOR_ADDRESS with
    # JAX_NUM_PROCESSES and JAX_PROCESS_ID): join the others before anything touches a device.
    maybe_initialize_distributed()
    if FLAGS.compilation_cache != "off":
        from qsal_jax.experiments.cache import enable_compilation_cache

        enable_compilation_cache(None if FLAGS.compilation_cache == "default" else FLAGS.compilation_cache)
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.online import RunStopped
    from qsal_jax.experiments.validation import ConfigError
    from qsal_jax.experiments.workdir import WorkdirError
    from qsal_jax.training.checkpoint import CheckpointError

    from qsal_jax.experiments.config_args import apply_overrides, parse_override

    config = FLAGS.config
    try:
        apply_overrides(config, dict(parse_override(o) for o in FLAGS.set))
    except ValueError as e:
        sys.exit(f"error: --set: {e}")
    try:
        run_experiment(config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    except (ConfigError, WorkdirError, CheckpointError, RunStopped, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
