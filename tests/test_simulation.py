"""ParamSpace (the one place λ is interpreted), initial conditions, Simulator and named problems."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.simulation import PROBLEMS, ParamSpace, get_problem
from qsal_jax.simulation import initial_conditions as ics
from qsal_jax.simulation.param_space import ParamSpace as PS
from qsal_jax.solvers import spectral


def test_param_space_maps_round_trip_and_validate():
    space = ParamSpace.box({"A0": (0.0, 2.0), "L": (10.0, 130.0)}) + ParamSpace.vector("amp", 3, -1.0, 1.0)
    assert space.dim == 5 and space.block_slice("amp") == slice(2, 5)
    z = jax.random.uniform(jax.random.PRNGKey(0), (100, 5))
    lam = space.from_unit(z)
    np.testing.assert_allclose(space.to_unit(lam), z, rtol=1e-6, atol=1e-6)
    assert bool(space.contains(lam).all())
    assert float(space.take(lam, "L").min()) >= 10.0
    with pytest.raises(ValueError, match="'L' out of bounds"):
        space.check(lam.at[0, 1].set(200.0))
    with pytest.raises(ValueError, match="trailing dimension 5"):
        space.check(jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        space.check(lam.at[0, 0].set(jnp.nan))


@pytest.mark.parametrize(
    "bounds,match",
    [({"a": (1.0, 1.0)}, "low < high"), ({"a": (0.0, float("inf"))}, "finite"), ({"a": (0.0,)}, "pair")],
)
def test_param_space_rejects_bad_bounds_naming_the_parameter(bounds, match):
    with pytest.raises(ValueError, match=match):
        ParamSpace.box(bounds)
    with pytest.raises(ValueError, match="duplicate"):
        PS(("a", "a"), (0.0, 0.0), (1.0, 1.0))


def test_grid_2d_covers_the_slice_with_other_parameters_fixed():
    space = ParamSpace.box({"A0": (0.0, 1.0), "A1": (0.0, 2.0), "phi": (0.0, 6.0)})
    lam, ax, ay = space.grid_2d("A0", "A1", 4, fixed={"phi": 1.0})
    assert lam.shape == (16, 3)
    np.testing.assert_allclose(np.unique(np.asarray(lam[:, 0])), ax, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(lam[:, 2]), 1.0)


def test_wave_superposition_matches_its_formula():
    x = spectral.grid(1, 64, 2 * math.pi, jnp.float64)
    u = ics.wave_superposition(jnp.array([0.5, 0.3, 0.2, 1.0]), x, 2 * math.pi)
    xs = np.asarray(x[0])
    np.testing.assert_allclose(u[0], 0.5 * np.sin(xs + 0.2) + 0.3 * np.sin(2 * xs + 1.0), atol=1e-12)


def test_truncated_fourier_uses_the_lowest_distinct_modes_and_normalises():
    modes = ics.fourier_modes(2, 150)
    assert modes.shape == (150, 2)
    assert len({tuple(m) for m in modes} | {tuple(-m) for m in modes}) == 300  # no ±k duplicates
    norms = np.sum(modes**2, axis=1)
    assert np.all(np.diff(norms) >= 0) and norms[-1] <= 100  # a half-disc of radius ~ sqrt(2K/pi)
    x = spectral.grid(2, 32, 10.0, jnp.float64)
    key = jax.random.PRNGKey(1)
    u = ics.truncated_fourier(jax.random.normal(key, (150,)), jnp.zeros(150), x, 10.0)
    assert u.shape == (1, 32, 32)
    np.testing.assert_allclose(float(jnp.max(jnp.abs(u))), 1.0, rtol=1e-12)


def test_gaussian_blobs_are_periodic_and_in_range():
    x = spectral.grid(2, 32, 4.0, jnp.float64)
    blob = jnp.array([[0.0, 0.0, 0.05, 1.0]])  # centred on the corner: wraps to all four
    uv = ics.gaussian_blobs(blob, x, 4.0)
    assert uv.shape == (2, 32, 32)
    v = np.asarray(uv[1])
    np.testing.assert_allclose(v[1, 1], v[-1, -1], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(uv[0] + uv[1]), 1.0)


def test_every_named_problem_simulates_finite_trajectories_of_the_declared_shape():
    expected_dims = {"ks_2d_fourier": 301, "gray_scott_blobs": 49, "kolmogorov_fourier": 65, "kdv_1d": 4}
    for name in PROBLEMS:
        small = {"ks_2d_fourier": dict(num_points=16, output_points=8, num_steps=2, save_every=2),
                 "gray_scott_blobs": dict(num_points=16, output_points=8, num_steps=2, save_every=2),
                 "kolmogorov_fourier": dict(num_points=16, output_points=8, num_steps=2, save_every=2)}.get(name, {})
        sim = get_problem(name, **small)
        if name in expected_dims:
            assert sim.space.dim == expected_dims[name]
        lam = sim.space.sample_uniform(jax.random.PRNGKey(0), 2)
        traj = jax.jit(sim.simulate)(lam)
        assert traj.u.shape == (2, sim.num_frames) + sim.state_shape, name
        assert bool(traj.finite.all()), name
        assert sim.conditioning(lam).shape == (2, len(sim.cond_names))


def test_simulator_flags_and_zeroes_blow_ups():
    sim = get_problem("kdv_1d", num_points=64, num_steps=20, substeps=1, amplitude=(2.5, 3.0))
    traj = jax.jit(sim.simulate)(sim.space.sample_uniform(jax.random.PRNGKey(0), 8))
    assert not bool(traj.finite.all())
    bad = ~np.asarray(traj.finite)
    assert np.all(np.asarray(traj.u)[bad] == 0.0)
    assert np.all(np.isfinite(np.asarray(traj.u)))


def test_solve_fine_train_coarse_subsamples_the_grid():
    fine = get_problem("ks_2d_fourier", num_points=32, output_points=32, num_steps=2, save_every=1)
    coarse = get_problem("ks_2d_fourier", num_points=32, output_points=16, num_steps=2, save_every=1)
    lam = fine.space.sample_uniform(jax.random.PRNGKey(2), 1)
    np.testing.assert_allclose(coarse.simulate(lam).u, fine.simulate(lam).u[..., ::2, ::2], rtol=1e-6)
    np.testing.assert_allclose(coarse.initial_state(lam[0]), fine.simulate(lam).u[0, 0, :, ::2, ::2], rtol=1e-6)


def test_unknown_problem_lists_the_known_ones():
    with pytest.raises(ValueError, match="problem.name: unknown problem 'heat'"):
        get_problem("heat")


def test_unpack_reads_lambda_by_name_with_vector_blocks():
    from qsal_jax.simulation.param_space import ParamSpace

    space = ParamSpace.box({"A0": (0, 1), "x_1": (0, 1)}) + ParamSpace.vector("amp", 3, -1, 1) + ParamSpace.box({"L": (1, 2)})
    lam = jnp.arange(6.0)
    p = space.unpack(lam)
    assert list(p) == ["A0", "x_1", "amp", "L"]
    np.testing.assert_array_equal(p["amp"], [2.0, 3.0, 4.0])
    assert float(p["L"]) == 5.0 and float(p["x_1"]) == 1.0
    batched = space.unpack(jnp.ones((7, 6)))
    assert batched["amp"].shape == (7, 3) and batched["A0"].shape == (7,)
    with pytest.raises(ValueError, match="trailing dimension 6"):
        space.unpack(jnp.ones(5))


def test_every_problem_reads_lambda_by_name_and_matches_the_mid_box_layout():
    from qsal_jax.simulation import PROBLEMS, get_problem

    small = {"kdv_1d": dict(num_points=32, num_steps=2), "ks_1d": dict(num_points=32, num_steps=2),
             "ks_conservative_1d": dict(num_points=32, num_steps=2)}
    for name in PROBLEMS:
        sim = get_problem(name, **small.get(name, {}))
        layout_names = [n for n, _, _ in sim.space.layout()]
        assert set(sim.space.unpack(jnp.zeros(sim.space.dim))) == set(layout_names)
        assert sim.state_shape[0] >= 1


@pytest.mark.parametrize("name, kwargs, setting", [
    ("kdv_1d", dict(num_points=4), "num_points"),
    ("kdv_1d", dict(output_points=7), "output_points"),
    ("kdv_1d", dict(order=7), "order"),
    ("kdv_1d", dict(amplitude=(1.0,)), "amplitude"),
    ("ks_1d", dict(substeps=0), "substeps"),
    ("burgers_1d", dict(dt=0.0), "dt"),
    ("burgers_1d", dict(diffusivity=(0.1, 0.01)), "diffusivity"),
    ("ks_conservative_bumps_1d", dict(num_bumps=0), "num_bumps"),
    ("ks_2d_fourier", dict(domain_extent=(10.0, float("nan"))), "domain_extent"),
    ("gray_scott_blobs", dict(num_steps=1.5), "num_steps"),
])
def test_problem_factories_check_their_own_arguments(name, kwargs, setting):
    from qsal_jax.checks import SettingError

    with pytest.raises(SettingError) as e:
        get_problem(name, **kwargs)
    assert e.value.setting == setting and setting in str(e.value) and "\n" not in str(e.value)
