"""Active-learning strategies, chosen by name through one contract.

Every strategy is a factory ``factory(space: ParamSpace, **settings) -> Proposal`` (see `base`),
so a config names a strategy and the engine never special-cases it::

    from qsal_jax import proposals
    strategy = proposals.build("breed_online", space, sigma=0.05, population=1024)

Modules are imported on first use, so a strategy with heavy dependencies (``ogas``) costs
nothing to the others.
"""

from __future__ import annotations

import importlib
from typing import Callable

from qsal_jax.proposals.base import Feedback, Proposal, make_feedback

# name -> (module, factory attribute)
_REGISTRY: dict[str, tuple[str, str]] = {
    "uniform": ("qsal_jax.proposals.uniform", "uniform"),
    "quasirandom": ("qsal_jax.proposals.quasirandom", "quasirandom"),
    "breed": ("qsal_jax.proposals.breed", "breed"),
    "breed_online": ("qsal_jax.proposals.breed_online", "breed_online"),
    "sbal": ("qsal_jax.proposals.sbal", "sbal"),
    "r3": ("qsal_jax.proposals.pinn_sampling", "r3"),
    "rad": ("qsal_jax.proposals.pinn_sampling", "rad"),
    "ogas": ("qsal_jax.proposals.ogas", "ogas"),
}


def names() -> tuple[str, ...]:
    """Every registered strategy name."""
    return tuple(_REGISTRY)


def get(name: str) -> Callable[..., Proposal]:
    """The factory registered under ``name`` (imports its module on first use)."""
    try:
        module, attr = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown proposal strategy {name!r}; known: {', '.join(_REGISTRY)}") from None
    return getattr(importlib.import_module(module), attr)


def build(name: str, space, **settings) -> Proposal:
    """``get(name)(space, **settings)``."""
    return get(name)(space, **settings)


__all__ = ["Feedback", "Proposal", "build", "get", "make_feedback", "names"]
