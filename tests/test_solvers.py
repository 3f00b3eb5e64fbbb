"""Solver numerics: closed forms, convergence orders, conservation, gradients, batching."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import solvers as S
from qsal_jax.solvers import difficulty, navier_stokes, pdes, reaction, rolling_ball, spectral

F64 = jnp.float64


def _x(n, length):
    return np.arange(n) / n * length


def _run(pde, u0, num_steps, order=2, dtype=F64):
    stepper = S.make_stepper(pde, order, dtype=dtype)
    return jax.jit(S.rollout(stepper, num_steps, include_init=False))(jnp.asarray(u0, dtype))[-1]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_advection_diffusion_matches_analytic_solution(order):
    n, length, c, nu, dt, steps = 64, 2 * math.pi, 0.7, 0.05, 0.1, 30
    x = _x(n, length)
    u0 = np.sin(x) + 0.5 * np.cos(3 * x + 0.3)
    t = dt * steps
    exact = np.exp(-nu * t) * np.sin(x - c * t) + 0.5 * np.exp(-9 * nu * t) * np.cos(3 * (x - c * t) + 0.3)
    pde = S.AdvectionDiffusion(1, length, n, dt, velocity=c, diffusivity=nu)
    u = _run(pde, u0[None], steps, order)
    np.testing.assert_allclose(u[0], exact, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_temporal_convergence_order(order):
    """Error against a fine reference falls like dt^order (log–log slope)."""
    n, length, t_end = 64, 2 * math.pi, 1.0
    x = _x(n, length)
    u0 = jnp.asarray((np.sin(x) + 0.3 * np.cos(2 * x))[None], F64)

    def solve(dt, o):
        pde = S.Burgers(1, length, n, dt, diffusivity=0.1)
        return _run(pde, u0, int(round(t_end / dt)), o)

    reference = solve(1 / 1280, 4)
    dts = np.array([1 / 10, 1 / 20, 1 / 40, 1 / 80])
    errors = np.array([float(jnp.max(jnp.abs(solve(dt, order) - reference))) for dt in dts])
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.35, (order, slope, errors)


def test_kdv_soliton_keeps_shape_and_speed():
    n, length, c, dt, steps = 256, 40.0, 2.0, 1e-3, 2000
    x = _x(n, length)

    def soliton(t):
        xi = (x - 10.0 - c * t + length / 2) % length - length / 2
        return c / 2 / np.cosh(np.sqrt(c) / 2 * xi) ** 2

    pde = S.KortewegDeVries(1, length, n, dt)
    u = _run(pde, soliton(0.0)[None], steps, order=4)
    np.testing.assert_allclose(u[0], soliton(dt * steps), atol=2e-5 * c)


@pytest.mark.parametrize(
    "pde",
    [
        S.KuramotoSivashinsky(1, 60.0, 128, 0.1),
        S.KuramotoSivashinskyConservative(1, 60.0, 128, 0.1),
        S.Burgers(1, 2 * math.pi, 128, 0.01, diffusivity=0.02),
        S.KuramotoSivashinsky(2, 30.0, 32, 0.05),
    ],
    ids=["ks", "ks_conservative", "burgers", "ks_2d"],
)
def test_conservative_forms_keep_the_mean(pde):
    x = spectral.grid(pde.num_spatial_dims, pde.num_points, pde.domain_extent, F64)
    k = 2 * jnp.pi / pde.domain_extent
    u0 = jnp.sum(jnp.sin(k * x + 0.4) + 0.5 * jnp.cos(3 * k * x), axis=0, keepdims=True)
    u0 = u0 + 0.3
    u = _run(pde, u0, 200)
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(float(jnp.mean(u)), float(np.mean(u0)), atol=1e-11)


def test_taylor_green_vortex_decays_at_analytic_rate():
    n, nu, dt, steps = 32, 0.05, 0.05, 40
    x, y = np.meshgrid(_x(n, 2 * math.pi), _x(n, 2 * math.pi), indexing="ij")
    omega0 = 2 * np.sin(x) * np.sin(y)
    pde = navier_stokes.NavierStokesVorticity(2 * math.pi, n, dt, diffusivity=nu)
    w = _run(pde, omega0[None], steps, order=4)
    np.testing.assert_allclose(w[0], omega0 * np.exp(-2 * nu * dt * steps), atol=1e-10)


def test_kolmogorov_forcing_is_the_curl_of_the_body_force():
    pde = S.kolmogorov_flow(2 * math.pi, 32, 0.01)
    f = np.asarray(pde.forcing(F64))[0]
    y = _x(32, 2 * math.pi)[None, :]
    np.testing.assert_allclose(f, np.broadcast_to(-4 * np.cos(4 * y), f.shape), atol=1e-12)


def test_allen_cahn_and_gray_scott_stay_bounded():
    ac = reaction.AllenCahn(1, 2.0, 128, 0.01, diffusivity=1e-2)
    x = _x(128, 2.0) - 1.0
    u = _run(ac, (x**2 * np.cos(np.pi * x))[None], 100, order=2)
    assert np.all(np.abs(u) <= 1.0 + 1e-6)
    gs = S.GrayScott(2, 1.0, 32, 1.0)
    rng = np.random.default_rng(1)
    v = (rng.random((32, 32)) < 0.1).astype(float) * 0.5
    uv = _run(gs, np.stack([1 - v, v]), 50)
    assert np.all(np.isfinite(uv)) and float(uv.min()) > -0.05 and float(uv.max()) < 1.05


def test_etdrk_coefficients_match_closed_forms_for_complex_operators():
    """Dispersion and advection make L imaginary; the contour means must stay exact there.

    (exponax's coefficients are only right for real L, which is why the comparison
    below is restricted to dissipative operators.)
    """
    from qsal_jax.solvers.etdrk import etdrk_coefficients

    z = jnp.array([-14j, 0.1 - 3j, -0.5 + 2j, -50.0, -0.3j, -2.0 + 5j], jnp.complex128)
    c = etdrk_coefficients(z, 1.0)
    ez = np.exp(z)
    np.testing.assert_allclose(c.phi1, (ez - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(c.phi1_half, (np.exp(z / 2) - 1) / z, rtol=1e-12)
    np.testing.assert_allclose(c.phi2, (ez - 1 - z) / z**2, rtol=1e-12)
    np.testing.assert_allclose(c.f1, (-4 - z + ez * (4 - 3 * z + z**2)) / z**3, rtol=1e-11)
    np.testing.assert_allclose(c.f2, (2 + z + ez * (z - 2)) / z**3, rtol=1e-11)
    np.testing.assert_allclose(c.f3, (-4 - 3 * z - z**2 + ez * (4 - z)) / z**3, rtol=1e-11)


@pytest.mark.parametrize("order", [2, 4])
def test_matches_exponax_on_identical_problems(order):
    ex = pytest.importorskip("exponax")
    rng = np.random.default_rng(2)
    cases = [
        (S.KuramotoSivashinsky(1, 60.0, 128, 0.5), ex.stepper.KuramotoSivashinsky(1, 60.0, 128, 0.5, order=order)),
        (  # exponax's 2D KS uses ∂x⁴ + ∂y⁴, which is GeneralNonlinear's per-axis convention
            S.GeneralNonlinear(2, 30.0, 32, 0.1, linear_coefficients=(0.0, 0.0, -1.0, 0.0, -1.0), nonlinear_coefficients=(0.0, 0.0, -1.0)),
            ex.stepper.KuramotoSivashinsky(2, 30.0, 32, 0.1, order=order),
        ),
        (
            S.difficulty_pde(1, 160, linear_difficulties=(0.0, 0.0, -1.2, 0.0, -15.0), gradient_norm_difficulty=-6.0),
            ex.stepper.generic.DifficultyGradientNormStepper(
                1, 160, linear_difficulties=(0.0, 0.0, -1.2, 0.0, -15.0), gradient_norm_difficulty=-6.0, order=order
            ),
        ),
        (  # u u_x: exponax takes 3 transforms per stage, ours the exact 2 (next tests). With a
            # dispersive term as well, L is complex and exponax's ETD coefficients are off (above).
            S.difficulty_pde(1, 160, linear_difficulties=(0.0, 0.0, 0.0, 0.0, -9.0), convection_difficulty=-2.0),
            ex.stepper.generic.DifficultyConvectionStepper(
                1, 160, linear_difficulties=(0.0, 0.0, 0.0, 0.0, -9.0), convection_difficulty=-2.0, order=order
            ),
        ),
    ]
    for ours, theirs in cases:
        u0 = jnp.asarray(np.cumsum(rng.standard_normal(ours.state_shape), axis=-1) * 0.05, jnp.float32)
        u0 = u0 - jnp.mean(u0)
        ours_u = S.make_stepper(ours, order)(u0)
        np.testing.assert_allclose(ours_u, theirs(u0), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("dims,n", [(1, 96), (1, 97), (2, 24)])
def test_convection_forms_agree_exactly_under_the_two_thirds_rule(dims, n):
    """u (1·∇)u from two inverse transforms equals ½ (1·∇)(u²) from one, to round-off in float64,
    when the mask keeps products exact on the kept modes; without dealiasing they differ."""
    pde = S.GeneralNonlinear(dims, 7.0, n, 0.1, nonlinear_coefficients=(0.0, 1.0, 0.0), conservative=False)
    derivative = spectral.derivative_operator(dims, n, 7.0, dtype=jnp.complex128)
    grad = jnp.sum(derivative, axis=0, keepdims=True)
    u = np.random.default_rng(n).standard_normal(pde.state_shape)
    u_hat = spectral.fft(jnp.asarray(u), dims)
    for fraction, exact in ((2 / 3, True), (1.0, False)):
        mask = jnp.asarray(spectral.dealiasing_mask(dims, n, fraction))
        assert spectral.quadratic_products_exact(n, fraction) is exact
        product = pdes._convection_product(pde, u_hat, grad, mask)
        conservative = 0.5 * grad * pde.to_spectral(pde.to_physical(u_hat, mask) ** 2, mask)
        scale = float(jnp.max(jnp.abs(product)))
        if exact:
            np.testing.assert_allclose(conservative, product, atol=1e-12 * scale, rtol=0)
            np.testing.assert_allclose(pdes._convection_term(pde, u_hat, derivative, mask, False), product,
                                       atol=1e-12 * scale, rtol=0)
        else:  # aliases land on the kept modes, differently for the two forms
            assert float(jnp.max(jnp.abs(conservative - product))) > 1e-3 * scale


def test_kdv_rollout_with_the_two_transform_convection_matches_the_product_form(monkeypatch):
    """200 KdV steps (APEBench difficulty form) with u u_x as ½ (u²)_x agree with the
    3-transform product form to float32 round-off."""
    pde = S.difficulty_pde(1, 160, linear_difficulties=(0.0, 0.0, 0.0, -14.0, -9.0), convection_difficulty=-2.0)
    rng = np.random.default_rng(4)
    u0 = jnp.asarray(np.cumsum(rng.standard_normal(pde.state_shape), axis=-1) * 0.05, jnp.float32)
    run = lambda: jax.jit(S.rollout(S.make_stepper(pde, 2, dtype=jnp.float32), 200, save_every=200))(u0 - jnp.mean(u0))[-1]
    fast = run()
    monkeypatch.setattr(spectral, "quadratic_products_exact", lambda *args: False)
    product = run()
    assert float(jnp.max(jnp.abs(fast - u0))) > 0.1  # it moved
    np.testing.assert_allclose(fast, product, atol=2e-5 * float(jnp.max(jnp.abs(product))), rtol=0)


@pytest.mark.parametrize("make", [lambda: S.KuramotoSivashinsky(1, 60.0, 64, 0.1), lambda: S.kolmogorov_flow(2 * math.pi, 16, 0.01)],
                         ids=["ks", "kolmogorov"])
def test_both_forms_of_the_etdrk2_step_agree(make):
    """The ETDRK2 step written with and without reusing its stage state is the same step (float64)."""
    from qsal_jax.solvers import etdrk

    stepper = S.make_stepper(make(), 2, dtype=jnp.float64)
    u_hat = stepper.to_fourier(jnp.asarray(0.3 * np.random.default_rng(5).standard_normal(stepper.pde.state_shape)))
    nonlinear = lambda v: stepper.pde.nonlinear(v, stepper.derivative, stepper.mask)
    fused, reused = (etdrk.etdrk_step(u_hat, stepper.coefficients, nonlinear, 2, flag) for flag in (True, False))
    assert float(jnp.max(jnp.abs(reused - u_hat))) > 1e-6  # it moved
    np.testing.assert_allclose(fused, reused, atol=1e-13 * float(jnp.max(jnp.abs(reused))), rtol=0)


def test_difficulty_mapping_round_trip_and_exponax_agreement():
    gammas = (0.0, 0.0, -82.5, 0.0, -18750.0)
    a = S.linear_coefficients_from_difficulty(gammas, num_spatial_dims=1, num_points=800, domain_extent=3.0, dt=0.5)
    back = S.difficulty_from_linear_coefficients(a, num_spatial_dims=1, num_points=800, domain_extent=3.0, dt=0.5)
    np.testing.assert_allclose(back, gammas, rtol=1e-12)
    # a_j = γ_j L^j / (Δt N^j 2^(j-1) D): KS γ2 at N = 800 on the unit domain
    np.testing.assert_allclose(a[2], -82.5 * 9.0 / (0.5 * 800**2 * 2), rtol=1e-12)
    assert difficulty.linear_coefficients_from_difficulty is S.linear_coefficients_from_difficulty
    utils = pytest.importorskip("exponax.stepper.generic._utils")
    alphas = utils.extract_normalized_coefficients_from_difficulty(gammas, num_spatial_dims=1, num_points=800)
    np.testing.assert_allclose(a, utils.denormalize_coefficients(alphas, domain_extent=3.0, dt=0.5), rtol=1e-12)
    b = S.nonlinear_coefficients_from_difficulty(
        (0.0, -10.0, -150.0), num_spatial_dims=1, num_points=800, maximum_absolute=1.0, domain_extent=3.0, dt=0.5
    )
    beta1 = utils.extract_normalized_convection_scale_from_difficulty(-10.0, num_spatial_dims=1, num_points=800, maximum_absolute=1.0)
    beta2 = utils.extract_normalized_gradient_norm_scale_from_difficulty(-150.0, num_spatial_dims=1, num_points=800, maximum_absolute=1.0)
    np.testing.assert_allclose(b[1], utils.denormalize_convection_scale(beta1, domain_extent=3.0, dt=0.5), rtol=1e-12)
    np.testing.assert_allclose(b[2], utils.denormalize_gradient_norm_scale(beta2, domain_extent=3.0, dt=0.5), rtol=1e-12)


def test_gradient_through_100_step_rollout_matches_finite_differences():
    n = 64

    def loss(theta):
        amp, length = theta[0], theta[1]
        pde = S.KuramotoSivashinsky(1, length, n, 0.05)
        x = spectral.grid(1, n, length, F64)
        u0 = amp * jnp.sin(2 * jnp.pi * x / length) + 0.1 * jnp.cos(6 * jnp.pi * x / length)
        traj = S.rollout(S.make_stepper(pde, 2, dtype=F64), 100, include_init=True)(u0)
        return jnp.mean(traj[-1] ** 2) + jnp.mean(traj[50])

    theta = jnp.array([0.8, 22.0], F64)
    grad = jax.grad(loss)(theta)
    eps = 1e-6
    fd = [(loss(theta.at[i].add(eps)) - loss(theta.at[i].add(-eps))) / (2 * eps) for i in range(2)]
    np.testing.assert_allclose(grad, np.array(fd), rtol=1e-5, atol=1e-9)


def test_batched_coefficients_match_one_at_a_time_without_recompiling():
    from qsal_jax.simulation import get_problem

    sim = get_problem("advection_diffusion_1d")
    lam = sim.space.sample_uniform(jax.random.PRNGKey(3), 5)
    traces = []

    @jax.jit
    def simulate(lam):
        traces.append(1)
        return sim.simulate(lam)

    batched = simulate(lam)
    simulate(lam + 0.0)
    single = [jax.jit(sim.simulate_one)(lam[i]) for i in range(5)]
    np.testing.assert_allclose(batched.u, np.stack(single), rtol=1e-5, atol=1e-6)
    assert len(traces) == 1
    assert bool(jnp.all(batched.finite))


def test_a_pde_must_define_both_operators():
    class Incomplete(pdes.PeriodicPDE):
        def linear_operator(self, derivative):
            return derivative[:1] * 0

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(1, 1.0, 8, 0.1)


def test_stepper_rejects_batched_state_with_a_helpful_error():
    stepper = S.make_stepper(S.KuramotoSivashinsky(1, 60.0, 64, 0.1))
    with pytest.raises(ValueError, match="jax.vmap"):
        stepper(jnp.zeros((4, 1, 64)))


def test_rolling_ball_reaches_the_known_basin():
    well = rolling_ball.default_double_well(2, F64)
    xs = jnp.array([[-1.5, 0.0], [-0.8, 0.3], [1.3, 0.4], [0.9, 1.0], [-1.0, -1.0]], F64)
    rest = S.oracle(well, xs)
    np.testing.assert_array_equal(S.basin(well, rest), [0, 0, 1, 1, 0])
    # The rest point is a stationary point of the surface.
    grads = jax.vmap(jax.grad(S.surface, argnums=1), in_axes=(None, 0))(well, rest)
    assert float(jnp.max(jnp.abs(grads))) < 1e-4
    descent = S.oracle(well, xs, method="descent", num_iterations=3000)
    np.testing.assert_array_equal(S.basin(well, descent), [0, 0, 1, 1, 0])


def test_rolling_ball_any_dimension():
    well = S.default_double_well(5, F64)
    xs = jnp.zeros((2, 5), F64).at[0, 0].set(-1.2).at[1, 0].set(1.2)
    np.testing.assert_array_equal(S.basin(well, S.oracle(well, xs)), [0, 1])


SPECTRAL_STATE_CASES = {
    "advection_diffusion": lambda: S.AdvectionDiffusion(1, 2 * math.pi, 64, 0.01, velocity=1.0, diffusivity=0.05),
    "burgers": lambda: S.Burgers(1, 2 * math.pi, 64, 0.01, diffusivity=0.05),
    "kdv": lambda: S.KortewegDeVries(1, 20.0, 64, 0.005),
    "ks": lambda: S.KuramotoSivashinsky(1, 60.0, 64, 0.1),
    "ks_conservative": lambda: S.KuramotoSivashinskyConservative(1, 60.0, 64, 0.1),
    "ks_2d": lambda: S.KuramotoSivashinsky(2, 30.0, 32, 0.05),
    "allen_cahn": lambda: S.AllenCahn(1, 2.0, 64, 0.01, diffusivity=1e-2),
    "gray_scott": lambda: S.GrayScott(2, 1.0, 32, 1.0),
    "kolmogorov": lambda: S.kolmogorov_flow(2 * math.pi, 32, 0.01),
    "difficulty_gradient_norm": lambda: S.difficulty_pde(1, 64, linear_difficulties=(0.0, 0.0, -1.2, 0.0, -15.0),
                                                         gradient_norm_difficulty=-6.0),
}


@pytest.mark.parametrize("name", sorted(SPECTRAL_STATE_CASES))
def test_spectral_state_rollout_matches_the_physical_space_stepper(name):
    """100 steps with the state kept in Fourier space between the two ends agree with 100 steps
    that go back to physical space every step, to float32 round-off, for every PDE."""
    pde = SPECTRAL_STATE_CASES[name]()
    rng = np.random.default_rng(0)
    u0 = rng.standard_normal(pde.state_shape)
    u0 = np.real(np.fft.ifftn(np.fft.fftn(u0, axes=tuple(range(1, u0.ndim))) * (np.abs(np.fft.fftfreq(u0.shape[-1])) < 0.1),
                              axes=tuple(range(1, u0.ndim))))  # a smooth start
    if name == "gray_scott":
        u0 = np.stack([1 - 0.5 * (u0[0] > 0.5), 0.5 * (u0[1] > 0.5)])
    u0 = jnp.asarray(u0 / max(1.0, np.abs(u0).max()), jnp.float32)
    stepper = S.make_stepper(pde, 2, dtype=jnp.float32)
    spectral_run = jax.jit(S.rollout(stepper, 100, save_every=100))(u0)[-1]
    physical_run = jax.jit(S.rollout(stepper, 100, save_every=100, spectral_state=False))(u0)[-1]
    assert np.all(np.isfinite(np.asarray(physical_run)))
    scale = float(jnp.max(jnp.abs(physical_run)))
    np.testing.assert_allclose(spectral_run, physical_run, atol=2e-5 * max(scale, 1.0), rtol=0)
