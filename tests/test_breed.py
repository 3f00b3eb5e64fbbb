"""Breed, offline and online: draws against the analytic reflected mixture, schedules, fallbacks.

The reference density of a reflected Gaussian on [0, 1] (mirror images at every face):
``F(y; μ, σ) = Σ_k Φ((2k + y − μ)/σ) − Φ((2k − y − μ)/σ)``, and GM's CDF is the weighted sum.
"""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import make_feedback
from qsal_jax.proposals.base import Feedback
from qsal_jax.proposals.breed import breed
from qsal_jax.proposals.breed_online import batch_excess, breed_online
from qsal_jax.simulation.param_space import ParamSpace


def reflected_cdf(y, mu, sigma, images=6):
    """CDF on [0, 1] of N(μ, σ²) folded by reflection; ``y [...]``, ``mu [M]`` → ``[..., M]``."""
    y = np.asarray(y, np.float64)[..., None]
    k = np.arange(-images, images + 1)[:, None]
    out = stats.norm.cdf((2 * k + y[..., None, :] - mu) / sigma) - stats.norm.cdf((2 * k - y[..., None, :] - mu) / sigma)
    return out.sum(axis=-2)


def draws(p):
    """Jitted ``(state, key, n) -> λ``: these tests draw from a fixed state, so the state
    ``sample`` returns (unchanged by Breed) is dropped."""
    return jax.jit(lambda state, key, n: p.sample(state, key, n)[0], static_argnums=2)


def all_gm(space, **kw):
    """Breed whose samples are all concentrated draws (α ≡ 1)."""
    return breed(space, alpha0=1.0, alpha1=0.0, alpha_max=1.0, **kw)


# --------------------------------------------------------------------------- offline Breed
def test_alpha_schedule_is_capped_linear():
    got = np.asarray(C.alpha_schedule(jnp.arange(7), 0.2, 0.15, 0.8))
    np.testing.assert_allclose(got, [0.2, 0.35, 0.5, 0.65, 0.8, 0.8, 0.8], rtol=1e-6)
    with pytest.raises(ValueError):
        breed(ParamSpace.vector("x", 2, 0, 1), alpha0=1.5)
    with pytest.raises(ValueError):
        breed(ParamSpace.vector("x", 2, 0, 1), sigma=0.0)


def test_split_is_deterministic_round_alpha_n():
    """Round i gives exactly ⌊α_i n + ½⌋ concentrated draws (a tight kernel at one centre marks them)."""
    space = ParamSpace.vector("x", 3, -1.0, 1.0)
    p = breed(space, sigma=1e-4, alpha0=0.2, alpha1=0.15, alpha_max=0.8, population=16)
    lam = np.asarray(space.sample_uniform(jax.random.PRNGKey(0), 16))
    loss = np.zeros(16)
    loss[3] = 1.0
    s = p.init(jax.random.PRNGKey(0))
    sample = draws(p)
    n = 101
    x = np.asarray(sample(s, jax.random.PRNGKey(1), n))
    assert np.sum(np.all(np.abs(x - lam[3]) < 1e-2, axis=1)) == 0, "no GM before the first update"
    for i in range(6):
        s = jax.jit(p.update)(s, make_feedback(lam, loss, step=i))
        x = np.asarray(sample(s, jax.random.PRNGKey(10 + i), n))
        near = np.all(np.abs(x - lam[3]) < 1e-2, axis=1)
        alpha = min(0.15 * i + 0.2, 0.8)
        assert near.sum() == np.floor(alpha * n + 0.5), (i, near.sum())
        assert not np.all(near[: near.sum()]), "the split is shuffled"


def test_gm_draws_match_reflected_mixture_1d():
    """KS test of 20 000 draws against the analytic CDF; centres near both faces exercise reflection."""
    space = ParamSpace.box({"x": (-1.0, 3.0)})
    mu, w, sigma = np.array([0.02, 0.5, 0.97]), np.array([1.0, 2.0, 3.0]), 0.1
    p = all_gm(space, sigma=sigma, population=3)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), make_feedback(space.from_unit(jnp.asarray(mu[:, None])), w))
    z = np.asarray(space.to_unit(draws(p)(s, jax.random.PRNGKey(1), 20_000)))[:, 0].astype(np.float64)
    cdf = lambda y: reflected_cdf(y, mu, sigma) @ (w / w.sum())  # noqa: E731
    assert stats.kstest(z, cdf).pvalue > 1e-3
    # The same draws are far from the unreflected mixture (the test has power).
    unreflected = lambda y: stats.norm.cdf((np.asarray(y)[..., None] - mu) / sigma) @ (w / w.sum())  # noqa: E731
    assert stats.kstest(z, unreflected).pvalue < 1e-6


