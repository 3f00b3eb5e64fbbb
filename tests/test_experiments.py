"""The online experiment runner's outputs, the report table and the plots."""

import csv
import importlib.util
import json
import os

import numpy as np
import pytest

from qsal_jax.experiments import report, run_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg):
    spec = importlib.util.spec_from_file_location("online_1d", os.path.join(ROOT, "configs", "online_1d.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_online_run_writes_summary_metrics_samples_and_plots(tmp_path):
    config = _config("uniform,tiny")
    with config.unlocked():
        config.plots = True
    summary = run_experiment(config, str(tmp_path), log=lambda *a: None)
    for name in ("summary.json", "metrics.jsonl", "config.json", "test_errors.npz", "test_error_heatmap.png",
                 "sampling_density.png", "training_curve.png"):
        assert (tmp_path / name).exists(), name
    assert summary["simulations"] == config.online.num_steps * config.online.clients_per_step
    for block in ("one_step", "rollout"):
        assert set(summary[block]) == {"mean", "std", "max", "p95", "p99"}
        assert all(np.isfinite(v) for v in summary[block].values())
    steps = [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, config.online.num_steps + 1))
    assert len(os.listdir(tmp_path / "samples")) == config.online.num_steps // config.online.steps_per_sync


def _fake_run(root, strategy, seed, mean):
    w = root / f"{strategy}_{seed}"
    w.mkdir()
    numbers = {"mean": mean, "std": mean / 2, "max": 3 * mean, "p95": 2 * mean, "p99": 2.5 * mean}
    json.dump({"strategy": strategy, "seed": seed, "simulations": 100, "one_step": numbers, "rollout": numbers,
               "unevenness_one_step": 1.5}, open(w / "summary.json", "w"))
    with open(w / "metrics.jsonl", "w") as f:
        for step in (10, 20):
            f.write(json.dumps({"step": step, "train_loss": 1.0, "test_mean": mean * 20 / step}) + "\n")
    return str(w)


def test_report_aggregates_seeds_and_ratios_to_uniform(tmp_path):
    dirs = [_fake_run(tmp_path, "uniform", s, m) for s, m in enumerate((1.0, 3.0))]
    dirs += [_fake_run(tmp_path, "breed_online", s, m) for s, m in enumerate((1.0, 1.0))]
    md = report.write_report(dirs, str(tmp_path / "out"))
    table = report.aggregate(report.load_summaries(dirs))
    assert table["uniform"]["mean"] == pytest.approx((2.0, 1.0))
    assert table["breed_online"]["max"] == pytest.approx((3.0, 0.0))
    assert "| breed_online | 2 | 100 |" in md and "0.500" in md  # mean ratio 1/2
    rows = list(csv.reader(open(tmp_path / "out" / "report.csv")))
    assert rows[0][:3] == ["strategy", "seeds", "simulations"] and len(rows) == 3
    assert (tmp_path / "out" / "test_error_over_training.png").exists()


def test_report_names_a_run_without_summary(tmp_path):
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match="unfinished"):
        report.load_summaries([str(tmp_path / "unfinished")])


def test_five_numbers_skip_solver_blow_ups_but_keep_surrogate_divergence():
    from qsal_jax.experiments import test_sets

    errors = np.array([0.1, 0.2, np.nan, 0.3, np.inf])  # NaN: the test trajectory blew up; inf: the surrogate did
    numbers = test_sets.five_numbers(errors)
    assert numbers["max"] == np.inf and numbers["mean"] == np.inf
    finite = test_sets.five_numbers(errors[:4])
    np.testing.assert_allclose([finite["mean"], finite["max"]], [0.2, 0.3])
    ladder = np.arange(1.0, 101.0)
    np.testing.assert_allclose(test_sets.unevenness(ladder), np.mean(ladder[-10:]) / np.median(ladder))
