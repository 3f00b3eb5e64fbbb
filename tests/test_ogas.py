"""OGAS (Online Generative Active Sampling): contract, numerics of its parts, and a planted conditional.

Run alone: ``.venv/bin/python -m pytest -q tests/test_ogas.py``. Two model sizes are compiled once
each (module-level cache): SMALL for contract and property tests, PLANTED for the learning tests.
"""

from __future__ import annotations

import functools
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from qsal_jax.proposals.base import Proposal, make_feedback
from qsal_jax.proposals.diffusion import make_noise_schedule, respace
from qsal_jax.benchmarks.proposals import time_ogas_calls
from qsal_jax.proposals.ogas import DEFAULTS, ema_moments, fifo_push, make_ogas, ogas, standardise
from qsal_jax.simulation.param_space import ParamSpace

SPACE = ParamSpace.box({"a": (-1.0, 3.0), "b": (0.0, 1e-3), "c": (5.0, 6.0)})
CORNER_SPACE = ParamSpace.box({"x": (-2.0, 2.0), "y": (10.0, 11.0)})
SMALL = dict(hidden=16, depth=1, steps=6, capacity=64, batch_size=16, train_steps=2, min_fill=8, ramp_updates=2)
PLANTED = dict(hidden=64, depth=2, steps=32, train_steps=20, capacity=4096, min_fill=256, ramp_updates=1, r_max=1.0)
B = 32  # feedback batch of the SMALL tests


@functools.lru_cache(maxsize=None)
def built(name: str):
    """(parts, jitted update, jitted sample, jitted generate) for a named configuration."""
    space, kw = {"small": (SPACE, SMALL), "planted": (CORNER_SPACE, PLANTED)}[name]
    p = make_ogas(space, **kw)
    return p, jax.jit(p.update), jax.jit(p.sample, static_argnums=2), jax.jit(p.generate)


def uniform_feedback(space, key, b, loss=None, step=0, valid=None):
    k1, k2 = jax.random.split(key)
    lam = space.sample_uniform(k1, b)
    loss = jax.random.exponential(k2, (b,), jnp.float32) if loss is None else jnp.asarray(loss)
    return make_feedback(lam, loss, step=step, valid=valid)


def tree_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating))


def corner_frac(space, lam):
    return float(jnp.mean(jnp.all(space.to_unit(lam) >= 0.8, axis=-1)))


# ----------------------------------------------------------------------------- contract
def test_contract_jit_shapes_bounds_determinism():
    p, update, sample, _ = built("small")
    state = p.init(jax.random.PRNGKey(0))
    assert float(p.mixing_ratio(state)) == 0.0  # no data yet: every draw uniform
    lam0, after = sample(state, jax.random.PRNGKey(1), 24)
    assert jax.tree_util.tree_structure(after) == jax.tree_util.tree_structure(state)
    assert lam0.shape == (24, SPACE.dim) and lam0.dtype == jnp.float32
    for i in range(4):
        state = update(state, uniform_feedback(SPACE, jax.random.PRNGKey(10 + i), B, step=i))
        if i == 0:
            compiled_update = update._cache_size()
    assert update._cache_size() == compiled_update  # the state keeps its shapes and dtypes
    assert int(state.n_updates) == 4 and int(state.n_trained) == 4
    assert float(p.mixing_ratio(state)) == pytest.approx(SMALL.get("r_max", DEFAULTS["r_max"]))
    k = jax.random.PRNGKey(2)
    compiled = sample._cache_size()
    a, b = sample(state, k, 24)[0], sample(state, k, 24)[0]
    c = sample(state, jax.random.PRNGKey(3), 24)[0]
    assert sample._cache_size() == compiled  # a trained state reuses the executable of the initial one
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    for lam in (lam0, a, c):
        assert lam.shape == (24, SPACE.dim) and bool(jnp.all(jnp.isfinite(lam)))
        assert bool(jnp.all(SPACE.contains(lam)))
    init = p.init(jax.random.PRNGKey(0))
    state2 = update(state, uniform_feedback(SPACE, jax.random.PRNGKey(99), B, step=5))
    assert jax.tree_util.tree_structure(state2) == jax.tree_util.tree_structure(init)
    for x, y in zip(jax.tree_util.tree_leaves(init), jax.tree_util.tree_leaves(state2)):
        assert x.shape == y.shape and x.dtype == y.dtype


