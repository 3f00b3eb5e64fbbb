"""Importance-weighted training: strategies' draw densities, and weights in the online engine."""

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax import proposals
from qsal_jax.simulation.param_space import ParamSpace


def _breed_with_population(space, key):
    strategy = proposals.build("breed_online", space, sigma=0.07, population=16, alpha0=0.6, alpha1=0.0, alpha_max=0.6)
    state = strategy.init(key)
    lam = space.sample_uniform(jax.random.PRNGKey(1), 16)
    fb = proposals.make_feedback(lam, jnp.linspace(0.0, 3.0, 16), lam_id=jnp.arange(16))
    return strategy, strategy.update(state, fb)


def test_breed_online_density_is_the_density_of_its_draws():
    # E_p[Unif/p] = 1 and E_Unif[p] = 1 for the density p of the draws (mixture with Uniform included).
    space = ParamSpace.box({"a": (0.0, 2.0), "b": (-1.0, 1.0)})
    strategy, state = _breed_with_population(space, jax.random.PRNGKey(0))
    lam, _ = strategy.sample(state, jax.random.PRNGKey(2), 100_000)
    p = strategy.density(state, lam)
    np.testing.assert_allclose(float(jnp.mean(1.0 / p)), 1.0, atol=0.01)
    u = space.sample_uniform(jax.random.PRNGKey(3), 100_000)
    np.testing.assert_allclose(float(jnp.mean(strategy.density(state, u))), 1.0, atol=0.02)
    assert float(jnp.min(p)) >= 0.4 - 1e-6  # (1 − α) of the draws are uniform: p ≥ 1 − α


def test_handback_returns_the_share_to_uniform():
    space = ParamSpace.box({"a": (0.0, 1.0)})
    strategy = proposals.build("breed_online", space, sigma=0.05, population=8, alpha0=0.7, alpha1=0.0,
                               alpha_max=0.7, handback_step=10, handback_alpha=0.0)
    lam = jnp.full((8, 1), 0.5)
    state = strategy.update(strategy.init(jax.random.PRNGKey(0)),
                            proposals.make_feedback(lam, jnp.arange(8.0), lam_id=jnp.arange(8), step=20))
    # After the hand-back every draw is uniform, and the density is 1.
    np.testing.assert_allclose(strategy.density(state, jnp.array([[0.5], [0.9]])), 1.0, rtol=1e-6)


def test_engine_stores_clipped_importance_weights_and_trains(tmp_path):
    import os

    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.online import build_engine, init_state

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config(os.path.join(root, "configs", "online_1d.py:breed_online,tiny"))
    with config.unlocked():
        config.train.importance_clip = 3.0
        config.strategy.settings.update(alpha0=0.7, alpha1=0.0)
    engine, model, sim, optimizer = build_engine(config)
    state = init_state(engine, model, optimizer, 0)
    state, metrics = jax.jit(engine.run_steps, static_argnums=1)(state, 4)
    w = np.asarray(state.buffer.items.weight)[np.asarray(state.buffer.occupied)]
    assert w.size and np.all((w >= 1 / 3 - 1e-6) & (w <= 3 + 1e-6))
    assert w.std() > 0  # the GM share was non-uniform, so weights differ
    assert bool(np.all(metrics["finite"]))
