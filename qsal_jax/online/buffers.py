"""Fixed-capacity, device-resident training buffers (the Melissa memory buffer).

Solver clients push (u_t, u_{t+1}) items (with u_{t+2} for the two-step objective); the trainer draws batches. Three policies:

- ``fifo``: batches take the oldest items and remove them (each item trained on once).
- ``firo``: first in, random out: batches take random items and remove them.
- ``reservoir``: batches take random items and keep them (an item may be seen many
  times); when full, a push evicts items already seen at least ``seen_threshold``
  times before it touches unseen ones.

Pushes fill empty slots first, then evict by the policy's preference (seen before
unseen, oldest first), so no policy drops unseen data while a seen item could go.
Items flagged invalid (a blown-up trajectory) are never written. Everything is
fixed-shape and jit-able; the whole buffer is a pytree that checkpoints with the run.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

POLICIES = ("fifo", "firo", "reservoir")


class Items(NamedTuple):
    """A batch of training items; leading axis n."""

    inputs: jax.Array  # [n, C, *grid] u_t
    targets: jax.Array  # [n, C, *grid] u_{t+1}
    cond: jax.Array  # [n, P] conditioning (unit-cube PDE coefficients), P may be 0
    lam: jax.Array  # [n, D] λ of the source simulation (box units)
    lam_id: jax.Array  # [n] int32 id of the source simulation
    time_index: jax.Array  # [n] int32 index t of u_t in its trajectory
    # [n] float32 importance weight U(λ)/p_draw(λ) of the source simulation (clipped), or None
    # when the run trains unweighted (then the field holds no array at all)
    weight: jax.Array | None = None
    # [n, C, *grid] u_{t+2} for the two-step objective (three consecutive frames per item), or None
    targets2: jax.Array | None = None


class BufferState(NamedTuple):
    items: Items  # each field [capacity, ...]
    occupied: jax.Array  # [capacity] bool
    seen: jax.Array  # [capacity] int32, times drawn into a batch
    stamp: jax.Array  # [capacity] int32, insertion counter (age order)
    num_pushed: jax.Array  # [] int32, items ever written
    num_evicted_unseen: jax.Array  # [] int32, unseen items overwritten (data lost to pressure)


def init_buffer(capacity: int, example: Items) -> BufferState:
    """An empty buffer shaped like ``example`` (one item, no leading axis: ``inputs [C, *grid]``)."""
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
        raise ValueError(f"buffer capacity must be an integer >= 1, got {capacity!r}")
    if not isinstance(example, Items):
        raise TypeError(f"init_buffer: example must be buffers.Items (one item), got {type(example).__name__}")
    if jnp.ndim(example.inputs) < 2 or jnp.shape(example.inputs) != jnp.shape(example.targets):
        raise ValueError(f"init_buffer: an item's inputs and targets must both be one frame [C, *grid] (rank >= 2), "
                         f"got {jnp.shape(example.inputs)} and {jnp.shape(example.targets)}")
    items = jax.tree_util.tree_map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return BufferState(
        items=items,
        occupied=jnp.zeros(capacity, bool),
        seen=jnp.zeros(capacity, jnp.int32),
        stamp=jnp.zeros(capacity, jnp.int32),
        num_pushed=jnp.zeros((), jnp.int32),
        num_evicted_unseen=jnp.zeros((), jnp.int32),
    )


def capacity(buffer: BufferState) -> int:
    return buffer.occupied.shape[0]


def size(buffer: BufferState) -> jax.Array:
    return jnp.sum(buffer.occupied, dtype=jnp.int32)


def num_seen(buffer: BufferState, threshold: int = 1) -> jax.Array:
    """Number of held items drawn at least ``threshold`` times."""
    return jnp.sum(buffer.occupied & (buffer.seen >= threshold), dtype=jnp.int32)


def push(buffer: BufferState, new: Items, valid: jax.Array, *, seen_threshold: int = 1) -> BufferState:
    """Write the valid rows of ``new`` (``[n, ...]``, ``valid [n]``) into the buffer.

    Slot preference: empty, then seen ≥ threshold (oldest first), then the rest
    (oldest first). Invalid rows are dropped.
    """
    cap = capacity(buffer)
    n = valid.shape[0]
    if n > cap:
        raise ValueError(f"buffer.push: {n} items exceed the capacity {cap}; raise buffer.capacity")
    big = jnp.int32(2**30)
    age = buffer.stamp - jnp.min(jnp.where(buffer.occupied, buffer.stamp, big))  # 0 = oldest
    age = jnp.clip(age, 0, 2**28)
    well_seen = buffer.seen >= seen_threshold
    cost = jnp.where(~buffer.occupied, -1, jnp.where(well_seen, age, age + 2**28))
    _, slots = jax.lax.top_k(-cost, n)  # n cheapest slots, cheapest first
    # Valid rows take the cheapest slots in order; invalid rows go nowhere.
    rank = (jnp.cumsum(valid.astype(jnp.int32)) - 1).astype(jnp.int32)
    target = jnp.where(valid, slots[jnp.clip(rank, 0, n - 1)], cap)
    lost = jnp.sum(valid & buffer.occupied[jnp.clip(target, 0, cap - 1)] & ~well_seen[jnp.clip(target, 0, cap - 1)], dtype=jnp.int32)
    stamps = buffer.num_pushed + rank
    items = jax.tree_util.tree_map(lambda old, x: old.at[target].set(x.astype(old.dtype), mode="drop"), buffer.items, new)
    return BufferState(
        items=items,
        occupied=buffer.occupied.at[target].set(True, mode="drop"),
        seen=buffer.seen.at[target].set(0, mode="drop"),
        stamp=buffer.stamp.at[target].set(stamps, mode="drop"),
        num_pushed=buffer.num_pushed + jnp.sum(valid, dtype=jnp.int32),
        num_evicted_unseen=buffer.num_evicted_unseen + lost,
    )


def sample(buffer: BufferState, key: jax.Array, batch_size: int, policy: str) -> tuple[BufferState, Items, jax.Array]:
    """Draw ``batch_size`` distinct held items; returns ``(buffer, items, valid [batch])``.

    ``valid`` is False for padding rows when fewer items are held than asked for.
    """
    if policy not in POLICIES:
        raise ValueError(f"buffer.policy must be one of {POLICIES}, got {policy!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"buffers.sample: batch_size must be an integer >= 1, got {batch_size!r}")
    cap = capacity(buffer)
    if batch_size > cap:
        raise ValueError(f"buffer.sample: batch_size {batch_size} exceeds capacity {cap}")
    if policy == "fifo":
        score = jnp.where(buffer.occupied, -buffer.stamp, jnp.iinfo(jnp.int32).min)  # oldest first
    else:
        score = jnp.where(buffer.occupied, jax.random.gumbel(key, (cap,)), -jnp.inf)
    _, idx = jax.lax.top_k(score, batch_size)
    valid = buffer.occupied[idx]
    items = jax.tree_util.tree_map(lambda x: x[idx], buffer.items)
    drawn = jnp.where(valid, idx, cap)
    seen = buffer.seen.at[drawn].add(1, mode="drop")
    occupied = buffer.occupied
    if policy in ("fifo", "firo"):
        occupied = occupied.at[drawn].set(False, mode="drop")
    return buffer._replace(seen=seen, occupied=occupied), items, valid


def trajectories_to_items(u: jax.Array, lam: jax.Array, lam_id: jax.Array, cond: jax.Array,
                          weight: jax.Array | None = None, *, frames: int = 2) -> Items:
    """Split trajectories ``u [K, T, C, *grid]`` into training items of ``frames`` consecutive states.

    ``frames=2``: K·(T−1) one-step items (u_t, u_{t+1}); ``frames=3``: K·(T−2) items that also
    carry u_{t+2} (``targets2``, the two-step objective). ``weight [K]`` (optional) is each
    simulation's importance weight, repeated over its items.
    """
    if frames not in (2, 3):
        raise ValueError(f"trajectories_to_items: frames must be 2 or 3, got {frames}")
    k, t = u.shape[:2]
    per = t - frames + 1  # items per trajectory
    if per < 1:
        raise ValueError(f"trajectories_to_items: {t} frames per trajectory cannot make items of {frames} frames")
    rep = lambda x: jnp.repeat(x, per, axis=0)
    window = lambda start: u[:, start:start + per].reshape((k * per,) + u.shape[2:])
    return Items(
        inputs=window(0),
        targets=window(1),
        cond=rep(cond),
        lam=rep(lam),
        lam_id=rep(lam_id.astype(jnp.int32)),
        time_index=jnp.tile(jnp.arange(per, dtype=jnp.int32), k),
        weight=None if weight is None else rep(weight.astype(jnp.float32)),
        targets2=window(2) if frames == 3 else None,
    )
