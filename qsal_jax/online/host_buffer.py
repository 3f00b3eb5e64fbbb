"""A bounded NumPy buffer of training items on the host, for the asynchronous mode.

The same three policies and eviction rule as the device buffers (`qsal_jax.online.buffers`),
so a config means the same thing in both modes:

- ``fifo``: batches take the oldest items and remove them (each item trained on once).
- ``firo``: first in, random out: batches take random items and remove them.
- ``reservoir``: batches take random items and keep them; an item may be drawn many times.

A push fills empty slots first, then overwrites items drawn at least ``seen_threshold``
times (oldest first), and only then unseen items (oldest first, counted as data lost to
buffer pressure). Storage is allocated on the first push, when the item shapes are known.
Randomness comes from the ``numpy.random.Generator`` given at construction.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qsal_jax.online.buffers import POLICIES  # the device buffer's policies, by the same names

ITEM_DTYPE = np.float32  # of states and conditioning: results are checked finite after the cast to it


class HostItems(NamedTuple):
    """Training items on the host; leading axis n."""

    inputs: np.ndarray  # [n, C, *grid] float32: u_t
    targets: np.ndarray  # [n, C, *grid] float32: u_{t+1}
    cond: np.ndarray  # [n, P] float32: conditioning of the source simulation (P may be 0)
    lam: np.ndarray  # [n, D] float32: λ of the source simulation (box units)
    lam_id: np.ndarray  # [n] int32: id of the source simulation, -1 for padding
    time_index: np.ndarray  # [n] int32: t of u_t in its trajectory


def trajectory_items(u: np.ndarray, lam: np.ndarray, lam_id: int, cond: np.ndarray) -> HostItems:
    """One trajectory ``u [T, C, *grid]`` as T − 1 items (u_t, u_{t+1}); ``lam [D]``, ``cond [P]``."""
    t = u.shape[0]
    u = np.asarray(u, ITEM_DTYPE)
    return HostItems(
        inputs=u[:-1],
        targets=u[1:],
        cond=np.broadcast_to(np.asarray(cond, np.float32), (t - 1, np.size(cond))),
        lam=np.broadcast_to(np.asarray(lam, np.float32), (t - 1, np.size(lam))),
        lam_id=np.full((t - 1,), lam_id, np.int32),
        time_index=np.arange(t - 1, dtype=np.int32),
    )


class HostBuffer:
    """Fixed-capacity store of `HostItems` with seen counts; see the module docstring for the policies."""

    def __init__(self, capacity: int, policy: str = "fifo", *, seen_threshold: int = 1, rng: np.random.Generator):
        if policy not in POLICIES:
            raise ValueError(f"buffer policy must be one of {POLICIES}, got {policy!r}")
        if capacity < 1 or seen_threshold < 1:
            raise ValueError(f"buffer capacity and seen_threshold must be >= 1, got {capacity}, {seen_threshold}")
        self.capacity = capacity
        self.policy = policy
        self.seen_threshold = seen_threshold
        self._rng = rng
        self._items: HostItems | None = None  # each field [capacity, ...], allocated on first push
        self._occupied = np.zeros(capacity, bool)
        self._seen = np.zeros(capacity, np.int32)
        self._stamp = np.zeros(capacity, np.int64)  # insertion counter: smaller is older
        self.num_pushed = 0
        self.num_evicted_unseen = 0

    # ------------------------------------------------------------------ queries
    @property
    def size(self) -> int:
        return int(self._occupied.sum())

    def num_seen(self, threshold: int | None = None) -> int:
        """Held items drawn at least ``threshold`` times (default: the buffer's ``seen_threshold``)."""
        t = self.seen_threshold if threshold is None else threshold
        return int((self._occupied & (self._seen >= t)).sum())

    @property
    def num_unseen(self) -> int:
        """Held items never drawn into a batch."""
        return int((self._occupied & (self._seen == 0)).sum())

    def has_room(self) -> bool:
        """A push would not overwrite unseen data (empty slots, or items seen ``seen_threshold`` times)."""
        return self.size < self.capacity or self.num_seen() > 0

    # --------------------------------------------------------------- checkpoints
    def allocate(self, example: HostItems) -> None:
        """Allocate storage for items shaped like ``example`` (``[n, ...]``) before the first push."""
        if self._items is None:
            self._items = HostItems(*(np.zeros((self.capacity,) + x.shape[1:], x.dtype) for x in example))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything the buffer holds, as arrays (for a checkpoint; `allocate` first)."""
        if self._items is None:
            raise ValueError("HostBuffer.state_arrays: allocate the storage first")
        return {"items": self._items._asdict(), "occupied": self._occupied.copy(), "seen": self._seen.copy(),
                "stamp": self._stamp.copy(), "counts": np.asarray([self.num_pushed, self.num_evicted_unseen], np.int64)}

    def reseed(self, rng: np.random.Generator) -> None:
        """Draw batches from ``rng`` from now on (a resumed run)."""
        self._rng = rng

    def load_state_arrays(self, arrays: dict) -> None:
        """The inverse of `state_arrays`."""
        self._items = HostItems(**{k: np.array(v) for k, v in arrays["items"].items()})
        self._occupied = np.array(arrays["occupied"], bool)
        self._seen = np.array(arrays["seen"], np.int32)
        self._stamp = np.array(arrays["stamp"], np.int64)
        self.num_pushed, self.num_evicted_unseen = (int(x) for x in np.asarray(arrays["counts"]))

    # ------------------------------------------------------------------ updates
    def push(self, items: HostItems) -> int:
        """Store ``items`` (``[n, ...]``, n ≤ capacity); returns how many unseen items it overwrote."""
        n = items.lam_id.shape[0]
        if n > self.capacity:
            raise ValueError(f"HostBuffer.push: {n} items exceed the capacity {self.capacity}; raise the capacity")
        if self._items is None:
            self._items = HostItems(*(np.zeros((self.capacity,) + x.shape[1:], x.dtype) for x in items))
        elif any(new.shape[1:] != old.shape[1:] for new, old in zip(items, self._items)):
            raise ValueError(
                f"HostBuffer.push: item shapes {[x.shape[1:] for x in items]} differ from the stored "
                f"{[x.shape[1:] for x in self._items]} (inputs, targets, cond, lam, lam_id, time_index)"
            )
        # Cost order: empty slots, then well-seen items by age, then unseen items by age.
        tier = np.where(~self._occupied, 0, np.where(self._seen >= self.seen_threshold, 1, 2))
        slots = np.lexsort((self._stamp, tier))[:n]
        lost = int((tier[slots] == 2).sum())
        for stored, new in zip(self._items, items):
            stored[slots] = new
        self._occupied[slots] = True
        self._seen[slots] = 0
        self._stamp[slots] = self.num_pushed + np.arange(n)
        self.num_pushed += n
        self.num_evicted_unseen += lost
        return lost

    def sample(self, batch_size: int) -> tuple[HostItems, np.ndarray]:
        """``batch_size`` distinct held items and ``valid [batch_size]`` (False rows are zero padding).

        Draws are marked seen; ``fifo`` and ``firo`` also remove them.
        """
        if self._items is None:
            raise ValueError("HostBuffer.sample: the buffer has never been pushed to")
        held = np.flatnonzero(self._occupied)
        if self.policy == "fifo":
            take = held[np.argsort(self._stamp[held], kind="stable")[:batch_size]]
        else:
            take = self._rng.permutation(held)[:batch_size]
        self._seen[take] += 1
        if self.policy in ("fifo", "firo"):
            self._occupied[take] = False
        k = take.shape[0]
        batch = HostItems(*(np.zeros((batch_size,) + x.shape[1:], x.dtype) for x in self._items))
        for out, stored in zip(batch, self._items):
            out[:k] = stored[take]
        batch.lam_id[k:] = -1
        valid = np.arange(batch_size) < k
        return batch, valid