def test_gm_sampler_matches_distrax_mixture_before_reflection():
    """The ancestral O(n·D) sampler draws from distrax's MixtureSameFamily (two-sample KS per axis)."""
    centres = jnp.asarray([[0.1, 0.8], [0.6, 0.3], [0.9, 0.9]], jnp.float32)
    w = jnp.asarray([0.2, 0.5, 0.3], jnp.float32)
    ours = np.asarray(C.gm_sample(jax.random.PRNGKey(0), centres, C.categorical_cdf(w), 0.2, 8000, reflect=False))
    ref = np.asarray(C.gaussian_mixture(centres, w, 0.2).sample(seed=jax.random.PRNGKey(1), sample_shape=8000))
    for d in range(2):
        assert stats.ks_2samp(ours[:, d], ref[:, d]).pvalue > 1e-3
    proj = np.array([1.0, -0.7])  # a joint direction too
    assert stats.ks_2samp(ours @ proj, ref @ proj).pvalue > 1e-3


def test_gm_draws_match_reflected_mixture_2d_chi2():
    """χ² over a 10×10 grid against cell masses of the reflected product kernels (a corner centre too)."""
    space = ParamSpace.box({"a": (0.0, 2.0), "b": (5.0, 6.0)})
    mu = np.array([[0.0, 0.0], [0.5, 0.95], [0.8, 0.3], [0.3, 0.6]])
    w = np.array([2.0, 1.0, 1.5, 0.5])
    sigma = np.array([0.15, 0.1])
    p = all_gm(space, sigma=sigma, population=4)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), make_feedback(space.from_unit(jnp.asarray(mu)), w))
    n = 40_000
    z = np.asarray(space.to_unit(draws(p)(s, jax.random.PRNGKey(2), n)), np.float64)
    edges = np.linspace(0, 1, 11)
    counts, _, _ = np.histogram2d(z[:, 0], z[:, 1], bins=[edges, edges])
    fa = np.diff(reflected_cdf(edges, mu[:, 0], sigma[0]), axis=0)  # [10, M]
    fb = np.diff(reflected_cdf(edges, mu[:, 1], sigma[1]), axis=0)
    expected = np.einsum("im,jm,m->ij", fa, fb, w / w.sum()) * n
    assert abs(expected.sum() - n) < 1e-6 * n
    keep = expected > 5
    obs, exp = counts[keep], expected[keep]
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


def test_high_losses_attract_the_expected_fraction():
    """Losses high in a square: the fraction of draws there matches α·P_GM(square) + (1−α)·area."""
    space = ParamSpace.vector("x", 2, 0.0, 1.0)
    pop = 512
    lam = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (pop, 2)), np.float64)
    lo, hi = 0.7, 0.9
    inside = np.all((lam > lo) & (lam < hi), axis=1)
    loss = np.where(inside, 10.0, 0.1)
    sigma, n = 0.05, 20_000
    p = breed(space, sigma=sigma, alpha0=0.7, alpha1=0.0, alpha_max=0.9, population=pop)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(1)), make_feedback(lam.astype(np.float32), loss))
    x = np.asarray(draws(p)(s, jax.random.PRNGKey(2), n), np.float64)
    frac = np.mean(np.all((x > lo) & (x < hi), axis=1))
    # Analytic: weights ∝ loss, reflected product kernels.
    lam32 = lam.astype(np.float32).astype(np.float64)
    cell = [np.diff(reflected_cdf(np.array([lo, hi]), lam32[:, d], sigma), axis=0)[0] for d in range(2)]
    p_gm = np.sum(loss / loss.sum() * cell[0] * cell[1])
    n_c = np.floor(0.7 * n + 0.5)
    expected = (n_c * p_gm + (n - n_c) * (hi - lo) ** 2) / n
    sd = np.sqrt(expected * (1 - expected) / n)
    assert abs(frac - expected) < 5 * sd, (frac, expected)
    assert frac > 5 * (hi - lo) ** 2


