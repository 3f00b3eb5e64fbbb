"""The files a run writes beside its checkpoints: strict JSON (`write_json`, `read_json`), arrays
and figures written atomically (`save_arrays`, `save_figure`), the metric log (`MetricLog`), and one
line for a full disk while any of them is written (`DiskFull`, naming the file and what of the run
is intact)."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os


class WorkdirError(RuntimeError):
    """The workdir cannot hold this run (not a directory, not writable, in use, another config)."""


class DiskFull(WorkdirError):
    """The disk filled up while a run file was written; the message names the file and what is intact."""


def _no_space(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def intact_text(directory: str) -> str:
    """What a run in ``directory`` still has on disk: its metric records and its newest checkpoint
    (empty when it has neither), for a line that says what a failure did not touch."""
    parts = []
    try:
        steps = [r.get("step") for r in MetricLog(os.path.join(directory, "metrics.jsonl")).read()]
    except (OSError, WorkdirError):
        steps = []
    steps = [s for s in steps if isinstance(s, int)]
    if steps:
        parts.append(f"the records up to step {max(steps)}")
    checkpoints = _checkpoint_steps(directory)
    if checkpoints:
        parts.append(f"checkpoint {checkpoints[-1]}")
    if not parts:
        return ""
    return " and ".join(parts) + (" are" if len(parts) > 1 else " is") + " intact"


@contextlib.contextmanager
def full_disk_is_one_line(path: str, before: str, *, undo=None):
    """Turn a full disk (ENOSPC, EDQUOT) while ``path`` is written into one `DiskFull` line naming
    the file, ``before`` (what of it is intact) and the rest of the run that is; ``undo()``
    first removes what the write left half done."""
    try:
        yield
    except OSError as e:
        if not _no_space(e):
            raise
        if undo is not None:
            with contextlib.suppress(OSError):
                undo()
        directory = os.path.dirname(os.path.abspath(path))
        rest = intact_text(directory)
        raise DiskFull(f"no space left on device while writing {os.path.basename(path)} in {directory}; "
                       f"{before}{'; ' + rest if rest else ''}; free space there and run the same command to resume"
                       ) from None


def _checkpoint_steps(workdir: str) -> list[int]:
    """The steps of the checkpoints under ``workdir/checkpoints`` (committed or not), in order."""
    path = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(path):
        return []
    return sorted(int(name) for name in os.listdir(path) if name.isdigit())


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


def _atomic_binary(path: str, write) -> None:
    """``write(f)`` into ``path + ".tmp"`` (synced to disk), then rename over ``path``: a reader
    sees the old file or the new one, never half of it. A full disk is one `DiskFull` line that
    names the file."""
    tmp = path + ".tmp"
    before = f"the {os.path.basename(path)} before is intact" if os.path.exists(path) else "it was not written"
    with full_disk_is_one_line(path, before, undo=lambda: os.remove(tmp)):
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str, obj, **kwargs) -> None:
    """Write ``obj`` as strict JSON (`to_strict_json`), atomically (`_atomic_binary`)."""
    text = json.dumps(to_strict_json(obj), allow_nan=False, **kwargs)
    _atomic_binary(path, lambda f: f.write(text.encode()))


def save_arrays(path: str, array=None, *, compressed: bool = False, **arrays) -> None:
    """``np.save`` of ``array`` (a ``.npy``) or ``np.savez`` of ``arrays`` (a ``.npz``, zipped with
    ``compressed``) at ``path``, atomically (`_atomic_binary`)."""
    import numpy as np

    savez = np.savez_compressed if compressed else np.savez
    _atomic_binary(path, lambda f: np.save(f, array) if array is not None else savez(f, **arrays))


def save_figure(fig, path: str, **savefig_kwargs) -> str:
    """``fig.savefig(path)`` atomically (`_atomic_binary`), the format read off the suffix; closes
    ``fig`` either way and returns ``path``."""
    import matplotlib.pyplot as plt

    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    try:
        _atomic_binary(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))
    finally:
        plt.close(fig)
    return path


def read_json(path: str):
    """A file written by `write_json` (or plain JSON), with its non-finite numbers as floats."""
    with open(path) as f:
        return from_strict_json(json.load(f))


class MetricLogDamaged(WorkdirError, ValueError):
    """A line of ``metrics.jsonl`` other than the last is not a record."""


class MetricLog:
    """Append-only JSONL of per-step records; `truncate(step)` drops records past a restored step.

    A run killed mid-`write` can leave a partial last line (the start of a record, or zeros): `read`
    and `truncate` drop it (and `write` cuts it off before appending). A damaged line elsewhere, or
    a last line of other bytes (a binary file), raises MetricLogDamaged naming it. Records are strict JSON (`to_strict_json`): non-finite numbers are written as ``"inf"``,
    ``"-inf"`` or ``"nan"`` and read back as floats (``null``, from logs written before, as NaN).
    `write` returns once the records are on disk (fsync), so a checkpoint written after it never
    outlives its records; `missing_steps` names the records a resume finds lost anyway. A full
    disk cuts the file back to the records before the write and raises `DiskFull`.
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
                if k == len(lines) - 1 and _partial(raw):
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
        with full_disk_is_one_line(self.path, "it is intact", undo=lambda: os.remove(tmp)):
            with open(tmp, "w") as f:
                f.writelines(keep)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def write(self, records: list[dict]) -> None:
        """Append ``records`` and return once they are on disk."""
        steps = [r.get("step") for r in records]
        what = ("the new records were" if None in steps or not steps else f"the record of step {steps[0]} was"
                if len(steps) == 1 else f"the records of steps {steps[0]}-{steps[-1]} were")
        created = not os.path.exists(self.path)
        size = None
        undo = lambda: size is not None and os.truncate(self.path, size)  # noqa: E731
        with full_disk_is_one_line(self.path, f"{what} not written", undo=undo):
            self._drop_partial_tail()
            size = 0 if created else os.path.getsize(self.path)
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


def _partial(raw: bytes) -> bool:
    """Whether a last line that is not a record is a write cut short (the start of a record, or
    the zeros a crash leaves in a file's unwritten end) rather than damage (other bytes)."""
    return raw.lstrip(b"\0").startswith(b"{") or not raw.strip(b"\0 \t\r\n")


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
