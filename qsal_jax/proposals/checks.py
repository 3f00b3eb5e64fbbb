"""Argument checks for strategy factories: one line that names the setting, as optax's are.

A factory checks what it is given where it is built, so no table elsewhere repeats its
settings. Every check raises a `SettingError` (a ``ValueError``; a `SettingTypeError`, also a
``TypeError``, for a value of the wrong type) whose ``setting`` attribute names the setting, or
the `base.DriverContext` field (``context=True``), so a driver can point at its own config
field::

    population = checks.integer("breed", "population", population, lo=1)
    # breed: population must be an integer >= 1, got 'abc'

`require` is the contract's strictness about `Feedback`: a strategy that reads a field the
driver did not fill fails at trace time naming the strategy and the field (optax's
``NO_PARAMS_MSG``), instead of running as another strategy on a default.
"""

from __future__ import annotations

from qsal_jax.checks import SettingError, SettingTypeError, choice, flag, integer, real

__all__ = ["SettingError", "SettingTypeError", "alpha", "choice", "flag", "integer", "real", "require",
           "rollout_surrogate", "sigma"]


def alpha(strategy: str, alpha0, alpha1, alpha_max) -> tuple[float, float, float]:
    """Breed's share schedule ``α = min(α1·step + α0, α_max)``: α0, α_max in [0, 1], α1 >= 0, α0 <= α_max."""
    a0, a1, amax = real(strategy, "alpha0", alpha0, 0, 1), real(strategy, "alpha1", alpha1, 0), \
        real(strategy, "alpha_max", alpha_max, 0, 1)
    if a0 > amax:
        raise SettingError(strategy, "alpha0", f"must not exceed alpha_max ({amax}), got {alpha0!r}")
    return a0, a1, amax


def sigma(strategy: str, value, dim: int):
    """A kernel σ in unit-cube units: a finite number > 0, or ``[dim]`` of them."""
    import numpy as np

    try:
        s = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SettingTypeError(strategy, "sigma", f"must be a number > 0 or a list of {dim}, got {value!r}") from None
    if not np.all(np.isfinite(s) & (s > 0)):
        raise SettingError(strategy, "sigma", f"(unit-cube units) must be finite and > 0, got {value!r}")
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != dim):
        raise SettingError(strategy, "sigma", f"must be a scalar or have shape [{dim}], got shape {s.shape}")
    return value


def rollout_surrogate(strategy: str, context, *, members: int = 1, frames: int = 0) -> None:
    """Refuse a driver (`base.DriverContext`) whose surrogate this strategy cannot use: not a
    rollout model, fewer than ``members`` ensemble members, or trajectories of at most ``frames``
    frames. Nothing is checked without a context."""
    if context is None:
        return
    if context.surrogate != "rollout":
        raise SettingError(strategy, "surrogate", f"must be 'rollout' (the online engine's model), got "
                           f"{context.surrogate!r}", context=True)
    if context.ensemble_size < members:
        raise SettingError(strategy, "ensemble_size", f"must be >= {members} (the ensemble's disagreement is the "
                           f"score), got {context.ensemble_size}", context=True)
    if frames and context.frames_per_trajectory is not None and context.frames_per_trajectory <= frames:
        raise SettingError(strategy, "window", f"({frames}) must be below the {context.frames_per_trajectory} frames "
                           "of a trajectory")


def require(feedback, strategy: str, *fields: str, why: str = "") -> None:
    """A `SettingError`-free `ValueError` at trace time if ``feedback`` lacks (holds None in)
    any of ``fields``, naming the strategy and the fields; a driver must fill them."""
    missing = [f for f in fields if getattr(feedback, f) is None]
    if missing:
        names = " and ".join(f"Feedback.{f}" for f in missing)
        raise ValueError(f"{strategy}.update needs {names}{f' ({why})' if why else ''}; pass "
                         + ", ".join(f"{f}=..." for f in missing) + " to make_feedback")
