"""The online experiment runner's outputs, the score set, the report table and the plots."""

import csv
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.experiments import cache, run_experiment, test_sets
from qsal_jax.reporting import report
from qsal_jax.experiments.config_args import load_config, parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg):
    return load_config(os.path.join(ROOT, "configs", f"online_1d.py:{arg}"))


@pytest.fixture(autouse=True)
def _score_set_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_online_run_writes_summary_metrics_samples_and_plots(tmp_path):
    config = _config("uniform,tiny")
    with config.unlocked():
        config.plots = True
    summary = run_experiment(config, str(tmp_path / "run"), log=lambda *a: None)
    run = tmp_path / "run"
    for name in ("summary.json", "metrics.jsonl", "config.json", "test_errors.npz", "heatmap_errors.npz",
                 "test_error_heatmap.png", "sampling_density.png", "training_curve.png", "rollouts.png"):
        assert (run / name).exists(), name
    md = report.write_report([str(run)], str(tmp_path / "report"))  # the one-page comparison figure too
    assert (tmp_path / "report" / "comparison.png").exists() and "comparison.png" in md
    assert summary["simulations"] == config.online.num_steps * config.online.clients_per_step
    assert summary["metrics"] == list(test_sets.SUMMARY_METRICS)
    for block in summary["metrics"]:
        assert set(summary[block]) == {"mean", "std", "max", "p95", "p99"}
        assert all(np.isfinite(v) for v in summary[block].values())
    assert summary["score_set"]["size"] == config.eval.score_size and "Halton" in summary["score_set"]["draw"]
    assert summary["non_finite_predictions"] == {"one_step_nrmse": 0, "rollout_nrmse": 0}
    assert (summary["train_loss"], summary["signal_metric"]) == ("mse", "nrmse")  # the authors' protocol
    errs = np.load(run / "test_errors.npz")
    t = config.problem.kwargs["num_steps"]
    assert errs["one_step_by_time"].shape == (config.eval.score_size, t)
    # The per-transition mean equals the mean of per-trajectory means (equal frames per trajectory).
    np.testing.assert_allclose(summary["one_step_nrmse_per_transition"]["mean"], summary["one_step_nrmse"]["mean"], rtol=1e-9)
    np.testing.assert_allclose(errs["one_step"], errs["one_step_by_time"].mean(axis=1))
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps == list(range(1, config.online.num_steps + 1))
    assert len(os.listdir(run / "samples")) == config.online.num_steps // config.online.steps_per_sync


def test_score_set_covers_the_box_is_cached_and_independent_of_strategies(tmp_path):
    from qsal_jax.simulation import get_problem

    kwargs = {"num_points": 32, "num_steps": 3}
    sim = get_problem("kdv_1d", **kwargs)
    a = test_sets.make_score_set(sim, kwargs, size=64, seed=3, cache_dir=str(tmp_path))
    files = list((tmp_path / "score_sets").iterdir())
    assert len(files) == 1
    b = test_sets.make_score_set(sim, kwargs, size=64, seed=3, cache_dir=str(tmp_path))  # read back, same arrays
    np.testing.assert_array_equal(a.u, b.u)
    assert a.info == b.info and a.info["size"] == 64
    lo, hi = np.asarray(sim.space.low), np.asarray(sim.space.high)
    z = (a.lam - lo) / (hi - lo)
    assert np.all((z > 0) & (z < 1))  # interior of the box, no face or corner points
    # Scrambled Halton: every coordinate stratified, far more even than 64 i.i.d. draws would be.
    for d in range(sim.space.dim):
        counts = np.histogram(z[:, d], bins=8, range=(0, 1))[0]
        assert counts.min() >= 6 and counts.max() <= 10, counts
    c = test_sets.make_score_set(sim, kwargs, size=64, seed=4, cache_dir=str(tmp_path))
    assert c.info["key"] != a.info["key"] and not np.allclose(c.lam, a.lam)


def test_summary_counts_a_non_finite_prediction_as_infinite_error():
    one = np.array([[0.1, 0.2], [0.3, np.inf], [0.2, 0.2]])
    errs = {"one_step_by_time": one, "rollout_by_time": one, "one_step": one.mean(1), "rollout": one.mean(1)}
    s = test_sets.summarise(errs)
    assert s["one_step_nrmse"]["max"] == np.inf and s["one_step_nrmse"]["mean"] == np.inf
    assert s["non_finite_predictions"]["one_step_nrmse"] == 1
    # NaN is a diverged prediction too: read as inf, never dropped.
    assert test_sets.five_numbers([0.1, np.nan])["max"] == np.inf
    ladder = np.arange(1.0, 101.0)
    np.testing.assert_allclose(test_sets.unevenness(ladder), np.mean(ladder[-10:]) / np.median(ladder))


