"""Black-box solvers for the asynchronous mode: the worker-side call and result checks.

A black-box solver is any picklable callable ``solve(lam: float64 [D]) -> float [T, C, *grid]``
(T ≥ 2 saved states, the first one the initial state), or an external program wrapped by
`ExecutableSolver`. This module imports only NumPy and the standard library: it is what a
spawned worker process imports to run a task, so a worker starts in a fraction of a second
instead of paying for JAX.

Faults are sorted into kinds (counted separately in the run summary):

=========== ============================================================================
error       the solver raised, or the program exited with a non-zero status
crash       the worker process died (``BrokenExecutor``); the pool is recreated
timeout     the task ran past its deadline (a hung program or worker)
garbage     not a float array ``[T ≥ 2, C, *grid]`` of the expected shape, or unreadable
nonfinite   NaN or ±inf anywhere in the trajectory, or once cast to the buffer's dtype
            (float64 values beyond float32's range become inf there)
=========== ============================================================================

`WorkerPool` is the trainer's handle on the executor the workers run in. Built from a factory
(the default: a spawn-context process pool) it is *owned*: after a hang or a dead worker it is
thrown away, its processes killed, and a fresh one built, because a hung process can be neither
cancelled nor joined and would otherwise block shutdown. A borrowed executor (one passed in, or
a dask ``Client``'s) is never restarted or shut down here: a hung task is only abandoned.

An owned pool's workers die with the trainer, however it dies (`die_with_parent`): a SIGKILLed
trainer leaves no worker holding its stdout, and so no caller waiting on that stdout hangs.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

from qsal_jax.online.solver_command import check_command, fill_command

FAULT_KINDS = ("error", "crash", "timeout", "garbage", "nonfinite")

Solve = Callable[[np.ndarray], Any]  # lam float64 [D] -> float [T, C, *grid]


class SolverError(RuntimeError):
    """The solver failed: it raised, or its program exited with a non-zero status."""


class SolverTimeout(SolverError):
    """The solver's program ran past its time limit and was killed."""


class SolverOutputError(SolverError):
    """The solver's program finished but its output file is missing or unreadable."""


def call_solver(solve: Solve, lam: np.ndarray) -> Any:
    """What a worker runs: ``solve(lam)`` on a float64 ``[D]`` copy of λ, result unchecked.

    The result is checked on the trainer side (`check_trajectory`), so a worker never decides
    what counts as garbage and a faulty result costs one transfer, not a lost worker.
    """
    return solve(np.array(lam, dtype=np.float64))


def classify_exception(exc: BaseException) -> str:
    """Fault kind of an exception raised by a task: ``timeout``, ``garbage`` or ``error``.

    ``BrokenExecutor`` (a dead worker process) is told apart by the caller, which must also
    recreate the pool.
    """
    if isinstance(exc, SolverTimeout):
        return "timeout"
    if isinstance(exc, SolverOutputError):
        return "garbage"
    return "error"


def check_trajectory(
    u: Any, expected_shape: tuple[int, ...] | None = None, dtype: Any = None
) -> tuple[str, str] | None:
    """``None`` for a usable trajectory, else ``(kind, reason)`` with kind ``garbage`` or ``nonfinite``.

    Usable: a NumPy float array ``[T, C, *grid]`` with ``T ≥ 2``, at least one spatial axis,
    shape ``expected_shape`` when given, and finite everywhere, also once cast to ``dtype`` (the
    buffer's) when given: float64 values beyond float32's range are finite here and inf there.
    """
    if not isinstance(u, np.ndarray):
        return "garbage", f"returned {type(u).__name__}, expected a numpy array [T, C, *grid]"
    if not np.issubdtype(u.dtype, np.floating):
        return "garbage", f"dtype {u.dtype}, expected a floating dtype"
    if u.ndim < 3 or u.shape[0] < 2:
        return "garbage", f"shape {u.shape}, expected [T >= 2, C, *grid]"
    if expected_shape is not None and u.shape != tuple(expected_shape):
        return "garbage", f"shape {u.shape}, expected {tuple(expected_shape)}"
    bad = int(np.size(u) - np.isfinite(u).sum())
    if bad:
        return "nonfinite", f"{bad} non-finite values"
    if dtype is not None:
        with np.errstate(over="ignore"):
            bad = int(np.size(u) - np.isfinite(u.astype(dtype)).sum())
        if bad:
            return "nonfinite", f"{bad} values beyond the range of {np.dtype(dtype)} (max |u| {np.abs(u).max():.3g})"
    return None


