"""SBAL: pool-based selection by ensemble uncertainty (AL4PDE; Musekamp et al., 2025).

The driver draws ``pool_size`` uniform λ (``Proposal.pool_size``), scores each with the
uncertainty ``u`` of an ensemble along a rollout, and passes them as ``Feedback.pool`` and
``Feedback.pool_score``; ``update`` stores the scored pool. ``sample(n)`` then picks ``n``
distinct pool members:

* ``selection="power"``: power sampling, successive draws without replacement with
  ``P(λ_p) ∝ u_p^β``, by the Gumbel-top-k trick on ``β log u_p + Gumbel``;
* ``selection="topk"``: the ``n`` largest ``u`` (ties to the lower pool index; the key is unused).

Rules: a non-finite, negative or zero score gets probability 0 (such members are picked only
after every positive one); no positive score → every member equally likely; before the
first scored pool → uniform draws; ``n > pool_size`` → the whole pool plus ``n − pool_size``
uniform draws. ``sample`` does not consume the pool: the driver scores a fresh one each round.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.simulation.param_space import ParamSpace


class PoolState(NamedTuple):
    pool: jax.Array  # [P, D] float: the scored candidates, box units (returned as scored)
    logw: jax.Array  # [P] float: log selection weight (-inf for none)
    has_pool: jax.Array  # [] bool: a scored pool has arrived


def init_pool_state(space: ParamSpace, pool_size: int, dtype) -> PoolState:
    centre = space.from_unit(jnp.full((space.dim,), 0.5, dtype))
    return PoolState(
        pool=jnp.broadcast_to(centre, (pool_size, space.dim)),
        logw=jnp.zeros((pool_size,), dtype),
        has_pool=jnp.zeros((), bool),
    )


def sample_from_pool(space, state: PoolState, key, n: int, *, replace: bool, greedy: bool, dtype) -> jax.Array:
    """``n`` pool members (see `_common.pool_select`), uniform draws before a pool and for overflow."""
    k_pool, k_u = jax.random.split(key)
    idx = C.pool_select(k_pool, state.logw, n, replace=replace, greedy=greedy)
    fresh = C.to_box(space, C.uniform_unit(k_u, n, space.dim, dtype))
    use_pool = state.has_pool & (idx >= 0)
    return jnp.where(use_pool[:, None], state.pool[jnp.maximum(idx, 0)], fresh)


def sbal(
    space: ParamSpace,
    *,
    pool_size: int = 1024,
    beta: float = 1.0,
    selection: str = "power",
    dtype=C.DEFAULT_DTYPE,
) -> Proposal:
    """SBAL over ``space``: ``sample(n)`` selects ``n`` of the last scored pool (module docstring)."""
    if selection not in ("power", "topk"):
        raise ValueError(f"sbal: selection must be 'power' or 'topk', got {selection!r}")
    if pool_size < 1:
        raise ValueError(f"sbal: pool_size must be >= 1, got {pool_size}")
    if not (beta >= 0 and jnp.isfinite(beta)):
        raise ValueError(f"sbal: beta must be finite and >= 0, got {beta}")

    def init(key: jax.Array) -> PoolState:
        del key
        return init_pool_state(space, pool_size, dtype)

    def sample(state: PoolState, key: jax.Array, n: int) -> jax.Array:
        return sample_from_pool(space, state, key, n, replace=False, greedy=selection == "topk", dtype=dtype)

    def update(state: PoolState, feedback: Feedback) -> PoolState:
        pool, score = C.check_pool(space, feedback, pool_size, dtype)
        w, has_mass = C.safe_weights(score, dtype=dtype)
        # β log(u/u_max): overflow-free for any β; zero weight → -inf (picked last).
        logw = jnp.where(w > 0, jnp.asarray(beta, dtype) * jnp.log(jnp.where(w > 0, w, 1)), -jnp.inf)
        logw = jnp.where(has_mass, logw, jnp.zeros_like(logw)).astype(dtype)
        return PoolState(pool, logw, jnp.ones((), bool))

    return Proposal(init, sample, update, pool_size=pool_size)
