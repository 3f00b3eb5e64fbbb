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

from typing import Any, Callable, NamedTuple, Protocol, Union, runtime_checkable

import jax
import jax.numpy as jnp

State = Any  # a NamedTuple of fixed-shape arrays; its type is the strategy's own


@runtime_checkable
class RolloutSurrogate(Protocol):
    """The online engine's model as a strategy may use it (`scorers.EnsembleSurrogate` is one):
    stacked member parameters and the static pieces a rollout needs."""

    params: Any  # pytree, a leading [E] member axis on every leaf
    apply_fn: Callable  # (member params, u [P, ...], cond [P, C]) -> u_next [P, ...]
    initial_state: Callable  # λ [D] -> u0 [...] (unbatched)
    conditioning: Callable  # λ [P, D] -> cond [P, C]
    num_frames: int  # frames of a simulated trajectory
    simulate_prefix: Callable | None  # (λ [D], frames) -> [frames, C, *grid]; None: no solver in the program
    frame_step: Callable | None  # (u [C, *grid], λ [D]) -> u_next [C, *grid]; None: no solver in the program


@runtime_checkable
class ScoreSurrogate(Protocol):
    """A model that scores candidates itself (the PINN driver's `jax.tree_util.Partial`)."""

    def __call__(self, lam: jax.Array) -> jax.Array:
        """``λ [P, D]`` box units → score ``[P]``."""


Surrogate = Union[RolloutSurrogate, ScoreSurrogate]  # what Feedback.surrogate holds (a pytree: a jit argument)


class DriverContext(NamedTuple):
    """What the driver knows that a strategy may size or check itself against. `proposals.build`
    hands it to every factory that declares a ``context`` keyword; the others never see it.

    A factory refuses a context it cannot work with by a `checks.SettingError` with
    ``context=True`` naming the field (SBAL with one ensemble member), so a driver can name its
    own config field. ``None`` in a field: the driver cannot say.
    """

    ensemble_size: int = 1  # E surrogates trained side by side (model.ensemble_size)
    frames_per_trajectory: int | None = None  # T frames of one simulated trajectory
    draws_per_call: int | None = None  # n of one `sample` call (online.clients_per_step)
    feedback_rows: int | None = None  # B rows of one `Feedback` (train.batch_size)
    surrogate: str | None = None  # what Feedback.surrogate holds: "rollout", "score" or None (nothing)
    # () -> flops of one surrogate train step (all members): a thunk, traced only by a strategy that asks
    surrogate_step_flops: Callable[[], float] | None = None
    log: Callable[[str], Any] | None = None  # where a factory reports what it sized from this context


class Feedback(NamedTuple):
    """What training tells a strategy after a batch (or a whole offline round).

    Build it by keyword. Every row field has a leading axis B (one entry per training sample);
    padding or invalid entries have ``valid == False`` and must be ignored.

    ``lam_id`` and ``step`` may be None (a driver that has none, `make_feedback` without them);
    a strategy that reads one refuses None at trace time naming itself (`checks.require`), so it
    never runs as another strategy on a default. ``step`` has one unit, the **update count**:
    how many strategy updates the driver has made, this one included. The online engine makes
    one update per surrogate training step and passes the optimizer's step count (1 at the first
    update); an offline driver makes one per round and passes the round index. Schedules that
    read it (online Breed's α1 per step) are per update.
    """

    lam: jax.Array  # [B, D] float: λ of the simulation each sample came from (box units)
    lam_id: jax.Array | None  # [B] int32: id of that simulation (unique per launched client), -1 if none
    time_index: jax.Array  # [B] int32: time index within the trajectory
    loss: jax.Array  # [B] float: per-sample signal (training loss, or ensemble disagreement)
    valid: jax.Array  # [B] bool
    step: jax.Array | None  # [] int32: the update count (class docstring)
    # A candidate pool the driver scored itself (tests, benchmarks); pool strategies use it as is:
    pool: jax.Array | None = None  # [P, D] float, box units
    pool_score: jax.Array | None = None  # [P] float
    # The driver's model, for strategies that score their own pool (`combinators.with_pool`) or
    # differentiate through it: a `RolloutSurrogate` (the online engine's `scorers.EnsembleSurrogate`)
    # or a `ScoreSurrogate` (the PINN driver's λ → score). Ignored by the others.
    surrogate: Surrogate | None = None


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


def make_feedback(lam, loss, *, step=None, lam_id=None, time_index=None, valid=None, pool=None, pool_score=None,
                  surrogate=None) -> Feedback:
    """A `Feedback` from ``lam [B, D]`` and ``loss [B]``: every row valid and at time index 0 unless
    given. ``lam_id`` and ``step`` are never invented: left out, they stay None, and a strategy
    that needs them (online Breed) refuses the feedback naming itself."""
    lam = jnp.asarray(lam)
    loss = jnp.asarray(loss)
    if lam.ndim != 2 or loss.ndim != 1 or lam.shape[0] != loss.shape[0]:
        raise ValueError(f"make_feedback: lam must be [B, D] and loss [B], got {lam.shape} and {loss.shape}")
    b = loss.shape[0]
    return Feedback(
        lam=lam,
        lam_id=None if lam_id is None else jnp.asarray(lam_id, jnp.int32),
        time_index=jnp.zeros(b, jnp.int32) if time_index is None else jnp.asarray(time_index, jnp.int32),
        loss=loss,
        valid=jnp.ones(b, bool) if valid is None else jnp.asarray(valid, bool),
        step=None if step is None else jnp.asarray(step, jnp.int32),
        pool=pool,
        pool_score=pool_score,
        surrogate=surrogate,
    )