@dataclasses.dataclass(frozen=True)
class ExecutableSolver:
    """An external program as a solver: λ on its command line or in a file, trajectory ``.npy`` out.

    ``argv`` is the command line with the placeholders ``{out}`` (path of the ``.npy`` the program
    must write, ``[T, C, *grid]``), ``{lam}`` (λ as a JSON list, e.g. ``[0.5, 0.3, 1.0, 2.0]``),
    ``{lam_file}`` (path of λ written as ``lam_format`` says) and ``{<name>}`` (one component of λ
    by its name in ``names``, a float: ``{A0:.6g}`` takes a format spec), e.g.::

        ExecutableSolver((sys.executable, "scripts/external_solver.py",
                          "--lam", "{lam}", "--out", "{out}"), timeout_s=30)

    Attributes:
      argv: program and arguments, a list (a string is refused: no shell splits it).
      timeout_s: wall-clock limit of one run; past it the program's whole process group is
        killed and `SolverTimeout` raised, so a hung program never holds a worker.
      lam_format: ``json`` (a list of D floats), ``npy`` (float64 ``[D]``), or ``stdin`` (the
        JSON list on standard input; ``{lam_file}`` then reads ``-``).
      env: variables added to the inherited environment.
      cwd: working directory of the program (default: the worker's).
      names: λ's component names, for the ``{<name>}`` placeholders.
    """

    argv: tuple[str, ...]
    timeout_s: float = 60.0
    lam_format: str = "json"
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    names: tuple[str, ...] = ()

    def __post_init__(self):
        # Accept lists and mappings but store tuples, so the solver stays hashable and picklable.
        try:
            argv = check_command(self.argv, tuple(self.names))
        except ValueError as e:
            raise ValueError(f"ExecutableSolver: argv: {e}") from None
        object.__setattr__(self, "argv", argv)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        env = self.env.items() if isinstance(self.env, Mapping) else self.env
        object.__setattr__(self, "env", tuple((str(k), str(v)) for k, v in env))
        if self.lam_format not in ("json", "npy", "stdin"):
            raise ValueError(f"ExecutableSolver: lam_format must be json, npy or stdin, got {self.lam_format!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"ExecutableSolver: timeout_s must be > 0, got {self.timeout_s}")

    def __call__(self, lam: np.ndarray) -> np.ndarray:
        """Run the program on ``lam [D]``; returns the array it wrote (unchecked, see `check_trajectory`)."""
        lam = np.asarray(lam, dtype=np.float64)
        with tempfile.TemporaryDirectory(prefix="qsal_solver_") as tmp:
            out = os.path.join(tmp, "out.npy")
            lam_path, stdin = _write_lam(lam, tmp, self.lam_format)
            argv = fill_command(self.argv, lam, self.names, out, lam_path)
            code, stderr = _run(argv, stdin, self.timeout_s, dict(os.environ, **dict(self.env)), self.cwd, tmp)
            if code != 0:
                raise SolverError(f"{os.path.basename(argv[0])} exited with status {code}: {stderr[-500:].strip()}")
            try:
                return np.load(out, allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise SolverOutputError(f"{os.path.basename(argv[0])} wrote no readable .npy at {{out}}: {e}") from None


def _write_lam(lam: np.ndarray, tmp: str, lam_format: str) -> tuple[str, bytes | None]:
    """``(path for {lam}, bytes for stdin or None)``."""
    if lam_format == "stdin":
        return "-", json.dumps(lam.tolist()).encode()
    if lam_format == "npy":
        path = os.path.join(tmp, "lam.npy")
        np.save(path, lam)
        return path, None
    path = os.path.join(tmp, "lam.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(lam.tolist(), f)
    return path, None


def _run(
    argv: Sequence[str], stdin: bytes | None, timeout_s: float, env: dict, cwd: str | None, tmp: str
) -> tuple[int, str]:
    """Run ``argv`` in its own session; ``(exit status, stderr text)``; raises `SolverTimeout`.

    Output goes to files, not pipes, and the whole process group is killed on timeout, so a
    grandchild that keeps a pipe open cannot make the wait outlive the limit.
    """
    err_path = os.path.join(tmp, "stderr.txt")
    with open(err_path, "wb") as err, open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=devnull,
            stderr=err,
            env=env,
            cwd=cwd,
            start_new_session=True,
            # Only in a pool worker: there no other thread can hold a lock the forked child needs.
            preexec_fn=_kill_with_parent if _IN_WORKER else None,
        )
        try:
            proc.communicate(stdin, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise SolverTimeout(f"{os.path.basename(argv[0])} ran past {timeout_s:g} s and was killed") from None
        except BaseException:
            _kill_group(proc)
            raise
    with open(err_path, "rb") as f:
        return proc.returncode, f.read().decode(errors="replace")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def spawn_process_pool(num_workers: int) -> cf.ProcessPoolExecutor:
    """``num_workers`` worker processes started with ``spawn``, each dying with this process.

    Not ``fork``: the trainer process runs JAX's thread pools, and forking a multithreaded
    process can deadlock the child.
    """
    return cf.ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=die_with_parent, initargs=(os.getpid(),))


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_IN_WORKER = False  # set by `die_with_parent` in a pool worker


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that started it ends; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _kill_with_parent() -> None:
    """``preexec_fn`` of a solver program started by a worker: it dies with that worker."""
    _set_parent_death_signal(signal.SIGKILL)


def die_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """Worker initializer: end this process as soon as ``parent_pid`` (the trainer) is gone.

    A SIGKILLed trainer runs no shutdown code, and its workers would live on, holding its stdout
    and its resource tracker. On Linux the kernel kills the worker with its parent
    (``PR_SET_PDEATHSIG``; the parent is the thread that spawned the worker, which for an owned
    pool is the trainer loop's thread, alive as long as the pool). Everywhere, a daemon thread
    also polls the parent pid, and the check right after the ``prctl`` covers a parent that died
    before it.
    """
    global _IN_WORKER
    _IN_WORKER = True
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, poll_s), name="qsal-watch-parent", daemon=True).start()


