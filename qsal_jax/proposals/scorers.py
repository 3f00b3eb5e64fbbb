"""Pool scorers for `combinators.with_pool`, and the surrogate the online engine hands them.

A scorer is ``(surrogate, pool [P, D] box units, key) -> score [P]``; the surrogate is whatever
the driver put in ``Feedback.surrogate``. Two kinds exist:

* `EnsembleSurrogate` (the online engine): stacked ensemble parameters plus the static pieces a
  rollout needs (apply function, initial-state map, conditioning, trajectory length). Scored by
  `ensemble_uncertainty` (SBAL; AL4PDE, Musekamp et al., 2025);
* a callable ``λ [P, D] -> score [P]``, e.g. a `jax.tree_util.Partial` closing over a PINN's
  parameters (RAD's residuals). Scored by `call_surrogate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

ROLLOUT_FROM = ("member", "mean")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnsembleSurrogate:
    """What a pool scorer may ask of the online engine's model (a pytree: only ``params`` are leaves)."""

    params: Any  # pytree, a leading [E] member axis on every leaf
    # (member params, u [P, ...], cond [P, C]) -> u_next [P, ...]
    apply_fn: Callable = dataclasses.field(metadata=dict(static=True))
    initial_state: Callable = dataclasses.field(metadata=dict(static=True))  # λ [D] -> u0 [...] (unbatched)
    conditioning: Callable = dataclasses.field(metadata=dict(static=True))  # λ [P, D] -> cond [P, C]
    num_frames: int = dataclasses.field(metadata=dict(static=True))  # frames of a simulated trajectory
    # The simulator's differentiable pieces, for strategies that differentiate through it
    # (`adversarial`, `residual`); None where a driver has no solver in the program:
    # (λ [D], frames) -> [frames, C, *grid], the first saved frames of λ's trajectory
    simulate_prefix: Callable | None = dataclasses.field(default=None, metadata=dict(static=True))
    # (u [C, *grid], λ [D]) -> u_next [C, *grid], one saved frame of the solver from any state
    frame_step: Callable | None = dataclasses.field(default=None, metadata=dict(static=True))

    @property
    def ensemble_size(self) -> int:
        return jax.tree_util.tree_leaves(self.params)[0].shape[0]


def rollout_length(num_frames: int, steps: int, fraction: float | None) -> int:
    """Surrogate steps of a scoring rollout: ``steps``, or ``max(1, ⌊fraction · (num_frames − 1)⌋)``."""
    if fraction is None:
        return int(steps)
    return max(1, int(fraction * (num_frames - 1)))


def ensemble_uncertainty(*, steps: int = 4, fraction: float | None = None, start: str = "member",
                         name: str = "sbal") -> Callable:
    """SBAL's score: ensemble variance along a surrogate rollout from each candidate's initial state.

    ``u(λ) = mean over rollout steps s and state entries of Var_members(û_s)`` with
    ``rollout_length(num_frames, steps, fraction)`` steps. ``start="member"``: every member rolls
    out its own trajectory; ``start="mean"`` (AL4PDE): at every step all members predict from the
    ensemble-mean state, which then advances, so the variance measures one-step disagreement
    along the consensus trajectory instead of the divergence of separate trajectories.
    """
    if start not in ROLLOUT_FROM:
        raise ValueError(f"{name}: rollout_from must be one of {ROLLOUT_FROM}, got {start!r}")
    if int(steps) < 1:
        raise ValueError(f"{name}: rollout_steps must be >= 1, got {steps}")
    if fraction is not None and not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"{name}: rollout_fraction must be None or in (0, 1], got {fraction}")

    def score(surrogate: EnsembleSurrogate, pool: jax.Array, key: jax.Array) -> jax.Array:
        del key
        if not isinstance(surrogate, EnsembleSurrogate):
            raise ValueError(f"{name}: Feedback.surrogate must be an EnsembleSurrogate, got {type(surrogate).__name__}")
        if surrogate.ensemble_size < 2:
            raise ValueError(f"{name}: ensemble uncertainty needs model.ensemble_size >= 2, "
                             f"got {surrogate.ensemble_size}")
        length = rollout_length(surrogate.num_frames, steps, fraction)
        u0 = jax.vmap(surrogate.initial_state)(pool)
        cond = surrogate.conditioning(pool)
        if start == "member":

            def member(p):
                def body(u, _):
                    u = surrogate.apply_fn(p, u, cond)
                    return u, u

                return jax.lax.scan(body, u0, None, length=length)[1]  # [S, P, ...]

            var = jnp.var(jax.vmap(member)(surrogate.params), axis=0)  # [S, P, ...]
        else:
            members = jax.vmap(surrogate.apply_fn, in_axes=(0, None, None))

            def body(u, _):
                preds = members(surrogate.params, u, cond)  # [E, P, ...]
                return jnp.mean(preds, axis=0), jnp.var(preds, axis=0)

            var = jax.lax.scan(body, u0, None, length=length)[1]  # [S, P, ...]
        return jnp.mean(var, axis=(0,) + tuple(range(2, var.ndim)))

    return score


def call_surrogate(surrogate: Callable, pool: jax.Array, key: jax.Array) -> jax.Array:
    """The surrogate is the score: ``surrogate(pool) -> [P]`` (e.g. a PINN's residual signal)."""
    del key
    if not callable(surrogate):
        raise ValueError("Feedback.surrogate must be a callable λ [P, D] -> score [P] here, "
                         f"got {type(surrogate).__name__}")
    return surrogate(pool)
