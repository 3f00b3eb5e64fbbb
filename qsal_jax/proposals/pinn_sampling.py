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
  uniform candidate pool (`combinators.with_pool`): ``update`` draws ``pool_size`` uniform points and
  scores them with the driver's surrogate (``Feedback.surrogate``, a callable ``x [P, D] → |r| [P]``),
  or takes a pool the driver scored itself (``Feedback.pool``/``pool_score``); ``sample(n)`` draws
  ``n`` pool points with probability ``p``. The pool stands for the continuous ``p``, so it must
  be dense: by default ``pool_size = 25 · population`` (``population`` = the N points drawn per
  round) and the draw is without replacement, as in the reference DeepXDE code (Gumbel-top-k);
  ``replace=None`` (the default) draws *with* replacement whenever ``pool_size < 25 n``, where
  removing drawn points would flatten ``p`` towards uniform (a pool of 4 N drawn without
  replacement keeps a quarter of every point's candidates). ``replace=True``/``False`` forces
  either. ``r`` is divided by its max before the power, which leaves ``p`` unchanged and keeps
  ``r^k`` finite; all-zero residuals → ``p`` uniform. Before the first scored pool, draws are uniform.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import DriverContext, Feedback, Proposal, ScoredProposal
from qsal_jax.proposals.combinators import with_pool
from qsal_jax.proposals.sbal import pool_selection
from qsal_jax.proposals.scorers import call_surrogate
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


def r3(space: ParamSpace, *, population: int = 1024, dtype=C.DEFAULT_DTYPE,
       context: DriverContext | None = None) -> Proposal:
    """R3 sampling over ``space`` with ``population`` collocation points (module docstring).

    ``sample`` returns the whole population and ``update`` reads one residual per point, so a
    driver (``context``) must draw and feed back exactly ``population`` rows."""
    population = checks.integer("r3", "population", population, lo=1)
    draws, rows = getattr(context, "draws_per_call", None), getattr(context, "feedback_rows", None)
    if draws is not None and rows is not None and draws != rows:
        raise checks.SettingError("r3", "", f"draws and reads back its whole population at once; this driver draws "
                                  f"{draws} per call and feeds back {rows} rows: not an online strategy", context=True)
    if draws is not None and draws != population:
        raise checks.SettingError("r3", "population", f"({population}) must equal the driver's draws per call ({draws})")

    def init(key: jax.Array) -> R3State:
        return R3State(C.uniform_unit(key, population, space.dim, dtype), jnp.zeros((population,), bool))

    def sample(state: R3State, key: jax.Array, n: int):
        if n != population:
            raise ValueError(f"r3: sample returns the whole population; n must be {population}, got {n}")
        fresh = C.uniform_unit(key, n, space.dim, dtype)
        return C.to_box(space, jnp.where(state.retain[:, None], state.population, fresh)), state

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


DENSE_POOL = 25  # candidates per drawn point for a without-replacement draw to stand for p


def rad(
    space: ParamSpace,
    *,
    k: float = 1.0,
    c: float = 1.0,
    population: int = 1024,
    pool_size: int | None = None,
    replace: bool | None = None,
    dtype=C.DEFAULT_DTYPE,
    context: DriverContext | None = None,
) -> ScoredProposal:
    """RAD sampling over ``space``: ``sample(n)`` draws from the scored pool ∝ ``r^k/mean(r^k) + c``.

    Args:
      k, c: the density ``p ∝ r^k / mean(r^k) + c``.
      population: N, the points drawn per round (sizes the default pool).
      pool_size: candidates per scored pool; None: ``25 · population``.
      replace: None: without replacement iff ``pool_size >= 25 n`` (module docstring); or forced.
      dtype: floating dtype of the points and of the state.
    """
    population = checks.integer("rad", "population", population, lo=1)
    pool_size = DENSE_POOL * population if pool_size is None else checks.integer("rad", "pool_size", pool_size, lo=1)
    checks.real("rad", "k", k, 0)
    checks.real("rad", "c", c, 0)
    if replace is not None:
        checks.flag("rad", "replace", replace)
    if context is not None and context.surrogate != "score":
        raise checks.SettingError("rad", "surrogate", f"must be 'score' (a λ → residual model, as a PINN driver gives), "
                                  f"got {context.surrogate!r}: rad is not an online strategy", context=True)
    rule = (lambda n: pool_size < DENSE_POOL * n) if replace is None else bool(replace)
    select = pool_selection(space, pool_size, lambda r: rad_log_weights(r, k, c, dtype), replace=rule, name="rad",
                            dtype=dtype)
    return with_pool(select, space, pool_size, call_surrogate, name="rad", dtype=dtype)
