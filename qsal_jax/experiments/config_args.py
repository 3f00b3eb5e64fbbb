"""Config arguments after the colon (``configs/online_1d.py:ogas,nrmse``), parsed strictly.

A config that silently ignored a typo (``:unifrom``) would run a different experiment than the
one asked for, so every argument must be one the config declares, and at most one of each
group of mutually exclusive choices (one strategy, one problem, one protocol) may be given.
An argument ``key=value`` is a typed strategy setting (big_vision's ``parse_arg``):
``configs/online_1d.py:breed,alpha0=0.5`` sets ``strategy.settings.alpha0 = 0.5``; the strategy's
factory, not a table in the config, says whether it knows the setting.

A config's ``strategy.settings`` belong to the strategy it names: an override that names another
strategy (``--config.strategy.name=uniform``) drops the settings the file wrote for the first
one (`drop_foreign_settings`), so the new strategy starts from its factory's defaults plus
whatever settings the command itself gives.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os


def parse_args(arg: str | None, *, groups: dict[str, tuple[str, ...]], flags: tuple[str, ...] = (),
               import_paths: str | None = None, settings: bool = False) -> dict:
    """``"a,b,k=v"`` → ``{group: chosen value or None, flag: bool}`` (plus ``"settings": {k: typed v}``
    with ``settings=True``); `ValueError` for anything else.

    ``groups`` maps a group name to its allowed values (at most one per group); ``flags`` are
    switches that may appear on their own; with ``settings``, ``key=value`` pieces are typed as
    Python literals (`parse_override`) and collected under ``"settings"``; a ``"module:factory"`` piece is a
    choice of the group ``import_paths`` (a strategy of the user's own).
    """
    given = [a.strip() for a in join_overrides((arg or "").split(",")) if a.strip()]
    out: dict = {g: None for g in groups} | {f: False for f in flags} | ({"settings": {}} if settings else {})
    for a in given:
        if settings and "=" in a:
            key, value = parse_override(a)
            if not key.isidentifier():
                raise ValueError(f"config argument {a!r}: {key!r} is not a setting name")
            out["settings"][key] = value
            continue
        group = next((g for g, values in groups.items() if a in values), None)
        if group is None and import_paths is not None and ":" in a:
            group = import_paths
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


# Fields an override may add: a strategy's settings (the config lists only those it changes)
# and the switches whose default is "off".
ADDABLE = ("strategy.settings.", "train.importance_clip", "train.objective", "online.shard", "buffer.sharded")


def parse_override(text: str) -> tuple[str, object]:
    """``"a.b=1.5"`` → ``("a.b", 1.5)``: the value as a Python literal, else as a string."""
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r}: expected key=value")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


def join_overrides(pieces: list[str]) -> list[str]:
    """Undo the comma split of a list flag inside brackets and quotes: ``--set=a=(1,2),b=3``
    reaches the script as ``["a=(1", "2)", "b=3"]`` and means ``["a=(1,2)", "b=3"]``."""
    out: list[str] = []
    for piece in pieces:
        if out and _open(out[-1]):
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def _open(text: str) -> bool:
    """Whether ``text`` leaves a bracket or a quote open."""
    depth, quote = 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth > 0 or quote is not None


def drop_foreign_settings(config, written_for: str, overridden) -> str | None:
    """Drop the ``strategy.settings`` a config file wrote for strategy ``written_for`` when the
    config now names another one; settings among ``overridden`` (dotted keys the command gave)
    are kept. Returns a line saying what was dropped, or None."""
    strategy = config.get("strategy")
    if strategy is None or strategy.get("name") == written_for or not strategy.get("settings"):
        return None
    given = {k.split(".", 2)[2] for k in overridden if k.startswith("strategy.settings.")}
    dropped = sorted(k for k in strategy.settings if k not in given)
    if not dropped:
        return None
    kept = {k: strategy.settings[k] for k in strategy.settings if k in given}
    with config.unlocked() if hasattr(config, "unlocked") else contextlib.nullcontext():
        strategy.settings = kept
    return (f"strategy.name = {strategy.name!r}: the settings written for {written_for!r} ({', '.join(dropped)}) "
            "are dropped; it starts from its own defaults")


def apply_overrides(config, overrides: dict) -> str | None:
    """Set ``{"a.b.c": value}`` in ``config`` in place; a key the config lacks is an error,
    except the `ADDABLE` ones, and so is a value the field's type does not take (a list for a
    tuple field becomes a tuple). An override of ``strategy.name`` drops the settings written for
    the strategy named before (`drop_foreign_settings`); returns its line, or None."""
    strategy = config.get("strategy") if hasattr(config, "get") else None
    before = strategy.get("name") if strategy is not None else None
    _apply(config, overrides)
    return drop_foreign_settings(config, before, overrides) if before is not None else None


def _apply(config, overrides: dict) -> None:
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            if p not in node:
                raise ValueError(f"override {key!r}: the config has no field {p!r}")
            node = node[p]
        if leaf not in node and not key.startswith(ADDABLE):
            raise ValueError(f"override {key!r}: the config has no such field")
        old = node[leaf] if leaf in node else None
        if isinstance(old, tuple) and isinstance(value, list):
            value = tuple(value)
        with config.unlocked() if hasattr(config, "unlocked") else contextlib.nullcontext():
            try:
                node[leaf] = value
            except TypeError:  # ml_collections keeps a field's type: 6.0 for an int field
                hint = f"; give {int(value)}" if isinstance(value, float) and value.is_integer() else ""
                raise ValueError(f"override {key!r}: {value!r} is {_a(type(value).__name__)} but the field "
                                 f"holds {_a(type(old).__name__)} ({old!r}){hint}") from None


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def apply_command_line(config, config_flag, pieces) -> str | None:
    """A script's overrides: ``--set`` ``pieces`` (`parse_override`) on ``config``, which absl's
    ``--config.*`` flags (``config_flag``, ``FLAGS["config"]``) have already changed; then the
    settings the config file wrote for another strategy than the one now named are dropped
    (`drop_foreign_settings`). Returns its line, or None."""
    from ml_collections import config_flags

    overrides = dict(parse_override(o) for o in join_overrides(pieces))
    _apply(config, overrides)
    written = load_config(config_flags.get_config_filename(config_flag)).get("strategy")
    if written is None or "name" not in written:
        return None
    return drop_foreign_settings(config, written.name, set(config_flags.get_override_values(config_flag)) | set(overrides))


def set_settings(config, settings: dict) -> None:
    """``config.strategy.settings`` updated with the ``key=value`` arguments ``settings`` (their
    types win over the config's: ``sigma=(0.1, 0.2)`` where the config wrote 0.05)."""
    if settings:
        config.strategy.settings = {**config.strategy.settings.to_dict(), **settings}
