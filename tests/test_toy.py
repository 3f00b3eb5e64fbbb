"""Toy rolling-ball experiment: data-update rules, the near-boundary validation set, end-to-end runs."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from qsal_jax.reporting import report
from qsal_jax.experiments import toy
from qsal_jax.simulation import rolling_ball_problem

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "configs"))
import toy_rolling_ball  # noqa: E402


def test_update_rules_keep_the_right_dataset_sizes():
    rng = np.random.default_rng(0)
    x0, y0 = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    sizes = {"replace": [], "accumulate": [], "window": []}
    for rule in sizes:
        x, y = x0, y0
        for rnd in range(5):
            x_new = np.full((20, 2), rnd, float)
            x, y = rolling_ball_problem.update_dataset(x, y, x_new, x_new + 0.5, rule, window=50)
            sizes[rule].append(len(x))
            assert x.shape == y.shape
            np.testing.assert_array_equal(x[-20:], x_new)  # the newest points are always kept, last
        assert max(sizes[rule]) <= rolling_ball_problem.dataset_capacity(30, 20, 5, rule, 50)
    assert sizes["replace"] == [20] * 5
    assert sizes["accumulate"] == [50, 70, 90, 110, 130]
    assert sizes["window"] == [50] * 5
    # The window holds the most recent 50 points: rounds 2..4 (60 points) minus the oldest 10.
    np.testing.assert_array_equal(x[:, 0], np.repeat([2, 3, 4], 20)[-50:])
    assert rolling_ball_problem.dataset_capacity(30, 20, 5, "window", 500) == 130  # never more than the budget
    with pytest.raises(ValueError, match="rule"):
        rolling_ball_problem.update_dataset(x0, y0, x0, y0, "keep")


def test_hard_validation_set_straddles_the_basin_boundary():
    """Every hard point has a point of the other basin within 2ε; uniform points mostly do not."""
    cfg = toy_rolling_ball.get_config("tiny")
    oracle, label = rolling_ball_problem.make_oracle(cfg.problem)
    space = rolling_ball_problem.make_space(cfg.problem)
    eps = float(cfg.eval.epsilon)

    p, a, b = rolling_ball_problem.boundary_points(oracle, label, space, jax.random.PRNGKey(3), 32, steps=12)
    assert np.all(label(oracle(a)) == 0) and np.all(label(oracle(b)) == 1)
    assert np.max(np.linalg.norm(a - b, axis=1)) <= 4 * np.sqrt(2) / 2**12 + 1e-6

    sets = rolling_ball_problem.make_validation_sets(cfg.problem, cfg.eval)
    rng = np.random.default_rng(0)

    def flips_nearby(x, k=32):
        # k uniform points in the 2ε-disc around each row: a boundary within ε leaves >= 19% of
        # that disc on the other side, so a miss has probability <= 0.81^32 ~ 1e-3 per point.
        r = 2 * eps * np.sqrt(rng.uniform(size=(len(x), k, 1)))
        ang = rng.uniform(0, 2 * np.pi, size=(len(x), k))
        nb = np.clip(x[:, None] + r * np.stack([np.cos(ang), np.sin(ang)], -1), space.low_array, space.high_array)
        own = label(oracle(x))
        other = label(oracle(nb.reshape(-1, 2))).reshape(len(x), k)
        return np.mean(np.any(other != own[:, None], axis=1))

    hard_x, hard_y = sets["hard"]
    assert np.all(np.isfinite(hard_y)) and np.all(space.contains(hard_x))
    assert flips_nearby(hard_x) >= 0.95
    assert flips_nearby(sets["uniform"][0]) <= 0.3


def test_tiny_comparison_writes_summaries_and_report(tmp_path):
    """breed/{replace,accumulate,window} and uniform/accumulate end to end, each with summary.json."""
    cfg = toy_rolling_ball.get_config("tiny,compare")
    out = toy.train_and_evaluate(cfg, str(tmp_path))
    expected_sizes = {"replace": 32, "accumulate": 96, "window": 48}
    dirs = []
    for variant in cfg.comparison.variants:
        name, rule = variant.split("/")
        run_dir = tmp_path / f"{name}_{rule}_seed0"
        dirs.append(str(run_dir))
        s = json.loads((run_dir / "summary.json").read_text())
        assert s["strategy"] == variant
        assert s["simulations"] == 32 + 2 * 32
        assert s["final_dataset_size"] == expected_sizes[rule]
        assert s["metrics"] == ["uniform_mse", "hard_mse"]
        for which in s["metrics"]:
            assert all(np.isfinite(v) for v in s[which].values())
        saved = np.load(run_dir / "samples.npz")  # the summary's MSE is the mean of the saved per-point errors
        assert s["uniform_mse"]["mean"] == pytest.approx(float(saved["errors_uniform"].mean()))
        assert s["hard_mse"]["max"] == pytest.approx(float(saved["errors_hard"].max()))
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["simulations"] for r in records] == [32, 64, 96]
    md = (tmp_path / "report.md").read_text()
    assert "breed/accumulate" in md and "U/S = uniform/accumulate / strategy" in md
    assert "Squared error on the basin-boundary validation set" in md and "ε = " in md
    assert set(out["table"]) == set(cfg.comparison.variants)
    # The project's one report writer pairs every variant with uniform/accumulate by seed.
    table = report.aggregate(report.load_summaries(dirs), "hard_mse")
    assert set(table) == set(cfg.comparison.variants)
    assert "ratio_max" in table["breed/window"] and "ratio_max" in table["uniform/accumulate"]
    assert table["uniform/accumulate"]["ratio_max"]["ratio"] == pytest.approx(1.0)


def test_config_errors_name_the_field(tmp_path):
    cfg = toy_rolling_ball.get_config("tiny")
    cfg.data_update.rule = "keep_all"
    with pytest.raises(ValueError, match="data_update.rule"):
        toy.train_and_evaluate(cfg, str(tmp_path))
    cfg = toy_rolling_ball.get_config("tiny,window")
    cfg.data_update.window = 0
    with pytest.raises(ValueError, match="data_update.window"):
        toy.train_and_evaluate(cfg, str(tmp_path))
    with pytest.raises(ValueError, match="unknown config argument 'breeed'; known: .*compare"):
        toy_rolling_ball.get_config("tiny,breeed")


@pytest.mark.parametrize("arg", ["", "uniform", "breed,replace", "window", "compare", "gpu", "gpu,compare", "tiny"])
def test_every_config_variant_passes_its_check(arg):
    cfg = toy_rolling_ball.get_config(arg)
    toy.check_config(cfg)
    assert cfg.kind == "toy" and cfg.compare == ("compare" in arg)
    r = cfg.rounds
    assert cfg.train.optimizer.warmup_steps < (r.num_rounds + 1) * r.iterations


def test_strategy_settings_are_checked_against_the_declaration():
    cfg = toy_rolling_ball.get_config("tiny")
    space = rolling_ball_problem.make_space(cfg.problem)
    with cfg.unlocked():
        cfg.strategy.name = "breed"
        cfg.strategy.settings = {"sigmaa": 0.1}
    with pytest.raises(ValueError, match="strategy.settings: breed: unknown setting 'sigmaa'; known: sigma"):
        toy.build_strategy(cfg, space, 64)
    with cfg.unlocked():
        cfg.strategy.settings = {}
    p = toy.build_strategy(cfg, space, 64)  # Breed declares `population`: it gets the dataset capacity
    assert p.init(jax.random.PRNGKey(0)).centres.shape == (64, space.dim)
    for name in ("sbal", "adversarial", "residual"):  # each refuses the toy's driver context at build time
        with cfg.unlocked():
            cfg.strategy.name = name
        with pytest.raises(ValueError, match=rf"^strategy.name: '{name}' .*candidate pool") as e:
            toy.build_strategy(cfg, space, 64)
        assert "\n" not in str(e.value)
