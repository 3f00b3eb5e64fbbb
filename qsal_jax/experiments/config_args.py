"""Config arguments after the colon (``configs/online_1d.py:ogas,nrmse``), parsed strictly.

A config that silently ignored a typo (``:unifrom``) would run a different experiment than the
one asked for, so every argument must be one the config declares, and at most one of each
group of mutually exclusive choices (one strategy, one problem, one protocol) may be given.
"""

from __future__ import annotations

import importlib.util
import os


def parse_args(arg: str | None, *, groups: dict[str, tuple[str, ...]], flags: tuple[str, ...] = ()) -> dict:
    """``"a,b,c"`` → ``{group: chosen value or None, flag: bool}``; `ValueError` for anything else.

    ``groups`` maps a group name to its allowed values (at most one per group); ``flags`` are
    switches that may appear on their own.
    """
    given = [a.strip() for a in (arg or "").split(",") if a.strip()]
    out: dict = {g: None for g in groups} | {f: False for f in flags}
    for a in given:
        group = next((g for g, values in groups.items() if a in values), None)
        if group is not None:
            if out[group] is not None and out[group] != a:
                raise ValueError(f"config arguments {out[group]!r} and {a!r} both choose the {group}; give one")
            out[group] = a
        elif a in flags:
            out[a] = True
        else:
            known = sorted({v for values in groups.values() for v in values} | set(flags))
            raise ValueError(f"unknown config argument {a!r}; known: {', '.join(known)}")
    return out


def load_config(path_and_arg: str):
    """``"configs/x.py:args"`` → the ConfigDict its ``get_config(args)`` returns (one place for it)."""
    path, _, arg = path_and_arg.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} has no get_config(arg) function")
    return module.get_config(arg or None)