def test_proposal_view_and_settings():
    prop = ogas(SPACE, signal="disagreement", **SMALL)
    assert type(prop) is Proposal and callable(prop.init) and callable(prop.sample) and callable(prop.update)
    assert make_ogas(SPACE, signal="disagreement").settings["signal"] == "disagreement"
    with pytest.raises(ValueError, match="ogas: unknown setting 'widht'; known: hidden, "):
        ogas(SPACE, widht=3)
    with pytest.raises(ValueError, match="prior"):
        ogas(SPACE, prior="softmax")
    with pytest.raises(ValueError, match="sample_steps"):
        ogas(SPACE, steps=20, sample_steps=30)
    with pytest.raises(ValueError, match="min_fill"):
        ogas(SPACE, capacity=8, min_fill=9)


def test_trains_only_once_fifo_has_min_fill():
    p, update, _, _ = built("small")
    state = p.init(jax.random.PRNGKey(0))
    before = state.denoiser
    state = update(state, uniform_feedback(SPACE, jax.random.PRNGKey(1), B, valid=jnp.arange(B) < SMALL["min_fill"] - 1))
    assert int(state.fifo_count) == SMALL["min_fill"] - 1 and int(state.n_trained) == 0
    assert float(p.mixing_ratio(state)) == 0.0
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), before, state.denoiser)
    state = update(state, uniform_feedback(SPACE, jax.random.PRNGKey(2), B, valid=jnp.arange(B) < 1))
    assert int(state.n_trained) == 1 and 0.0 < float(p.mixing_ratio(state)) < DEFAULTS["r_max"]


# ------------------------------------------------------------------- signal statistics
def numpy_ema(batches, decay, clip, lower=None):
    """Reference: mixture-moment EMA in float64, first valid batch initialises; ε of each batch,
    clipped to ``[lower, clip]`` (``lower = −clip`` by default)."""
    mean, var, count, eps_out = 0.0, 1.0, 0, []
    for x, v in batches:
        ok = v & np.isfinite(x)
        if ok.any():
            xv = x[ok].astype(np.float64)
            mb, vb = xv.mean(), xv.var()
            if count == 0:
                mean, var = mb, vb
            else:
                mean, var = decay * mean + (1 - decay) * mb, decay * var + (1 - decay) * vb + decay * (1 - decay) * (mb - mean) ** 2
            count += 1
        sd = max(np.sqrt(var), 1e-4 * abs(mean), 1e-30)
        eps_out.append(np.where(ok, np.clip((np.where(ok, x, 0) - mean) / sd, -clip if lower is None else lower, clip), 0.0))
    return mean, var, count, eps_out


