"""The authors' regime: the two-step objective, Breed in generations, and committed study records."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from qsal_jax.online.buffers import trajectories_to_items
from qsal_jax.proposals import build
from qsal_jax.proposals.base import make_feedback
from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.training.losses import get_loss
from qsal_jax.training.step import loss_and_per_sample, make_batch

SPACE = ParamSpace.box({"x": (-2.0, 2.0), "y": (10.0, 11.0)})


# ------------------------------------------------------------------ two-step objective
def test_three_frame_items_are_consecutive_windows():
    u = jnp.arange(2 * 5 * 1 * 3, dtype=jnp.float32).reshape(2, 5, 1, 3)  # K = 2, T = 5
    lam = jnp.asarray([[0.0, 10.0], [1.0, 10.5]])
    items = trajectories_to_items(u, lam, jnp.asarray([7, 8]), jnp.zeros((2, 0)), frames=3)
    assert items.inputs.shape == (2 * 3, 1, 3) and items.targets2.shape == (6, 1, 3)
    for row in range(6):
        k, t = divmod(row, 3)
        np.testing.assert_array_equal(items.inputs[row], u[k, t])
        np.testing.assert_array_equal(items.targets[row], u[k, t + 1])
        np.testing.assert_array_equal(items.targets2[row], u[k, t + 2])
        assert int(items.time_index[row]) == t and int(items.lam_id[row]) == 7 + k
    assert trajectories_to_items(u, lam, jnp.asarray([7, 8]), jnp.zeros((2, 0))).targets2 is None


def _linear_model(params, x, cond):
    return params["a"] * x + params["b"]


def test_two_step_loss_signal_and_gradient_through_the_rollout():
    """Per sample ½ (MSE(f(u), u1) + MSE(f(f(u)), u2)); the signal is the nRMSE of f(f(u)) against
    u2; the gradient goes through both applications (against the closed form of f(u) = a u + b;
    the forward pass computes in float32, hence the tolerances)."""
    rng = np.random.default_rng(0)
    x, u1, u2 = (rng.normal(size=(6, 1, 8)) for _ in range(3))
    w = np.asarray([1, 1, 1, 1, 0, 1.0])
    a, b = 0.7, 0.1
    batch = make_batch(x, u1, targets2=u2, weight=w)
    loss = lambda a_, bt: loss_and_per_sample({"a": a_, "b": jnp.asarray(b)}, bt, apply_fn=_linear_model,  # noqa: E731
                                              loss_name="mse", signal_name="nrmse")
    objective, (per_sample, signal) = loss(jnp.asarray(a), batch)
    p1 = a * x + b
    p2 = a * p1 + b
    mean = lambda v: np.mean(v, axis=(1, 2))  # noqa: E731
    np.testing.assert_allclose(per_sample, 0.5 * (mean((p1 - u1) ** 2) + mean((p2 - u2) ** 2)), rtol=1e-6)
    np.testing.assert_allclose(signal, get_loss("nrmse")(jnp.asarray(p2), jnp.asarray(u2)), rtol=1e-6)
    np.testing.assert_allclose(objective, np.sum(w * per_sample) / w.sum(), rtol=1e-6)
    # d/da: the t+1 term 2 (p1 − u1) x; the t+2 term 2 (p2 − u2) (p1 + a x), through the rollout.
    grad = 0.5 * (mean(2 * (p1 - u1) * x) + mean(2 * (p2 - u2) * (p1 + a * x)))
    np.testing.assert_allclose(jax.grad(lambda a_: loss(a_, batch)[0])(jnp.asarray(a)), np.sum(w * grad) / w.sum(),
                               rtol=1e-5)
    stopped = 0.5 * (mean(2 * (p1 - u1) * x) + mean(2 * (p2 - u2) * p1))  # what a detached rollout would give
    assert abs(np.sum(w * stopped) / w.sum() - np.sum(w * grad) / w.sum()) > 1e-2


# ------------------------------------------------------------------- Breed in generations
def _feedback(key, ids, loss, step=1):
    lam = SPACE.sample_uniform(key, ids.shape[0])
    return make_feedback(lam, loss, step=step, lam_id=ids)


def test_generation_schedule_waits_for_min_simulations_then_every_period():
    strategy = build("breed_generations", SPACE, population=16, generation_every=5, min_simulations=12,
                     ramp_generations=3, r_max=0.7)
    update, sample = jax.jit(strategy.update), jax.jit(strategy.sample, static_argnums=2)
    state = strategy.init(jax.random.PRNGKey(0))
    generations, shares = [], []
    for i in range(40):
        if i % 4 == 0:  # 4 launches every 4 updates
            _, state = sample(state, jax.random.PRNGKey(1000 + i), 4)
        ids = jnp.arange(8, dtype=jnp.int32) + 4 * (i // 4)
        loss = jnp.where(jnp.arange(8) < 2, 5.0, 1.0)  # two rows above the batch mean: positive ∂l
        state = update(state, _feedback(jax.random.PRNGKey(i), ids, loss))
        generations.append(int(state.generation))
        shares.append(float(strategy.diagnostics(state)["child_share"]))
    # Launched ≥ 12 from the 3rd launch batch on (update 8), so the first generation is at update 9
    # (8 + 1 updates after the start, ≥ 5 since the start); then every 5 updates.
    first = generations.index(1)
    assert first == 8 and generations[first - 1] == 0
    for g in range(1, 7):
        assert generations.index(g) == first + 5 * (g - 1)
    expected = [0.7 * min(1.0, g / 3) for g in generations]
    np.testing.assert_allclose(shares, expected, rtol=1e-6)


def test_children_follow_fitness_and_out_of_box_children_take_their_parent():
    """One parent at the corner (0, 0) of the cube: a child lands inside with probability 1/4 per
    try; with no redraw, 3/4 of the children take the parent's λ exactly (binomial test)."""
    strategy = build("breed_generations", SPACE, population=4, generation_every=1, min_simulations=0,
                     ramp_generations=1, r_max=1.0, sigma=0.2, redraws=0, min_rows=1)
    state = strategy.init(jax.random.PRNGKey(0))
    corner = jnp.asarray([[SPACE.low_array[0], SPACE.low_array[1]], [0.0, 10.5]], jnp.float32)
    fb = make_feedback(corner, jnp.asarray([3.0, 1.0]), step=1, lam_id=jnp.asarray([0, 1]))
    state = strategy.update(state, fb)  # only the corner row is above the batch mean: the only parent
    assert int(state.generation) == 1
    n = 4000
    lam, state = jax.jit(strategy.sample, static_argnums=2)(state, jax.random.PRNGKey(1), n)
    lam = np.asarray(lam)
    assert np.all(np.asarray(SPACE.contains(jnp.asarray(lam))))
    at_parent = np.all(lam == np.asarray(corner[0]), axis=-1)
    assert stats.binomtest(int(at_parent.sum()), n, 0.75).pvalue > 1e-3
    share = float(strategy.diagnostics(state)["to_parent_share"])
    assert share == pytest.approx(at_parent.mean())
    # Children that stayed are the parent plus σ-noise: in unit coordinates |z| ~ half-normal(σ).
    z = np.asarray(SPACE.to_unit(jnp.asarray(lam[~at_parent])))
    assert stats.kstest(z.ravel() / 0.2, stats.halfnorm.cdf).pvalue > 1e-3
    # With redraws (σ × 0.3 each), fewer children fall back to the parent: 1 − (3/4)^(1 + 5) of them land.
    redrawn = build("breed_generations", SPACE, population=4, generation_every=1, min_simulations=0,
                    ramp_generations=1, r_max=1.0, sigma=0.2, redraws=5, min_rows=1)
    s2 = redrawn.update(redrawn.init(jax.random.PRNGKey(0)), fb)
    lam2, _ = jax.jit(redrawn.sample, static_argnums=2)(s2, jax.random.PRNGKey(2), n)
    stuck = int(np.all(np.asarray(lam2) == np.asarray(corner[0]), axis=-1).sum())
    assert stats.binomtest(stuck, n, 0.75**6).pvalue > 1e-3