def test_percentiles_over_infinite_errors_are_infinite_not_nan():
    tail = np.r_[np.full(90, 0.1), np.full(10, np.inf)]  # 10 diverged trajectories of 100
    s = test_sets.five_numbers(tail)
    assert s == {"mean": np.inf, "std": np.inf, "max": np.inf, "p95": np.inf, "p99": np.inf}
    one = test_sets.five_numbers(np.r_[np.full(99, 0.1), np.nan])  # p95 lies among the finite ones
    np.testing.assert_allclose(one["p95"], 0.1)
    assert one["p99"] == np.inf  # interpolated towards the diverged one
    finite = np.random.default_rng(0).random(37)  # without an inf: numpy's numbers, unchanged
    np.testing.assert_allclose([test_sets.five_numbers(finite)[k] for k in ("p95", "p99", "std")],
                               [np.percentile(finite, 95), np.percentile(finite, 99), np.std(finite)], rtol=1e-12)


def test_score_errors_turn_nan_predictions_into_inf():
    u = np.random.default_rng(0).normal(size=(3, 4, 1, 8)).astype(np.float32)
    cond = np.zeros((3, 0), np.float32)
    nan_model = lambda p, x, c: x * p  # p = NaN: every prediction diverged
    errs = test_sets.score(nan_model, np.float32(np.nan), u, cond)
    assert np.all(np.isinf(errs["one_step_by_time"])) and np.all(np.isinf(errs["rollout"]))


