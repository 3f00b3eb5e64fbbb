"""Active-learning strategies, chosen by name through one contract.

Every strategy is a factory ``factory(space: ParamSpace, **settings) -> Proposal`` (see `base`),
so a config names a strategy and the engine never special-cases it::

    from qsal_jax import proposals
    strategy = proposals.build("breed_online", space, sigma=0.05, population=1024)
    proposals.settings_of("breed_online")   # {"sigma": 0.05, "population": 1024, ...}

A factory declares its settings by its keyword-only signature, or (OGAS, with many) by a frozen
dataclass in its ``settings_type`` attribute; `settings_of` reads either, and `build` rejects a
setting the declaration does not name, before anything is traced.

A strategy of the user's own needs no registration: name it ``"package.module:factory"`` or
``"path/to/file.py:factory"`` wherever a strategy name goes (`qsal_jax.imports`).

Modules are imported on first use, so a strategy with heavy dependencies (``ogas``) costs
nothing to the others.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Callable

from qsal_jax.proposals._common import check_known_settings
from qsal_jax.proposals.base import Feedback, Proposal, ScoredProposal, make_feedback

# name -> (module, factory attribute)
_REGISTRY: dict[str, tuple[str, str]] = {
    "uniform": ("qsal_jax.proposals.uniform", "uniform"),
    "quasirandom": ("qsal_jax.proposals.quasirandom", "quasirandom"),
    "breed": ("qsal_jax.proposals.breed", "breed"),
    "breed_online": ("qsal_jax.proposals.breed_online", "breed_online"),
    "breed_generations": ("qsal_jax.proposals.breed_generations", "breed_generations"),
    "sbal": ("qsal_jax.proposals.sbal", "sbal"),
    "r3": ("qsal_jax.proposals.pinn_sampling", "r3"),
    "rad": ("qsal_jax.proposals.pinn_sampling", "rad"),
    "ogas": ("qsal_jax.proposals.ogas", "ogas"),
    "adversarial": ("qsal_jax.proposals.adversarial", "adversarial"),
    "residual": ("qsal_jax.proposals.residual", "residual"),
}


def names() -> tuple[str, ...]:
    """Every registered strategy name."""
    return tuple(_REGISTRY)


def get(name: str) -> Callable[..., Proposal]:
    """The factory registered under ``name`` (imports its module on first use), or a factory of
    the user's own named ``"package.module:factory"`` / ``"path/to/file.py:factory"``."""
    from qsal_jax.imports import import_by_path, is_import_path

    if is_import_path(name):
        return import_by_path(name, "strategy")
    try:
        module, attr = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown proposal strategy {name!r}; known: {', '.join(_REGISTRY)}") from None
    return getattr(importlib.import_module(module), attr)


def settings_of(name: str) -> dict[str, Any]:
    """``{setting: default}`` that the factory registered under ``name`` declares."""
    factory = get(name)
    declared = getattr(factory, "settings_type", None)
    if declared is not None:
        return {f.name: f.default for f in dataclasses.fields(declared)}
    params = inspect.signature(factory).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_settings(name: str, settings) -> None:
    """``ValueError`` ``"<name>: unknown setting '<s>'; known: ..."`` for an undeclared setting."""
    check_known_settings(name, settings, settings_of(name))


def build(name: str, space, **settings) -> Proposal:
    """``get(name)(space, **settings)``, after `check_settings`."""
    check_settings(name, settings)
    return get(name)(space, **settings)


__all__ = ["Feedback", "Proposal", "ScoredProposal", "build", "check_settings", "get", "make_feedback", "names",
           "settings_of"]
