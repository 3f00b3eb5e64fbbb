"""Every malformed config stops with one line naming the field, the value and what is allowed."""

import importlib.util
import os
import subprocess
import sys

import pytest

from qsal_jax.experiments.validation import ConfigError, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg=""):
    spec = importlib.util.spec_from_file_location("online_1d", os.path.join(ROOT, "configs", "online_1d.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _with(config, path, value):
    """A copy of ``config`` with ``path`` set to ``value`` (any type, as a hand-written config could hold)."""
    import ml_collections

    d = config.to_dict()
    *parents, leaf = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    node[leaf] = value
    if path == "strategy.name":  # a config's settings belong to the strategy it names
        d["strategy"]["settings"] = {}
    return ml_collections.ConfigDict(d)


# (field, bad value, words the message must contain)
MALFORMED = [
    ("seed", -1, ">= 0"),
    ("seed", 1.5, "integer"),
    ("seed", "zero", "integer"),
    ("problem.name", "navier", "must be one of"),
    ("problem.name", "", "non-empty"),
    ("problem.kwargs.num_points", 4, ">= 8"),
    ("problem.kwargs.num_points", 100.0, "integer"),
    ("problem.kwargs.num_steps", 0, ">= 1"),
    ("problem.kwargs.substeps", 0, ">= 1"),
    ("problem.kwargs.amplitude", (1.0, 0.5), "low < high"),
    ("problem.kwargs.amplitude", (1.0,), "pair"),
    ("problem.kwargs.amplitude", (0.0, float("nan")), "finite"),
    ("problem.kwargs.output_points", 7, "divide"),
    ("problem.kwargs.order", 5, "in [1, 4]"),
    ("problem.kwargs.dt", 0.0, "not accepted"),  # KdV takes substeps, not dt
    ("problem.kwargs.viscosity", 0.1, "not accepted"),
    ("model.name", "transformer", "must be one of"),
    ("model.ensemble_size", 0, ">= 1"),
    ("model.residual", "yes", "true or false"),
    ("strategy.name", "bread", "must be one of"),
    ("strategy.signal", "gradient", "must be one of"),
    ("strategy.signal", "disagreement", "ensemble_size"),
    ("strategy.settings.sigma", 0.0, "> 0"),
    ("strategy.settings.sigma", -0.1, "> 0"),
    ("strategy.settings.sigma", [0.1, -1.0], "> 0"),
    ("strategy.settings.alpha0", -0.1, "[0, 1]"),
    ("strategy.settings.alpha0", 0.9, "alpha_max"),
    ("strategy.settings.alpha1", -1e-3, ">= 0"),
    ("strategy.settings.alpha_max", 1.5, "[0, 1]"),
    ("strategy.settings.alpha_max", float("inf"), "finite"),
    ("strategy.settings.population", 0, ">= 1"),
    ("strategy.settings.population", 10.5, "integer"),
    ("train.batch_size", 0, ">= 1"),
    ("train.batch_size", 4096, "buffer.capacity"),
    ("train.loss", "l1", "must be one of"),
    ("train.bf16", 1, "true or false"),
    ("train.optimizer.learning_rate", 0.0, "> 0"),
    ("train.optimizer.learning_rate", -1e-3, "> 0"),
    ("train.optimizer.learning_rate", float("nan"), "finite"),
    ("train.optimizer.warmup_steps", -5, ">= 0"),
    ("train.optimizer.weight_decay", -1.0, ">= 0"),
    ("train.optimizer.grad_clip_norm", -1.0, ">= 0"),
    ("online.num_steps", 0, ">= 1"),
    ("online.clients_per_step", 0, ">= 1"),
    ("online.train_steps_per_step", -1, ">= 1"),
    ("online.steps_per_sync", 0, ">= 1"),
    ("online.checkpoint_every", 0, ">= 1"),
    ("online.shard", "sometimes", "'auto'"),
    ("buffer.capacity", 0, ">= 1"),
    ("buffer.capacity", 32, "train.batch_size"),
    ("buffer.policy", "lifo", "must be one of"),
    ("buffer.seen_threshold", 0, ">= 1"),
    ("buffer.watermark", 10**6, "buffer.capacity"),
    ("eval.grid_size", -1, ">= 0"),
    ("eval.score_size", 2.5, "integer"),
    ("eval.score_size", 0, ">= 1"),
    ("eval.score_draw", "grid", "must be one of"),
    ("strategy.signal_metric", "l1", "must be one of"),
    ("strategy.settings.sigmaa", 0.1, "unknown setting"),
    ("strategy.name", "rad", "online strategy"),
    ("eval.every", 15, "multiple of online.steps_per_sync"),
    ("online.checkpoint_every", 25, "multiple of online.steps_per_sync"),
    ("eval.grid_axes", ("A0",), "two parameters"),
    ("eval.grid_axes", ("A0", "B7"), "two parameters"),
    ("eval.every", -1, ">= 0"),
]


def test_default_configs_are_valid():
    for arg in ("", "uniform", "ogas", "sbal", "ks", "ks_conservative", "gpu", "tiny", "nrmse", "mse",
                "breed_online,paper", "ogas,paper", "sbal,paper"):
        validate_config(_config(arg))


@pytest.mark.parametrize("field,value,words", MALFORMED, ids=[f"{f}={v!r}" for f, v, _ in MALFORMED])
def test_malformed_field_is_named_in_one_line(field, value, words):
    config = _with(_config(), field, value)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    message = str(err.value)
    assert "\n" not in message
    assert words in message, message
    named = field.split(".")[0]
    assert named in message, message


def test_at_least_fifty_malformed_variants():
    assert len(MALFORMED) >= 50


def test_missing_required_field():
    config = _config()
    with config.unlocked():
        del config.online["num_steps"]
    with pytest.raises(ConfigError, match="online.num_steps"):
        validate_config(config)


def test_script_prints_one_line_and_exits_nonzero(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
           f"--config={os.path.join(ROOT, 'configs', 'online_1d.py')}:tiny", f"--workdir={tmp_path}",
           "--config.buffer.policy=lifo"]
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: buffer.policy = 'lifo'"), out.stderr[-2000:]
    assert "Traceback" not in out.stderr


def test_workdir_with_another_config_is_refused(tmp_path):
    from qsal_jax.experiments.workdir import WorkdirMismatch, claim_workdir

    claim_workdir(str(tmp_path), _config("tiny"))
    other = _config("tiny")
    with other.unlocked():
        other.seed = 3
    with pytest.raises(WorkdirMismatch, match="seed"):
        claim_workdir(str(tmp_path), other)
    claim_workdir(str(tmp_path), other, overwrite=True)


def test_unreadable_checkpoint_gives_a_clear_message(tmp_path):
    import jax.numpy as jnp

    from qsal_jax.training import checkpoint

    checkpoint.save(tmp_path, 1, {"a": jnp.ones(3)})
    for root, _, files in os.walk(tmp_path / "1"):
        for f in files:
            if not f.endswith(".json") or "meta" in root:
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read checkpoint"):
        checkpoint.restore_latest(tmp_path, {"a": jnp.ones(3)})
