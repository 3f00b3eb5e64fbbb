"""The one-step surrogate's apply function, in the form every driver trains and scores.

``residual=True`` (the default of every config): ``u_{t+1} = u_t + f_θ(u_t, cond)``, the usual
choice for one-step PDE emulators (the network learns the increment, which starts near zero).
The fused engine, the asynchronous mode and `load_run` all take their apply function from here,
so a surrogate trained by one driver is scored by the same formula in another.
"""

from __future__ import annotations

from typing import Any, Callable

ApplyFn = Callable[[Any, Any, Any], Any]  # (params, u [B, C, *grid], cond [B, P]) -> u_next [B, C, *grid]


def surrogate_apply(model: Any, residual: bool = True) -> ApplyFn:
    """``(params, x, cond) -> x + model.apply(params, x, cond)`` (``residual``) or ``model.apply``."""
    if not residual:
        return model.apply
    return lambda params, x, cond: x + model.apply(params, x, cond)
