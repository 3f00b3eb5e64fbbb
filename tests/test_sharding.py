"""Data-parallel train step over the 8 simulated CPU devices (tests/conftest.py) agrees with the
single-device step; batch placement and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models, training
from qsal_jax.training import sharding


def key(seed):
    # "rbg" compiles much faster than threefry on CPU; model inits draw one array per parameter.
    return jax.random.key(seed, impl="rbg")


@pytest.fixture(scope="module")
def problem():
    assert jax.device_count() == 8, "tests/conftest.py should simulate 8 CPU devices"
    model = models.build("fno1d_tiny", modes=6, width=8, depth=2)
    x = jax.random.normal(key(0), (16, 1, 32))
    cond = jax.random.uniform(key(1), (16, 2))
    batch = training.make_batch(x, jnp.roll(x, 2, axis=-1), cond=cond, weight=jnp.ones(16).at[-3:].set(0.0))
    optimizer = training.make_optimizer(learning_rate=1e-2, warmup_steps=1, total_steps=20)
    state = training.create_train_state(key(2), model, x[:1], optimizer, sample_cond=cond[:1])
    return model, optimizer, state, batch


def test_sharded_step_matches_unsharded(problem):
    model, optimizer, state, batch = problem
    mesh = sharding.make_mesh()
    assert mesh.shape == {"data": 8}
    single = training.make_train_step(model.apply, optimizer, loss_name="nrmse", donate=False)
    multi = sharding.make_sharded_train_step(model.apply, optimizer, mesh, loss_name="nrmse")

    s1, s8 = state, sharding.replicate(state, mesh)
    for _ in range(3):
        s1, l1, m1 = single(s1, batch)
        s8, l8, m8 = multi(s8, sharding.shard_batch(batch, mesh))

    assert l8.sharding.spec == jax.sharding.PartitionSpec("data")
    assert s8.params["params"]["lift"]["kernel"].sharding.is_fully_replicated
    np.testing.assert_allclose(l8, l1, rtol=1e-4, atol=1e-6)
    for name in ("loss", "grad_norm", "num_valid"):
        np.testing.assert_allclose(m8[name], m1[name], rtol=1e-4)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), s8.params, s1.params)
    assert int(s8.step) == 3


def test_unplaced_inputs_are_placed_on_the_fly(problem):
    model, optimizer, state, batch = problem
    mesh = sharding.make_mesh()
    multi = sharding.make_sharded_train_step(model.apply, optimizer, mesh, donate=False)
    _, losses, _ = multi(state, batch)
    assert losses.shape == (16,)


def test_batch_size_must_divide_device_count(problem):
    model, optimizer, state, batch = problem
    mesh = sharding.make_mesh()
    odd = jax.tree_util.tree_map(lambda a: a[:12], batch)
    with pytest.raises(ValueError, match="batch_size=12"):
        sharding.shard_batch(odd, mesh)
    with pytest.raises(ValueError, match="batch_size=12"):
        sharding.make_sharded_train_step(model.apply, optimizer, mesh)(state, odd)


def test_mesh_over_a_subset_and_single_host_distributed_noop():
    mesh = sharding.make_mesh(jax.devices()[:2])
    placed = sharding.shard_batch(training.make_batch(jnp.ones((4, 1, 8)), jnp.ones((4, 1, 8))), mesh)
    assert placed.inputs.sharding.shard_shape(placed.inputs.shape) == (2, 1, 8)
    assert sharding.maybe_initialize_distributed() is False
