"""R3 (retain–resample–release) and RAD (p ∝ r^k / mean(r^k) + c) collocation sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from qsal_jax.proposals import make_feedback
from qsal_jax.proposals.base import ScoredProposal
from qsal_jax.proposals.pinn_sampling import DENSE_POOL, r3, rad, rad_log_weights, retained_mask
from qsal_jax.simulation.param_space import ParamSpace

SPACE = ParamSpace.box({"x": (-1.0, 1.0), "t": (0.0, 2.0)})


def _draws(p):
    """Jitted ``(state, key, n) -> λ`` (the returned state is dropped)."""
    return jax.jit(lambda state, key, n: p.sample(state, key, n)[0], static_argnums=2)


def _pool_fb(pool_size, residual, seed=0):
    pool = SPACE.sample_uniform(jax.random.PRNGKey(seed), pool_size)
    return make_feedback(pool[:1], np.zeros(1), pool=pool, pool_score=jnp.asarray(residual, jnp.float32))


def _rows(pool, lam):
    d = np.abs(np.asarray(lam, np.float64)[:, None, :] - np.asarray(pool, np.float64)[None]).max(-1)
    idx = d.argmin(1)
    assert np.all(d[np.arange(len(idx)), idx] == 0), "pool members come back exactly as scored"
    return idx


def _rad_p(r, k, c):
    rk = np.asarray(r, np.float64) ** k
    p = rk / rk.mean() + c
    return p / p.sum()


def test_rad_iid_frequencies():
    """``replace=True``: 40 000 draws over an 8-point pool match p ∝ r^k/mean(r^k) + c (χ²)."""
    r = np.array([0.1, 0.5, 1.0, 2.0, 0.0, 3.0, 0.2, 0.7])
    p = rad(SPACE, k=2.0, c=0.5, pool_size=8, replace=True)
    fb = _pool_fb(8, r)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), fb)
    n = 40_000
    counts = np.bincount(_rows(fb.pool, _draws(p)(s, jax.random.PRNGKey(1), n)), minlength=8)
    assert stats.chisquare(counts, n * _rad_p(r, 2.0, 0.5)).pvalue > 1e-3


def test_rad_without_replacement_first_pick_and_distinct():
    r = np.array([0.3, 1.0, 2.0, 0.0, 0.5, 1.5])
    p = rad(SPACE, k=1.0, c=0.0, pool_size=6, replace=False)
    fb = _pool_fb(6, r)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), fb)
    reps = 6000
    x = jax.jit(jax.vmap(lambda key: _draws(p)(s, key, 3)))(jax.random.split(jax.random.PRNGKey(1), reps))
    idx = _rows(fb.pool, np.asarray(x).reshape(-1, 2)).reshape(reps, 3)
    assert all(len(set(row)) == 3 for row in idx)
    assert not np.any(idx == 3), "c = 0 and r = 0: never picked while others remain"
    counts = np.bincount(idx[:, 0], minlength=6)
    prob = _rad_p(r, 1.0, 0.0)
    pos = prob > 0
    assert stats.chisquare(counts[pos], reps * prob[pos]).pvalue > 1e-3


def test_rad_weights_guards():
    lw = np.asarray(rad_log_weights(jnp.asarray([np.nan, np.inf, -1.0, 0.0, 2.0]), 2.0, 0.0))
    assert np.all(lw[:4] == -np.inf) and np.isfinite(lw[4])
    lw = np.asarray(rad_log_weights(jnp.zeros(5), 2.0, 0.0))  # nothing to go on: uniform
    np.testing.assert_array_equal(lw, np.zeros(5))
    big = np.asarray(rad_log_weights(jnp.asarray([1e30, 2e30, 3e30]), 3.0, 1.0))
    small = np.asarray(rad_log_weights(jnp.asarray([1.0, 2.0, 3.0]), 3.0, 1.0))
    np.testing.assert_allclose(big, small, rtol=1e-5)  # scale-free, and no overflow of r^k


def test_rad_uniform_before_the_first_pool():
    p = rad(SPACE, pool_size=16)
    x = np.asarray(SPACE.to_unit(_draws(p)(p.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3000)))
    for j in range(2):
        assert stats.kstest(x[:, j], "uniform").pvalue > 1e-3


def test_r3_retains_exactly_the_above_mean_points():
    n = 256
    p = r3(SPACE, population=n)
    sample, update = jax.jit(p.sample, static_argnums=2), jax.jit(p.update)
    s = p.init(jax.random.PRNGKey(0))
    pop = np.asarray(sample(s, jax.random.PRNGKey(1), n)[0])
    rng = np.random.default_rng(0)
    for it in range(4):
        res = rng.exponential(size=n)
        res[:3] = [np.nan, np.inf, -5.0]  # treated as 0: released
        valid = np.ones(n, bool)
        valid[3:6] = False  # excluded from the mean, never retained
        s = update(s, make_feedback(pop, res, valid=valid))
        r0 = np.where(np.isfinite(res) & (res > 0), res, 0.0)
        keep = valid & (r0 > r0[valid].mean())
        np.testing.assert_array_equal(np.asarray(s.retain), keep)
        new = np.asarray(sample(s, jax.random.PRNGKey(10 + it), n)[0])
        np.testing.assert_allclose(new[keep], pop[keep], rtol=1e-6, atol=1e-6)
        assert np.all(np.abs(new[~keep] - pop[~keep]).max(-1) > 0), "released slots get fresh points"
        assert bool(jnp.all(SPACE.contains(jnp.asarray(new))))
        # The fresh points are uniform over the box.
        fresh = np.asarray(SPACE.to_unit(jnp.asarray(new[~keep])))
        assert stats.kstest(fresh[:, 0], "uniform").pvalue > 1e-4
        pop = new


def test_r3_first_sample_is_uniform_and_population_size_is_enforced():
    p = r3(SPACE, population=32)
    s = p.init(jax.random.PRNGKey(0))
    assert not bool(jnp.any(s.retain))
    with pytest.raises(ValueError, match="population"):
        jax.jit(p.sample, static_argnums=2)(s, jax.random.PRNGKey(1), 31)
    with pytest.raises(ValueError, match="population"):
        jax.jit(p.update)(s, make_feedback(np.zeros((8, 2), np.float32), np.ones(8)))


def test_retained_mask_edge_cases():
    ones = jnp.ones(4, bool)
    assert not np.any(np.asarray(retained_mask(jnp.full(4, 3.0), ones)))  # all equal: none above mean
    assert not np.any(np.asarray(retained_mask(jnp.asarray([np.nan] * 4), ones)))
    np.testing.assert_array_equal(np.asarray(retained_mask(jnp.asarray([1e30, 1.0, 1.0, 2e30]), ones)), [True, False, False, True])


# --------------------------------------------------------------------------- RAD's pool
def _half_residual(xt):
    """Residual 1 on the right half of the box (x > 0), 0 elsewhere: ``[P, 2] → [P]``."""
    return (xt[:, 0] > 0).astype(jnp.float32)


def test_rad_default_pool_is_dense_and_scored_through_the_surrogate():
    """Default pool 25 N, scored by ``Feedback.surrogate``; the draw fraction on the hard half matches
    the continuous p (k = c = 1: 3 : 1), while a forced thin pool without replacement flattens it."""
    n = 400
    p = rad(SPACE, population=n)
    assert isinstance(p, ScoredProposal)
    s0 = p.init(jax.random.PRNGKey(0))
    assert s0.inner.pool.shape == (DENSE_POOL * n, 2)
    fb = make_feedback(np.zeros((1, 2), np.float32), np.zeros(1), surrogate=jax.tree_util.Partial(_half_residual))
    update = jax.jit(p.update)

    def hard_fraction(p, s, reps=20):
        s = jax.jit(p.update)(s, fb)
        sample = jax.jit(p.sample, static_argnums=2)
        x = np.concatenate([np.asarray(sample(s, jax.random.PRNGKey(10 + i), n)[0]) for i in range(reps)])
        return np.mean(x[:, 0] > 0), x

    frac, x = hard_fraction(p, s0)
    assert bool(update(s0, fb).inner.has_pool)
    assert abs(frac - 0.75) < 4 * np.sqrt(0.75 * 0.25 / x.shape[0]) + 0.01, frac  # 25 N: ~ i.i.d. from p
    assert len(np.unique(x[:n], axis=0)) == n, "a dense pool is drawn without replacement"
    thin = rad(SPACE, population=n, pool_size=2 * n, replace=False)
    frac_thin, _ = hard_fraction(thin, thin.init(jax.random.PRNGKey(0)))
    assert frac_thin < 0.68, frac_thin  # half the pool taken: p flattened towards uniform


def test_rad_thin_pool_draws_with_replacement_by_default():
    """``pool_size < 25 n`` and ``replace=None``: i.i.d. draws from p over the pool (χ²)."""
    r = np.array([0.1, 0.5, 1.0, 2.0, 0.0, 3.0, 0.2, 0.7])
    p = rad(SPACE, k=2.0, c=0.5, pool_size=8)
    fb = _pool_fb(8, r)
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), fb)
    n = 40_000
    counts = np.bincount(_rows(fb.pool, _draws(p)(s, jax.random.PRNGKey(1), n)), minlength=8)
    assert stats.chisquare(counts, n * _rad_p(r, 2.0, 0.5)).pvalue > 1e-3
