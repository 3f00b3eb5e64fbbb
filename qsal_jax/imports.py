"""Names that import themselves: ``"package.module:attr"`` or ``"path/to/file.py:attr"``.

A config may name a strategy or a problem of the user's own this way (as big_vision names a
model by its module path), so a new one is a file and nothing in the package is edited. The
name is what `config.json` records, so `load_run` imports it again.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def is_import_path(name: str) -> bool:
    """Whether ``name`` is an import path (``module:attr``) rather than a registered name."""
    return isinstance(name, str) and ":" in name


def import_by_path(name: str, what: str = "object"):
    """The attribute ``attr`` of ``module`` (dotted, importable) or of a ``.py`` file, for
    ``"module:attr"``; a one-line `ValueError` naming ``what`` when it cannot be found."""
    module_name, _, attr = name.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {name!r}: expected 'package.module:factory' or 'path/to/file.py:factory'")
    try:
        if module_name.endswith(".py"):
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise ValueError(f"{what} {name!r}: no file {module_name!r}")
            key = f"qsal_user_{abs(hash(path))}"
            module = sys.modules.get(key)
            if module is None:
                spec = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[key] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{what} {name!r}: cannot import {module_name!r} ({e})") from None
    if not hasattr(module, attr):
        raise ValueError(f"{what} {name!r}: {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)