@pytest.mark.parametrize("sigma", [0.3, 5.0, 1e3])
def test_boundary_population_stays_in_box(sigma):
    space = ParamSpace.box({"a": (0.1, 0.3), "b": (-7.0, -6.0), "c": (1e3, 1e3 + 1e-3)})
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 3, indexing="ij")).reshape(3, -1).T
    p = all_gm(space, sigma=sigma, population=8)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), make_feedback(space.from_unit(jnp.asarray(corners, jnp.float32)), np.ones(8)))
    x = draws(p)(s, jax.random.PRNGKey(1), 5000)
    assert x.dtype == jnp.float32
    assert bool(jnp.all(space.contains(x))) and bool(jnp.all(jnp.isfinite(x)))
    z = np.asarray(space.to_unit(x.astype(jnp.float64)))
    if sigma == 0.3:  # reflection keeps the kernel mass near the corners, not at the centre
        assert np.mean(np.abs(z - 0.5).max(axis=1) > 0.25) > 0.6


def test_breed_fallbacks():
    """All-equal losses → GM over the whole population; no positive loss → uniform draws."""
    space = ParamSpace.vector("x", 2, 0.0, 1.0)
    lam = np.array([[0.2, 0.2], [0.8, 0.8]], np.float32)
    p = all_gm(space, sigma=1e-3, population=4)  # two padded rows: never chosen
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), make_feedback(lam, [3.0, 3.0]))
    x = np.asarray(draws(p)(s, jax.random.PRNGKey(1), 4000))
    d = np.abs(x[:, None, :] - lam[None]).max(-1)
    assert np.all(d.min(1) < 0.01)
    assert abs(np.mean(d.argmin(1) == 0) - 0.5) < 4 * np.sqrt(0.25 / 4000)
    for bad in ([0.0, 0.0], [np.nan, -1.0], [np.inf, -np.inf]):
        s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), make_feedback(lam, bad))
        assert not bool(s.has_mass)
        x = np.asarray(draws(p)(s, jax.random.PRNGKey(1), 4000))
        for j in range(2):
            assert stats.kstest(x[:, j], "uniform").pvalue > 1e-3


B_PROP = 16
_BREED = all_gm(ParamSpace.box({"a": (-1.0, 1.0), "b": (0.0, 1e-3)}), sigma=1e-5, population=B_PROP)
_UPDATE, _SAMPLE = jax.jit(_BREED.update), draws(_BREED)
_LAM = np.stack([np.linspace(-0.9, 0.9, B_PROP), np.linspace(0.0, 1e-3, B_PROP)], axis=1)

losses = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=B_PROP,
    elements=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=32),
        st.sampled_from([0.0, 1e30, -1e30, 1e-38, 1e-45, np.nan, np.inf]),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loss=losses, valid=hnp.arrays(bool, B_PROP))
def test_breed_any_losses_give_finite_in_box_draws(loss, valid):
    """Property: whatever the losses, draws are finite and in the box, and only come from kernels of
    positive, finite, valid losses — or, with none, from the uniform fallback."""
    space = ParamSpace.box({"a": (-1.0, 1.0), "b": (0.0, 1e-3)})
    fb = make_feedback(_LAM.astype(np.float32), loss, valid=valid)
    s = _UPDATE(_BREED.init(jax.random.PRNGKey(0)), fb)
    x = _SAMPLE(s, jax.random.PRNGKey(1), 256)
    assert bool(jnp.all(jnp.isfinite(x))) and bool(jnp.all(space.contains(x)))
    assert np.all(np.isfinite(np.asarray(s.cdf)))
    # Subnormal losses count as zero: XLA on CPU flushes denormals.
    ok = np.isfinite(loss) & (loss >= np.finfo(loss.dtype).tiny) & valid
    assert bool(s.has_mass) == bool(ok.any())
    if ok.any():
        d = np.abs(np.asarray(x)[:, None, 0] - _LAM[None, :, 0])
        nearest = d.argmin(1)
        assert np.all(d.min(1) < 1e-3) and np.all(ok[nearest]), "draws only around positive-loss centres"


