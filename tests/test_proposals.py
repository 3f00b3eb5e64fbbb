"""The contract, checked over every registered strategy, plus the quasi-random and pool-based ones.

Contract: ``init``/``sample``/``update`` are jit-able; draws are finite, inside the box, of fixed
shape and float32; ``update`` keeps the state's shapes and dtypes, so a second call does not
recompile; the same key gives the same draws; independent states vmap.
"""

import importlib.util
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.stats import qmc

from qsal_jax import proposals
from qsal_jax.proposals import quasirandom as qr
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.simulation.param_space import ParamSpace

SPACE = ParamSpace.box({"a": (0.0, 1.0), "b": (-2.0, 3.0), "c": (10.0, 10.5)})
N, B = 64, 64  # draws per sample call, feedback rows (R3 needs both = its population)

_HAS_OGAS = importlib.util.find_spec("qsal_jax.proposals.ogas") is not None
CASES = [
    ("uniform", {}),
    ("quasirandom", {"sequence": "halton"}),
    ("quasirandom", {"sequence": "sobol"}),
    ("breed", {"population": B, "sigma": 0.1}),
    ("breed_online", {"population": 32, "sigma": 0.1, "alpha0": 0.5}),
    ("sbal", {"pool_size": 128, "selection": "power", "beta": 2.0}),
    ("sbal", {"pool_size": 128, "selection": "topk"}),
    ("r3", {"population": N}),
    ("rad", {"pool_size": 128, "k": 2.0, "c": 0.5}),
    ("rad", {"pool_size": 128, "replace": True}),
    pytest.param(("ogas", {}), marks=pytest.mark.skipif(not _HAS_OGAS, reason="qsal_jax.proposals.ogas not written yet")),
]
IDS = ["uniform", "halton", "sobol", "breed", "breed_online", "sbal_power", "sbal_topk", "r3", "rad", "rad_replace", "ogas"]


def make_fb(p: Proposal, key, step=1, loss_fn=None) -> Feedback:
    """A jnp-only feedback (so it vmaps): B rows, ids with repeats, and a scored pool if wanted."""
    k_lam, k_loss, k_id, k_pool, k_score = jax.random.split(key, 5)
    lam = SPACE.sample_uniform(k_lam, B)
    loss = jax.random.exponential(k_loss, (B,), jnp.float32) if loss_fn is None else loss_fn(lam)
    pool = SPACE.sample_uniform(k_pool, p.pool_size) if p.pool_size else None
    score = jax.random.uniform(k_score, (p.pool_size,), jnp.float32) if p.pool_size else None
    return Feedback(
        lam=lam,
        lam_id=jax.random.randint(k_id, (B,), 0, 48, jnp.int32),
        time_index=jnp.arange(B, dtype=jnp.int32) % 8,
        loss=loss,
        valid=jnp.arange(B) < B - 4,
        step=jnp.asarray(step, jnp.int32),
        pool=pool,
        pool_score=score,
    )


def avals(tree):
    return jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), tree)


def check_draws(lam, n=N):
    lam = np.asarray(lam)
    assert lam.shape == (n, SPACE.dim)
    assert lam.dtype == np.float32
    assert np.all(np.isfinite(lam))
    assert np.all(np.asarray(SPACE.contains(jnp.asarray(lam))))


class Compiled(NamedTuple):
    """A strategy with its functions jitted once per test module (compiles dominate the run time).

    ``sample`` and ``update`` count their traces: every test in the module calls them with the
    same shapes, so a count above 1 means some state or feedback changed an aval (a recompile).
    """

    p: Proposal
    init: Callable
    sample: Callable  # (state, key, n) with n static
    update: Callable
    fb: Callable  # key -> Feedback
    traces: dict


def _tiny_ogas() -> dict:
    """Small OGAS networks, so its contract checks cost seconds (only settings it knows)."""
    from qsal_jax.proposals.ogas import DEFAULTS

    tiny = dict(hidden=16, depth=1, steps=8, capacity=256, batch_size=32, train_steps=1, min_fill=32, ratio_hidden=16, ratio_depth=1)
    return {k: v for k, v in tiny.items() if k in DEFAULTS}


