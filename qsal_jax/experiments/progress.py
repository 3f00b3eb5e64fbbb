"""Progress lines of a run: one line per sync (step, rate, ETA, the latest numbers), wall seconds
per phase, and step lists written short."""

from __future__ import annotations

import contextlib
import time


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
