"""Allen–Cahn PINN: residual operator on closed forms, hard constraints, spectral reference, tiny runs."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models
from qsal_jax.experiments import pinn, run_experiment
from qsal_jax.simulation import pinn_problem

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "configs"))
import pinn_allen_cahn  # noqa: E402


def _points(n=64, seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return jnp.stack([jax.random.uniform(k1, (n,), jnp.float64, -1, 1), jax.random.uniform(k2, (n,), jnp.float64)], 1)


def test_residual_vanishes_on_the_stationary_allen_cahn_kink():
    """u = tanh(a x), a = sqrt(c / 2ε), solves ε u_xx + c u − c u³ = 0 (u_xx ~ 2.5e4 here)."""
    eps, c = 1e-4, 5.0
    a = np.sqrt(c / (2 * eps))
    xt = _points() * jnp.array([0.02, 1.0])  # inside the interface, where every term is large
    r = pinn_problem.residual(lambda x, t: jnp.tanh(a * x), xt, eps, c)
    assert r.shape == (64,) and r.dtype == jnp.float64
    np.testing.assert_allclose(r, 0.0, atol=1e-9)


def test_residual_heat_solution_and_every_term_of_a_manufactured_field():
    eps = 0.1
    heat = lambda x, t: jnp.exp(-eps * np.pi**2 * t) * jnp.sin(np.pi * x)
    xt = _points(seed=1)
    np.testing.assert_allclose(pinn_problem.residual(heat, xt, eps, 0.0), 0.0, atol=1e-12)
    # u = x² t + sin(x) t²: r = u_t − ε u_xx + c (u³ − u) in closed form.
    c = 5.0
    f = lambda x, t: x**2 * t + jnp.sin(x) * t**2
    x, t = xt[:, 0], xt[:, 1]
    u = f(x, t)
    expected = (x**2 + 2 * t * jnp.sin(x)) - eps * (2 * t - jnp.sin(x) * t**2) + c * (u**3 - u)
    np.testing.assert_allclose(pinn_problem.residual(f, xt, eps, c), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("corner_term", [True, False])
def test_ansatz_has_the_initial_condition_and_periodic_values(corner_term):
    model = models.build("mlp", out_features=2 if corner_term else 1, hidden=(8, 8), fourier_features=4,
                         param_dtype=jnp.float64, dtype=jnp.float64)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(3))
    u = jax.vmap(pinn_problem.make_solution(model, corner_term=corner_term), in_axes=(None, 0, 0))
    x = jnp.linspace(-1, 1, 17)
    np.testing.assert_allclose(u(params, x, jnp.zeros_like(x)), x**2 * jnp.cos(jnp.pi * x), atol=1e-14)
    t = jnp.linspace(0, 1, 9)
    left, right = u(params, -jnp.ones_like(t), t), u(params, jnp.ones_like(t), t)
    np.testing.assert_allclose(left, right, atol=1e-12)
    assert np.max(np.abs(u(params, 0.3 * jnp.ones_like(t), t) - u(params, 0.3 * jnp.ones_like(t), 0 * t))) > 1e-3


def test_spectral_reference_is_converged_and_keeps_its_symmetry():
    """Halving dt changes little; doubling N changes little; u₀ is even, so u stays even."""
    ref = lambda n, dt, sub: pinn_problem.reference_solution(n, dt, 11, sub, dtype=np.float64)
    x, t, u = ref(256, 1e-3, 1)
    _, _, u_half_dt = ref(256, 5e-4, 1)
    _, _, u_fine = ref(512, 1e-3, 2)
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    assert u.shape == (11, 256) and np.all(np.isfinite(u))
    np.testing.assert_allclose(u[0], x**2 * np.cos(np.pi * x), atol=1e-12)
    np.testing.assert_allclose(t, np.linspace(0, 1, 11))
    assert rel(u, u_half_dt) < 1e-6
    assert rel(u, u_fine) < 1e-2
    mirror = (-np.arange(256)) % 256  # x_j = −1 + 2j/N ↔ x_{N−j}; x = −1 is its own mirror (periodic)
    np.testing.assert_allclose(u, u[:, mirror], atol=1e-10)
    # Metastable dynamics: by t = 1 the field sits near the stable states ±1 over most of the domain.
    assert np.mean(np.abs(np.abs(u[-1]) - 1) < 0.05) > 0.5
    with pytest.raises(ValueError, match="multiple of dt"):
        pinn_problem.reference_solution(256, 3e-3, 11, 1)


def test_relative_l2_errors():
    ref = np.array([[3.0, 4.0], [0.0, 1.0]])
    glob, per_t = pinn_problem.relative_l2_errors(ref * 1.1, ref)
    np.testing.assert_allclose(glob, 0.1)
    np.testing.assert_allclose(per_t, [0.1, 0.1])


@pytest.mark.parametrize("strategy", ["breed", "rad"])
def test_tiny_run_writes_summary_with_finite_errors(tmp_path, strategy):
    """Breed exercises the population path, RAD the scored-pool path (through `run_experiment`)."""
    cfg = pinn_allen_cahn.get_config(f"tiny,{strategy}")
    summary = run_experiment(cfg, str(tmp_path), log=lambda *_: None)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["strategy"] == strategy and on_disk["train_iterations"] == 30
    assert on_disk["metrics"] == ["relative_l2_per_time"]
    for v in [on_disk["relative_l2"], on_disk["max_abs_error"], on_disk["test_residual_sq"],
              *on_disk["relative_l2_per_time"].values()]:
        assert np.isfinite(v)
    assert 0 < on_disk["relative_l2"] < 2
    assert summary["relative_l2"] == on_disk["relative_l2"]
    saved = np.load(tmp_path / "solution.npz")
    pts = saved["collocation"]
    assert pts.shape[-2:] == (cfg.collocation.num_points, 2)
    assert np.all((pts[..., 0] >= -1) & (pts[..., 0] <= 1) & (pts[..., 1] >= 0) & (pts[..., 1] <= 1))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["uniform", "r3"])
def test_tiny_run_other_strategies(tmp_path, strategy):
    summary = pinn.train_and_evaluate(pinn_allen_cahn.get_config(f"tiny,{strategy}"), str(tmp_path), log=lambda *_: None)
    assert np.isfinite(summary["relative_l2"])


def test_config_checks():
    cfg = pinn_allen_cahn.get_config("tiny")
    cfg.train.iterations = 35
    with pytest.raises(ValueError, match="resample_every"):
        pinn.check_config(cfg)
    cfg = pinn_allen_cahn.get_config("tiny")
    cfg.strategy.signal = "cube"
    with pytest.raises(ValueError, match="strategy.signal"):
        pinn.check_config(cfg)
    assert pinn_allen_cahn.get_config("rad").strategy.settings.pool_size == 4 * 1024


@pytest.mark.parametrize("arg", ["", "uniform", "r3", "rad", "compare", "gpu", "gpu,rad", "gpu,compare", "tiny,r3"])
def test_every_config_variant_passes_its_check_and_builds(arg):
    cfg = pinn_allen_cahn.get_config(arg)
    pinn.check_config(cfg)
    assert cfg.kind == "pinn"
    init, *_ = pinn.build(cfg)
    state = jax.eval_shape(init, jax.random.PRNGKey(0))  # shapes only: nothing is compiled or run
    assert state.points.shape == (cfg.collocation.num_points, 2)


def test_declared_population_reaches_the_strategy_and_rad_pool_rule():
    """A ``population`` setting is read from the declaration (not a signature probe) and set to
    num_points; the config's RAD pool of 4 N is thin, so RAD draws with replacement."""
    from qsal_jax import proposals

    cfg = pinn_allen_cahn.get_config("tiny,rad")
    *_, strategy, _ = pinn.build(cfg)
    n = cfg.collocation.num_points
    s = strategy.init(jax.random.PRNGKey(0))
    assert s.inner.pool.shape == (4 * n, 2) and "population" in proposals.settings_of("rad")
    pool = pinn_problem.domain().sample_uniform(jax.random.PRNGKey(1), 4 * n)
    score = jnp.zeros(4 * n).at[0].set(1.0)  # p(member 0) = (4n + 1) / (8n) ≈ 1/2
    s = strategy.update(s, proposals.make_feedback(pool[:1], jnp.zeros(1), pool=pool, pool_score=score))
    x, _ = strategy.sample(s, jax.random.PRNGKey(2), n)
    copies = int(np.sum(np.all(np.asarray(x) == np.asarray(pool[0]), axis=1)))
    assert copies > n // 4, copies  # drawn with replacement: many copies of the dominant member
    cfg = pinn_allen_cahn.get_config("tiny,r3")
    *_, strategy, _ = pinn.build(cfg)
    assert strategy.init(jax.random.PRNGKey(0)).population.shape == (n, 2)
    cfg = pinn_allen_cahn.get_config("tiny,r3")
    cfg.strategy.settings = {"populaton": 3}
    with pytest.raises(ValueError, match="r3: unknown setting 'populaton'"):
        pinn.build(cfg)


@pytest.mark.slow
def test_tiny_comparison_goes_through_the_one_report_writer(tmp_path):
    """Every strategy × seed in ``<strategy>_seed<s>``, and one report.md: header, the per-time
    table with ratios to Uniform, and the scalar table (global relative L2 and the rest)."""
    cfg = pinn_allen_cahn.get_config("tiny,compare")
    out = pinn.run_pinn_comparison(cfg, str(tmp_path), seeds=(0,), log=lambda *_: None)
    assert [os.path.basename(w) for w in out["workdirs"]] == [f"{s}_seed0" for s in cfg.comparison.strategies]
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("Allen–Cahn PINN: 30 Adam steps") and md.strip() == out["markdown"].strip()
    assert "Relative L2 error per time slice" in md and "U/S = uniform / strategy" in md
    assert "relative_l2 (mean ± std)" in md and "U/S max_abs_error" in md
