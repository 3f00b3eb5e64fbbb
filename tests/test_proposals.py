"""The contract, checked over every registered strategy, plus the quasi-random and pool-based ones.

Contract: ``init``/``sample``/``update`` are jit-able; ``sample`` returns ``(λ, state)``; draws are
finite, inside the box, of fixed shape and float32; ``sample`` and ``update`` keep the state's
shapes and dtypes, so a second call does not recompile; the same key gives the same draws;
independent states vmap. (`test_strategy_contract.py` runs the registry-wide checks.)
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
from qsal_jax.proposals.base import Feedback, Proposal, ScoredProposal
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
    ("rad", {"pool_size": 128, "k": 2.0, "c": 0.5, "replace": False}),
    ("rad", {"pool_size": 128, "replace": True}),
    pytest.param(("ogas", {}), marks=pytest.mark.skipif(not _HAS_OGAS, reason="qsal_jax.proposals.ogas not written yet")),
]
IDS = ["uniform", "halton", "sobol", "breed", "breed_online", "sbal_power", "sbal_topk", "r3", "rad", "rad_replace", "ogas"]


def make_fb(pool_size: int, key, step=1, loss_fn=None) -> Feedback:
    """A jnp-only feedback (so it vmaps): B rows, ids with repeats, and a scored pool if wanted."""
    k_lam, k_loss, k_id, k_pool, k_score = jax.random.split(key, 5)
    lam = SPACE.sample_uniform(k_lam, B)
    loss = jax.random.exponential(k_loss, (B,), jnp.float32) if loss_fn is None else loss_fn(lam)
    pool = SPACE.sample_uniform(k_pool, pool_size) if pool_size else None
    score = jax.random.uniform(k_score, (pool_size,), jnp.float32) if pool_size else None
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
    pool_size: int  # of the scored pool its feedback carries (0: none)
    init: Callable
    sample: Callable  # (state, key, n) with n static -> (λ, state)
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
    pool_size = settings.get("pool_size", 0)
    traces = {"sample": 0, "update": 0}

    def sample(state, key, n):
        traces["sample"] += 1
        return p.sample(state, key, n)

    def update(state, fb):
        traces["update"] += 1
        return p.update(state, fb)

    return Compiled(
        p, pool_size, jax.jit(p.init), jax.jit(sample, static_argnums=2), jax.jit(update),
        jax.jit(lambda k: make_fb(pool_size, k)), traces,
    )


def test_registry():
    assert set(proposals.names()) >= {"uniform", "quasirandom", "breed", "breed_online", "sbal", "r3", "rad", "ogas"}
    with pytest.raises(KeyError, match="known"):
        proposals.get("nope")
    p = proposals.build("uniform", SPACE)
    assert isinstance(p, Proposal) and not isinstance(p, ScoredProposal)
    sbal = proposals.build("sbal", SPACE, pool_size=17)
    assert isinstance(sbal, ScoredProposal) and sbal.init(jax.random.PRNGKey(0)).inner.pool.shape == (17, SPACE.dim)
    with pytest.raises(ValueError, match="breed_online: unknown setting 'sigmaa'; known: sigma, "):
        proposals.build("breed_online", SPACE, sigmaa=0.1)
    with pytest.raises(ValueError, match="ogas: unknown setting 'widht'"):
        proposals.build("ogas", SPACE, widht=3)
    assert proposals.settings_of("breed_online")["min_rows"] == 0
    assert proposals.settings_of("ogas")["eps_mode"] == "clip"
    assert set(proposals.settings_of("sbal")) >= {"pool_size", "rollout_fraction", "warmup_simulations", "launches_per_round"}


def test_contract_shapes_bounds_and_no_retrace(strategy):
    c = strategy
    s0 = c.init(jax.random.PRNGKey(0))
    lam, s0_after = c.sample(s0, jax.random.PRNGKey(1), N)
    check_draws(lam)
    assert avals(s0_after) == avals(s0), "sample must keep every state leaf's shape and dtype"
    s1 = c.update(s0, c.fb(jax.random.PRNGKey(2)))
    assert avals(s1) == avals(s0), "update must keep every state leaf's shape and dtype"
    s2 = c.update(s1, c.fb(jax.random.PRNGKey(3))._replace(step=jnp.asarray(2, jnp.int32)))
    check_draws(c.sample(s2, jax.random.PRNGKey(4), N)[0])
    check_draws(c.sample(s1, jax.random.PRNGKey(5), N)[0])
    assert c.traces == {"sample": 1, "update": 1}


def test_contract_same_key_same_draws(strategy):
    c = strategy
    s = c.update(c.init(jax.random.PRNGKey(0)), c.fb(jax.random.PRNGKey(1)))
    k = jax.random.PRNGKey(7)
    a = np.asarray(c.sample(s, k, N)[0])
    np.testing.assert_array_equal(a, np.asarray(c.sample(s, k, N)[0]))
    s_again = c.update(c.init(jax.random.PRNGKey(0)), c.fb(jax.random.PRNGKey(1)))
    np.testing.assert_array_equal(np.asarray(c.sample(s_again, k, N)[0]), a)


def test_contract_vmap_over_states(strategy):
    p, seeds = strategy.p, 3
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    states = jax.vmap(p.init)(keys)
    fbs = jax.vmap(lambda k: make_fb(strategy.pool_size, k))(jax.random.split(jax.random.PRNGKey(1), seeds))
    states = jax.jit(jax.vmap(p.update))(states, fbs)
    lam = jax.jit(jax.vmap(lambda s, k: p.sample(s, k, N)[0]))(states, jax.random.split(jax.random.PRNGKey(2), seeds))
    assert lam.shape == (seeds, N, SPACE.dim)
    for i in range(seeds):
        check_draws(lam[i])
        one = jax.tree.map(lambda x: x[i], states)
        ref = strategy.sample(one, jax.random.split(jax.random.PRNGKey(2), seeds)[i], N)[0]
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
    if c.pool_size:
        fb = fb._replace(pool_score=jnp.resize(vals, (c.pool_size,)))
    s = c.update(c.init(jax.random.PRNGKey(0)), fb)
    leaves = [np.asarray(x) for x in jax.tree.leaves(s) if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
    assert all(np.all(~np.isnan(x)) for x in leaves), "no NaN may enter the state"
    check_draws(c.sample(s, jax.random.PRNGKey(2), N)[0])
    assert c.traces["sample"] <= 1 and c.traces["update"] <= 1


def test_non_finite_feedback_lambda_is_ignored(strategy):
    c = strategy
    fb = c.fb(jax.random.PRNGKey(1))
    fb = fb._replace(lam=fb.lam.at[:5].set(jnp.nan).at[5:9].set(jnp.inf))
    if c.pool_size:
        fb = fb._replace(pool=fb.pool.at[:3].set(jnp.nan))
    s = c.update(c.init(jax.random.PRNGKey(0)), fb)
    check_draws(c.sample(s, jax.random.PRNGKey(2), N)[0])


# --------------------------------------------------------------------------- quasi-random
@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_unscrambled_matches_scipy(sequence):
    space = ParamSpace.vector("x", 6, 0.0, 1.0)
    p = qr.quasirandom(space, sequence=sequence, scramble=False, dtype=jnp.float64)
    got = np.asarray(p.sample(p.init(jax.random.PRNGKey(0)), None, 128)[0])
    ref = qmc.Halton(6, scramble=False).random(128) if sequence == "halton" else qmc.Sobol(6, scramble=False, bits=32).random(128)
    np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_low_discrepancy(sequence):
    """Centred L2 discrepancy of 512 scrambled points is far below that of i.i.d. uniform points."""
    space = ParamSpace.vector("x", 5, 0.0, 1.0)
    p = qr.quasirandom(space, sequence=sequence)
    n = 512
    qmc_disc = [qmc.discrepancy(np.asarray(p.sample(p.init(jax.random.PRNGKey(s)), None, n)[0], np.float64), method="CD") for s in range(4)]
    rng = np.random.default_rng(0)
    mc_disc = [qmc.discrepancy(rng.random((n, 5)), method="CD") for _ in range(4)]
    assert max(qmc_disc) < 0.1 * min(mc_disc), (qmc_disc, mc_disc)
    # Per dimension, a scrambled net is near-perfectly stratified: KS statistic ~ 1/n, not ~ 1/sqrt(n).
    x = np.asarray(p.sample(p.init(jax.random.PRNGKey(0)), None, n)[0])
    ks = max(stats.kstest(x[:, d], "uniform").statistic for d in range(5))
    assert ks < 5.0 / n


@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_determinism_and_continuation(sequence):
    space = ParamSpace.vector("x", 3, -1.0, 1.0)
    p = qr.quasirandom(space, sequence=sequence)
    s = p.init(jax.random.PRNGKey(3))
    whole, s_whole = p.sample(s, jax.random.PRNGKey(0), 32)
    whole = np.asarray(whole)
    np.testing.assert_array_equal(whole, np.asarray(p.sample(s, jax.random.PRNGKey(1), 32)[0]))
    assert int(s_whole.index) == 32
    first, s1 = p.sample(s, None, 16)
    first = np.asarray(first)
    fb = proposals.make_feedback(first, np.ones(16))
    assert int(p.update(s1, fb).index) == 16, "update does not advance the sequence: sample did"
    second = np.asarray(p.sample(p.update(s1, fb), None, 16)[0])
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    np.testing.assert_array_equal(second, np.asarray(p.sample(qr.advance(s, 16), None, 16)[0]))
    other = np.asarray(p.sample(p.init(jax.random.PRNGKey(4)), None, 32)[0])
    assert not np.allclose(other, whole), "a different init key gives a different scramble"


def test_qmc_high_dimension_in_box():
    space = ParamSpace.vector("amp", 308, -0.5, 0.5)
    for seq in ("halton", "sobol"):
        p = qr.quasirandom(space, sequence=seq)
        x = np.asarray(jax.jit(p.sample, static_argnums=2)(p.init(jax.random.PRNGKey(0)), None, 256)[0])
        assert x.shape == (256, 308) and np.all(np.asarray(space.contains(jnp.asarray(x))))
        # Scrambling removes the collinearity of plain Halton in large prime bases.
        c = np.corrcoef(x[:, -2], x[:, -1])[0, 1]
        assert abs(c) < 0.3, (seq, c)


# --------------------------------------------------------------------------- SBAL
def _pool_fb(pool_size, score):
    pool = SPACE.sample_uniform(jax.random.PRNGKey(11), pool_size)
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
    fb = _pool_fb(8, u)
    s = p.update(p.init(jax.random.PRNGKey(0)), fb)
    reps = 4000
    draws = jax.jit(jax.vmap(lambda k: p.sample(s, k, 4)[0]))(jax.random.split(jax.random.PRNGKey(1), reps))
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
    fb = _pool_fb(16, u)
    s = p.update(p.init(jax.random.PRNGKey(0)), fb)
    lam, s = p.sample(s, jax.random.PRNGKey(3), 5)
    idx = _pool_index(fb.pool, lam)
    assert set(idx) == set(np.argsort(-u)[:5])
    # The next call on the same pool hands out the next five: members are taken once.
    idx2 = _pool_index(fb.pool, p.sample(s, jax.random.PRNGKey(3), 5)[0])
    assert set(idx2) == set(np.argsort(-u)[5:10])


def test_sbal_uniform_before_a_pool_and_overflow_fill():
    p = proposals.build("sbal", SPACE, pool_size=4)
    s = p.init(jax.random.PRNGKey(0))
    x = np.asarray(p.sample(s, jax.random.PRNGKey(1), 2000)[0])
    for d in range(SPACE.dim):  # uniform over each axis
        lo, hi = SPACE.low[d], SPACE.high[d]
        assert stats.kstest((x[:, d] - lo) / (hi - lo), "uniform").pvalue > 1e-3
    fb = _pool_fb(4, [1.0, 2.0, 3.0, 4.0])
    s = p.update(s, fb)
    x, s = p.sample(s, jax.random.PRNGKey(2), 6)  # 4 pool members + 2 uniform fills
    check_draws(x, 6)
    assert set(_pool_index(fb.pool, np.asarray(x)[:4])) == {0, 1, 2, 3}


@pytest.mark.parametrize("sequence", ["halton", "sobol"])
def test_qmc_online_launches_continue_one_sequence(sequence):
    """60 launch batches of 8, threading the state ``sample`` returns, are one draw of 480 points."""
    space = ParamSpace.box({"A0": (0.0, 1.5), "A1": (0.0, 1.5), "phi0": (0.0, 6.283), "phi1": (0.0, 6.283)})
    p = qr.quasirandom(space, sequence=sequence)
    sample = jax.jit(p.sample, static_argnums=2)
    update = jax.jit(p.update)
    s = p.init(jax.random.PRNGKey(5))
    whole = np.asarray(sample(s, jax.random.PRNGKey(0), 480)[0])
    parts = []
    for i in range(60):
        lam, s = sample(s, jax.random.fold_in(jax.random.PRNGKey(1), i), 8)
        parts.append(np.asarray(lam))
        s = update(s, proposals.make_feedback(lam, np.ones(8), step=i))  # feedback does not move it
    online = np.concatenate(parts)
    np.testing.assert_array_equal(online, whole)
    assert int(s.index) == 480
    assert len(np.unique(online[:, 0])) == 480, "A0 never repeats: no launch batch restarts the sequence"
    z = np.asarray(space.to_unit(jnp.asarray(online)), np.float64)
    rng = np.random.default_rng(0)
    iid = [rng.random((480, 4)) for _ in range(4)]
    assert qmc.discrepancy(z, method="CD") < 0.1 * min(qmc.discrepancy(u, method="CD") for u in iid)
    ks = max(stats.kstest(z[:, d], "uniform").statistic for d in range(4))
    ks_iid = np.median([stats.kstest(rng.random(480), "uniform").statistic for _ in range(16)])  # ~0.87/√n
    assert ks < 5.0 / 480 and ks < 0.3 * ks_iid, (ks, ks_iid)


# --------------------------------------------------------------------------- SBAL's scoring
def _toy_surrogate(a=(0.9, 1.0, 1.2), num_frames=9):
    """Ensemble ``u ← a_e u`` on a [1, 5] state with ``u0 = λ_a``: variances have closed forms."""
    from qsal_jax.proposals.scorers import EnsembleSurrogate

    return EnsembleSurrogate(
        params={"a": jnp.asarray(a, jnp.float32)},
        apply_fn=lambda p, u, cond: p["a"] * u,
        initial_state=lambda lam: lam[0] * jnp.ones((1, 5), jnp.float32),
        conditioning=lambda lam: jnp.zeros((lam.shape[0], 0), jnp.float32),
        num_frames=num_frames,
    )


@pytest.mark.parametrize("start", ["member", "mean"])
@pytest.mark.parametrize("steps, fraction, length", [(4, None, 4), (4, 0.5, 4), (4, 0.25, 2), (3, 1.0, 8)])
def test_ensemble_uncertainty_closed_forms(start, steps, fraction, length):
    from qsal_jax.proposals.scorers import ensemble_uncertainty

    a = np.array([0.9, 1.0, 1.2])
    surrogate = _toy_surrogate(tuple(a))
    pool = SPACE.sample_uniform(jax.random.PRNGKey(0), 16)
    score = np.asarray(jax.jit(ensemble_uncertainty(steps=steps, fraction=fraction, start=start))(surrogate, pool, None))
    u0 = np.asarray(pool[:, 0], np.float64)
    s = np.arange(1, length + 1)
    if start == "member":  # u_s = a_e^s u0 for each member
        per_step = np.var(a[None, :] ** s[:, None], axis=1)
    else:  # all members from the mean state ū_{s-1} = mean(a)^{s-1} u0
        per_step = np.var(a) * a.mean() ** (2 * (s - 1))
    np.testing.assert_allclose(score, per_step.mean() * u0**2, rtol=1e-5)


def _sbal_round(p, s, key, n, surrogate):
    lam, s = p.sample(s, key, n)
    return lam, p.update(s, proposals.make_feedback(lam, np.ones(n), surrogate=surrogate))


def test_sbal_scores_through_the_surrogate_with_warmup_and_rounds():
    sur = _toy_surrogate()
    p = proposals.build("sbal", SPACE, pool_size=32, selection="topk", warmup_simulations=20, launches_per_round=16)
    step = jax.jit(lambda s, k: _sbal_round(p, s, k, 4, sur))
    s = p.init(jax.random.PRNGKey(0))
    scored, draws, had_pool = [], [], []
    for i in range(12):
        had_pool.append(bool(s.inner.has_pool))  # when this batch was drawn
        lam, s = step(s, jax.random.PRNGKey(i))
        draws.append(np.asarray(lam))
        scored.append(int(s.scored_at))
    # No pool before 20 launches (warm-up), then one pool per 16 launches.
    assert scored == [-1] * 4 + [20] * 4 + [36] * 4, scored
    # topk over a pool scored ∝ λ_a²: a round's 16 draws are its 16 largest λ_a, each once.
    pool = np.asarray(s.inner.pool)
    after = np.concatenate(draws[9:12])  # the three launch batches drawn from the pool scored at 36
    idx = _pool_index(pool, after)
    assert len(set(idx)) == 12 and set(idx) == set(np.argsort(-pool[:, 0])[:12])
    # The first 20 launches (five batches) are uniform draws: no pool existed when they were drawn.
    assert had_pool == [False] * 5 + [True] * 7
    # Default settings: a fresh pool after every launch batch.
    q = proposals.build("sbal", SPACE, pool_size=32)
    step_q = jax.jit(lambda s, k: _sbal_round(q, s, k, 4, sur))
    s = q.init(jax.random.PRNGKey(0))
    for i in range(3):
        _, s = step_q(s, jax.random.PRNGKey(i))
        assert int(s.scored_at) == int(s.launched) == 4 * (i + 1)
    with pytest.raises(ValueError, match="surrogate"):
        q.update(s, proposals.make_feedback(np.zeros((1, 3), np.float32), np.ones(1)))
    with pytest.raises(ValueError, match="ensemble_size >= 2"):
        q.update(s, proposals.make_feedback(np.zeros((1, 3), np.float32), np.ones(1), surrogate=_toy_surrogate((1.0,))))
