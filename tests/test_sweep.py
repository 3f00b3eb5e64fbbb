"""The dimension sweep's problem (dim(λ) dialled, physics fixed) and the sweep tables and plots."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.reporting import report
from qsal_jax.experiments import sweep
from qsal_jax.simulation import get_problem
from qsal_jax.simulation import initial_conditions as ics


@pytest.mark.parametrize("k", [2, 8, 32, 128])
def test_bumps_problem_has_2k_plus_1_dims_and_an_amplitude_set_field(k):
    sim = get_problem("ks_conservative_bumps_1d", num_bumps=k, num_points=64, num_steps=2)
    assert sim.space.dim == 2 * k + 1
    lam = sim.space.from_unit(jax.random.uniform(jax.random.PRNGKey(k), (16, sim.space.dim)))
    p = sim.space.unpack(lam[0])
    x = jnp.linspace(0.0, 1.0, 64, endpoint=False)[None]
    u0 = p["A"] * ics.periodic_bumps(p["centre"], p["weight"], x, 1.0)
    # Zero mean (conservative KS keeps it) and a peak of exactly A, whatever K.
    assert abs(float(jnp.mean(u0))) < 1e-6
    assert float(jnp.max(jnp.abs(u0))) == pytest.approx(float(p["A"]), rel=1e-5)


def test_bump_spectrum_does_not_depend_on_k():
    """The fixed width bounds the spectrum: the energy above wavenumber 16 is negligible for every K."""
    x = jnp.linspace(0.0, 1.0, 256, endpoint=False)[None]
    for k in (2, 32, 128):
        key_c, key_w = jax.random.split(jax.random.PRNGKey(k))
        u = ics.periodic_bumps(jax.random.uniform(key_c, (k,)), jax.random.uniform(key_w, (k,), minval=-1, maxval=1),
                               x, 1.0)[0]
        power = np.abs(np.fft.rfft(np.asarray(u))) ** 2
        assert power[17:].sum() / power.sum() < 1e-3, k


def test_bumps_trajectories_are_finite():
    sim = get_problem("ks_conservative_bumps_1d", num_bumps=8, num_points=64, num_steps=4)
    lam = sim.space.from_unit(jax.random.uniform(jax.random.PRNGKey(0), (4, sim.space.dim)))
    out = sim.simulate(lam)
    assert out.u.shape == (4, 5, 1, 64) and bool(out.finite.all())


def _summary(strategy, seed, mean, mx):
    numbers = {"mean": mean, "std": mean / 4, "max": mx, "p95": 0.9 * mx, "p99": 0.95 * mx}
    return {"strategy": strategy, "seed": seed, "one_step_nrmse": numbers, "simulations": 8}


def test_sweep_table_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    tables = {}
    for point in ("k2", "k8"):
        rows = []
        for seed in range(5):
            rows.append(_summary("uniform", seed, 1.0 + 0.01 * rng.normal(), 4.0))
            rows.append(_summary("breed_online", seed, 1.0 + 0.01 * rng.normal(), 2.0 if point == "k2" else 4.0))
        tables[point] = report.aggregate(rows)
    xs = {"k2": 5, "k8": 17}
    md = sweep.sweep_markdown(tables, xs, "D")
    assert "| 5 | breed_online | 5 |" in md and "| 17 | breed_online | 5 |" in md
    assert "2.00*" in md  # max ratio 4/2 with no seed noise: an interval that excludes 1
    assert tables["k8"]["breed_online"]["ratio_max"]["ratio"] == pytest.approx(1.0)
    path = sweep.plot_ratio_sweep(tables, xs, str(tmp_path / "r.png"), x_label="D")
    assert (tmp_path / "r.png").stat().st_size > 1000 and path.endswith("r.png")
    assert math.isfinite(tables["k2"]["breed_online"]["ratio_mean"]["t"][0])