# ------------------------------------------------------------------------- study records
@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    from qsal_jax.experiments.study import run_study

    root = tmp_path_factory.mktemp("study")
    written = run_study("authors_tiny", records_root=str(root / "records"), scratch=str(root / "scratch"),
                        strategies=["uniform"], seeds=[0], log=lambda *a, **k: None)
    return root, written


def test_a_record_is_small_and_skipped_when_present(tiny_record):
    from qsal_jax.experiments.study import run_study, study_report

    root, written = tiny_record
    assert len(written) == 1
    record = written[0]
    assert sorted(os.listdir(record)) == ["config.json", "draws.npz", "metrics.jsonl", "summary.json", "test_errors.npz"]
    assert sum(os.path.getsize(os.path.join(record, f)) for f in os.listdir(record)) < 300_000
    again = run_study("authors_tiny", records_root=str(root / "records"), scratch=str(root / "scratch"),
                      strategies=["uniform"], seeds=[0], log=lambda *a, **k: None)
    assert again == []
    text = study_report("authors_tiny", records_root=str(root / "records"), out_dir=str(root / "report"))
    assert "uniform 1/2" in text and os.path.exists(root / "report" / "report.md")


def test_a_variant_row_runs_under_its_label_and_a_run_recorded_by_another_study_is_copied(tiny_record, monkeypatch):
    from qsal_jax.experiments import study as S

    root, written = tiny_record
    monkeypatch.setitem(S.STUDIES, "tiny_variant", S.Study("configs/authors_1d.py:tiny", ("uniform", "uniform_twin"),
                                                             seeds=(0,), variants=(("uniform_twin", "uniform"),)))
    lines = []
    done = S.run_study("tiny_variant", records_root=str(root / "records"), scratch=str(root / "scratch"), log=lines.append)
    copied, twin = (os.path.join(str(root / "records"), "tiny_variant", f"{s}_s0") for s in ("uniform", "uniform_twin"))
    assert done == [copied, twin]
    assert any("the same config's record in" in str(x) and written[0] in str(x) for x in lines)
    for f in os.listdir(written[0]):  # the same run: the record is copied, not run again
        with open(os.path.join(written[0], f), "rb") as a, open(os.path.join(copied, f), "rb") as b:
            assert a.read() == b.read(), f
    with open(os.path.join(twin, "summary.json")) as f:
        assert json.load(f)["label"] == "uniform_twin"
    text = S.study_report("tiny_variant", records_root=str(root / "records"), out_dir=str(root / "variant_report"))
    assert "uniform_twin 1/1" in text and "| uniform_twin |" in text


def test_a_record_reproduces_its_five_numbers(tiny_record, tmp_path):
    """`run_experiment` on a record's config.json, on this machine, gives the same five numbers."""
    import ml_collections

    from qsal_jax.experiments import run_experiment

    _, written = tiny_record
    with open(os.path.join(written[0], "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    with open(os.path.join(written[0], "summary.json")) as f:
        recorded = json.load(f)
    again = run_experiment(config, str(tmp_path / "again"), log=lambda *a, **k: None)
    for metric in ("one_step_nrmse", "one_step_nrmse_per_transition", "rollout_nrmse"):
        for number in ("mean", "std", "max", "p95", "p99"):
            np.testing.assert_allclose(again[metric][number], recorded[metric][number], rtol=1e-5, err_msg=metric)
