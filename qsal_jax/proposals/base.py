"""The contract every active-learning strategy implements, modelled on optax.

A strategy is a `Proposal(init, sample, update)` of pure, jit-able functions over a
NamedTuple state of fixed-shape arrays. It is built by a factory that closes over the
`ParamSpace` and its settings::

    strategy = breed_online(space, sigma=0.05, population=1024)
    state = strategy.init(key)
    lam = strategy.sample(state, key, n)          # [n, D], always inside the box
    state = strategy.update(state, feedback)      # feedback: Feedback below

"The only way to change behaviour between steps is to change the values in the state."
Strategies work in the unit cube internally and map to the box with `space.from_unit`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Feedback(NamedTuple):
    """What training tells a strategy after a batch (or a whole offline round).

    Every field has a leading axis B (one entry per training sample); padding or
    invalid entries have ``valid == False`` and must be ignored.
    """

    lam: jax.Array  # [B, D] float: λ of the simulation each sample came from (box units)
    lam_id: jax.Array  # [B] int32: id of that simulation (unique per launched client), -1 if none
    time_index: jax.Array  # [B] int32: time index within the trajectory
    loss: jax.Array  # [B] float: per-sample signal (training loss, or ensemble disagreement)
    valid: jax.Array  # [B] bool
    step: jax.Array  # [] int32: training step (or round index for offline strategies)
    # Optional scores on a candidate pool (SBAL uncertainty, RAD/R3 residuals):
    pool: jax.Array | None = None  # [P, D] float, box units
    pool_score: jax.Array | None = None  # [P] float


class Proposal(NamedTuple):
    """A strategy: three pure functions and the size of the candidate pool it wants scored."""

    init: Callable[[jax.Array], Any]  # key -> state
    sample: Callable[[Any, jax.Array, int], jax.Array]  # (state, key, n) -> λ[n, D]
    update: Callable[[Any, Feedback], Any]  # (state, feedback) -> state
    pool_size: int = 0  # > 0: the driver draws `pool_size` uniform λ, scores them, passes them in Feedback


def make_feedback(lam, loss, *, step=0, lam_id=None, time_index=None, valid=None, pool=None, pool_score=None):
    """Convenience constructor filling ids, time indices and the mask with defaults."""
    lam = jnp.asarray(lam)
    loss = jnp.asarray(loss)
    b = loss.shape[0]
    return Feedback(
        lam=lam,
        lam_id=jnp.arange(b, dtype=jnp.int32) if lam_id is None else jnp.asarray(lam_id, jnp.int32),
        time_index=jnp.zeros(b, jnp.int32) if time_index is None else jnp.asarray(time_index, jnp.int32),
        loss=loss,
        valid=jnp.ones(b, bool) if valid is None else jnp.asarray(valid, bool),
        step=jnp.asarray(step, jnp.int32),
        pool=pool,
        pool_score=pool_score,
    )