def test_ema_statistics_match_numpy():
    p, update, _, _ = built("small")
    rng = np.random.default_rng(0)
    batches = []
    for i in range(6):
        x = (rng.lognormal(0.0, 1.0, B) * (1 + i)).astype(np.float32)
        v = rng.random(B) > 0.2
        if i == 2:
            x[:3] = [np.nan, np.inf, -np.inf]
        if i == 3:
            v[:] = False  # nothing valid: statistics unchanged
        batches.append((x, v))
    state = p.init(jax.random.PRNGKey(0))
    lam = SPACE.sample_uniform(jax.random.PRNGKey(1), B)
    got_eps = []
    for i, (x, v) in enumerate(batches):
        before = int(state.fifo_ptr)
        state = update(state, make_feedback(lam, x, valid=v, step=i))
        n = int(np.sum(v & np.isfinite(x)))
        got_eps.append(np.asarray(state.fifo_eps)[(before + np.arange(n)) % SMALL["capacity"]])
    mean, var, count, ref_eps = numpy_ema(batches, DEFAULTS["ema_decay"], DEFAULTS["eps_clip"])
    assert int(state.ema_count) == count == 5
    np.testing.assert_allclose(float(state.ema_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(float(state.ema_var), var, rtol=1e-4)
    for (x, v), e_ref, e_got in zip(batches, ref_eps, got_eps):
        np.testing.assert_allclose(e_got, e_ref[v & np.isfinite(x)], rtol=1e-4, atol=1e-5)


def test_standardise_degenerate_statistics():
    f32 = jnp.float32
    np.testing.assert_allclose(standardise(jnp.full(4, 7.0, f32), f32(7.0), f32(0.0), 3.0), np.zeros(4), atol=1e-6)
    e = standardise(jnp.array([1e30, -1e30, 0.0], f32), f32(0.0), f32(1.0), 3.0)
    np.testing.assert_array_equal(np.asarray(e), [3.0, -3.0, 0.0])
    m, v, c = ema_moments(f32(0.0), f32(1.0), jnp.int32(0), jnp.array([1e30, -1e30], f32), jnp.ones(2, bool), 0.9)
    assert np.isfinite(float(m)) and np.isfinite(float(v)) and int(c) == 1


# --------------------------------------------------------------------------- schedule
@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_closed_forms_and_respacing(kind):
    sched = make_noise_schedule(50, kind)
    beta = np.asarray(sched.beta, np.float64)
    np.testing.assert_allclose(np.asarray(sched.alpha_bar), np.cumprod(1 - beta), rtol=1e-5, atol=1e-9)
    assert np.all((beta > 0) & (beta < 1)) and float(sched.post_std[0]) == 0.0
    np.testing.assert_allclose([float(sched.post_c0[0]), float(sched.post_ct[0])], [1.0, 0.0], atol=1e-6)
    # x_{t-1} | x_t, x0 has variance β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (Ho et al. 2020, eq. 7).
    ab = np.cumprod(1 - beta)
    np.testing.assert_allclose(np.asarray(sched.post_std[1:]) ** 2, beta[1:] * (1 - ab[:-1]) / (1 - ab[1:]), rtol=1e-4)
    same = respace(sched, 50)
    for a, b in zip(sched, same):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)  # rebuilt from float32 ᾱ
    short = respace(sched, 10)
    assert short.beta.shape == (10,) and int(short.t_model[0]) == 0 and int(short.t_model[-1]) == 49
    np.testing.assert_allclose(np.asarray(short.alpha_bar), np.asarray(sched.alpha_bar)[np.asarray(short.t_model)], rtol=1e-5)
    assert float(short.post_std[0]) == 0.0 and abs(float(short.post_c0[0]) - 1.0) < 1e-6


# ------------------------------------------------------------------------------- FIFO
def test_fifo_wraps_like_a_deque():
    cap, d = 8, 2
    push = jax.jit(fifo_push)
    lam_buf, eps_buf = jnp.zeros((cap, d), jnp.float32), jnp.zeros(cap, jnp.float32)
    ptr, count = jnp.int32(0), jnp.int32(0)
    ring = [None] * cap
    ref_ptr, ref = 0, deque(maxlen=cap)
    rng = np.random.default_rng(1)
    serial = 0
    for b in (5, 5, 3, 20, 1, 0, 7, 12):  # b = 20 and 12 exceed the capacity: keep the newest 8
        eps = np.arange(serial, serial + max(b, 1), dtype=np.float32)[: max(b, 1)]
        serial += max(b, 1)
        valid = rng.random(max(b, 1)) > 0.3 if b else np.zeros(1, bool)
        lam = np.stack([eps, -eps], axis=-1)
        lam_buf, eps_buf, ptr, count = push(lam_buf, eps_buf, ptr, count, jnp.asarray(lam), jnp.asarray(eps), jnp.asarray(valid))
        for e in eps[valid]:
            ring[ref_ptr] = e
            ref_ptr = (ref_ptr + 1) % cap
            ref.append(e)
        assert int(ptr) == ref_ptr and int(count) == len(ref)
        filled = [r for r in ring if r is not None]
        np.testing.assert_array_equal(np.sort(np.asarray(eps_buf)[: int(count)]), np.sort(filled))
        np.testing.assert_array_equal(sorted(filled), sorted(ref))  # the ring holds exactly the newest `cap`
        np.testing.assert_array_equal(np.asarray(lam_buf)[: int(count), 1], -np.asarray(eps_buf)[: int(count)])


# ------------------------------------------------------------------- degenerate signals
DEGENERATE = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, 1.0, -5.0, 1e-30, 3.4e38])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    losses=st.lists(st.lists(DEGENERATE, min_size=B, max_size=B), min_size=1, max_size=3),
    constant=st.one_of(st.none(), DEGENERATE),
    seed=st.integers(0, 2**16),
)
def test_degenerate_signals_keep_state_and_draws_finite(losses, constant, seed):
    p, update, sample, _ = built("small")
    key = jax.random.PRNGKey(seed)
    state = p.init(key)
    state = update(state, uniform_feedback(SPACE, key, B))  # some real data first
    for i, row in enumerate(losses):
        loss = np.full(B, constant, np.float32) if constant is not None else np.asarray(row, np.float32)
        lam = SPACE.sample_uniform(jax.random.fold_in(key, i), B)
        lam = lam.at[0].set(jnp.nan) if i == 0 else lam  # a NaN λ is ignored too
        state = update(state, make_feedback(lam, loss, step=i + 1))
    assert tree_finite(state)
    assert float(jnp.max(jnp.abs(state.fifo_eps))) <= DEFAULTS["eps_clip"]
    lam = sample(state, jax.random.fold_in(key, 7), 24)[0]
    assert bool(jnp.all(jnp.isfinite(lam))) and bool(jnp.all(SPACE.contains(lam)))


