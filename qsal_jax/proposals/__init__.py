"""Active-learning strategies, chosen by name through one contract.

Every strategy is a factory ``factory(space: ParamSpace, **settings) -> Proposal`` (see `base`),
so a config names a strategy and the engine never special-cases it::

    from qsal_jax import proposals
    strategy = proposals.build("breed_online", space, sigma=0.05, population=1024)
    proposals.settings_of("breed_online")   # {"sigma": 0.05, "population": 1024, ...}

A factory declares its settings by its keyword-only signature, or (OGAS, with many) by a frozen
dataclass in its ``settings_type`` attribute; `settings_of` reads either, and `build` rejects a
setting the declaration does not name, before anything is traced. A factory checks the values
itself (`checks`: one line naming the setting). What the driver knows (ensemble size, frames per
trajectory, the surrogate's train-step flops: `DriverContext`) reaches every factory that
declares a ``context`` keyword, so no driver special-cases a strategy.

`build` returns the strategy with the contract's own checks around it: ``sample``'s row count
must be a non-negative integer, and ``update``'s `Feedback` rows must agree in shape with each
other and with the space (one line, at trace time; the draws are unchanged).

A strategy is found by its file: a module ``proposals/<name>.py`` defining ``def <name>(`` is the
strategy ``<name>`` (`names`), so adding one edits nothing here. A strategy of the user's own needs
no file in the package either: name it ``"package.module:factory"`` or ``"path/to/file.py:factory"``
wherever a strategy name goes (`qsal_jax.imports`).

Modules are imported on first use, so a strategy with heavy dependencies (``ogas``) costs
nothing to the others.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import numbers
import os
import pkgutil
import re
from typing import Any, Callable

import jax.numpy as jnp

from qsal_jax.proposals._common import check_known_settings
from qsal_jax.proposals.base import DriverContext, Feedback, Proposal, ScoredProposal, make_feedback

# Factories whose name is not their module's (name -> (module, factory attribute)). Any other
# strategy is found by its file: a module ``proposals/<name>.py`` that defines ``def <name>(``
# (as big_vision finds ``big_vision.models.<name>``), so a new strategy edits nothing here.
_REGISTRY: dict[str, tuple[str, str]] = {
    "r3": ("qsal_jax.proposals.pinn_sampling", "r3"),
    "rad": ("qsal_jax.proposals.pinn_sampling", "rad"),
}


@functools.cache
def _modules() -> dict[str, tuple[str, str]]:
    """``{name: (module, name)}`` for every module of this package that defines a factory of its own name."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = {}
    for info in sorted(pkgutil.iter_modules([here]), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        with open(os.path.join(here, info.name + ".py"), encoding="utf-8") as f:
            if re.search(rf"^def {info.name}\(", f.read(), re.M):
                found[info.name] = (f"{__name__}.{info.name}", info.name)
    return found


def names() -> tuple[str, ...]:
    """Every strategy name: modules that define a factory of their own name, then `_REGISTRY`'s."""
    return tuple(_modules()) + tuple(n for n in _REGISTRY if n not in _modules())


def get(name: str) -> Callable[..., Proposal]:
    """The factory registered under ``name`` (imports its module on first use), or a factory of
    the user's own named ``"package.module:factory"`` / ``"path/to/file.py:factory"``."""
    from qsal_jax.imports import import_by_path, is_import_path

    if is_import_path(name):
        return import_by_path(name, "strategy")
    try:
        module, attr = {**_modules(), **_REGISTRY}[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown proposal strategy {name!r}; known: {', '.join(names())}") from None
    return getattr(importlib.import_module(module), attr)


def settings_of(name: str) -> dict[str, Any]:
    """``{setting: default}`` that the factory registered under ``name`` declares."""
    factory = get(name)
    declared = getattr(factory, "settings_type", None)
    if declared is not None:
        return {f.name: f.default for f in dataclasses.fields(declared)}
    params = inspect.signature(factory).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "context"}


def takes_context(factory: Callable) -> bool:
    """Whether ``factory`` declares a ``context`` keyword (a `DriverContext` reaches it)."""
    try:
        return "context" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def check_settings(name: str, settings) -> None:
    """``ValueError`` ``"<name>: unknown setting '<s>'; known: ..."`` for an undeclared setting."""
    check_known_settings(name, settings, settings_of(name))


def build(name: str, space, *, context: DriverContext | None = None, **settings) -> Proposal:
    """``get(name)(space, **settings)`` (plus ``context=`` where the factory takes it), after
    `check_settings`, with the contract's checks around ``sample`` and ``update``."""
    check_settings(name, settings)
    factory = get(name)
    extra = {"context": context} if context is not None and takes_context(factory) else {}
    return checked(factory(space, **settings, **extra), name, space)


def checked(p: Proposal, name: str, space) -> Proposal:
    """``p`` with its arguments checked (one-line ``ValueError``s naming ``name``); same draws."""

    def sample(state, key, n):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"{name}.sample: n must be a non-negative integer (a static row count), got {n!r}")
        return p.sample(state, key, n)

    def update(state, feedback):
        check_feedback(feedback, name, space.dim)
        return p.update(state, feedback)

    return type(p)(p.init, sample, update, p.density, p.diagnostics)


def check_feedback(fb: Feedback, name: str, dim: int) -> None:
    """A one-line ``ValueError`` if ``fb``'s row fields disagree: ``lam [B, D]``, ``loss``,
    ``valid``, ``time_index`` and ``lam_id`` ``[B]``, ``step`` a scalar."""
    if not isinstance(fb, Feedback):
        raise TypeError(f"{name}.update: feedback must be a proposals.Feedback, got {type(fb).__name__}")
    lam = jnp.shape(fb.lam)
    if len(lam) != 2 or lam[1] != dim:
        raise ValueError(f"{name}.update: Feedback.lam must have shape [B, {dim}], got {lam}")
    rows = {f: jnp.shape(getattr(fb, f)) for f in ("loss", "valid", "time_index", "lam_id") if getattr(fb, f) is not None}
    bad = {f: s for f, s in rows.items() if s != (lam[0],)}
    if bad:
        raise ValueError(f"{name}.update: Feedback.lam has {lam[0]} rows but "
                         + ", ".join(f"Feedback.{f} has shape {s}" for f, s in bad.items()) + f" (each must be [{lam[0]}])")
    if fb.step is not None and jnp.shape(fb.step) != ():
        raise ValueError(f"{name}.update: Feedback.step must be a scalar, got shape {jnp.shape(fb.step)}")


__all__ = ["DriverContext", "Feedback", "Proposal", "ScoredProposal", "build", "check_settings", "checked", "get",
           "make_feedback", "names", "settings_of"]
