"""Combinators: behaviour several strategies share, written once (as ``optax.chain`` composes).

**`mix_uniform(strategy, space, schedule)`** — ``λ ~ α·strategy + (1 − α)·Uniform(box)`` with
``α = schedule(state)`` read from the inner strategy's state (Breed: its round or training step
and whether it has a positive loss; OGAS: its trained-update count). Two ways to split a call's
``n`` rows:

* ``split="bernoulli"``: each row independently comes from the inner strategy with probability α
  (online strategies, whose launch batches are often n = 1: a deterministic split would be all
  or nothing);
* ``split="exact"``: exactly ``⌊α n + ½⌋`` rows from the inner strategy, at shuffled positions
  (offline Breed's ``N_c = α N``).

The mixed strategy's state *is* the inner one (the combinator adds none), and when ``α == 0`` the
inner draw is skipped (`lax.cond`), so a costly generator costs nothing before it is used. If the
inner strategy knows the density q of its draws, the mixture's is ``α q + (1 − α)``.

**`with_pool(strategy, space, pool_size, scorer)`** — pool-based selection (SBAL, RAD) without a
pool in the driver. The inner strategy selects from a scored pool it receives as
``Feedback.pool``/``pool_score``; the combinator supplies that pool. The design:

* the driver passes what it knows of its model, the same way for every strategy, as
  ``Feedback.surrogate`` (the online engine: an `scorers.EnsembleSurrogate` of its ensemble
  parameters and apply function, built from fields the engine has anyway; the PINN driver: a
  `jax.tree_util.Partial` λ → residual signal). Strategies that do not score pools ignore it;
* ``with_pool``'s ``update`` draws ``pool_size`` uniform candidates (its state carries a key:
  ``update`` gets none), scores them with ``scorer(surrogate, pool, key) -> [P]`` and hands the
  scored pool to the inner ``update``. It re-scores at most once per *selection round*: when at
  least ``round_size`` λ (at least one, for ``round_size = 0``) were launched since the last
  scoring, counted by its ``sample``. So a driver that updates after every training batch
  scores one pool per launch batch (or per round), not per batch;
* no pool is scored before ``warmup`` λ were launched; until the first pool the inner strategy
  draws uniformly, so the warm-up is uniform (rounded up to whole launch batches);
* a driver that scores a pool itself (tests, benchmarks) passes ``Feedback.pool``/``pool_score``;
  that pool goes to the inner ``update`` unchanged, whatever the round.

The result is a `ScoredProposal` (a `Proposal` by type), so drivers that cannot supply a
surrogate (the toy, the asynchronous mode) can refuse it up front; the engine has no branch.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals.base import Feedback, Proposal, ScoredProposal
from qsal_jax.simulation.param_space import ParamSpace

Schedule = Callable[[Any], jax.Array]  # inner state -> α [] in [0, 1]
Scorer = Callable[[Any, jax.Array, jax.Array], jax.Array]  # (surrogate, pool [P, D] box units, key) -> score [P]

SPLITS = ("bernoulli", "exact")


def mix_uniform(strategy: Proposal, space: ParamSpace, schedule: Schedule, *, split: str = "bernoulli",
                dtype=C.DEFAULT_DTYPE) -> Proposal:
    """``α·strategy + (1 − α)·Uniform(box)``, ``α = schedule(state)`` (module docstring).

    ``sample(state, key, n) -> (λ [n, D] dtype, state)``; ``init`` and ``update`` are the inner ones.
    """
    if split not in SPLITS:
        raise ValueError(f"mix_uniform: split must be one of {SPLITS}, got {split!r}")

    def sample(state, key: jax.Array, n: int):
        k_inner, k_u, k_mix = jax.random.split(key, 3)
        alpha = jnp.clip(jnp.asarray(schedule(state), dtype), 0.0, 1.0)
        uni = C.to_box(space, C.uniform_unit(k_u, n, space.dim, dtype)).astype(dtype)

        def inner(s):
            lam, s = strategy.sample(s, k_inner, n)
            return lam.astype(dtype), s

        lam_inner, state = jax.lax.cond(alpha > 0, inner, lambda s: (uni, s), state)
        if split == "bernoulli":
            pick = jax.random.uniform(k_mix, (n,), dtype) < alpha
        else:
            # Rows of both draws are i.i.d., so shuffling which rows are inner is the same as
            # shuffling the rows, without moving [n, D] data.
            n_inner = jnp.floor(alpha * n + 0.5).astype(jnp.int32)
            pick = jax.random.permutation(k_mix, jnp.arange(n) < n_inner)
        return jnp.where(pick[:, None], lam_inner, uni), state

    density = None
    if strategy.density is not None:
        from qsal_jax.proposals.densities import mixture_with_uniform

        def density(state, lam):
            alpha = jnp.clip(jnp.asarray(schedule(state), dtype), 0.0, 1.0)
            return mixture_with_uniform(alpha, strategy.density(state, lam))

    return strategy._replace(sample=sample, density=density)


class PooledState(NamedTuple):
    inner: Any  # the selecting strategy's state
    key: jax.Array  # [2] uint32: raw key drawing the candidate pools (update gets no key)
    launched: jax.Array  # [] int32: λ handed out by `sample` so far
    scored_at: jax.Array  # [] int32: `launched` when the pool was last scored, -1 before the first


def raw_key(key: jax.Array) -> jax.Array:
    """A typed key's data, or the raw ``[2] uint32`` key itself (states hold raw keys: checkpoints)."""
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def with_pool(strategy: Proposal, space: ParamSpace, pool_size: int, scorer: Scorer, *, round_size: int = 0,
              warmup: int = 0, name: str = "with_pool", dtype=C.DEFAULT_DTYPE) -> ScoredProposal:
    """``strategy`` fed with uniform candidate pools scored by ``scorer`` (module docstring).

    Args:
      strategy: selects from ``Feedback.pool [P, D]`` / ``pool_score [P]`` in its ``update``.
      pool_size: P candidates per scored pool.
      scorer: ``(Feedback.surrogate, pool [P, D] box units, key) -> score [P]``.
      round_size: λ launched per selection round (0: re-score after every launch batch).
      warmup: λ launched before the first pool is scored (draws stay uniform until then).
      name: used in error messages.
    """
    if pool_size < 1:
        raise ValueError(f"{name}: pool_size must be >= 1, got {pool_size}")
    if round_size < 0 or warmup < 0:
        raise ValueError(f"{name}: the round size and the warm-up must be >= 0, got {round_size} and {warmup}")
    every = max(int(round_size), 1)

    def init(key: jax.Array) -> PooledState:
        k_inner, k_pool = jax.random.split(key)
        i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
        return PooledState(strategy.init(k_inner), raw_key(k_pool), i32(0), i32(-1))

    def sample(state: PooledState, key: jax.Array, n: int):
        lam, inner = strategy.sample(state.inner, key, n)
        return lam, state._replace(inner=inner, launched=state.launched + jnp.asarray(n, jnp.int32))

    def update(state: PooledState, feedback: Feedback) -> PooledState:
        if feedback.pool is not None:  # scored by the driver: used as is
            return state._replace(inner=strategy.update(state.inner, feedback), scored_at=state.launched)
        if feedback.surrogate is None:
            raise ValueError(f"{name} scores a candidate pool: it needs Feedback.surrogate (the driver's model) "
                             "or a scored Feedback.pool/pool_score")
        due = (state.launched >= warmup) & ((state.scored_at < 0) | (state.launched - state.scored_at >= every))

        def rescore(state: PooledState) -> PooledState:
            key, k_pool, k_score = jax.random.split(state.key, 3)
            pool = C.to_box(space, C.uniform_unit(k_pool, pool_size, space.dim, dtype)).astype(dtype)
            score = jnp.asarray(scorer(feedback.surrogate, pool, k_score))
            fb = feedback._replace(pool=pool, pool_score=score, surrogate=None)
            return PooledState(strategy.update(state.inner, fb), key, state.launched, state.launched)

        return jax.lax.cond(due, rescore, lambda s: s, state)

    return ScoredProposal(init, sample, update)