def test_non_finite_generator_output_falls_back_to_uniform():
    p, update, sample, _ = built("small")
    state = p.init(jax.random.PRNGKey(0))
    for i in range(2):
        state = update(state, uniform_feedback(SPACE, jax.random.PRNGKey(1 + i), B))
    assert float(p.mixing_ratio(state)) > 0.5
    broken = state._replace(denoiser=jax.tree_util.tree_map(lambda x: jnp.full_like(x, jnp.nan), state.denoiser))
    lam = sample(broken, jax.random.PRNGKey(3), 24)[0]  # same shapes as the contract test: no recompilation
    assert bool(jnp.all(jnp.isfinite(lam))) and bool(jnp.all(SPACE.contains(lam)))


# ------------------------------------------------------------------------------- prior
def test_priors_over_eps():
    p, update, _, _ = built("small")
    state = p.init(jax.random.PRNGKey(0))
    stored = np.array([-1.0, 0.0, 1.0, 3.0], np.float32)
    state = state._replace(fifo_eps=state.fifo_eps.at[:4].set(stored), fifo_count=jnp.int32(4))
    draws = np.asarray(jax.jit(p.prior, static_argnums=2)(state, jax.random.PRNGKey(1), 20000))
    counts = np.array([(draws == s).sum() for s in stored])
    assert counts.sum() == draws.size and counts[0] == 0  # the easiest pair has zero weight
    w = stored.astype(np.float64) - stored.min()
    expected = w[1:] / w.sum() * counts.sum()
    assert stats.chisquare(counts[1:], expected).pvalue > 1e-3
    pq = make_ogas(SPACE, prior="quantile", quantile=0.5, **SMALL)
    stored = np.arange(40, dtype=np.float32) / 10 - 1.0  # [-1, 2.9]
    state = state._replace(fifo_eps=state.fifo_eps.at[:40].set(stored), fifo_count=jnp.int32(40))
    q = np.asarray(jax.jit(pq.prior, static_argnums=2)(state, jax.random.PRNGKey(2), 5000))
    lo = stored[int(np.floor(0.5 * 39))]
    assert q.min() >= lo and q.max() <= stored.max()
    assert stats.kstest(q, "uniform", args=(lo, stored.max() - lo)).pvalue > 1e-3


# ------------------------------------------------------------------------------- vmap
def test_vmap_over_independent_states():
    p, update, _, _ = built("small")
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states = jax.vmap(p.init)(keys)
    fbs = [uniform_feedback(SPACE, jax.random.fold_in(k, 1), B) for k in keys]
    batched_fb = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *fbs)
    vupdate = jax.jit(jax.vmap(p.update))
    vsample = jax.jit(jax.vmap(p.sample, in_axes=(0, 0, None)), static_argnums=2)
    states = vupdate(states, batched_fb)
    lam, _ = vsample(states, keys, 12)
    assert lam.shape == (3, 12, SPACE.dim) and bool(jnp.all(SPACE.contains(lam)))
    for i, k in enumerate(keys):
        one = update(p.init(k), fbs[i])
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-4, atol=1e-5), states, one
        )
    assert not np.allclose(np.asarray(lam[0]), np.asarray(lam[1]))


# ------------------------------------------------------------------- planted conditional
def corner_loss(space, lam):
    return jnp.all(space.to_unit(lam) >= 0.8, axis=-1).astype(jnp.float32)


@pytest.fixture(scope="module")
def planted_state():
    """100 updates of B = 256 uniform λ with signal 1 in the corner [0.8, 1]² of the unit square, else 0."""
    p, update, _, _ = built("planted")
    key = jax.random.PRNGKey(0)
    state = p.init(key)
    for i in range(100):
        lam = CORNER_SPACE.sample_uniform(jax.random.fold_in(key, i), 256)
        state = update(state, make_feedback(lam, corner_loss(CORNER_SPACE, lam), step=i))
    return state


