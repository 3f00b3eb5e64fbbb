"""Residual-based collocation sampling for PINNs: R3 (Daw et al., 2023) and RAD (Wu et al., 2023).

Here the "parameters" are collocation points ``x`` in the box, and the signal is the PDE residual
magnitude ``|r(x)|``. Residuals that are non-finite or negative count as 0 (the point is treated as
solved: R3 releases it, RAD gives it only the floor ``c``).

* **R3 — retain, resample, release.** A fixed population of ``N`` points. ``update`` receives the
  residuals of the current population (``Feedback.lam`` = the population, ``loss`` = ``|r|``) and
  retains exactly the points whose residual exceeds the population mean (strictly; invalid rows
  excluded from the mean and never retained). ``sample(state, key, N)`` returns the population
  with every released slot replaced by a fresh uniform point (retained points keep their slot).
  Before any update nothing is retained, so the first sample is all uniform.
* **RAD — residual-based adaptive distribution.** ``p(x) ∝ r(x)^k / mean(r^k) + c`` over a dense
  uniform candidate pool: the driver draws ``pool_size`` uniform points (``Proposal.pool_size``),
  scores their residuals into ``Feedback.pool``/``pool_score``, and ``sample(n)`` draws ``n`` pool
  points with probability ``p`` — without replacement by default, like the reference DeepXDE code
  (Gumbel-top-k), or i.i.d. with ``replace=True``. ``r`` is divided by its max before the power,
  which leaves ``p`` unchanged and keeps ``r^k`` finite; all-zero residuals → ``p`` uniform.
  Before the first scored pool, draws are uniform.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.proposals.sbal import PoolState, init_pool_state, sample_from_pool
from qsal_jax.simulation.param_space import ParamSpace


class R3State(NamedTuple):
    population: jax.Array  # [N, D] float: the current collocation points, unit cube
    retain: jax.Array  # [N] bool: residual above the population mean at the last update


def retained_mask(residual: jax.Array, valid: jax.Array) -> jax.Array:
    """R3's rule ``|r_i| > mean_valid(|r|)``, ``[N] bool``; non-finite/negative residuals count as 0."""
    r = jnp.asarray(residual)
    dt = r.dtype if jnp.issubdtype(r.dtype, jnp.floating) else jnp.float32
    w, _ = C.safe_weights(r, valid, dt)  # r / max r in r's precision: same order, overflow-free
    valid = jnp.asarray(valid, bool)
    mean = jnp.sum(jnp.where(valid, w, 0)) / jnp.maximum(jnp.sum(valid), 1)
    return valid & (w > mean)


def r3(space: ParamSpace, *, population: int = 1024, dtype=C.DEFAULT_DTYPE) -> Proposal:
    """R3 sampling over ``space`` with ``population`` collocation points (module docstring)."""
    if population < 1:
        raise ValueError(f"r3: population must be >= 1, got {population}")

    def init(key: jax.Array) -> R3State:
        return R3State(C.uniform_unit(key, population, space.dim, dtype), jnp.zeros((population,), bool))

    def sample(state: R3State, key: jax.Array, n: int) -> jax.Array:
        if n != population:
            raise ValueError(f"r3: sample returns the whole population; n must be {population}, got {n}")
        fresh = C.uniform_unit(key, n, space.dim, dtype)
        return C.to_box(space, jnp.where(state.retain[:, None], state.population, fresh))

    def update(state: R3State, feedback: Feedback) -> R3State:
        if feedback.loss.shape[0] != population:
            raise ValueError(f"r3: feedback must carry the {population} population points, got {feedback.loss.shape[0]}")
        z, finite = C.lam_to_unit(space, feedback.lam, dtype)
        return R3State(z, retained_mask(feedback.loss, jnp.asarray(feedback.valid, bool) & finite))

    return Proposal(init, sample, update)


def rad_log_weights(residual: jax.Array, k: float, c: float, dtype=C.DEFAULT_DTYPE) -> jax.Array:
    """``log p`` with ``p = r^k / mean(r^k) + c`` (unnormalised), ``[P] dtype``, always finite."""
    w, has_mass = C.safe_weights(residual, dtype=dtype)  # r / max r
    rk = jnp.where(w > 0, jnp.power(w, jnp.asarray(k, dtype)), 0)
    mean = jnp.mean(rk)
    p = jnp.where(mean > 0, rk / jnp.where(mean > 0, mean, 1), 0) + jnp.asarray(c, dtype)
    p = jnp.where(has_mass & jnp.any(p > 0), p, jnp.ones_like(p))
    return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1)), -jnp.inf).astype(dtype)


def rad(
    space: ParamSpace,
    *,
    k: float = 1.0,
    c: float = 1.0,
    pool_size: int = 4096,
    replace: bool = False,
    dtype=C.DEFAULT_DTYPE,
) -> Proposal:
    """RAD sampling over ``space``: ``sample(n)`` draws from the scored pool ∝ ``r^k/mean(r^k) + c``."""
    if pool_size < 1:
        raise ValueError(f"rad: pool_size must be >= 1, got {pool_size}")
    if not (k >= 0 and c >= 0):
        raise ValueError(f"rad: need k >= 0 and c >= 0, got k={k}, c={c}")

    def init(key: jax.Array) -> PoolState:
        del key
        return init_pool_state(space, pool_size, dtype)

    def sample(state: PoolState, key: jax.Array, n: int) -> jax.Array:
        return sample_from_pool(space, state, key, n, replace=replace, greedy=False, dtype=dtype)

    def update(state: PoolState, feedback: Feedback) -> PoolState:
        pool, score = C.check_pool(space, feedback, pool_size, dtype)
        return PoolState(pool, rad_log_weights(score, k, c, dtype), jnp.ones((), bool))

    return Proposal(init, sample, update, pool_size=pool_size)
