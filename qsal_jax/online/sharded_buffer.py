"""The training buffer sharded over the mesh's ``"data"`` axis: capacity grows with the devices.

A replicated buffer holds every item on every device, so its capacity is one device's memory.
Sharded, each of the N devices holds ``capacity / N`` items in its own `buffers.BufferState`
(the global arrays' leading axis is split over ``"data"``; the two counters become ``[N]``, one
per shard). Inside `jax.shard_map`:

- **push**: each device writes the items of its own solver clients (the K clients are already
  split over ``"data"``, K/N per device) into its own shard, with the single buffer's slot rules;
- **sample**: each device draws ``batch_size / N`` items from its shard with its own key
  (``fold_in(key, shard index)``), which is exactly the share of the global batch that device
  trains on, so no item crosses devices.

Every shard receives the same number of items per step, so a shard is a 1/N-scale copy of the
single buffer: FIFO hands out items of the same age, the random policies draw every held item
with the same probability, and evictions start at the same fill (`tests/test_sharded_buffer.py`
compares the statistics with the replicated buffer on 8 devices). Batches are stratified over
the shards rather than drawn from the union, which is the one difference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from qsal_jax.online import buffers as B

DATA = "data"

try:  # jax >= 0.7
    _shard_map = jax.shard_map
except AttributeError:  # older jax
    from jax.experimental.shard_map import shard_map as _shard_map


def _spec(x) -> PartitionSpec:
    return PartitionSpec(DATA, *([None] * (jnp.ndim(x) - 1)))


def shardings(buffer: B.BufferState, mesh) -> B.BufferState:
    """A `NamedSharding` per leaf: every leaf split along its leading axis."""
    return jax.tree_util.tree_map(lambda x: NamedSharding(mesh, _spec(x)), buffer)


def init(capacity: int, example: B.Items, num_shards: int) -> B.BufferState:
    """An empty sharded buffer of ``capacity`` items in all (``capacity / num_shards`` per shard)."""
    if capacity % num_shards:
        raise ValueError(f"buffer.capacity ({capacity}) must be divisible by the {num_shards} devices to be sharded")
    buffer = B.init_buffer(capacity, example)
    per_shard = jnp.zeros((num_shards,), jnp.int32)
    return buffer._replace(num_pushed=per_shard, num_evicted_unseen=per_shard)


def _local(buffer: B.BufferState) -> B.BufferState:
    return buffer._replace(num_pushed=buffer.num_pushed[0], num_evicted_unseen=buffer.num_evicted_unseen[0])


def _global(buffer: B.BufferState) -> B.BufferState:
    return buffer._replace(num_pushed=buffer.num_pushed[None], num_evicted_unseen=buffer.num_evicted_unseen[None])


def push(buffer: B.BufferState, new: B.Items, valid: jax.Array, mesh, *, seen_threshold: int = 1) -> B.BufferState:
    """`buffers.push` on every shard with that device's rows of ``new [n, ...]`` (n / N each)."""
    specs = jax.tree_util.tree_map(_spec, (buffer, new, valid))

    def local_push(buf, items, ok):
        return _global(B.push(_local(buf), items, ok, seen_threshold=seen_threshold))

    return _shard_map(local_push, mesh=mesh, in_specs=specs, out_specs=specs[0])(buffer, new, valid)


def sample(buffer: B.BufferState, key: jax.Array, batch_size: int, policy: str, mesh) -> tuple[B.BufferState, B.Items, jax.Array]:
    """`buffers.sample` of ``batch_size / N`` items on every shard; the batch comes back split
    over ``"data"`` (rows of device i first), as the sharded train step wants it."""
    n = mesh.shape[DATA]
    if batch_size % n:
        raise ValueError(f"train.batch_size ({batch_size}) must be divisible by the {n} devices of a sharded buffer")
    buffer_specs = jax.tree_util.tree_map(_spec, buffer)
    example = jax.eval_shape(lambda b: B.sample(_local(b), key, batch_size // n, policy)[1:], buffer)
    out_specs = (buffer_specs, *jax.tree_util.tree_map(_spec, example))

    def local_sample(buf, k):
        k = jax.random.fold_in(k, jax.lax.axis_index(DATA))
        new, items, ok = B.sample(_local(buf), k, batch_size // n, policy)
        return _global(new), items, ok

    return _shard_map(local_sample, mesh=mesh, in_specs=(buffer_specs, PartitionSpec()), out_specs=out_specs)(buffer, key)
