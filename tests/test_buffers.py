"""Buffer policies: capacity, eviction preference, removal, seen counts, rejection of invalid items."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.online import buffers as B


def _items(ids, t=0):
    ids = jnp.asarray(ids, jnp.int32)
    n = ids.shape[0]
    x = ids.astype(jnp.float32)[:, None, None] * jnp.ones((n, 1, 4), jnp.float32)
    return B.Items(x, x + 0.5, jnp.zeros((n, 0)), jnp.zeros((n, 2)), ids, jnp.full((n,), t, jnp.int32))


def _empty(cap):
    one = jax.tree_util.tree_map(lambda x: x[0], _items([0]))
    return B.init_buffer(cap, one)


def test_push_rejects_invalid_rows_and_counts():
    buf = B.push(_empty(8), _items([1, 2, 3, 4]), jnp.array([True, False, True, True]))
    assert int(B.size(buf)) == 3
    held = set(np.asarray(buf.items.lam_id)[np.asarray(buf.occupied)].tolist())
    assert held == {1, 3, 4}
    assert int(buf.num_pushed) == 3


def test_fifo_pops_oldest_first_and_removes():
    buf = B.push(_empty(8), _items([1, 2, 3]), jnp.ones(3, bool))
    buf = B.push(buf, _items([4, 5]), jnp.ones(2, bool))
    buf, items, valid = B.sample(buf, jax.random.PRNGKey(0), 4, "fifo")
    np.testing.assert_array_equal(items.lam_id, [1, 2, 3, 4])
    assert bool(valid.all()) and int(B.size(buf)) == 1
    buf, items, valid = B.sample(buf, jax.random.PRNGKey(1), 4, "fifo")
    np.testing.assert_array_equal(np.asarray(valid), [True, False, False, False])
    assert int(items.lam_id[0]) == 5 and int(B.size(buf)) == 0


def test_firo_draws_distinct_random_items_and_removes():
    buf = B.push(_empty(16), _items(list(range(16))), jnp.ones(16, bool))
    buf, items, valid = B.sample(buf, jax.random.PRNGKey(0), 6, "firo")
    ids = np.asarray(items.lam_id)
    assert len(set(ids.tolist())) == 6 and bool(valid.all())
    assert int(B.size(buf)) == 10
    assert not np.any(np.isin(np.asarray(buf.items.lam_id)[np.asarray(buf.occupied)], ids))


def test_reservoir_keeps_items_counts_seen_and_evicts_seen_first():
    buf = B.push(_empty(4), _items([1, 2, 3, 4]), jnp.ones(4, bool))
    buf, items, _ = B.sample(buf, jax.random.PRNGKey(0), 2, "reservoir")
    assert int(B.size(buf)) == 4 and int(B.num_seen(buf)) == 2
    seen_ids = set(np.asarray(items.lam_id).tolist())
    buf = B.push(buf, _items([7, 8]), jnp.ones(2, bool))
    held = set(np.asarray(buf.items.lam_id).tolist())
    assert held == ({1, 2, 3, 4} - seen_ids) | {7, 8}
    assert int(buf.num_evicted_unseen) == 0
    # Pushing more than the seen items forces unseen evictions, oldest first, and counts them.
    buf = B.push(buf, _items([9, 10, 11]), jnp.ones(3, bool))
    assert int(buf.num_evicted_unseen) == 3


def test_random_draws_are_uniform_over_held_items():
    buf = B.push(_empty(10), _items(list(range(10))), jnp.ones(10, bool))
    draw = jax.jit(lambda k: B.sample(buf, k, 3, "reservoir")[1].lam_id)
    ids = np.concatenate([np.asarray(draw(k)) for k in jax.random.split(jax.random.PRNGKey(0), 2000)])
    counts = np.bincount(ids, minlength=10)
    from scipy.stats import chisquare

    assert chisquare(counts).pvalue > 1e-3


def test_trajectories_to_items_pairs_consecutive_states_with_ids():
    u = jnp.arange(2 * 4 * 1 * 3, dtype=jnp.float32).reshape(2, 4, 1, 3)
    items = B.trajectories_to_items(u, jnp.ones((2, 5)), jnp.array([7, 9]), jnp.zeros((2, 1)))
    assert items.inputs.shape == (6, 1, 3)
    np.testing.assert_array_equal(items.lam_id, [7, 7, 7, 9, 9, 9])
    np.testing.assert_array_equal(items.time_index, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(items.targets[4], u[1, 2])
    np.testing.assert_array_equal(items.inputs[4], u[1, 1])


def test_bad_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match="capacity"):
        B.push(_empty(2), _items([1, 2, 3]), jnp.ones(3, bool))
    with pytest.raises(ValueError, match="policy"):
        B.sample(_empty(2), jax.random.PRNGKey(0), 1, "lifo")
