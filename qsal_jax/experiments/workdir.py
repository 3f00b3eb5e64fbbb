"""Workdir bookkeeping: config fingerprint, metric logs that survive a resume, progress lines."""

from __future__ import annotations

import json
import os
import time


class WorkdirMismatch(RuntimeError):
    """The workdir holds a run of a different config."""


def config_to_dict(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def claim_workdir(workdir: str, config, *, overwrite: bool = False) -> None:
    """Create ``workdir`` and record ``config.json``; refuse to resume a different config.

    With ``overwrite`` an existing run's files are removed first.
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    current = json.loads(json.dumps(config_to_dict(config), sort_keys=True, default=str))
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
            import shutil

            for name in os.listdir(workdir):
                p = os.path.join(workdir, name)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
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


class MetricLog:
    """Append-only JSONL of per-step records; `truncate(step)` drops records past a restored step."""

    def __init__(self, path: str):
        self.path = path

    def truncate(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            keep = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)

    def write(self, records: list[dict]) -> None:
        with open(self.path, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")

    def read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]


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