@jax.jit
def _weights_and_draws(w):
    wt, has_mass = C.safe_weights(w, dtype=jnp.float32)
    cdf = C.categorical_cdf(wt)
    return wt, has_mass, cdf, C.categorical_sample(jax.random.PRNGKey(0), cdf, 512)


@settings(max_examples=60, deadline=None)
@given(w=hnp.arrays(np.float64, 8, elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_safe_weights_and_cdf_properties(w):
    wt, has_mass, cdf, idx = (np.asarray(a) for a in _weights_and_draws(jnp.asarray(w)))
    assert np.all(np.isfinite(wt)) and np.all((wt >= 0) & (wt <= 1))
    ok = np.isfinite(w) & (w >= np.finfo(w.dtype).tiny)  # subnormals flush to zero on CPU
    assert bool(has_mass) == bool(ok.any())
    assert not np.any((wt > 0) & ~ok), "weight only where the loss is positive and finite"
    if ok.any():  # ... and there, unless it is below float32's range relative to the largest
        ratio = np.where(ok, w, 0) / w[ok].max()
        assert np.all(wt[ratio > 1e-30] > 0)
        assert wt.max() == 1.0
    assert np.all(np.diff(cdf) >= 0) and cdf[-1] == 1.0
    allowed = wt > 0 if wt.any() else np.ones_like(wt, bool)
    assert np.all(allowed[idx])


# --------------------------------------------------------------------------- online Breed
def _np_excess(loss, valid):
    ok = valid & np.isfinite(loss)
    m, s = loss[ok].mean(), loss[ok].std()
    return np.where(ok, np.maximum((loss - m) / s, 0) if s > 0 else 0.0, 0.0), ok


def test_online_aggregation_matches_numpy():
    """∂l_j = mean over (t, i) of max((l − m_i)/s_i, 0), over several batches, by a NumPy loop."""
    space = ParamSpace.box({"a": (0.0, 2.0), "b": (-1.0, 1.0)})
    rng = np.random.default_rng(0)
    n_ids, bsz = 20, 24
    lam_of = rng.uniform(size=(n_ids, 2)) * [2.0, 2.0] - [0.0, 1.0]
    p = breed_online(space, population=64)
    s = p.init(jax.random.PRNGKey(0))
    update = jax.jit(p.update)
    acc_sum, acc_cnt = np.zeros(n_ids), np.zeros(n_ids)
    for step in range(6):
        ids = rng.integers(-1, n_ids, bsz)  # -1: sample not linked to a simulation
        loss = rng.exponential(size=bsz) * (1 + ids % 3)
        loss[rng.random(bsz) < 0.1] = np.nan
        valid = rng.random(bsz) > 0.15
        lam = lam_of[ids].astype(np.float32)
        s = update(s, make_feedback(lam, loss, lam_id=ids, valid=valid, step=step, time_index=rng.integers(0, 9, bsz)))
        dl, ok = _np_excess(loss, valid)
        for j in range(n_ids):
            sel = ok & (ids == j)
            acc_sum[j] += dl[sel].sum()
            acc_cnt[j] += sel.sum()
    held = {int(i): k for k, i in enumerate(np.asarray(s.ids)) if i >= 0}
    assert set(held) == {j for j in range(n_ids) if acc_cnt[j] > 0}
    for j, k in held.items():
        assert int(s.dl_count[k]) == acc_cnt[j]
        np.testing.assert_allclose(float(s.dl_sum[k]) / int(s.dl_count[k]), acc_sum[j] / acc_cnt[j], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(space.from_unit(s.lam[k])), lam_of[j], rtol=1e-5, atol=1e-5)
    assert int(s.step) == 5


def test_batch_excess_guards():
    x = jnp.asarray([1.0, 2.0, 3.0, 10.0])
    dl, _ = batch_excess(x, jnp.ones(4, bool))
    np.testing.assert_allclose(np.asarray(batch_excess(x * 1e30, jnp.ones(4, bool))[0]), np.asarray(dl), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(batch_excess(x - 100.0, jnp.ones(4, bool))[0]), np.asarray(dl), rtol=1e-4)
    assert np.all(np.asarray(batch_excess(jnp.full(4, 7.0), jnp.ones(4, bool))[0]) == 0)  # s = 0
    assert np.all(np.asarray(batch_excess(jnp.asarray([np.nan] * 4), jnp.ones(4, bool))[0]) == 0)
    assert np.all(np.asarray(batch_excess(x, jnp.zeros(4, bool))[0]) == 0)


def _ring_fb(ids, loss=None, rows=8):
    """Feedback for ids (λ = id/100 on both axes), padded to a fixed ``rows`` with invalid rows."""
    ids = np.asarray(ids)
    k = len(ids)
    loss = np.arange(k, dtype=np.float64) if loss is None else np.asarray(loss, np.float64)
    pad_ids = np.concatenate([ids, np.full(rows - k, 99)])
    lam = np.stack([pad_ids / 100.0, pad_ids / 100.0], axis=1).astype(np.float32)
    valid = np.arange(rows) < k
    return make_feedback(lam, np.concatenate([loss, np.zeros(rows - k)]), lam_id=pad_ids, valid=valid, step=0)


def test_online_ring_buffer_replacement():
    space = ParamSpace.vector("x", 2, 0.0, 1.0)
    p = breed_online(space, population=4)
    update = jax.jit(p.update)
    s = update(p.init(jax.random.PRNGKey(0)), _ring_fb([2, 0, 1, 0]))  # new ids enter in id order
    assert list(np.asarray(s.ids)) == [0, 1, 2, -1] and int(s.head) == 3
    s = update(s, _ring_fb([5, 3, 4, 1, 1]))  # 3 → slot 3, 4 → slot 0 (evicts 0), 5 → slot 1 (evicts 1)
    assert list(np.asarray(s.ids)) == [4, 5, 2, 3] and int(s.head) == 2
    # Id 1's rows in that batch went with its slot; the new occupants start from their own rows only.
    assert list(np.asarray(s.dl_count)) == [1, 1, 1, 1]
    s = update(s, _ring_fb([2, 2, 3]))  # known ids: no insertion
    assert list(np.asarray(s.ids)) == [4, 5, 2, 3] and int(s.head) == 2
    assert list(np.asarray(s.dl_count)) == [1, 1, 3, 2]
    np.testing.assert_allclose(np.asarray(space.from_unit(s.lam[1])), [0.05, 0.05], rtol=1e-6)
    s = update(s, _ring_fb(np.arange(10, 17)))  # 7 new ids > 4 slots: the 4 largest stay
    assert sorted(np.asarray(s.ids).tolist()) == [13, 14, 15, 16] and int(s.head) == (2 + 7) % 4


def test_online_planted_hard_region_attracts_draws():
    """Simulated online loop: λ in a hard square have 5× the loss; GM draws concentrate there."""
    space = ParamSpace.box({"a": (-1.0, 1.0), "b": (0.0, 4.0)})
    p = breed_online(space, sigma=0.05, population=256, alpha0=0.0, alpha1=0.02, alpha_max=0.8)
    update, sample = jax.jit(p.update), jax.jit(p.sample, static_argnums=2)
    s = p.init(jax.random.PRNGKey(0))
    lo, hi = np.array([0.1, 0.6]), np.array([0.3, 0.8])  # unit-cube square, area 0.04
    rng = np.random.default_rng(1)
    next_id, live = 0, []
    for step in range(60):
        new, s = sample(s, jax.random.PRNGKey(step), 4)  # four clients launched per step
        live += [(next_id + i, np.asarray(new[i])) for i in range(4)]
        next_id += 4
        live = live[-40:]
        rows = [live[i] for i in rng.integers(0, len(live), 32)]
        ids = np.array([r[0] for r in rows])
        lam = np.stack([r[1] for r in rows])
        z = np.asarray(space.to_unit(jnp.asarray(lam)))
        hard = np.all((z > lo) & (z < hi), axis=1)
        loss = rng.exponential(size=32) * np.where(hard, 5.0, 1.0)
        s = update(s, make_feedback(lam, loss, lam_id=ids, step=step))
    assert abs(float(C.alpha_schedule(s.step, 0.0, 0.02, 0.8)) - 0.8) < 1e-6
    x = np.asarray(space.to_unit(sample(s, jax.random.PRNGKey(999), 4000)[0]))
    frac = np.mean(np.all((x > lo - 0.05) & (x < hi + 0.05), axis=1))
    area = np.prod(hi - lo + 0.1)
    assert frac > 5 * area, (frac, area)


def test_online_uniform_before_feedback_and_without_signal():
    space = ParamSpace.vector("x", 2, 0.0, 1.0)
    p = breed_online(space, population=8, alpha0=0.9, alpha_max=0.9)
    s = p.init(jax.random.PRNGKey(0))
    for state in (s, jax.jit(p.update)(s, _ring_fb([1, 2, 3], loss=[2.0, 2.0, 2.0]))):  # s_i = 0 → ∂l = 0
        x = np.asarray(draws(p)(state, jax.random.PRNGKey(1), 3000))
        for j in range(2):
            assert stats.kstest(x[:, j], "uniform").pvalue > 1e-3


def test_online_feedback_with_huge_batch_of_one_id():
    """Many rows of one id (a whole trajectory) collapse into one slot."""
    space = ParamSpace.vector("x", 2, 0.0, 1.0)
    p = breed_online(space, population=3)
    fb = Feedback(
        lam=jnp.full((50, 2), 0.25, jnp.float32),
        lam_id=jnp.full((50,), 7, jnp.int32),
        time_index=jnp.arange(50, dtype=jnp.int32),
        loss=jnp.linspace(0.0, 1.0, 50, dtype=jnp.float32),
        valid=jnp.ones((50,), bool),
        step=jnp.asarray(3, jnp.int32),
    )
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), fb)
    assert list(np.asarray(s.ids)) == [7, -1, -1] and int(s.dl_count[0]) == 50
    dl, _ = _np_excess(np.linspace(0.0, 1.0, 50), np.ones(50, bool))
    np.testing.assert_allclose(float(s.dl_sum[0]), dl.sum(), rtol=1e-5)


