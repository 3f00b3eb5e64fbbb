"""The strategy contract, checked over EVERY strategy `proposals.names()` finds, driven as the online engine drives it.

``sample(state, key, n) -> (λ [n, D] box units, state)`` and ``update(state, feedback) -> state``,
with one `Feedback` built by keyword for all strategies; it carries a surrogate, which the
pool strategies score their candidates with and the others ignore. Checked: jit-able; draws
finite, inside the box, float32 ``[n, D]``; every state leaf keeps its shape and dtype through
``sample`` and ``update`` (no recompilation on the second call); same key → same draws; two
``sample`` calls threading the returned state give different draws (every strategy here is
stochastic or sequential), and for the sequential ones even with the same key.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import proposals
from qsal_jax.proposals.base import Feedback, ScoredProposal
from qsal_jax.proposals.scorers import EnsembleSurrogate
from qsal_jax.simulation.param_space import ParamSpace

SPACE = ParamSpace.box({"a": (0.0, 1.0), "b": (-2.0, 3.0), "c": (10.0, 10.5)})
N = B = 16  # draws per call and feedback rows (R3 needs both = its population)

# Small sizes for speed, and R3's population = N; a strategy not listed is built with its defaults
# (a new strategy needs no entry).
TINY_OGAS = dict(hidden=16, depth=1, steps=6, capacity=64, batch_size=16, train_steps=1, min_fill=8, ramp_updates=1,
                 ratio_hidden=8, ratio_depth=1)
SETTINGS = {
    "uniform": {},
    "quasirandom": {},
    "breed": {"population": B, "sigma": 0.1},
    "breed_online": {"population": 32, "sigma": 0.1, "alpha0": 0.5},
    "breed_generations": {"population": 32, "generation_every": 1, "min_simulations": 0, "ramp_generations": 1},
    "sbal": {"pool_size": 64},
    "r3": {"population": N},
    "rad": {"population": N, "pool_size": 64},
    "ogas": TINY_OGAS,
    "adversarial": {"particles": N, "ascent_steps": 2, "alpha0": 0.5},
    "residual": {"pool_size": 64, "window": 2},
}
# Key-independent draws that move on with the state (the same key twice gives new points): the
# quasi-random sequence always, SBAL once it holds a pool (members are handed out once).
SEQUENTIAL = {"quasirandom": False, "sbal": True}  # name -> only after an update


def ensemble(lam_dim=3):
    """A 3-member toy ensemble ``u ← a_e u`` (the online engine's kind of surrogate)."""
    initial_state = lambda lam: jnp.ones((1, 4), jnp.float32) * (lam[0] + 0.1 * lam[1])  # noqa: E731
    frame_step = lambda u, lam: 0.95 * u + 0.01 * lam[-1]  # noqa: E731 -- a linear "solver"

    def simulate_prefix(lam, frames):
        return jax.lax.scan(lambda u, _: (frame_step(u, lam), u), initial_state(lam), None, length=frames)[1]

    return EnsembleSurrogate(
        params={"a": jnp.asarray([0.9, 1.0, 1.2], jnp.float32)},
        apply_fn=lambda p, u, cond: p["a"] * u + 0.1 * jnp.sin(u),
        initial_state=initial_state,
        conditioning=lambda lam: jnp.zeros((lam.shape[0], 0), jnp.float32),
        num_frames=9,
        simulate_prefix=simulate_prefix,
        frame_step=frame_step,
    )


def residual(lam):
    """The PINN driver's kind of surrogate: λ [P, D] → signal [P]."""
    return jnp.abs(jnp.sin(3.0 * lam[:, 0]) * lam[:, 1])


# Built once: the static parts of a surrogate (its functions) are part of the traced program, so a
# driver keeps them fixed (the engine builds them from its own fields) and nothing recompiles.
SURROGATES = {"ensemble": ensemble(), "residual": jax.tree_util.Partial(residual)}


def test_the_drivers_surrogates_satisfy_the_surrogate_protocols():
    from qsal_jax.proposals.base import RolloutSurrogate, ScoreSurrogate

    assert isinstance(SURROGATES["ensemble"], RolloutSurrogate)
    assert isinstance(SURROGATES["residual"], ScoreSurrogate)
    assert not isinstance(SURROGATES["residual"], RolloutSurrogate)


def surrogate_for(name):
    return SURROGATES["residual" if name == "rad" else "ensemble"]


def feedback(name, key, step=1) -> Feedback:
    k_lam, k_loss, k_id = jax.random.split(key, 3)
    return Feedback(
        lam=SPACE.sample_uniform(k_lam, B),
        lam_id=jax.random.randint(k_id, (B,), 0, 12, jnp.int32),
        time_index=jnp.arange(B, dtype=jnp.int32) % 4,
        loss=jax.random.exponential(k_loss, (B,), jnp.float32),
        valid=jnp.arange(B) < B - 2,
        step=jnp.asarray(step, jnp.int32),
        surrogate=surrogate_for(name),
    )


class Jitted(NamedTuple):
    name: str
    p: proposals.Proposal
    init: Callable
    sample: Callable
    update: Callable
    traces: dict


@pytest.fixture(params=sorted(proposals.names()), scope="module")
def strategy(request):
    name = request.param
    p = proposals.build(name, SPACE, **SETTINGS.get(name, {}))
    traces = {"sample": 0, "update": 0}

    def sample(state, key, n):
        traces["sample"] += 1
        return p.sample(state, key, n)

    def update(state, fb):
        traces["update"] += 1
        return p.update(state, fb)

    return Jitted(name, p, jax.jit(p.init), jax.jit(sample, static_argnums=2), jax.jit(update), traces)


def avals(tree):
    return jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), tree)


