"""Work done beside the training loop: score-set evaluations, metric records and checkpoint writes.

A run hands this work to one worker thread and goes on with its next steps. XLA releases the
GIL while it computes, so an evaluation runs on the cores the loop leaves idle (on a 2-core CPU
the default 1D run's loop keeps about one busy). Jobs run one at a time in the order they were
submitted, which keeps what a resume relies on: the records up to step ``s`` are written before
checkpoint ``s`` is, and a job that fails (records cut short by a full disk) stops every job queued
behind it (that checkpoint is not written). A failed job's error is raised in the main thread at
the next `check` or `drain`. With ``background=False`` every job runs at once in the caller's thread (a
multi-process run, whose checkpoint writes are collectives that every process must make in step).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class SideWork:
    """An ordered lane of jobs beside the loop; ``busy_s`` holds each kind's worker seconds."""

    def __init__(self, background: bool = True):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qsal-side-work") if background else None
        self._pending: list[Future] = []
        self.busy_s: dict[str, float] = {}
        self._failed: BaseException | None = None  # the error of the first job that failed

    def _timed(self, kind: str, fn: Callable, *args) -> Any:
        if self._failed is not None:  # not done: whoever waits for it learns why, as the loop does
            raise self._failed
        t0 = time.perf_counter()
        try:
            return fn(*args)
        except BaseException as e:
            self._failed = e
            raise
        finally:
            self.busy_s[kind] = self.busy_s.get(kind, 0.0) + time.perf_counter() - t0

    def submit(self, kind: str, fn: Callable, *args) -> Future:
        """Queue ``fn(*args)`` behind every job submitted before it; returns its future."""
        if self._pool is None:
            future: Future = Future()
            future.set_result(self._timed(kind, fn, *args))
            return future
        self.check()
        future = self._pool.submit(self._timed, kind, fn, *args)
        self._pending.append(future)
        return future

    def check(self) -> None:
        """Raise the error of a job that has failed; forget the jobs that are done."""
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()

    def drain(self) -> None:
        """Wait for every queued job; raise the first failure."""
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        """Finish the queued jobs (an interrupted run still writes the checkpoint it had queued)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "SideWork":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
