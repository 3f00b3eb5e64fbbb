"""Workdir bookkeeping: one run per workdir, its config and fingerprint, an overwrite that says
what it deletes, and `Interrupted`, a Ctrl-C that names the run of a series it landed in. The
files a run writes there (strict JSON, the metric log, a full disk in one line) are `run_files`'s."""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import shutil

# Their old home: what callers import from here.
from qsal_jax.experiments.progress import PhaseTimes, Progress, steps_text  # noqa: F401
from qsal_jax.reporting.run_files import (NONFINITE_STRINGS, DiskFull, MetricLog,  # noqa: F401
                                            MetricLogDamaged, WorkdirError, _checkpoint_steps, _fsync_dir,
                                            from_strict_json, full_disk_is_one_line, read_json, to_strict_json,
                                            write_json)

# What a run writes into its workdir (online, toy and pinn experiments, plots, reports): the
# only entries ``overwrite`` deletes, so files a user keeps beside a run survive a restart.
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "test_errors.npz", "heatmap_errors.npz",
             "solution.npz", "samples.npz", "config.json.tmp", "metrics.jsonl.tmp", "summary.json.tmp")
RUN_DIRS = ("checkpoints", "samples", "tb")
RUN_PATTERNS = ("*.png", "report.*")
LOCK_FILE = ".lock"


class WorkdirMismatch(WorkdirError):
    """The workdir holds a run of a different config."""


class WorkdirDamaged(WorkdirError):
    """The workdir's ``config.json`` cannot be read as a config: its run cannot be identified."""


class WorkdirInUse(WorkdirError):
    """Another process (or another lock in this one) holds the workdir's lock."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that landed in one run of a series (a study's, a sweep's point): ``where`` names
    it, ``workdir`` is its directory (or the directory of its runs). Still a KeyboardInterrupt,
    so a caller that does not look at it stops as before."""

    def __init__(self, where: str, workdir: str):
        super().__init__(where)
        self.where, self.workdir = where, workdir


def config_to_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def _canonical(config) -> dict:
    """The config as JSON would store it: sorted keys, non-JSON values as their ``str``."""
    return json.loads(json.dumps(config_to_dict(config), sort_keys=True, default=str))