def test_learns_planted_conditional(planted_state):
    p, _, sample, generate = built("planted")
    state = planted_state
    n = 1000
    hi = generate(state, jax.random.PRNGKey(1), jnp.full((n,), DEFAULTS["eps_clip"], jnp.float32))
    lo = generate(state, jax.random.PRNGKey(2), jnp.full((n,), float(jnp.min(state.fifo_eps)), jnp.float32))
    frac_hi = float(jnp.mean(jnp.all(hi >= 0.8, -1)))
    frac_lo = float(jnp.mean(jnp.all(lo >= 0.8, -1)))
    # Uniform puts 4 % in the corner; a one-sided binomial test against that is decisive at n = 1000.
    assert frac_hi > 0.6 and stats.binomtest(int(frac_hi * n), n, 0.04, alternative="greater").pvalue < 1e-10
    assert frac_lo < 0.1
    # Through `sample` (mixing ratio 1, proportional prior): the hard corner dominates the draws.
    lam = sample(state, jax.random.PRNGKey(3), n)[0]
    assert bool(jnp.all(CORNER_SPACE.contains(lam))) and corner_frac(CORNER_SPACE, lam) > 0.6
    # A 10-step respaced sampler on the same network still finds the corner.
    fast = make_ogas(CORNER_SPACE, **PLANTED, sample_steps=10)
    z = jax.jit(fast.generate)(state, jax.random.PRNGKey(4), jnp.full((n,), DEFAULTS["eps_clip"], jnp.float32))
    assert float(jnp.mean(jnp.all(z >= 0.8, -1))) > 0.6


def test_importance_weights(planted_state):
    p, update, _, _ = built("planted")
    zq = jax.random.uniform(jax.random.PRNGKey(9), (4000, 2), jnp.float32)
    corner = np.asarray(jnp.all(zq >= 0.8, -1))
    w = np.asarray(p.importance_weights(planted_state, zq))  # FIFO filled by uniform λ
    assert abs(w.mean() - 1.0) < 0.1 and np.percentile(np.abs(np.log(w)), 95) < np.log(1.5)
    # Half of every batch drawn in the corner: p_fifo/p_unif = 0.5 + 0.5/0.04 there, 0.5 elsewhere.
    state = p.init(jax.random.PRNGKey(1))
    for i in range(30):
        u = jax.random.uniform(jax.random.PRNGKey(100 + i), (256, 2), jnp.float32)
        u = u.at[128:].set(0.8 + 0.2 * u[128:])
        state = update(state, make_feedback(CORNER_SPACE.from_unit(u), jnp.zeros(256), step=i))
    w = np.asarray(p.importance_weights(state, zq))
    assert w[corner].mean() < 0.4 and w[~corner].mean() > 1.5
    assert w.min() >= 1 / DEFAULTS["weight_clip"] - 1e-6 and w.max() <= DEFAULTS["weight_clip"] + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("dim", [308])
def test_time_ogas_calls_reports_positive_times(dim):
    r = time_ogas_calls(ParamSpace.vector("a", dim, 0.0, 1.0), n=16, batch=32, repeats=2, warm_updates=1, **SMALL)
    assert r["sample_us"] > 0 and r["update_us"] > 0 and r["mixing_ratio"] > 0


# ----------------------------------------------------------------- boundary: rejection
def _overshooting(state):
    """A generator that puts most of its mass outside: with all parameters zero the network predicts
    ε̂ = 0, so x̂0 = x_t / √ᾱ_t overshoots the cube (62 % of draws, measured)."""
    return state._replace(denoiser=jax.tree_util.tree_map(jnp.zeros_like, state.denoiser))


