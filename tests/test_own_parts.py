"""A strategy and a problem of the user's own, from a file outside the package, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_FILE = '''
"""A user's own parts: nothing in qsal_jax is edited to use them."""
import jax
import jax.numpy as jnp

from qsal_jax.proposals import Proposal, checks
from qsal_jax.simulation.problems import kdv_1d


def steep_kdv(**kwargs):
    """KdV at larger amplitudes: a problem of the user's own (a factory returning a Simulator)."""
    return kdv_1d(amplitude=(0.5, 1.2), **kwargs)


def lower_half(space, *, share=1.0, context=None):
    """Draw A0 from the lower ``share`` of its range (a strategy of the user's own)."""
    share = checks.real("lower_half", "share", share, 0, 1, open_lo=True)
    if context is not None and context.draws_per_call is not None and context.draws_per_call > 64:
        raise checks.SettingError("lower_half", "draws_per_call", "must be <= 64", context=True)

    def init(key):
        return jnp.zeros((), jnp.int32)

    def sample(state, key, n):
        z = jax.random.uniform(key, (n, space.dim))
        z = z.at[:, 0].multiply(share)
        return space.from_unit(z), state + n

    def update(state, feedback):
        return state

    return Proposal(init, sample, update)
'''


@pytest.fixture()
def user_file(tmp_path):
    path = tmp_path / "my_parts.py"
    path.write_text(USER_FILE)
    return str(path)


def test_own_problem_and_strategy_run_through_the_script_and_load_run(user_file, tmp_path):
    workdir = str(tmp_path / "run")
    # The strategy and its setting are config arguments (typed key=value); the problem an override.
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config",
           os.path.join(ROOT, "configs", "online_1d.py") + f":{user_file}:lower_half,share=0.25,tiny", "--workdir",
           workdir, f"--set=problem.name={user_file}:steep_kdv", "--noplots_in_child"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["strategy"].endswith(":lower_half") and summary["simulations"] == 24
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["strategy"]["settings"] == {"share": 0.25}
    import numpy as np

    lam = np.concatenate([np.load(os.path.join(workdir, "samples", f)) for f in sorted(os.listdir(
        os.path.join(workdir, "samples")))]).reshape(-1, 4)
    assert np.all(lam[:, 0] <= 0.5 + 0.25 * 0.7 + 1e-6)  # A0 in [0.5, 1.2]: the lower quarter only
    from qsal_jax.experiments import load_run

    run = load_run(workdir)
    assert run.simulator.space.low[0] == 0.5 and run.step == 6


def test_naming_another_strategy_drops_the_settings_written_for_the_first(user_file, tmp_path):
    """--config.strategy.name alone: online Breed's settings are dropped (no 'unknown setting alpha0');
    the user's factory checks its own setting, and the error names the config field."""
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config",
           os.path.join(ROOT, "configs", "online_1d.py") + ":breed,tiny", "--workdir", str(tmp_path / "bad"),
           f"--config.strategy.name={user_file}:lower_half", "--set=strategy.settings.share=1.5"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert out.returncode != 0
    assert "the settings written for 'breed_online' (alpha0, alpha1, alpha_max, population, sigma) are dropped" \
        in out.stdout
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert lines[-1] == "error: strategy.settings.share = 1.5: lower_half: share must be a finite number in (0, 1], got 1.5"
    assert "Traceback" not in out.stderr and not os.path.exists(tmp_path / "bad")


def test_the_driver_context_a_user_strategy_refuses_names_the_config_field(user_file):
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.validation import ConfigError, validate_config

    config = load_config(os.path.join(ROOT, "configs", "online_1d.py") + f":{user_file}:lower_half,tiny")
    with config.unlocked():
        config.online.clients_per_step = 100
        config.buffer.capacity = 4096
    with pytest.raises(ConfigError, match=r"^online.clients_per_step = 100: lower_half: the driver context field "
                                          r"draws_per_call must be <= 64$"):
        validate_config(config)


def test_overrides_keep_settings_the_command_gives():
    from qsal_jax.experiments.config_args import apply_overrides, load_config

    config = load_config(os.path.join(ROOT, "configs", "online_1d.py") + ":breed,tiny")
    note = apply_overrides(config, {"strategy.name": "adversarial", "strategy.settings.alpha0": 0.3})
    assert dict(config.strategy.settings) == {"alpha0": 0.3} and "dropped" in note
    config = load_config(os.path.join(ROOT, "configs", "online_1d.py") + ":breed,tiny")
    assert apply_overrides(config, {"strategy.name": "breed_online"}) is None  # the same strategy: kept
    assert config.strategy.settings.population == 256


def test_a_bad_import_path_is_one_line_naming_the_field(user_file, tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config",
           os.path.join(ROOT, "configs", "online_1d.py") + ":uniform,tiny", "--workdir", str(tmp_path / "bad"),
           f"--set=strategy.name={user_file}:no_such_factory"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert out.returncode != 0
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: strategy.name") and "no attribute 'no_such_factory'" in lines[-1]
    assert "Traceback" not in out.stderr and not os.path.exists(tmp_path / "bad")


def test_heat_map_axes_default_to_the_problems_first_two_parameters(tmp_path):
    """A problem with other λ names needs no eval.grid_axes: unset, the grid spans its first two."""
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.validation import heatmap_axes
    from qsal_jax.experiments.validation import ConfigError, validate_config
    from qsal_jax.simulation import get_problem

    config = load_config(os.path.join(ROOT, "configs", "online_1d.py") + ":uniform,tiny")
    with config.unlocked():
        config.problem.name = "ks_conservative_bumps_1d"
        config.problem.kwargs = {"num_bumps": 2, "num_points": 32, "num_steps": 4}
        with pytest.raises(ConfigError, match="eval.grid_axes"):  # KdV's (A0, A1) are not its names
            validate_config(config)
        config.eval.grid_axes = None
    validate_config(config)
    space = get_problem("ks_conservative_bumps_1d", num_bumps=2, num_points=32, num_steps=4).space
    assert heatmap_axes(config.eval, space) == ("A", "centre_0")
