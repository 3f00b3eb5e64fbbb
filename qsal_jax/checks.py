"""Argument checks for factories (strategies, problems): one line that names the setting, as optax's are.

A factory checks what it is given where it is built, so no table elsewhere repeats its settings.
Every check raises a `SettingError` (a ``ValueError``; a `SettingTypeError`, also a ``TypeError``,
for a value of the wrong type) whose ``setting`` attribute names the keyword, so a driver can point
at its own config field::

    num_points = checks.integer("kdv_1d", "num_points", num_points, lo=8)
    # kdv_1d: num_points must be an integer >= 8, got 4

`qsal_jax.proposals.checks` adds the strategy contract's own checks.
"""

from __future__ import annotations

import math
import numbers


class SettingError(ValueError):
    """A setting (or a driver-context field) a factory refuses.

    Attributes: ``strategy`` (the factory's name: a strategy's or a problem's), ``setting`` (the
    keyword, or the `DriverContext` field when ``context`` is true; ``""`` with ``context``: the
    driver as a whole, the wrong kind)."""

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


def increasing_pair(owner: str, name: str, value) -> tuple[float, float]:
    """``value`` as ``(low, high)``: two finite numbers with low < high (a range of λ)."""
    want = f"must be a pair (low, high) of finite numbers with low < high, got {value!r}"
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise SettingTypeError(owner, name, want) from None
    lo, hi = real(owner, name, lo), real(owner, name, hi)
    if not lo < hi:
        raise SettingError(owner, name, want)
    return lo, hi
