"""SBAL: pool-based selection by ensemble uncertainty (AL4PDE; Musekamp et al., 2025).

`sbal` is `combinators.with_pool` around `pool_selection`: a pool of ``pool_size`` uniform λ is
scored with the uncertainty ``u`` of the surrogate ensemble along a rollout
(`scorers.ensemble_uncertainty`), and ``sample(n)`` picks ``n`` pool members:

* ``selection="power"``: power sampling, successive draws without replacement with
  ``P(λ_p) ∝ u_p^β``, by the Gumbel-top-k trick on ``β log u_p + Gumbel``;
* ``selection="topk"``: the ``n`` largest ``u`` (ties to the lower pool index; the key is unused).

Members handed out are marked taken, so successive ``sample`` calls on one pool (a selection
round spanning several launch batches) never repeat a member: by the successive-sampling
property of Gumbel-top-k, k calls of n draws are one draw of k·n without replacement.

Rules: a non-finite, negative or zero score gets probability 0 (such members are picked only
after every positive one); no positive score → every member equally likely; before the first
scored pool → uniform draws; more draws than untaken members → the rest are uniform draws.

The authors' protocol, as settings (defaults keep the engine's earlier behaviour):
``rollout_fraction=0.5`` (a rollout over half the trajectory, ``(num_frames − 1) // 2`` steps,
instead of ``rollout_steps``), ``rollout_from="mean"`` (members step from the ensemble-mean state),
``warmup_simulations`` (uniform draws until that many λ were launched) and
``launches_per_round = budget // selection_rounds`` (the pool is re-scored once per selection
round instead of once per launch batch).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import DriverContext, Feedback, Proposal, ScoredProposal
from qsal_jax.proposals.combinators import with_pool
from qsal_jax.proposals.scorers import ensemble_uncertainty
from qsal_jax.simulation.param_space import ParamSpace


class PoolState(NamedTuple):
    pool: jax.Array  # [P, D] float: the scored candidates, box units (returned as scored)
    logw: jax.Array  # [P] float: log selection weight (-inf for none)
    has_pool: jax.Array  # [] bool: a scored pool has arrived
    taken: jax.Array  # [P] bool: handed out since the pool arrived (without-replacement selection)


def init_pool_state(space: ParamSpace, pool_size: int, dtype) -> PoolState:
    centre = space.from_unit(jnp.full((space.dim,), 0.5, dtype))
    return PoolState(
        pool=jnp.broadcast_to(centre, (pool_size, space.dim)).astype(dtype),
        logw=jnp.zeros((pool_size,), dtype),
        has_pool=jnp.zeros((), bool),
        taken=jnp.zeros((pool_size,), bool),
    )


def sample_from_pool(space, state: PoolState, key, n: int, *, replace: bool, greedy: bool, dtype):
    """``n`` pool members (see `_common.pool_select`) and the state with them marked taken.

    Uniform draws before a pool and past the untaken members. Without replacement a member
    with zero weight ranks below every positive one but above every taken one.
    """
    k_pool, k_u = jax.random.split(key)
    if replace:
        avail = jnp.broadcast_to(state.has_pool, state.taken.shape)
        logw = state.logw
    else:
        avail = state.has_pool & ~state.taken
        low = jnp.asarray(jnp.finfo(state.logw.dtype).min, state.logw.dtype)  # finite: below any weight
        logw = jnp.where(avail, jnp.where(jnp.isfinite(state.logw), state.logw, low), -jnp.inf)
    idx = C.pool_select(k_pool, logw, n, replace=replace, greedy=greedy)
    safe = jnp.maximum(idx, 0)
    use_pool = (idx >= 0) & avail[safe]
    fresh = C.to_box(space, C.uniform_unit(k_u, n, space.dim, dtype)).astype(dtype)
    lam = jnp.where(use_pool[:, None], state.pool[safe], fresh)
    if not replace:
        drop = state.taken.shape[0]  # out of range: not marked
        state = state._replace(taken=state.taken.at[jnp.where(use_pool, idx, drop)].set(True, mode="drop"))
    return lam, state


def pool_selection(space: ParamSpace, pool_size: int, log_weights: Callable[[jax.Array], jax.Array], *,
                   replace: bool | Callable[[int], bool], greedy: bool = False, name: str = "pool",
                   dtype=C.DEFAULT_DTYPE) -> Proposal:
    """Select from the last scored pool with probabilities ∝ ``exp(log_weights(score))``.

    ``update`` reads ``Feedback.pool [P, D]`` and ``pool_score [P]`` (`_common.check_pool`);
    ``replace`` may be a function of the static draw count ``n`` (RAD's dense-pool rule).
    """

    def init(key: jax.Array) -> PoolState:
        del key
        return init_pool_state(space, pool_size, dtype)

    def sample(state: PoolState, key: jax.Array, n: int):
        rep = bool(replace(n)) if callable(replace) else bool(replace)
        return sample_from_pool(space, state, key, n, replace=rep, greedy=greedy, dtype=dtype)

    def update(state: PoolState, feedback: Feedback) -> PoolState:
        pool, score = C.check_pool(space, feedback, pool_size, dtype)
        return PoolState(pool, log_weights(score).astype(dtype), jnp.ones((), bool), jnp.zeros((pool_size,), bool))

    return Proposal(init, sample, update)


def power_log_weights(score: jax.Array, beta: float, dtype=C.DEFAULT_DTYPE) -> jax.Array:
    """``β log(u / u_max)`` ``[P]``: overflow-free for any β; zero weight → -inf; no mass → all 0."""
    w, has_mass = C.safe_weights(score, dtype=dtype)
    logw = jnp.where(w > 0, jnp.asarray(beta, dtype) * jnp.log(jnp.where(w > 0, w, 1)), -jnp.inf)
    return jnp.where(has_mass, logw, jnp.zeros_like(logw)).astype(dtype)


def sbal(
    space: ParamSpace,
    *,
    pool_size: int = 1024,
    beta: float = 1.0,
    selection: str = "power",
    rollout_steps: int = 4,
    rollout_fraction: float | None = None,
    rollout_from: str = "member",
    warmup_simulations: int = 0,
    launches_per_round: int = 0,
    dtype=C.DEFAULT_DTYPE,
    context: DriverContext | None = None,
) -> ScoredProposal:
    """SBAL over ``space`` (module docstring).

    Args:
      pool_size: P uniform candidates per scored pool.
      beta: power of the uncertainty in power sampling.
      selection: ``"power"`` or ``"topk"``.
      rollout_steps: surrogate steps of the scoring rollout (used when ``rollout_fraction`` is None).
      rollout_fraction: rollout over ``⌊fraction · (num_frames − 1)⌋`` steps instead (AL4PDE: 0.5).
      rollout_from: ``"member"`` (each member its own trajectory) or ``"mean"`` (ensemble-mean state).
      warmup_simulations: uniform draws until this many λ were launched.
      launches_per_round: λ per selection round; the pool is re-scored once per round
        (``budget // selection_rounds``; 0: re-score after every launch batch).
      dtype: floating dtype of λ and of the state.
      context: the driver's `DriverContext`: SBAL needs a rollout ensemble of >= 2 members.
    """
    checks.choice("sbal", "selection", selection, ("power", "topk"))
    beta = checks.real("sbal", "beta", beta, 0)
    pool_size = checks.integer("sbal", "pool_size", pool_size, lo=1)
    checks.integer("sbal", "rollout_steps", rollout_steps, lo=1)
    if rollout_fraction is not None:
        checks.real("sbal", "rollout_fraction", rollout_fraction, 0, 1, open_lo=True)
    checks.integer("sbal", "warmup_simulations", warmup_simulations, lo=0)
    checks.integer("sbal", "launches_per_round", launches_per_round, lo=0)
    checks.rollout_surrogate("sbal", context, members=2)
    scorer = ensemble_uncertainty(steps=rollout_steps, fraction=rollout_fraction, start=rollout_from, name="sbal")
    select = pool_selection(space, pool_size, lambda u: power_log_weights(u, beta, dtype), replace=False,
                            greedy=selection == "topk", name="sbal", dtype=dtype)
    return with_pool(select, space, pool_size, scorer, round_size=launches_per_round, warmup=warmup_simulations,
                     name="sbal", dtype=dtype)
