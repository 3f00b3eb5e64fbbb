"""The contract every active-learning strategy implements, modelled on optax.

A strategy is a `Proposal(init, sample, update)` of pure, jit-able functions over a
NamedTuple state of fixed-shape arrays, built by a factory that closes over the `ParamSpace`
and its settings (optax's ``GradientTransformation(init, update)``)::

    strategy = breed_online(space, sigma=0.05, population=1024)
    state = strategy.init(key)
    lam, state = strategy.sample(state, key, n)   # λ [n, D] box units, always inside the box
    state = strategy.update(state, feedback)      # feedback: `Feedback` below

"The only way to change behaviour between steps is to change the values in the state." Both
calls may advance the state: ``sample`` returns the state it leaves behind (a quasi-random
sequence moves on, a pool marks the members it handed out), so a driver threads the state
through every call. Strategies work in the unit cube internally and map to the box with
``space.from_unit``. Shared behaviour is a combinator (`combinators.mix_uniform`,
`combinators.with_pool`), never a copy.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

State = Any  # a NamedTuple of fixed-shape arrays; its type is the strategy's own


class Feedback(NamedTuple):
    """What training tells a strategy after a batch (or a whole offline round).

    Build it by keyword. Every row field has a leading axis B (one entry per training sample);
    padding or invalid entries have ``valid == False`` and must be ignored.
    """

    lam: jax.Array  # [B, D] float: λ of the simulation each sample came from (box units)
    lam_id: jax.Array  # [B] int32: id of that simulation (unique per launched client), -1 if none
    time_index: jax.Array  # [B] int32: time index within the trajectory
    loss: jax.Array  # [B] float: per-sample signal (training loss, or ensemble disagreement)
    valid: jax.Array  # [B] bool
    step: jax.Array  # [] int32: training step (or round index for offline strategies)
    # A candidate pool the driver scored itself (tests, benchmarks); pool strategies use it as is:
    pool: jax.Array | None = None  # [P, D] float, box units
    pool_score: jax.Array | None = None  # [P] float
    # The driver's model, for strategies that score their own pool (`combinators.with_pool`):
    # a pytree the strategy's scorer understands (`scorers.EnsembleSurrogate` from the online
    # engine, a `jax.tree_util.Partial` λ → score from the PINN driver). Ignored by the others.
    surrogate: Any = None


class InitFn(Protocol):
    def __call__(self, key: jax.Array) -> State:
        """``key [2] uint32`` (or a typed key) → the initial state."""


class SampleFn(Protocol):
    def __call__(self, state: State, key: jax.Array, n: int) -> tuple[jax.Array, State]:
        """``(state, key, n)`` → ``(λ [n, D] box units, inside the box; state)``; ``n`` is static."""


class UpdateFn(Protocol):
    def __call__(self, state: State, feedback: Feedback) -> State:
        """``(state, Feedback with B rows)`` → state with every leaf's shape and dtype unchanged."""


class DensityFn(Protocol):
    def __call__(self, state: State, lam: jax.Array) -> jax.Array:
        """``(state, λ [n, D] box units)`` → ``[n]``: density of the draws ``sample(state, ·)``
        makes, relative to Uniform on the box (1 everywhere for Uniform)."""


class DiagnosticsFn(Protocol):
    def __call__(self, state: State) -> dict[str, jax.Array]:
        """``state`` → ``{name: [] float32}``: what the strategy has done so far (shares, counts),
        logged by a driver at every sync and written to ``summary.json``."""


class Proposal(NamedTuple):
    """A strategy: three pure functions (see the module docstring), optionally the density of
    its draws, which importance-weighted surrogate training reads (``None``: unknown), and
    optionally its diagnostics (``None``: nothing to report)."""

    init: InitFn
    sample: SampleFn
    update: UpdateFn
    density: DensityFn | None = None
    diagnostics: DiagnosticsFn | None = None


class ScoredProposal(Proposal):
    """A `Proposal` whose ``update`` uses ``Feedback.surrogate``: to score its own candidate pool
    (`combinators.with_pool`) or to differentiate through it (`adversarial`).

    The same three functions (as optax's ``GradientTransformationExtraArgs`` is a
    ``GradientTransformation``); the type tells a driver that cannot supply a surrogate
    (the toy, the asynchronous mode) to refuse it up front. Built by `combinators.with_pool`.
    """


def make_feedback(lam, loss, *, step=0, lam_id=None, time_index=None, valid=None, pool=None, pool_score=None,
                  surrogate=None) -> Feedback:
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
        surrogate=surrogate,
    )
