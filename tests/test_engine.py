"""The fused online step: budget, blow-up rejection, determinism, resume, sharding."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.experiments.online import build_engine, init_state
from qsal_jax.online import buffers as B

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(arg="tiny"):
    spec = importlib.util.spec_from_file_location("online_1d", os.path.join(ROOT, "configs", "online_1d.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _engine(config):
    engine, model, sim, optimizer = build_engine(config)
    return engine, init_state(engine, model, optimizer, config.seed)


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        x, y = (jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v for v in (x, y))
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def tiny():
    """One compiled two-step program shared by the tests below (compilation dominates their cost)."""
    config = _config()
    engine, model, sim, optimizer = build_engine(config)
    fresh = lambda: init_state(engine, model, optimizer, config.seed)
    run = jax.jit(engine.run_steps, static_argnums=1)
    return config, engine, fresh, run


def test_online_steps_spend_the_budget_and_train(tiny):
    config, engine, fresh, run = tiny
    state, m1 = run(fresh(), 2)
    state, m2 = run(state, 2)
    metrics = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), m1, m2)
    k = config.online.clients_per_step
    assert int(state.next_lam_id) == 4 * k
    assert metrics["lam"].shape == (4, k, 4)
    assert int(state.num_trained) > 0
    assert bool(jnp.all(jnp.isfinite(metrics["train_loss"])))
    assert bool(jnp.all(engine.simulator.space.contains(metrics["lam"].reshape(-1, 4))))
    # every buffered item comes from a launched simulation, with its own λ
    held = np.asarray(state.buffer.occupied)
    assert np.all(np.asarray(state.buffer.items.lam_id)[held] < 4 * k)


def test_blown_up_trajectories_never_enter_the_buffer():
    config = _config()
    with config.unlocked():
        # one solver step per frame at amplitudes up to 3: many KdV runs blow up
        config.problem.kwargs = {"num_points": 64, "num_steps": 5, "substeps": 1, "amplitude": (1.0, 3.0)}
    engine, state = _engine(config)
    state, metrics = jax.jit(engine.run_steps, static_argnums=1)(state, 5)
    assert int(state.num_rejected) > 0, "the test needs some blow-ups"
    assert int(jnp.sum(metrics["rejected"])) == int(state.num_rejected)
    held = np.asarray(state.buffer.occupied)
    assert np.all(np.isfinite(np.asarray(state.buffer.items.inputs)[held]))
    assert np.all(np.isfinite(np.asarray(state.buffer.items.targets)[held]))
    # the trained parameters and the strategy state stay finite
    for leaf in jax.tree_util.tree_leaves((state.train.params, state.strategy)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert bool(jnp.all(jnp.isfinite(leaf)))


def test_same_seed_same_numbers_and_resume_continues_bit_for_bit(tiny, tmp_path):
    from qsal_jax.training import checkpoint

    config, engine, fresh, run = tiny
    half, _ = run(fresh(), 2)
    straight, _ = run(half, 2)
    again, _ = run(run(fresh(), 2)[0], 2)
    _leaves_equal(straight, again)

    checkpoint.save(tmp_path, 2, run(fresh(), 2)[0])
    restored, step = checkpoint.restore_latest(tmp_path, fresh())
    assert step == 2
    resumed, _ = run(restored, 2)
    _leaves_equal(straight, resumed)


def test_sharded_engine_matches_single_device():
    from qsal_jax.training.sharding import make_mesh, replicate

    assert jax.device_count() == 8, "tests/conftest.py sets 8 simulated host devices"
    import dataclasses

    config = _config()
    with config.unlocked():
        config.online.clients_per_step = 8
        config.buffer.capacity = 256
    engine, state = _engine(config)
    single, m1 = jax.jit(engine.run_steps, static_argnums=1)(state, 1)
    mesh = make_mesh()
    sharded_engine = dataclasses.replace(engine, mesh=mesh)
    sharded, m2 = jax.jit(sharded_engine.run_steps, static_argnums=1)(replicate(_engine(config)[1], mesh), 1)
    # The simulated trajectories agree to float32 round-off; so does the loss.
    u_single, u_sharded = np.asarray(single.buffer.items.inputs), np.asarray(sharded.buffer.items.inputs)
    np.testing.assert_allclose(u_sharded, u_single, rtol=0, atol=1e-6 * np.abs(u_single).max())
    np.testing.assert_allclose(m1["train_loss"], m2["train_loss"], rtol=1e-4, atol=1e-6)
    # Parameters: Adam divides each gradient coordinate by its own RMS, so in the first steps a
    # round-off difference in a near-zero gradient moves that coordinate by a fraction of the
    # step size; the bound is 1 % of lr per step taken.
    lr, steps = config.train.optimizer.learning_rate, int(single.train.step)
    for a, b in zip(jax.tree_util.tree_leaves(single.train.params), jax.tree_util.tree_leaves(sharded.train.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=0.01 * lr * steps)
    np.testing.assert_array_equal(np.asarray(single.buffer.items.lam_id), np.asarray(sharded.buffer.items.lam_id))


def test_engine_rejects_inconsistent_sizes_with_named_fields():
    config = _config()
    with config.unlocked():
        config.buffer.capacity = 4
    with pytest.raises(ValueError, match="buffer.capacity"):
        build_engine(config)


def test_ensemble_engine_feeds_disagreement_and_sbal_pool():
    config = _config("sbal,tiny")
    with config.unlocked():
        config.strategy.settings = {"pool_size": 16}
        config.strategy.signal = "disagreement"
    engine, state = _engine(config)
    state, metrics = jax.jit(engine.run_steps, static_argnums=1)(state, 2)
    assert jax.tree_util.tree_leaves(state.train.params)[0].shape[0] == 3
    assert bool(jnp.all(jnp.isfinite(metrics["train_loss"])))
    # The engine drove SBAL like any strategy: it sampled once per step and, once training ran,
    # scored a pool with the ensemble it passed in the feedback.
    k = config.online.clients_per_step
    assert int(state.strategy.launched) == 2 * k and int(state.num_trained) > 0
    # By default one pool per launch batch: the last was scored after the second batch.
    assert bool(state.strategy.inner.has_pool) and int(state.strategy.scored_at) == 2 * k
    lam = np.asarray(metrics["lam"]).reshape(-1, engine.simulator.space.dim)
    assert bool(jnp.all(engine.simulator.space.contains(jnp.asarray(lam))))


def test_sbal_without_an_ensemble_fails_with_the_setting_named():
    config = _config("sbal,tiny")
    with config.unlocked():
        config.strategy.settings = {"pool_size": 16}
        config.model.ensemble_size = 1
    # SBAL's factory refuses the driver's context: at build, before anything is traced.
    with pytest.raises(ValueError, match=r"^model.ensemble_size = 1: sbal: .*ensemble_size must be >= 2"):
        _engine(config)
