"""A solver's command line with placeholders: what ``solver.command`` in an async config holds.

A command is a list of argument strings (never one string: no shell splits it). Placeholders
are Python format fields:

=============== ===============================================================================
``{out}``       path of the ``.npy`` the program must write, ``[T, C, *grid]``
``{lam}``       λ as a JSON list, e.g. ``[0.5, 0.3, 1.0, 2.0]``
``{lam_file}``  path of a file holding λ (JSON or ``.npy``, `ExecutableSolver.lam_format`)
``{<name>}``    one component of λ by its name, a float (``{A0:.6g}`` takes a format spec)
=============== ===============================================================================

and ``{{``/``}}`` for literal braces. A driver may also fill constants once, up front (a
solver's grid size: `check_command`'s ``constants``). Standard library only: a spawned worker
imports this to run a task.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from typing import Any

COMMAND_FIELDS = ("out", "lam", "lam_file")  # placeholders of every command, besides λ's names


def _parse(arg: str, i: int) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(arg))
    except ValueError as e:
        raise ValueError(f"argument {i} {arg!r}: {e} (write {{{{ and }}}} for literal braces)") from None


def command_fields(argv: Sequence[str]) -> list[str]:
    """The placeholder names of ``argv``, in order."""
    return [name for i, arg in enumerate(argv) for _, name, _, _ in _parse(arg, i) if name is not None]


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _fill(arg: str, i: int, values: Mapping[str, Any], *, partial: bool) -> str:
    """``arg`` with the fields in ``values`` formatted; others kept as fields (``partial``) or an error."""
    out = []
    for literal, name, spec, conversion in _parse(arg, i):
        out.append(_escape(literal) if partial else literal)
        if name is None:
            continue
        if name not in values:
            if not partial:
                raise ValueError(f"argument {i} {arg!r}: no value for {{{name}}}")
            out.append("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
            continue
        value = values[name]
        if conversion:
            value = {"r": repr, "s": str, "a": ascii}[conversion](value)
        try:
            text = format(value, spec or "")
        except (ValueError, TypeError) as e:
            raise ValueError(f"argument {i} {arg!r}: format spec {spec!r} of {{{name}}}: {e}") from None
        out.append(_escape(text) if partial else text)
    return "".join(out)


def check_command(argv: Any, names: Sequence[str] = (), constants: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """``argv`` as a tuple of strings, its ``constants`` filled in; ValueError naming what is wrong.

    Checked: a non-empty list (a string is refused), every placeholder known (``{out}``,
    ``{lam}``, ``{lam_file}``, the λ ``names``, the ``constants``), ``{out}`` present, and every
    format spec applicable (tried on λ = 0.5 in every component).
    """
    if isinstance(argv, (str, bytes)):
        raise ValueError(f"must be a list of argument strings, not the string {str(argv)[:60]!r} "
                         "(e.g. [\"python\", \"solver.py\", \"--out\", \"{out}\"])")
    if not isinstance(argv, Sequence) or not argv:
        raise ValueError(f"must be a non-empty list of argument strings, got {argv!r}")
    argv = tuple(str(a) for a in argv)
    constants = dict(constants or {})
    known = {*COMMAND_FIELDS, *names, *constants}
    fields = command_fields(argv)
    for name in fields:
        if name not in known:
            raise ValueError(f"unknown placeholder {{{name}}}; known: " + ", ".join("{" + k + "}" for k in sorted(known)))
    if "out" not in fields:
        raise ValueError("must contain the {out} placeholder (the .npy the program writes)")
    argv = tuple(_fill(a, i, constants, partial=True) for i, a in enumerate(argv))
    fill_command(argv, [0.5] * len(names), names, "out.npy", "lam.json")  # a spec that cannot format fails here
    return argv


def fill_command(argv: Sequence[str], lam: Sequence[float], names: Sequence[str], out: str, lam_file: str) -> list[str]:
    """``argv`` with ``{out}``, ``{lam}`` (a JSON list), ``{lam_file}`` and each ``{<name>}`` filled in."""
    values = {"out": out, "lam": json.dumps([float(x) for x in lam]), "lam_file": lam_file,
              **{n: float(x) for n, x in zip(names, lam)}}
    return [_fill(a, i, values, partial=False) for i, a in enumerate(argv)]