def config_hash(config) -> str:
    """Short fingerprint of ``config``: the first 16 hex digits of the sha256 of its sorted JSON.

    Equal for configs that `claim_workdir` treats as equal; stored with each checkpoint
    (`qsal_jax.training.checkpoint.save(..., config_hash=...)`) so a resume under another
    config is refused.
    """
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prepare(workdir) -> str:
    """Check that ``workdir`` can be a run's directory and create it; one-line WorkdirError if not."""
    path = os.fspath(workdir) if isinstance(workdir, (str, os.PathLike)) else None
    if not path or not path.strip():
        raise WorkdirError(f"workdir {workdir!r} is not a directory name; pass one, e.g. --workdir=runs/x")
    if os.path.exists(path) and not os.path.isdir(path):
        raise WorkdirError(f"workdir {path} is an existing file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"workdir {path} cannot be created: {e.strerror or e}") from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise WorkdirError(f"workdir {path} is not writable")
    return path


class WorkdirLock:
    """An exclusive ``flock`` on ``workdir/.lock``, holding this process's pid; see `lock_workdir`."""

    def __init__(self, workdir):
        self.workdir = _prepare(workdir)
        self.path = os.path.join(self.workdir, LOCK_FILE)
        # No O_TRUNC: a process that fails to get the lock must not erase the holder's pid.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkdirInUse(f"workdir {self.workdir} in use by pid {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lock up. The file stays: unlinking a flock file lets two processes lock two inodes."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkdirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_workdir(workdir) -> WorkdirLock:
    """Claim ``workdir`` for this run alone (creating it), for as long as the lock is held.

    Use as ``with lock_workdir(workdir): ...``. Raises WorkdirInUse, at once and naming the
    holder's pid, if another process holds it (or this one, through another `lock_workdir`).
    The kernel drops the lock when its holder exits, however it exits, so a killed run leaves
    nothing to clean up. (``flock`` on NFS is only as reliable as the NFS client.)
    """
    return WorkdirLock(workdir)


def _remove_run_entries(workdir: str) -> None:
    """Delete what a run writes in ``workdir`` (RUN_FILES, RUN_DIRS, RUN_PATTERNS), nothing else."""
    for name in sorted(os.listdir(workdir)):
        p = os.path.join(workdir, name)
        if name in RUN_DIRS and os.path.isdir(p):
            if os.path.islink(p):  # e.g. checkpoints on a scratch disk: empty it, keep the link
                for child in os.listdir(p):
                    c = os.path.join(p, child)
                    shutil.rmtree(c) if os.path.isdir(c) and not os.path.islink(c) else os.remove(c)
            else:
                shutil.rmtree(p)
        elif not os.path.isdir(p) and (name in RUN_FILES or any(fnmatch.fnmatch(name, g) for g in RUN_PATTERNS)):
            os.remove(p)


def _read_config(path: str) -> tuple[dict | None, str]:
    """``(config, "")`` from a run's ``config.json``, or ``(None, why it is damaged)``."""
    try:
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
    except UnicodeDecodeError:
        return None, "not text"
    except json.JSONDecodeError as e:
        return None, f"not JSON: {e.msg}, line {e.lineno} column {e.colno}"
    except OSError as e:
        return None, f"cannot be read: {e.strerror or e}"
    if not isinstance(previous, dict):
        return None, f"holds a {type(previous).__name__}, not a config"
    return previous, ""


def claim_workdir(workdir, config, *, overwrite: bool = False, log=print) -> None:
    """Create ``workdir`` and record ``config.json``; refuse to resume a different config.

    With ``overwrite`` an existing run of another config is removed first: only what a run
    writes (config, metrics, summary, checkpoints, samples, TensorBoard logs, plots, reports),
    not other files in the directory, and a line says which checkpoints go. Raises WorkdirError
    (one line, naming the workdir) for a workdir that is empty, an existing file or not writable;
    WorkdirMismatch for another config; WorkdirDamaged for a ``config.json`` that cannot be read
    as a config (its run cannot be identified, so neither resumed nor silently deleted).
    """
    workdir = _prepare(workdir)
    path = os.path.join(workdir, "config.json")
    current = _canonical(config)
    if os.path.exists(path):
        previous, damage = _read_config(path)
        if previous != current:
            steps = _checkpoint_steps(workdir)
            held = f"checkpoints of steps {', '.join(map(str, steps))}" if steps else "no checkpoint"
            if not overwrite:
                if damage:
                    raise WorkdirDamaged(
                        f"workdir {workdir}: config.json is damaged ({damage}), so its run ({held}) cannot be "
                        "identified; use another --workdir, or pass --overwrite to delete that run and start afresh")
                raise WorkdirMismatch(
                    f"workdir {workdir} holds a run with a different config ({_first_difference(previous, current)}); "
                    f"use another --workdir or pass --overwrite to delete that run ({held}) and start afresh"
                )
            why = f"config.json damaged: {damage}" if damage else _first_difference(previous, current)
            log(f"overwrite: deleting the run in {workdir} ({why}; {held})")
            _remove_run_entries(workdir)
    tmp = path + ".tmp"
    with full_disk_is_one_line(path, "nothing of the run was changed", undo=lambda: os.remove(tmp)):
        with open(tmp, "w") as f:
            json.dump(current, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def start_or_reuse(workdir: str, config, *, overwrite: bool = False, log=print) -> dict | None:
    """For runs that are not checkpointed: claim ``workdir`` and return the summary of a finished
    run of the same config (None otherwise, after clearing the metrics of an interrupted one; a
    damaged summary is said so and the run made again)."""
    claim_workdir(workdir, config, overwrite=overwrite, log=log)
    summary_path = os.path.join(workdir, "summary.json")
    if os.path.exists(summary_path) and not overwrite:
        try:
            summary = read_json(summary_path)
            if isinstance(summary, dict):
                return summary
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            pass
        log(f"warning: {summary_path} is damaged; running again to write it")
    stale = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(stale):
        os.remove(stale)
    return None


def _first_difference(a, b, prefix="") -> str:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return f"{prefix or 'config'}: {a!r} != {b!r}"
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            return _first_difference(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
    return "unknown difference"


# JSON has no NaN or infinity: they are written as these strings, and read back as floats.
