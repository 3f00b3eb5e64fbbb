"""Workdir bookkeeping: one run per workdir, config fingerprint, metric logs that survive a
resume, progress lines."""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import math
import os
import shutil
import time

# What a run writes into its workdir (online, toy and pinn experiments, plots, reports): the
# only entries ``overwrite`` deletes, so files a user keeps beside a run survive a restart.
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "test_errors.npz", "heatmap_errors.npz",
             "solution.npz", "samples.npz", "config.json.tmp", "metrics.jsonl.tmp", "summary.json.tmp")
RUN_DIRS = ("checkpoints", "samples", "tb")
RUN_PATTERNS = ("*.png", "report.*")
LOCK_FILE = ".lock"


class WorkdirError(RuntimeError):
    """The workdir cannot hold this run (not a directory, not writable, in use, another config)."""


class WorkdirMismatch(WorkdirError):
    """The workdir holds a run of a different config."""


class WorkdirDamaged(WorkdirError):
    """The workdir's ``config.json`` cannot be read as a config: its run cannot be identified."""


class WorkdirInUse(WorkdirError):
    """Another process (or another lock in this one) holds the workdir's lock."""


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


def _checkpoint_steps(workdir: str) -> list[int]:
    """The steps of the checkpoints under ``workdir/checkpoints`` (committed or not), in order."""
    path = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(path):
        return []
    return sorted(int(name) for name in os.listdir(path) if name.isdigit())


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
    with open(tmp, "w") as f:
        json.dump(current, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def start_or_reuse(workdir: str, config, *, overwrite: bool = False) -> dict | None:
    """For runs that are not checkpointed: claim ``workdir`` and return the summary of a finished
    run of the same config (None otherwise, after clearing the metrics of an interrupted one)."""
    claim_workdir(workdir, config, overwrite=overwrite)
    summary_path = os.path.join(workdir, "summary.json")
    if os.path.exists(summary_path) and not overwrite:
        return read_json(summary_path)
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
NONFINITE_STRINGS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_strict_json(x):
    """``x`` with every non-finite float (at any depth, numpy and jax scalars and arrays included)
    replaced by the string ``"inf"``, ``"-inf"`` or ``"nan"``: ``json.dumps(..., allow_nan=False)``
    then writes strict JSON that keeps the difference between a diverged (inf) and a missing (nan)
    number. `from_strict_json` reverses it."""
    if hasattr(x, "tolist") and hasattr(x, "dtype"):  # numpy / jax arrays and scalars
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else ("nan" if math.isnan(x) else "inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: to_strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_strict_json(v) for v in x]
    return x


def from_strict_json(x, *, null=None):
    """``x`` as `to_strict_json` wrote it, with ``"inf"``, ``"-inf"`` and ``"nan"`` (and the bare
    ``NaN``/``Infinity`` of files written before) as floats; ``null`` stands for JSON null."""
    if x is None:
        return null
    if isinstance(x, str):
        return NONFINITE_STRINGS.get(x, x)
    if isinstance(x, dict):
        return {k: from_strict_json(v, null=null) for k, v in x.items()}
    if isinstance(x, list):
        return [from_strict_json(v, null=null) for v in x]
    return x


def write_json(path: str, obj, **kwargs) -> None:
    """Write ``obj`` as strict JSON (`to_strict_json`), atomically: a reader sees the old file or
    the new one, never half of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(to_strict_json(obj), f, allow_nan=False, **kwargs)
    os.replace(tmp, path)


def read_json(path: str):
    """A file written by `write_json` (or plain JSON), with its non-finite numbers as floats."""
    with open(path) as f:
        return from_strict_json(json.load(f))


class MetricLogDamaged(WorkdirError, ValueError):
    """A line of ``metrics.jsonl`` other than the last is not a record."""


class MetricLog:
    """Append-only JSONL of per-step records; `truncate(step)` drops records past a restored step.

    A run killed mid-`write` can leave a partial last line: `read` and `truncate` drop it (and
    `write` cuts it off before appending). A damaged line elsewhere raises MetricLogDamaged naming
    it. Records are strict JSON (`to_strict_json`): non-finite numbers are written as ``"inf"``,
    ``"-inf"`` or ``"nan"`` and read back as floats (``null``, from logs written before, as NaN).
    `write` returns once the records are on disk (fsync), so a checkpoint written after it never
    outlives its records; `missing_steps` names the records a resume finds lost anyway.
    """

    def __init__(self, path: str):
        self.path = path

    def _lines(self) -> list[tuple[str, dict]]:
        """``(line, record)`` for every complete record, in order."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
        out = []
        for k, (n, raw) in enumerate(lines):
            try:
                line = raw.decode()
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
                out.append((line if line.endswith("\n") else line + "\n", record))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                if k == len(lines) - 1:
                    break  # a partial write: the run died in the middle of this line
                why = getattr(e, "msg", None) or type(e).__name__
                raise MetricLogDamaged(f"{self.path}: line {n} is not a JSON record ({why}); "
                                       "fix or delete that line") from None
        return out

    def truncate(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        keep = [line for line, r in self._lines() if r.get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def write(self, records: list[dict]) -> None:
        """Append ``records`` and return once they are on disk."""
        self._drop_partial_tail()
        created = not os.path.exists(self.path)
        with open(self.path, "a") as f:
            for r in records:
                f.write(json.dumps(to_strict_json(r), allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if created:  # the file's directory entry too, or a crash can lose the whole file
            _fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def read(self) -> list[dict]:
        return [from_strict_json(r, null=math.nan) for _, r in self._lines()]

    def missing_steps(self, upto: int) -> list[int]:
        """Steps ``1..upto`` without a record (lost to a crash or cut from the file)."""
        have = {r.get("step") for _, r in self._lines()}
        return [s for s in range(1, upto + 1) if s not in have]

    def _drop_partial_tail(self) -> None:
        """End the file with a newline, so the next record starts a line of its own: a complete
        last record just lacks it; a partial one (a write cut short) is cut off."""
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            start = data.rfind(b"\n") + 1
            try:
                json.loads(data[start:])
                f.write(b"\n")
            except ValueError:
                f.truncate(start)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def steps_text(steps: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3, 5"``."""
    runs: list[list[int]] = []
    for s in steps:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class Progress:
    """One line per sync: step, rate, ETA and the latest numbers."""

    def __init__(self, total: int, start: int = 0, log=print):
        self.total, self.start, self.log = total, start, log
        self.t0 = time.perf_counter()

    def update(self, step: int, **values) -> None:
        elapsed = time.perf_counter() - self.t0
        done = step - self.start
        rate = done / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - step) / rate if rate and rate == rate and rate > 0 else float("nan")
        shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        self.log(f"[{step:>6d}/{self.total}] {rate:6.2f} steps/s  eta {eta:6.0f}s  {shown}")


class PhaseTimes:
    """Wall seconds per phase of a run: ``with times("evaluation"): ...`` adds to that phase."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def split(self) -> dict[str, float]:
        """Every phase, ``other`` (the rest since construction) and ``total``."""
        total = time.perf_counter() - self._t0
        return {**self.seconds, "other": max(total - sum(self.seconds.values()), 0.0), "total": total}