def _exact_gaussian_denoiser(sched, mean: float, std: float):
    """The exact ε̂ for data N(mean, std²) in one dimension: ε̂ = (x_t − √ᾱ x̂0)/√(1 − ᾱ) with
    x̂0 = E[x0 | x_t] = mean + std² √ᾱ (x_t − √ᾱ mean) / (ᾱ std² + 1 − ᾱ)."""

    def apply(params, x, t, eps, null):
        ab = sched.alpha_bar[t][:, None]
        x0 = mean + std**2 * jnp.sqrt(ab) * (x - jnp.sqrt(ab) * mean) / (ab * std**2 + 1.0 - ab)
        return (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)

    return apply


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_unclipped_sampler_with_the_exact_denoiser_draws_the_data_law_and_clipping_piles_mass_at_the_face(schedule):
    """With the exact denoiser of N(0.8, 0.3²) (a quarter of it beyond the face at +1), the
    unclipped sampler draws that law: its mean, a spread within the 100-step discretisation's
    few per cent, and P(x > 1) = 0.252. Clipping x̂0 at every step but the last folds the mass
    beyond the face back onto it: fewer rows land outside, and the density in the last 0.05
    below the face is about twice the law's (the face pile-up that `clip_denoised` controls)."""
    from qsal_jax.proposals.diffusion import ddpm_sample

    sched = make_noise_schedule(100, schedule)
    apply = _exact_gaussian_denoiser(sched, 0.8, 0.3)
    eps = jnp.zeros((20000,), jnp.float32)

    def draw(clip):
        x = ddpm_sample(apply, None, sched, jax.random.PRNGKey(0), eps, 1, 0.0, clip_final=False, clip_denoised=clip)
        return np.asarray(x)[:, 0]

    free, clipped = draw(False), draw(True)
    assert abs(free.mean() - 0.8) < 0.01 and 0.26 < free.std() < 0.31
    law_outside = stats.norm.sf(1.0, 0.8, 0.3)  # 0.252
    assert abs(np.mean(free > 1.0) - law_outside) < 0.03
    near_face = lambda x: np.mean(x[x < 1.0] > 0.95)  # in-box share within 0.05 of the face
    law_near = (stats.norm.cdf(1.0, 0.8, 0.3) - stats.norm.cdf(0.95, 0.8, 0.3)) / stats.norm.cdf(1.0, 0.8, 0.3)
    assert abs(near_face(free) - law_near) < 0.015
    assert np.mean(clipped > 1.0) < 0.6 * law_outside and near_face(clipped) > 1.7 * law_near


def test_clip_denoised_is_a_checked_setting_and_reaches_the_sampler():
    from qsal_jax.proposals.checks import SettingError

    with pytest.raises(SettingError, match="clip_denoised"):
        make_ogas(SPACE, **SMALL, clip_denoised="no")
    state = _overshooting(make_ogas(SPACE, **SMALL).init(jax.random.PRNGKey(0)))
    eps = jnp.zeros((2000,), jnp.float32)
    outside = {clip: 1.0 - float(jnp.mean(make_ogas(SPACE, **SMALL, clip_denoised=clip).draw(
        state, jax.random.PRNGKey(1), eps)[1])) for clip in (True, False)}
    # ε̂ = 0 gives x̂0 = x_t / √ᾱ_t: unclipped, the last step's x_t is far out; clipped, it is not.
    assert outside[False] > outside[True] + 0.1, outside


def test_out_of_box_draws_are_rejected_never_clipped_to_faces():
    from qsal_jax.proposals.diffusion import Denoiser, ddpm_sample

    p, _, sample, generate = built("small")
    state = _overshooting(p.init(jax.random.PRNGKey(0)))
    n = 4000
    eps = jnp.zeros((n,), jnp.float32)
    # The earlier rule (x̂0 clipped at the last step too) puts point masses on the faces: test power.
    net = Denoiser(SPACE.dim, SMALL["hidden"], SMALL["depth"], SMALL["steps"], DEFAULTS["eps_clip"])
    clipped = 0.5 * (ddpm_sample(net.apply, state.denoiser, make_noise_schedule(SMALL["steps"]), jax.random.PRNGKey(1), eps,
                                 SPACE.dim, DEFAULTS["guidance"], clip_final=True) + 1.0)
    assert np.mean(np.any((clipped == 0) | (clipped == 1), axis=-1)) > 0.3
    z = np.asarray(generate(state, jax.random.PRNGKey(2), eps))
    assert np.all(np.isfinite(z)) and np.all((z > 0) & (z < 1)), "every generator row lies inside the open cube"
    # Mostly the generator's own in-box draws (4 rounds: 0.62^4 ≈ 15 % fall back to uniform), not uniform ones.
    assert stats.kstest(z[:, 0], "uniform").pvalue < 1e-3
    # Through `sample` with every draw from the generator: strictly inside the box, never on a face.
    state = state._replace(n_trained=jnp.int32(10))
    assert float(p.mixing_ratio(state)) == pytest.approx(SMALL.get("r_max", DEFAULTS["r_max"]))
    lo, hi = np.asarray(SPACE.low_array, np.float32), np.asarray(SPACE.high_array, np.float32)
    for i in range(5):
        lam = np.asarray(sample(state, jax.random.PRNGKey(10 + i), 24)[0])
        assert np.all((lam > lo) & (lam < hi)), lam
    one_round = make_ogas(SPACE, reject_rounds=1, **SMALL)
    z1 = np.asarray(jax.jit(one_round.generate)(state, jax.random.PRNGKey(2), eps))
    assert np.all((z1 > 0) & (z1 < 1))
    # Fewer rounds, more uniform fallbacks: the draws are closer to uniform.
    assert stats.kstest(z1[:, 0], "uniform").statistic < stats.kstest(z[:, 0], "uniform").statistic