@pytest.fixture(params=CASES, ids=IDS, scope="module")
def strategy(request):
    name, settings = request.param
    if name == "ogas":
        settings = {**_tiny_ogas(), **settings}
    p = proposals.build(name, SPACE, **settings)
    traces = {"sample": 0, "update": 0}

    def sample(state, key, n):
        traces["sample"] += 1
        return p.sample(state, key, n)

    def update(state, fb):
        traces["update"] += 1
        return p.update(state, fb)

    return Compiled(
        p, jax.jit(p.init), jax.jit(sample, static_argnums=2), jax.jit(update), jax.jit(lambda k: make_fb(p, k)), traces
    )


def test_registry():
    assert set(proposals.names()) >= {"uniform", "quasirandom", "breed", "breed_online", "sbal", "r3", "rad", "ogas"}
    with pytest.raises(KeyError, match="known"):
        proposals.get("nope")
    p = proposals.build("uniform", SPACE)
    assert isinstance(p, Proposal) and p.pool_size == 0
    assert proposals.build("sbal", SPACE, pool_size=17).pool_size == 17


def test_contract_shapes_bounds_and_no_retrace(strategy):
    c = strategy
    s0 = c.init(jax.random.PRNGKey(0))
    check_draws(c.sample(s0, jax.random.PRNGKey(1), N))
    s1 = c.update(s0, c.fb(jax.random.PRNGKey(2)))
    assert avals(s1) == avals(s0), "update must keep every state leaf's shape and dtype"
    s2 = c.update(s1, c.fb(jax.random.PRNGKey(3))._replace(step=jnp.asarray(2, jnp.int32)))
    check_draws(c.sample(s2, jax.random.PRNGKey(4), N))
    check_draws(c.sample(s1, jax.random.PRNGKey(5), N))
    assert c.traces == {"sample": 1, "update": 1}


def test_contract_same_key_same_draws(strategy):
    c = strategy
    s = c.update(c.init(jax.random.PRNGKey(0)), c.fb(jax.random.PRNGKey(1)))
    k = jax.random.PRNGKey(7)
    a = np.asarray(c.sample(s, k, N))
    np.testing.assert_array_equal(a, np.asarray(c.sample(s, k, N)))
    s_again = c.update(c.init(jax.random.PRNGKey(0)), c.fb(jax.random.PRNGKey(1)))
    np.testing.assert_array_equal(np.asarray(c.sample(s_again, k, N)), a)


def test_contract_vmap_over_states(strategy):
    p, seeds = strategy.p, 3
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    states = jax.vmap(p.init)(keys)
    fbs = jax.vmap(lambda k: make_fb(p, k))(jax.random.split(jax.random.PRNGKey(1), seeds))
    states = jax.jit(jax.vmap(p.update))(states, fbs)
    lam = jax.jit(jax.vmap(lambda s, k: p.sample(s, k, N)))(states, jax.random.split(jax.random.PRNGKey(2), seeds))
    assert lam.shape == (seeds, N, SPACE.dim)
    for i in range(seeds):
        check_draws(lam[i])
        one = jax.tree.map(lambda x: x[i], states)
        ref = strategy.sample(one, jax.random.split(jax.random.PRNGKey(2), seeds)[i], N)
        np.testing.assert_allclose(np.asarray(lam[i]), np.asarray(ref), rtol=1e-6, atol=1e-6)


