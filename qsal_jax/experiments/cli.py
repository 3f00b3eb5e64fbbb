"""Command-line plumbing shared by the scripts: absl flag parsing whose failures are one line.

A bad flag, an override of a field the config lacks, a config file that is missing, does not
parse or raises: each ends the script with ``error: …`` naming the flag or the file, never a
traceback (``app.run(main, flags_parser=one_line_flag_parser(FLAGS))``). `interrupted` is the
line a Ctrl-C of a run ends with, `interrupted_series` that of a study or a sweep.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys

from absl import flags


def one_line_flag_parser(flag_values: flags.FlagValues):
    """A ``flags_parser`` for `absl.app.run` that reports every parse failure in one line."""
    return functools.partial(_parse, flag_values)


def _parse(flag_values: flags.FlagValues, argv):
    """absl's parser, with every parse failure (a bad flag, an override of a missing key, a config
    file that is missing or raises) reported in one line instead of a traceback."""
    for a in argv[1:]:
        if a.startswith("--config="):
            path = a.split("=", 1)[1].partition(":")[0]
            if not os.path.isfile(path):
                sys.exit(f"error: --config: config file {path!r} does not exist")
    try:
        return flag_values(argv)
    except SyntaxError as e:
        sys.exit(f"error: --config: syntax error in {e.filename}, line {e.lineno}: {e.msg}")
    except (AttributeError, KeyError) as e:  # an override of a field the config lacks
        if "get_config" in str(e):
            sys.exit("error: --config: the config file has no get_config(arg) function")
        sys.exit(f"error: {_missing_field(e, argv)}")
    except flags.IllegalFlagValueError as e:
        if "--config must have a value other than None" in str(e) and any(a.startswith("--config=") for a in argv):
            sys.exit("error: --config: get_config() returned None; it must return an ml_collections.ConfigDict")
        sys.exit(f"error: {_one_line(e)}")
    except Exception as e:  # absl flag errors, and a config whose get_config or imports failed
        prefix = "" if isinstance(e, flags.Error) else f"--config: {type(e).__name__}: "
        sys.exit(f"error: {prefix}{_one_line(e)}")


def _missing_field(e: Exception, argv) -> str:
    """``--config.a.b=1`` where the config has no ``a.b``: name the flag, keep absl's suggestion."""
    text = _one_line(e)
    match = re.search(r"""['"]+([A-Za-z_][\w]*)['"]+""", text)
    name = match.group(1) if match else ""
    flag = next((a.split("=")[0] for a in argv[1:] if a.startswith("--config.") and name in a.split("=")[0].split(".")),
                "--config")
    hint = re.search(r"Did you mean .*\?", text)
    add = " (a strategy setting the config does not list: --set=strategy.settings.<name>=<value>)" \
        if flag.startswith("--config.strategy.settings.") else ""
    return f"{flag}: the config has no field {name!r}" + (f"; {hint.group(0).lower()}" if hint else "") + add


def _one_line(e: Exception) -> str:
    """The message of ``e`` on one line; for a message that embeds a traceback (ml_collections
    wraps a failing get_config so), the flag and the final exception line."""
    text = str(e).replace("\\n", "\n").replace("\\'", "'").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        head = lines[0].split(": Error whilst")[0]
        return f"{head}: {lines[-1]}"
    return " ".join(lines) or type(e).__name__


def interrupted(workdir: str | None) -> str:
    """The line a run ends with on Ctrl-C: the last step it logged and the last checkpoint on disk
    (read from the workdir, so it holds wherever the interrupt landed), and how to resume."""
    step, where = _position(workdir)
    at = "interrupted" if step is None else f"interrupted at step {step}"
    return f"{at}; {where}; run the same command to resume"


def interrupted_series(e: BaseException, kept: str) -> str:
    """The line a study or a sweep ends with on Ctrl-C: the run it landed in (named by a
    `workdir.Interrupted`, with its last logged step and checkpoint), ``kept`` (what is on disk),
    and how to resume."""
    at = "interrupted"
    where, workdir = getattr(e, "where", None), getattr(e, "workdir", None)
    if where:
        run = workdir if workdir and os.path.isfile(os.path.join(workdir, "config.json")) else latest_run(workdir or "")
        if run and run != workdir:
            where = f"{where}, {os.path.basename(run)}"
        if run is not None:
            step, checkpoint = _position(run)
            where += f" ({checkpoint})" if step is None else f" (step {step}, {checkpoint})"
        at = f"interrupted at {where}"
    return f"{at}; {kept}; run the same command to resume"


def _position(workdir: str | None) -> tuple[int | None, str]:
    """The last step a run in ``workdir`` logged (None without one) and its last checkpoint, as words."""
    steps = []
    ckpt_dir = os.path.join(workdir or "", "checkpoints")
    if workdir and os.path.isdir(ckpt_dir):
        steps = [int(n) for n in os.listdir(ckpt_dir) if n.isdigit() and os.path.isdir(os.path.join(ckpt_dir, n))]
    where = f"last checkpoint at step {max(steps)}" if steps else "no checkpoint yet"
    return (_last_logged_step(os.path.join(workdir, "metrics.jsonl")) if workdir else None), where


def _last_logged_step(path: str) -> int | None:
    """The step of the last complete record of ``metrics.jsonl`` (None without one)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError):  # a partial last line, or not a record
            continue
        if isinstance(step, int):
            return step
    return None


def latest_run(root: str) -> str | None:
    """The run directory under ``root`` (a comparison's) whose files changed last: the one a
    Ctrl-C interrupted."""
    if not os.path.isdir(root):
        return None
    runs = [os.path.join(root, n) for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "config.json"))]
    stamp = lambda run: max(os.path.getmtime(os.path.join(run, f)) for f in os.listdir(run))
    return max(runs, key=stamp, default=None)