def check(lam, n=N):
    lam = np.asarray(lam)
    assert lam.shape == (n, SPACE.dim) and lam.dtype == np.float32
    assert np.all(np.isfinite(lam)) and bool(jnp.all(SPACE.contains(jnp.asarray(lam))))


def test_the_test_settings_name_known_strategies_and_settings():
    assert set(SETTINGS) <= set(proposals.names())
    for name in SETTINGS:
        assert set(SETTINGS[name]) <= set(proposals.settings_of(name)), name


def test_jit_shapes_bounds_and_no_recompilation(strategy):
    c = strategy
    s0 = c.init(jax.random.PRNGKey(0))
    states = [s0]
    for i in range(3):  # sample → update, as the engine does, three times
        lam, s = c.sample(states[-1], jax.random.PRNGKey(10 + i), N)
        check(lam)
        s = c.update(s, feedback(c.name, jax.random.PRNGKey(20 + i), step=i + 1))
        states.append(s)
    for s in states[1:]:
        assert avals(s) == avals(s0), "sample and update keep every state leaf's shape and dtype"
        floats = [x for x in jax.tree.leaves(s) if jnp.issubdtype(jnp.result_type(x), jnp.floating)]
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in floats)
    assert c.traces == {"sample": 1, "update": 1}, "the second call reuses the first one's executable"


def test_same_key_same_draws(strategy):
    c = strategy
    s = c.update(c.init(jax.random.PRNGKey(0)), feedback(c.name, jax.random.PRNGKey(1)))
    k = jax.random.PRNGKey(7)
    a, sa = c.sample(s, k, N)
    b, sb = c.sample(s, k, N)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), sa, sb)
    again = c.update(c.init(jax.random.PRNGKey(0)), feedback(c.name, jax.random.PRNGKey(1)))
    np.testing.assert_array_equal(np.asarray(c.sample(again, k, N)[0]), np.asarray(a))


@pytest.mark.parametrize("after_update", [False, True])
def test_two_samples_without_update_differ(strategy, after_update):
    c = strategy
    s = c.init(jax.random.PRNGKey(0))
    if after_update:
        s = c.update(s, feedback(c.name, jax.random.PRNGKey(1)))
    a, s1 = c.sample(s, jax.random.PRNGKey(2), N)
    b, _ = c.sample(s1, jax.random.PRNGKey(3), N)
    assert not np.array_equal(np.asarray(a), np.asarray(b)), "threaded draws must move on"
    if c.name in SEQUENTIAL and (after_update or not SEQUENTIAL[c.name]):
        same_key, _ = c.sample(s1, jax.random.PRNGKey(2), N)
        assert not np.array_equal(np.asarray(a), np.asarray(same_key)), "the state, not the key, moves it on"


POOL_STRATEGIES = ("rad", "residual", "sbal")


def test_exactly_the_strategies_that_need_the_surrogate_are_scored_proposals(strategy):
    """A capability, not a list of names: a ScoredProposal refuses feedback without a surrogate,
    every other strategy takes it."""
    c = strategy
    fb = feedback(c.name, jax.random.PRNGKey(1))._replace(surrogate=None)
    if isinstance(c.p, ScoredProposal):
        with pytest.raises(ValueError, match="surrogate"):
            c.p.update(c.p.init(jax.random.PRNGKey(0)), fb)
    else:
        c.p.update(c.p.init(jax.random.PRNGKey(0)), fb)


@pytest.mark.parametrize("name", POOL_STRATEGIES)
def test_pool_strategies_score_their_pool_through_the_surrogate(name):
    p = proposals.build(name, SPACE, **SETTINGS[name])
    s = jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), feedback(name, jax.random.PRNGKey(1)))
    assert bool(s.inner.has_pool) and int(s.scored_at) == 0
    lam = np.asarray(jax.jit(p.sample, static_argnums=2)(s, jax.random.PRNGKey(2), N)[0])
    pool = np.asarray(s.inner.pool)
    assert np.all(np.abs(lam[:, None, :] - pool[None]).max(-1).min(1) == 0), "draws are pool members, as scored"


def _documented_strategy():
    """The example strategy of docs/design.md ("Adding a strategy"), executed from the page."""
    import os
    import re

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "design.md")) as f:
        page = f.read()
    section = page.split("### Adding a strategy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/design.md", "exec"), namespace)
    return code, namespace["around_the_worst"]


def test_the_documented_example_strategy_keeps_the_contract():
    code, factory = _documented_strategy()
    assert len(code.strip().splitlines()) <= 40
    p = factory(SPACE, sigma=0.05, alpha=1.0)
    sample, update = jax.jit(p.sample, static_argnums=2), jax.jit(p.update)
    state = p.init(jax.random.PRNGKey(0))
    lam, state = sample(state, jax.random.PRNGKey(1), N)
    check(lam)
    fb = feedback("uniform", jax.random.PRNGKey(2))
    state = update(state, fb)
    worst = int(jnp.argmax(jnp.where(fb.valid, fb.loss, -jnp.inf)))
    np.testing.assert_allclose(np.asarray(SPACE.from_unit(state.worst)), np.asarray(fb.lam[worst]), rtol=1e-5)
    lam, _ = sample(state, jax.random.PRNGKey(3), 4096)
    check(lam, 4096)
    # α = 1: every draw is within a few σ of the worst λ (unit-cube distance per coordinate).
    spread = np.abs(np.asarray(SPACE.to_unit(lam)) - np.asarray(state.worst))
    assert np.percentile(spread, 99) < 4 * 0.05
    assert "around_the_worst" not in proposals.names()  # an example, not a registered strategy