def _watch_parent(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


def discard_executor(executor: cf.Executor) -> None:
    """Shut ``executor`` down without waiting; kill its worker processes if it has any.

    A killed process pool marks its pending futures broken and its manager thread exits, so
    the interpreter's exit hook has nothing left to join. Threads cannot be killed: a hung
    thread of a ``ThreadPoolExecutor`` still blocks exit, so thread workers must bound their
    own time (as `ExecutableSolver` does with its subprocess timeout).
    """
    kill = getattr(executor, "kill_workers", None)  # Python >= 3.14
    procs = list((getattr(executor, "_processes", None) or {}).values())  # earlier versions
    if kill is not None:
        kill()
    else:
        for p in procs:
            p.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=10)


class WorkerPool:
    """The executor the workers run in, owned (restartable) or borrowed.

    ``executor`` may be ``None`` (own a `spawn_process_pool` of ``num_workers``), a zero-argument
    factory returning an ``Executor`` (owned), an ``Executor`` (borrowed), or a dask
    ``distributed.Client`` (borrowed through ``client.get_executor(pure=False)``, so that two
    tasks with equal λ are still two simulations).
    """

    def __init__(self, executor: Any, num_workers: int):
        self._factory: Callable[[], cf.Executor] | None = None
        if executor is None:
            self._factory = functools.partial(spawn_process_pool, num_workers)
        elif isinstance(executor, cf.Executor):
            self.executor = executor
        elif hasattr(executor, "get_executor"):
            self.executor = executor.get_executor(pure=False)
        elif callable(executor):
            self._factory = executor
        else:
            raise TypeError(
                f"executor must be None, an Executor, a dask Client or a factory; got {type(executor).__name__}"
            )
        if self._factory is not None:
            self.executor = self._factory()
        self.generation = 0  # bumped by each restart; tasks remember the generation they ran in

    @property
    def owned(self) -> bool:
        return self._factory is not None

    @property
    def uses_processes(self) -> bool:
        """Tasks cross a process boundary here, so the solver must pickle."""
        return isinstance(self.executor, cf.ProcessPoolExecutor)

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        return self.executor.submit(fn, *args)

    def restart(self) -> bool:
        """Replace an owned executor by a fresh one (killing the old workers); False if borrowed."""
        if not self.owned:
            return False
        discard_executor(self.executor)
        self.executor = self._factory()
        self.generation += 1
        return True

    def close(self, *, abandon: bool) -> None:
        """Shut an owned executor down: wait for it, or kill it when tasks are being ``abandon``-ed."""
        if not self.owned:
            return
        if abandon:
            discard_executor(self.executor)
        else:
            self.executor.shutdown(wait=True)


def check_picklable(solver) -> None:
    """A `TypeError` with the way out when ``solver`` cannot go to a worker process."""
    import pickle

    try:
        pickle.dumps(solver)
    except Exception as e:
        raise TypeError(
            f"the solver must pickle to run in worker processes ({e}); define it at module level, "
            "or pass a thread executor"
        ) from None


def format_lam(lam) -> str:
    """λ for a log line, at full float32 precision."""
    import numpy as np

    return np.array2string(np.asarray(lam), precision=6, separator=", ", max_line_width=10_000)
