"""The surrogate's error at λ as a differentiable function of λ (query synthesis by gradient).

Two measures, both for one λ ``[D]`` and the surrogate of `scorers.EnsembleSurrogate` (member 0,
the member every strategy is scored with):

* `solver_error` (ε): the simulator's first ``window + 1`` frames S(λ)_0 … S(λ)_w, and the mean
  one-step nRMSE of the surrogate on them,

      ε(λ) = (1/w) Σ_{t<w} ‖f_θ(S(λ)_t) − S(λ)_{t+1}‖ / ‖S(λ)_{t+1}‖,

  the gradient going through the solver (its frames under `jax.checkpoint`) and the surrogate;
* `consistency_residual` (r): no solver trajectory. The surrogate rolls out from the initial
  condition, û_0 = u_0(λ), û_{t+1} = f_θ(û_t), and at each of its own frames one solver frame Φ
  is taken from û_t,

      r(λ) = (1/w) Σ_{t<w} ‖f_θ(û_t) − Φ_λ(û_t)‖ / ‖Φ_λ(û_t)‖,

  which is zero exactly when the surrogate agrees with the solver along its own trajectory. It
  needs w solver frames from the surrogate's states instead of a trajectory from u_0, and no
  label: a simulation is spent only on the λ that get launched.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qsal_jax.proposals.scorers import EnsembleSurrogate

_TINY = 1e-30


def _member0(surrogate: EnsembleSurrogate):
    return jax.tree_util.tree_map(lambda x: x[0], surrogate.params)


def _nrmse(pred: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum((pred - target) ** 2) + _TINY) / jnp.sqrt(jnp.sum(target**2) + _TINY)


def _check(surrogate, window: int, need: str, name: str) -> None:
    if not isinstance(surrogate, EnsembleSurrogate):
        raise ValueError(f"{name}: Feedback.surrogate must be an EnsembleSurrogate, got {type(surrogate).__name__}")
    if getattr(surrogate, need) is None:
        raise ValueError(f"{name}: the driver's surrogate carries no {need} (a solver in the program is needed)")
    if not 1 <= window < surrogate.num_frames:
        raise ValueError(f"{name}: window must be in [1, {surrogate.num_frames - 1}], got {window}")


def solver_error(surrogate: EnsembleSurrogate, lam: jax.Array, window: int = 1) -> jax.Array:
    """ε(λ) ``[]`` over the first ``window`` transitions of λ's trajectory (module docstring)."""
    _check(surrogate, window, "simulate_prefix", "solver_error")
    frames = surrogate.simulate_prefix(lam, window + 1)  # [w + 1, C, *grid]
    cond = surrogate.conditioning(lam[None])  # [1, P]
    params = _member0(surrogate)
    pred = jax.vmap(lambda u: surrogate.apply_fn(params, u[None], cond)[0])(frames[:-1])
    return jnp.mean(jax.vmap(_nrmse)(pred, frames[1:]))


def consistency_residual(surrogate: EnsembleSurrogate, lam: jax.Array, window: int = 1) -> jax.Array:
    """r(λ) ``[]`` along the surrogate's own first ``window`` frames (module docstring)."""
    _check(surrogate, window, "frame_step", "consistency_residual")
    cond = surrogate.conditioning(lam[None])
    params = _member0(surrogate)

    def body(u, _):
        pred = surrogate.apply_fn(params, u[None], cond)[0]
        return pred, _nrmse(pred, surrogate.frame_step(u, lam))

    _, r = jax.lax.scan(body, surrogate.initial_state(lam), None, length=window)
    return jnp.mean(r)


ERRORS = {"solver": solver_error, "residual": consistency_residual}


def residual_scorer(window: int = 1):
    """A `combinators.with_pool` scorer: ``(surrogate, pool [P, D], key) -> r [P]``."""

    def score(surrogate, pool: jax.Array, key: jax.Array) -> jax.Array:
        del key
        return jax.vmap(lambda lam: consistency_residual(surrogate, lam, window))(pool)

    return score