def test_eps_cap_mode_caps_at_five_and_keeps_the_low_tail():
    """``eps_mode="cap"``: ε = min(z, 5) (authors' reference), where the default clips z to ±3."""
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=B).astype(np.float32)
    x2 = np.concatenate([[4.0, 12.0, -6.0], rng.normal(size=B - 3)]).astype(np.float32)
    batches = [(x1, np.ones(B, bool)), (x2, np.ones(B, bool))]
    lam = SPACE.sample_uniform(jax.random.PRNGKey(1), B)
    for mode, top, lower in (("cap", DEFAULTS["eps_cap"], -1e3), ("clip", DEFAULTS["eps_clip"], None)):
        p = make_ogas(SPACE, eps_mode=mode, **SMALL)
        state = p.init(jax.random.PRNGKey(0))
        for i, (x, v) in enumerate(batches):
            state = jax.jit(p.update)(state, make_feedback(lam, x, valid=v, step=i))
        _, _, _, ref = numpy_ema(batches, DEFAULTS["ema_decay"], top, lower)
        got = np.asarray(state.fifo_eps)[B: 2 * B]
        np.testing.assert_allclose(got, ref[1], rtol=1e-4, atol=1e-5)
        if mode == "cap":
            assert got[1] == 5.0 and 3.0 < got[0] < 5.0 and got[2] < -3.0, got[:3]  # capped above only
        else:
            assert got[1] == 3.0 and got[0] == 3.0 and got[2] == -3.0
    with pytest.raises(ValueError, match="eps_mode"):
        ogas(SPACE, eps_mode="soft")


def _planted_ratio(params):
    """Classifier logit ≈ silu(silu(10 (2 z0 − 1))): weight ≈ 0.1 (clipped) for z0 near 1, ≈ 1 near 0."""
    params = jax.tree_util.tree_map(jnp.zeros_like, params)
    p = params["params"]
    last = max(p, key=lambda k: int(k.split("_")[1]))
    for name, value in (("Dense_0", 10.0), ("Dense_1", 1.0), (last, 1.0)):
        p[name]["kernel"] = p[name]["kernel"].at[0, 0].set(value)
    return params


def test_proportional_prior_uses_importance_weights():
    """Pairs (z0 = 0.9, ε = 2), (z0 = 0.1, ε = 1), (ε = 0, the minimum): weights w·(ε − 0)."""
    p, _, _, _ = built("small")
    state = p.init(jax.random.PRNGKey(0))
    lam = state.fifo_lam.at[:3].set(jnp.asarray([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5], [0.5, 0.5, 0.5]], jnp.float32))
    state = state._replace(fifo_lam=lam, fifo_eps=state.fifo_eps.at[:3].set(jnp.asarray([2.0, 1.0, 0.0], jnp.float32)),
                           fifo_count=jnp.int32(3), ratio=_planted_ratio(state.ratio))
    w = np.asarray(p.importance_weights(state, lam[:2]), np.float64)
    np.testing.assert_allclose(w, [1 / DEFAULTS["weight_clip"], 1.0], rtol=1e-2)
    plain = make_ogas(SPACE, prior_importance=False, **SMALL)
    reps = 20000
    for parts, p_two in ((p, 2 * w[0] / (2 * w[0] + w[1])), (plain, 2.0 / 3.0)):
        draws = np.asarray(jax.jit(parts.prior, static_argnums=2)(state, jax.random.PRNGKey(1), reps))
        counts = np.array([(draws == 2.0).sum(), (draws == 1.0).sum()])
        assert counts.sum() == reps
        expected = counts.sum() * np.array([p_two, 1.0 - p_two])
        assert stats.chisquare(counts, expected).pvalue > 1e-3, (counts, p_two)


