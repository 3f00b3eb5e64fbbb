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
             "solution.npz", "samples.npz", "config.json.tmp", "metrics.jsonl.tmp")
RUN_DIRS = ("checkpoints", "samples", "tb")
RUN_PATTERNS = ("*.png", "report.*")
LOCK_FILE = ".lock"


class WorkdirError(RuntimeError):
    """The workdir cannot hold this run (not a directory, not writable, in use, another config)."""


class WorkdirMismatch(WorkdirError):
    """The workdir holds a run of a different config."""


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


def claim_workdir(workdir, config, *, overwrite: bool = False) -> None:
    """Create ``workdir`` and record ``config.json``; refuse to resume a different config.

    With ``overwrite`` an existing run of another config is removed first: only what a run
    writes (config, metrics, summary, checkpoints, samples, TensorBoard logs, plots, reports),
    not other files in the directory. Raises WorkdirError (one line, naming the workdir) for a
    workdir that is empty, an existing file or not writable; WorkdirMismatch for another config.
    """
    workdir = _prepare(workdir)
    path = os.path.join(workdir, "config.json")
    current = _canonical(config)
    if os.path.exists(path):
        with open(path) as f:
            try:
                previous = json.load(f)
            except json.JSONDecodeError:
                previous = None
        if previous != current:
            if not overwrite:
                diff = _first_difference(previous, current)
                raise WorkdirMismatch(
                    f"workdir {workdir} holds a run with a different config ({diff}); "
                    "use another --workdir or pass --overwrite to start afresh"
                )
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
        with open(summary_path) as f:
            return json.load(f)
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


def _finite_or_null(x):
    """``x`` with every non-finite float (at any depth) replaced by None: JSON has no NaN."""
    if hasattr(x, "tolist") and hasattr(x, "dtype"):  # numpy / jax arrays and scalars
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_null(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_null(v) for v in x]
    return x


def _null_to_nan(x):
    if x is None:
        return math.nan
    if isinstance(x, dict):
        return {k: _null_to_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_null_to_nan(v) for v in x]
    return x


class MetricLog:
    """Append-only JSONL of per-step records; `truncate(step)` drops records past a restored step.

    A run killed mid-`write` can leave a partial last line: `read` and `truncate` drop it (and
    `write` cuts it off before appending). A damaged line elsewhere raises ValueError naming it.
    Non-finite numbers are written as ``null`` and read back as NaN.
    """

    def __init__(self, path: str):
        self.path = path

    def _lines(self) -> list[tuple[str, dict]]:
        """``(line, record)`` for every complete record, in order."""
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
        out = []
        for k, (n, line) in enumerate(lines):
            try:
                out.append((line if line.endswith("\n") else line + "\n", json.loads(line)))
            except json.JSONDecodeError as e:
                if k == len(lines) - 1:
                    break  # a partial write: the run died in the middle of this line
                raise ValueError(f"{self.path}: line {n} is not a JSON record ({e.msg}); fix or delete that line") from None
        return out

    def truncate(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        keep = [line for line, r in self._lines() if r.get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)

    def write(self, records: list[dict]) -> None:
        self._drop_partial_tail()
        with open(self.path, "a") as f:
            for r in records:
                f.write(json.dumps(_finite_or_null(r), allow_nan=False) + "\n")

    def read(self) -> list[dict]:
        return [_null_to_nan(r) for _, r in self._lines()]

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