BAD_LOSSES = {
    "nan": np.full(B, np.nan),
    "inf": np.full(B, np.inf),
    "neg": -np.abs(np.linspace(1, 2, B)),
    "zero": np.zeros(B),
    "huge": np.full(B, 1e30),
    "mixed": np.tile([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e30, 1e-30, 1.0], B // 8),
}


@pytest.mark.parametrize("bad", list(BAD_LOSSES))
def test_contract_degenerate_signals(strategy, bad):
    """Any loss or pool score — NaN, ±inf, negative, zero, 1e30 — still gives finite in-box draws."""
    c = strategy
    vals = jnp.asarray(BAD_LOSSES[bad], jnp.float32)
    fb = c.fb(jax.random.PRNGKey(1))._replace(loss=vals)
    if c.p.pool_size:
        fb = fb._replace(pool_score=jnp.resize(vals, (c.p.pool_size,)))
    s = c.update(c.init(jax.random.PRNGKey(0)), fb)
    leaves = [np.asarray(x) for x in jax.tree.leaves(s) if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
    assert all(np.all(~np.isnan(x)) for x in leaves), "no NaN may enter the state"
    check_draws(c.sample(s, jax.random.PRNGKey(2), N))
    assert c.traces["sample"] <= 1 and c.traces["update"] <= 1


def test_non_finite_feedback_lambda_is_ignored(strategy):
    c = strategy
    fb = c.fb(jax.random.PRNGKey(1))
    fb = fb._replace(lam=fb.lam.at[:5].set(jnp.nan).at[5:9].set(jnp.inf))
    if c.p.pool_size:
        fb = fb._replace(pool=fb.pool.at[:3].set(jnp.nan))
    s = c.update(c.init(jax.random.PRNGKey(0)), fb)
    check_draws(c.sample(s, jax.random.PRNGKey(2), N))


# --------------------------------------------------------------------------- quasi-random
@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_unscrambled_matches_scipy(sequence):
    space = ParamSpace.vector("x", 6, 0.0, 1.0)
    p = qr.quasirandom(space, sequence=sequence, scramble=False, dtype=jnp.float64)
    got = np.asarray(p.sample(p.init(jax.random.PRNGKey(0)), None, 128))
    ref = qmc.Halton(6, scramble=False).random(128) if sequence == "halton" else qmc.Sobol(6, scramble=False, bits=32).random(128)
    np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_low_discrepancy(sequence):
    """Centred L2 discrepancy of 512 scrambled points is far below that of i.i.d. uniform points."""
    space = ParamSpace.vector("x", 5, 0.0, 1.0)
    p = qr.quasirandom(space, sequence=sequence)
    n = 512
    qmc_disc = [qmc.discrepancy(np.asarray(p.sample(p.init(jax.random.PRNGKey(s)), None, n), np.float64), method="CD") for s in range(4)]
    rng = np.random.default_rng(0)
    mc_disc = [qmc.discrepancy(rng.random((n, 5)), method="CD") for _ in range(4)]
    assert max(qmc_disc) < 0.1 * min(mc_disc), (qmc_disc, mc_disc)
    # Per dimension, a scrambled net is near-perfectly stratified: KS statistic ~ 1/n, not ~ 1/sqrt(n).
    x = np.asarray(p.sample(p.init(jax.random.PRNGKey(0)), None, n))
    ks = max(stats.kstest(x[:, d], "uniform").statistic for d in range(5))
    assert ks < 5.0 / n


@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_determinism_and_continuation(sequence):
    space = ParamSpace.vector("x", 3, -1.0, 1.0)
    p = qr.quasirandom(space, sequence=sequence)
    s = p.init(jax.random.PRNGKey(3))
    whole = np.asarray(p.sample(s, jax.random.PRNGKey(0), 32))
    np.testing.assert_array_equal(whole, np.asarray(p.sample(s, jax.random.PRNGKey(1), 32)))
    first = np.asarray(p.sample(s, None, 16))
    fb = proposals.make_feedback(first, np.ones(16))
    second = np.asarray(p.sample(p.update(s, fb), None, 16))
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    np.testing.assert_array_equal(second, np.asarray(p.sample(qr.advance(s, 16), None, 16)))
    other = np.asarray(p.sample(p.init(jax.random.PRNGKey(4)), None, 32))
    assert not np.allclose(other, whole), "a different init key gives a different scramble"


def test_qmc_high_dimension_in_box():
    space = ParamSpace.vector("amp", 308, -0.5, 0.5)
    for seq in ("halton", "sobol"):
        p = qr.quasirandom(space, sequence=seq)
        x = np.asarray(jax.jit(p.sample, static_argnums=2)(p.init(jax.random.PRNGKey(0)), None, 256))
        assert x.shape == (256, 308) and np.all(np.asarray(space.contains(jnp.asarray(x))))
        # Scrambling removes the collinearity of plain Halton in large prime bases.
        c = np.corrcoef(x[:, -2], x[:, -1])[0, 1]
        assert abs(c) < 0.3, (seq, c)


# --------------------------------------------------------------------------- SBAL
def _pool_fb(p, score):
    pool = SPACE.sample_uniform(jax.random.PRNGKey(11), p.pool_size)
    return proposals.make_feedback(pool[:1], np.zeros(1), pool=pool, pool_score=jnp.asarray(score, jnp.float32))


def _pool_index(pool, lam):
    """Row of ``pool`` equal to each row of ``lam``."""
    d = np.abs(np.asarray(lam, np.float64)[:, None, :] - np.asarray(pool, np.float64)[None, :, :]).max(-1)
    idx = d.argmin(1)
    assert np.all(d[np.arange(len(idx)), idx] == 0), "pool members come back exactly as scored"
    return idx


def test_sbal_power_sampling_frequencies_and_no_duplicates():
    """First pick ~ Categorical(u^β / Σ u^β) (χ²); a batch never repeats a member."""
    p = proposals.build("sbal", SPACE, pool_size=8, beta=2.0)
    u = np.array([0.1, 0.5, 1.0, 2.0, 0.0, 3.0, np.nan, 0.7])
    fb = _pool_fb(p, u)
    s = p.update(p.init(jax.random.PRNGKey(0)), fb)
    reps = 4000
    draws = jax.jit(jax.vmap(lambda k: p.sample(s, k, 4)))(jax.random.split(jax.random.PRNGKey(1), reps))
    idx = _pool_index(fb.pool, np.asarray(draws).reshape(-1, 3)).reshape(reps, 4)
    assert all(len(set(row)) == 4 for row in idx), "power sampling is without replacement"
    w = np.nan_to_num(u) ** 2.0
    prob = w / w.sum()
    counts = np.bincount(idx[:, 0], minlength=8)
    assert counts[4] == 0 and counts[6] == 0, "zero and NaN scores are never picked first"
    pos = prob > 0
    assert stats.chisquare(counts[pos], reps * prob[pos]).pvalue > 1e-3
    # Inclusion frequencies of the whole batch match successive sampling without replacement.
    rng = np.random.default_rng(0)
    ref = np.concatenate([rng.choice(8, 4, replace=False, p=np.where(pos, prob, 1e-12) / np.where(pos, prob, 1e-12).sum()) for _ in range(reps)])
    got = idx.ravel()
    table = np.stack([np.bincount(got, minlength=8), np.bincount(ref, minlength=8)])
    table = table[:, table.sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_sbal_topk_selects_the_largest():
    p = proposals.build("sbal", SPACE, pool_size=16, selection="topk")
    u = np.random.default_rng(1).random(16)
    fb = _pool_fb(p, u)
    s = p.update(p.init(jax.random.PRNGKey(0)), fb)
    idx = _pool_index(fb.pool, p.sample(s, jax.random.PRNGKey(3), 5))
    assert set(idx) == set(np.argsort(-u)[:5])


def test_sbal_uniform_before_a_pool_and_overflow_fill():
    p = proposals.build("sbal", SPACE, pool_size=4)
    s = p.init(jax.random.PRNGKey(0))
    x = np.asarray(p.sample(s, jax.random.PRNGKey(1), 2000))
    for d in range(SPACE.dim):  # uniform over each axis
        lo, hi = SPACE.low[d], SPACE.high[d]
        assert stats.kstest((x[:, d] - lo) / (hi - lo), "uniform").pvalue > 1e-3
    fb = _pool_fb(p, [1.0, 2.0, 3.0, 4.0])
    s = p.update(s, fb)
    x = p.sample(s, jax.random.PRNGKey(2), 6)  # 4 pool members + 2 uniform fills
    check_draws(x, 6)
    assert set(_pool_index(fb.pool, np.asarray(x)[:4])) == {0, 1, 2, 3}