# ------------------------------------------------------------------ training schedule
def test_train_every_k_trains_on_updates_0_k_2k_only():
    p = make_ogas(SPACE, **dict(SMALL, train_every=3))
    update = jax.jit(p.update)
    state = p.init(jax.random.PRNGKey(0))
    lam = SPACE.from_unit(jax.random.uniform(jax.random.PRNGKey(1), (B, SPACE.dim)))
    trained = []
    for i in range(7):
        before = state.denoiser
        state = update(state, make_feedback(lam, jnp.linspace(0.0, 1.0, B), step=i))
        moved = any(bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.denoiser)))
        trained.append(moved)
    assert trained == [True, False, False, True, False, False, True]  # the FIFO holds min_fill from update 0
    assert int(state.n_trained) == 3 and int(state.fifo_count) == min(7 * B, SMALL["capacity"])


def test_auto_train_every_bounds_the_generator_share_of_the_step_flops():
    from qsal_jax.proposals.ogas import auto_train_every

    surrogate = 1e6
    one = make_ogas(SPACE, **dict(SMALL, train_steps=1, train_every="auto", surrogate_step_flops=surrogate))
    two = make_ogas(SPACE, **dict(SMALL, train_steps=2, train_every="auto", surrogate_step_flops=surrogate))
    g1, g2 = one.settings["generator_round_flops"], two.settings["generator_round_flops"]
    np.testing.assert_allclose(g2, 2 * g1, rtol=1e-6)  # the round's scan is multiplied out
    for share in (0.01, 0.05, 0.2):
        k = auto_train_every(g2, surrogate, share)
        bound = share / (1 - share) * surrogate
        assert g2 / k <= bound * (1 + 1e-9) and (k == 1 or g2 / (k - 1) > bound)  # the least such k
    assert two.settings["train_every"] == auto_train_every(g2, surrogate, 0.05)
    assert auto_train_every(g2, 1e6 * g2, 0.05) == 1  # a surrogate far dearer than the generator: every update


@pytest.mark.parametrize("bad, field", [(dict(train_every="auto"), "surrogate_step_flops"),
                                        (dict(train_every="auto", surrogate_step_flops=1e6, generator_share=1.0), "generator_share"),
                                        (dict(train_every="often"), "train_every"), (dict(train_every=0), "train_every")])
def test_bad_training_schedule_is_one_line_naming_the_field(bad, field):
    with pytest.raises(ValueError, match=field) as info:
        make_ogas(SPACE, **dict(SMALL, **bad))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("rounds", [1, 3])
def test_fallback_counter_matches_the_out_of_box_rate(rounds):
    """``diagnostics()["fallback_share"]`` counts generator rows that stayed out of the box after
    ``reject_rounds`` calls: with p the rate at which one call lands outside (measured on an
    independent draw of the same generator), the share is p^rounds (binomial test on both)."""
    from qsal_jax.proposals.diffusion import Denoiser, ddpm_sample

    settings = dict(SMALL, reject_rounds=rounds, draw_batch=400, r_max=1.0)
    p = make_ogas(SPACE, **settings)
    state = _overshooting(p.init(jax.random.PRNGKey(0)))._replace(n_trained=jnp.int32(10))
    sample = jax.jit(p.sample, static_argnums=2)
    n_calls, n = 100, 40  # 4000 rows through 10 refills of the 400-row queue
    for i in range(n_calls):
        lam, state = sample(state, jax.random.PRNGKey(100 + i), n)
        assert bool(jnp.all(SPACE.contains(lam)))
    d = {k: float(v) for k, v in p.diagnostics(state).items()}
    assert int(state.n_generated) == n_calls * n and int(state.n_drawn) == n_calls * n
    assert d["generator_share"] == pytest.approx(1.0) and d["generator_steps"] == 10 * SMALL["train_steps"]
    net = Denoiser(SPACE.dim, SMALL["hidden"], SMALL["depth"], SMALL["steps"], DEFAULTS["eps_clip"])
    x = ddpm_sample(net.apply, state.denoiser, make_noise_schedule(SMALL["steps"]), jax.random.PRNGKey(7),
                    jnp.zeros((8000,), jnp.float32), SPACE.dim, DEFAULTS["guidance"], clip_final=False)
    z = 0.5 * (np.asarray(x) + 1.0)
    p_out = np.mean(np.any((z <= 0) | (z >= 1), axis=-1))
    assert 0.3 < p_out < 0.9  # the overshooting generator: a decisive test needs both outcomes
    fallbacks = round(d["fallback_share"] * n_calls * n)
    assert stats.binomtest(fallbacks, n_calls * n, p_out**rounds).pvalue > 1e-3, (d["fallback_share"], p_out**rounds)