def test_online_min_rows_gates_gm_weight():
    """A simulation is a GM centre only once it contributed ``min_rows`` rows (dl_count ≥ min_rows)."""
    space = ParamSpace.vector("x", 2, 0.0, 1.0)

    def centres_hit(min_rows, batches):
        p = breed_online(space, sigma=1e-4, population=8, alpha0=1.0, alpha1=0.0, alpha_max=1.0, min_rows=min_rows)
        s = p.init(jax.random.PRNGKey(0))
        for ids, loss in batches:
            s = jax.jit(p.update)(s, _ring_fb(ids, loss=loss))
        x = np.asarray(draws(p)(s, jax.random.PRNGKey(1), 2000))
        near = {j: np.all(np.abs(x - j / 100.0) < 2e-3, axis=1) for j in (1, 2, 3)}
        return s, {j: float(v.mean()) for j, v in near.items()}, x

    # id 1: one row of loss 10; id 2: three rows of 5; id 3: three rows of 0 (∂l = 0).
    first = ([1, 2, 2, 2, 3, 3, 3], [10.0, 5.0, 5.0, 5.0, 0.0, 0.0, 0.0])
    s, hit, _ = centres_hit(0, [first])
    # min_rows = 0, the earlier rule: every row counts; weights ∝ mean ∂l = 1.84 (id 1), 0.41 (id 2).
    assert abs(hit[1] - 1.84 / 2.25) < 0.05 and hit[2] > 0.1 and hit[1] + hit[2] == 1.0, hit
    s, hit, _ = centres_hit(3, [first])
    assert list(np.asarray(s.dl_count)[:3]) == [1, 3, 3]
    assert hit[1] == 0.0 and hit[2] == 1.0, hit  # id 1 has one row < 3: no weight
    # Two more rows of id 1 (loss above the batch mean): now it has 3 rows and weight again.
    s, hit, _ = centres_hit(3, [first, ([1, 1, 3, 3], [4.0, 4.0, 0.0, 0.0])])
    assert int(np.asarray(s.dl_count)[0]) == 3 and hit[1] > 0.5 and hit[2] > 0.1 and hit[1] + hit[2] == 1.0, hit
    # Nobody has 4 rows: no mass, every draw uniform.
    s, hit, x = centres_hit(4, [first])
    for j in range(2):
        assert stats.kstest(x[:, j], "uniform").pvalue > 1e-3
