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

import math
import numbers


class SettingError(ValueError):
    """A setting (or a driver-context field) a strategy factory refuses.

    Attributes: ``strategy`` (its name), ``setting`` (the keyword, or the `DriverContext` field
    when ``context`` is true; ``""`` with ``context``: the driver as a whole, the wrong kind)."""

    def __init__(self, strategy: str, setting: str, why: str, *, context: bool = False):
        what = ("the driver context field " if context else "") + setting
        super().__init__(f"{strategy}: {what} {why}" if setting else f"{strategy}: {why}")
        self.strategy, self.setting, self.context = strategy, setting, context


class SettingTypeError(SettingError, TypeError):
    """A setting of the wrong type (a string where an integer belongs)."""


def _bound(lo, hi, open_lo=False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if open_lo else '['}{lo}, {hi}]"
    if lo is not None:
        return f" {'>' if open_lo else '>='} {lo}"
    return f" <= {hi}" if hi is not None else ""


def integer(strategy: str, name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an ``int`` (a Python or NumPy integer, not a bool or a float) within ``[lo, hi]``."""
    want = f"must be an integer{_bound(lo, hi)}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingTypeError(strategy, name, want)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SettingError(strategy, name, want)
    return int(value)


def real(strategy: str, name: str, value, lo: float | None = None, hi: float | None = None, *,
         open_lo: bool = False) -> float:
    """``value`` as a finite ``float`` within ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""
    want = f"must be a finite number{_bound(lo, hi, open_lo)}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingTypeError(strategy, name, want)
    v = float(value)
    if not math.isfinite(v) or (lo is not None and (v <= lo if open_lo else v < lo)) or (hi is not None and v > hi):
        raise SettingError(strategy, name, want)
    return v


def choice(strategy: str, name: str, value, options) -> str:
    """``value`` if it is one of ``options``."""
    if value not in tuple(options):
        raise SettingError(strategy, name, f"must be one of {tuple(options)}, got {value!r}")
    return value


def flag(strategy: str, name: str, value) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise SettingTypeError(strategy, name, f"must be True or False, got {value!r}")
    return value


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