def test_heatmap_grid_is_cached_and_read_back(tmp_path):
    from qsal_jax.simulation import get_problem

    kwargs = {"num_points": 32, "num_steps": 3}
    sim = get_problem("kdv_1d", **kwargs)
    axes = tuple(sim.space.names[:2])
    a = test_sets.make_heatmap_grid(sim, kwargs, axes, 4, cache_dir=str(tmp_path))
    assert len(list((tmp_path / "heatmap_grids").iterdir())) == 1
    assert a.u.shape[0] == a.lam.shape[0] == 16 and a.valid.all()
    np.testing.assert_allclose(a.u[0], np.asarray(sim.simulate(jnp.asarray(a.lam[:1])).u)[0], rtol=1e-5, atol=1e-6)
    b = test_sets.make_heatmap_grid(sim, kwargs, axes, 4, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(a.lam, b.lam)
    # A truncated file, or one that holds other λ, is rebuilt (same arrays), never trusted or fatal.
    (path,) = (tmp_path / "heatmap_grids").iterdir()
    path.write_bytes(path.read_bytes()[:200])
    np.testing.assert_array_equal(test_sets.make_heatmap_grid(sim, kwargs, axes, 4, cache_dir=str(tmp_path)).u, a.u)
    np.savez(path, lam=a.lam + 1.0, u=np.zeros_like(a.u), finite=a.valid)
    np.testing.assert_array_equal(test_sets.make_heatmap_grid(sim, kwargs, axes, 4, cache_dir=str(tmp_path)).u, a.u)


def _fake_run(root, strategy, seed, mean, legacy=False):
    w = root / f"{strategy}_{seed}"
    w.mkdir()
    numbers = {"mean": mean, "std": mean / 2, "max": 3 * mean, "p95": 2 * mean, "p99": 2.5 * mean}
    info = {"size": 512, "drawn": 512, "draw": "scrambled Halton (seed 1)", "dropped_blowups": 0, "key": "abc"}
    if legacy:  # a summary written before each metric had one name
        summary = {"one_step": numbers, "rollout": numbers, "one_step_per_transition": numbers, "unevenness_one_step": 1.5}
    else:
        summary = {"metrics": ["one_step_nrmse", "one_step_nrmse_per_transition", "rollout_nrmse"], "one_step_nrmse": numbers,
                   "rollout_nrmse": numbers, "one_step_nrmse_per_transition": numbers, "unevenness": 1.5}
    json.dump({"strategy": strategy, "seed": seed, "simulations": 100, "score_set": info, **summary},
              open(w / "summary.json", "w"))
    with open(w / "metrics.jsonl", "w") as f:
        for step in (10, 20):
            f.write(json.dumps({"step": step, "train_loss": 1.0, "test_mean": mean * 20 / step,
                                "test_max": 3 * mean, "test_p99": 2.5 * mean}) + "\n")
    return str(w)


def test_report_aggregates_seeds_pairs_ratios_and_states_the_score_set(tmp_path):
    dirs = [_fake_run(tmp_path, "uniform", s, m) for s, m in enumerate((1.0, 3.0, 2.0))]
    dirs += [_fake_run(tmp_path, "breed_online", s, m, legacy=True) for s, m in enumerate((0.5, 1.5, 1.0))]
    md = report.write_report(dirs, str(tmp_path / "out"))
    table = report.aggregate(report.load_summaries(dirs))
    np.testing.assert_allclose(table["uniform"]["mean"], (2.0, np.std([1.0, 3.0, 2.0])))
    r = table["breed_online"]["ratio_mean"]
    assert r["ratio"] == pytest.approx(2.0) and r["wins"] == 3 and r["per_seed"] == [2.0, 2.0, 2.0]
    assert r["t"] == pytest.approx((2.0, 2.0))  # identical per-seed ratios: a zero-width interval
    assert "512 trajectories, scrambled Halton" in md and "2.00*" in md
    assert "Score-set one-step nRMSE, per transition" in md and "Score-set rollout nRMSE" in md
    legacy = report.load_summaries(dirs[3:])[0]  # old names are read under the new ones
    assert legacy["metrics"][:3] == ["one_step_nrmse", "one_step_nrmse_per_transition", "rollout_nrmse"]
    assert legacy["one_step_nrmse"]["mean"] == 0.5 and legacy["unevenness"] == 1.5
    rows = list(csv.reader(open(tmp_path / "out" / "report.csv")))
    assert rows[0][:4] == ["metric", "strategy", "seeds", "simulations"] and len(rows) == 1 + 3 * 2
    for name in ("mean", "p99", "max"):
        assert (tmp_path / "out" / f"test_error_over_training_{name}.png").exists()


def test_paired_ratio_interval_covers_one_when_seeds_disagree():
    r = report.paired_ratio([1.0, 1.0, 1.0, 1.0, 1.0], [0.8, 1.25, 0.9, 1.1, 1.0])
    lo, hi = r["t"]
    assert lo < 1 < hi and r["boot"][0] < 1 < r["boot"][1]
    sure = report.paired_ratio([2.0, 2.1, 1.9, 2.2, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert sure["t"][0] > 1.8 and sure["wins"] == 5


def test_a_ratio_of_means_outside_its_interval_is_marked():
    """One seed that dominates the means (as the KdV rollouts of seed 8 do over ten seeds) moves the
    ratio of seed means outside the t-interval of the per-seed ratios: the cell says so."""
    uniform = [1.0] * 9 + [10.0]  # ratio of means 19 / 29 = 0.66; per-seed ratios 1 (nine) and 0.5
    breed = [1.0] * 9 + [20.0]
    r = report.paired_ratio(uniform, breed)
    assert not r["t"][0] <= r["ratio"] <= r["t"][1]
    assert report.ratio_cell(r).startswith(f"{r['ratio']:.2f}{report.OUTSIDE} [")
    agree = report.paired_ratio([2.0, 2.1, 1.9, 2.2, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert report.OUTSIDE not in report.ratio_cell(agree)
    table = {"uniform": {"seeds": 5, "simulations": 10, "unevenness": 1.0, **{n: (1.0, 0.1) for n in report.NUMBERS}},
             "breed": {"seeds": 5, "simulations": 10, "unevenness": 1.0, **{n: (1.0, 0.1) for n in report.NUMBERS},
                       **{f"ratio_{n}": r for n in report.NUMBERS}}}
    legend = report.to_markdown(table).splitlines()[0]
    assert legend.endswith(report.OUTSIDE_LEGEND)
    table["breed"].update({f"ratio_{n}": agree for n in report.NUMBERS})
    assert report.OUTSIDE not in report.to_markdown(table)


def test_report_refuses_runs_scored_on_different_score_sets(tmp_path):
    a = _fake_run(tmp_path, "uniform", 0, 1.0)
    b = _fake_run(tmp_path, "breed_online", 0, 1.0)
    s = json.load(open(os.path.join(b, "summary.json")))
    s["score_set"]["key"] = "other"
    json.dump(s, open(os.path.join(b, "summary.json"), "w"))
    with pytest.raises(ValueError, match="different score sets"):
        report.write_report([a, b], str(tmp_path / "out"))


def test_report_names_a_run_without_summary(tmp_path):
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match="unfinished"):
        report.load_summaries([str(tmp_path / "unfinished")])


@pytest.mark.parametrize("path", ["online_1d.py", "online_2d.py"])
def test_config_arguments_are_strict(path):
    with pytest.raises(ValueError, match="unknown config argument 'unifrom'"):
        load_config(os.path.join(ROOT, "configs", f"{path}:unifrom"))
    with pytest.raises(ValueError, match="both choose the protocol"):
        load_config(os.path.join(ROOT, "configs", f"{path}:nrmse,mse"))


def test_protocol_variants_separate_objective_and_signal():
    assert (_config("").train.loss, _config("").strategy.signal_metric) == ("mse", "nrmse")
    assert (_config("nrmse").train.loss, _config("nrmse").strategy.signal_metric) == ("nrmse", "nrmse")
    assert (_config("mse").train.loss, _config("mse").strategy.signal_metric) == ("mse", "mse")
    assert parse_args("a,x", groups={"g": ("a", "b")}, flags=("x",)) == {"g": "a", "x": True}


def test_an_ensemble_is_scored_on_member_zero():
    import jax

    from qsal_jax.experiments.online import build_engine, init_state, scored_params

    config = _config("sbal,paper,tiny")
    assert config.model.ensemble_size == 2  # the authors' 2 members
    engine, model, sim, optimizer = build_engine(config)
    state = init_state(engine, model, optimizer, 0)
    scored = scored_params(engine, state)
    for member0, leaf in zip(jax.tree_util.tree_leaves(state.train.params), jax.tree_util.tree_leaves(scored)):
        assert member0.shape[0] == 2 and leaf.shape == member0.shape[1:]
        np.testing.assert_array_equal(leaf, member0[0])
    biggest = max(jax.tree_util.tree_leaves(state.train.params), key=lambda x: x.size)  # a kernel, not a zero bias
    assert not np.allclose(biggest[0], biggest[1])  # members differ, so which one is scored matters


def test_a_diverged_surrogate_stops_the_run_before_checkpointing(tmp_path):
    from qsal_jax.experiments.online import RunStopped

    config = _config("uniform,tiny")
    with config.unlocked():
        config.train.optimizer.learning_rate = 1e6
        config.train.optimizer.grad_clip_norm = 0.0
        config.train.optimizer.warmup_steps = 0
    with pytest.raises(RunStopped, match=r"surrogate diverged at online step \d+ \(loss .*\); no checkpoint written; "
                                         r"try a lower train.optimizer.learning_rate"):
        run_experiment(config, str(tmp_path / "run"), log=lambda *a: None)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())
    assert not (tmp_path / "run" / "summary.json").exists()


def test_load_run_gives_back_the_trained_surrogate(tmp_path):
    """The loaded parameters score the run's score set exactly as the run's summary says."""
    from qsal_jax.experiments import load_run

    config = _config("uniform,tiny")
    workdir = str(tmp_path / "run")
    summary = run_experiment(config, workdir, log=lambda *a: None)
    run = load_run(workdir)
    assert run.step == config.online.num_steps and run.summary == json.load(open(os.path.join(workdir, "summary.json")))
    assert run.config.strategy.name == "uniform" and run.simulator.space.dim == 4
    saved = np.load(os.path.join(workdir, "test_errors.npz"))
    scores = test_sets.make_score_set(run.simulator, dict(config.problem.kwargs), size=config.eval.score_size,
                                      draw=config.eval.score_draw, seed=config.eval.seed, log=lambda *a: None)
    errs = test_sets.score(run.apply_fn, run.params, scores.u, scores.cond)
    np.testing.assert_allclose(errs["one_step"], saved["one_step"], rtol=1e-6)
    assert float(errs["one_step"].mean()) == pytest.approx(summary["one_step_nrmse"]["mean"], rel=1e-6)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_run(str(tmp_path))


def test_ogas_auto_schedule_is_sized_against_the_whole_surrogate_step(capsys):
    from qsal_jax.experiments.online import build_engine, resolve_ogas_schedule, surrogate_step_flops
    from qsal_jax.proposals.ogas import auto_train_every, make_ogas

    config = _config("ogas,tiny")
    with config.unlocked():
        config.strategy.settings = {"train_every": "auto", "generator_share": 0.1}
    engine, model, sim, optimizer = build_engine(config)
    one = surrogate_step_flops(engine.train_step, model, sim, optimizer, config)
    with config.unlocked():
        config.model.ensemble_size = 3
    assert surrogate_step_flops(engine.train_step, model, sim, optimizer, config) == 3 * one  # every member trains
    printed = capsys.readouterr().out
    settings = resolve_ogas_schedule(dict(config.strategy.settings), sim, one)
    rounds = make_ogas(sim.space, **dict(settings, train_every="auto")).settings["generator_round_flops"]
    assert settings["train_every"] == auto_train_every(rounds, one, 0.1) >= 1
    assert f"ogas: train_every=auto -> {settings['train_every']} " in printed


def test_sbal_scores_its_pool_once_per_selection_round():
    for args in ("sbal", "sbal,tiny", "sbal,gpu"):
        c = _config(args)
        budget = c.online.num_steps * c.online.clients_per_step
        assert c.strategy.settings.launches_per_round == max(1, budget // 10)  # 10 rounds per run
