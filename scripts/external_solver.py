"""A stand-alone external solver for the asynchronous mode: 1D viscous Burgers in NumPy.

It stands in for a solver written outside JAX (a Fortran or C++ code, a commercial package):
it imports nothing from ``qsal_jax``, reads λ from a file, writes a trajectory ``.npy`` and
exits. `qsal_jax.online.external.ExecutableSolver` runs it as a subprocess::

    python scripts/external_solver.py --lam '[0.5, 0.3, 1.0, 2.0]' --out out.npy
    python scripts/external_solver.py --lam-file in.json --out out.npy
    echo '[0.5, 0.3, 1.0, 2.0]' | python scripts/external_solver.py --lam-file - --out out.npy

In an async config it is one ``solver.command`` (configs/async_burgers.py)::

    ["{python}", "scripts/external_solver.py", "--lam", "{lam}", "--out", "{out}", ...]

Equation and scheme: ``u_t + (u²/2)_x = ν u_xx`` on the periodic interval ``[0, L)``,
Fourier pseudo-spectral in space (2/3-rule dealiasing of the quadratic term) and ETDRK2
(Cox & Matthews 2002) in time, with the φ-functions evaluated by contour integrals
(Kassam & Trefethen 2005) so small ``|hL|`` loses no precision. The initial condition is the
wave superposition of the method's 1D experiments,
``u0 = A0 sin(2π x / L + φ0) + A1 sin(4π x / L + φ1)`` with ``λ = (A0, A1, φ0, φ1)``.
The output is ``float32 [T, 1, N]``: T = ``--num-frames`` saved states, the first one u0.

Cost: about 10 ms of compute per call at the defaults (N = 64, 10 frames × 4 substeps);
a run is dominated by the Python start-up (~0.2 s).

Fault hooks for tests (environment variables, or the ``fault`` fields of `Solver`):
  QSAL_SOLVER_FAULT       crash (exit status 3; from Python: raise), exit (exit status 3; from
                          Python: kill the calling process), hang (sleep forever), garbage
                          (wrong shape), nan (non-finite values), dtype (integer array)
  QSAL_SOLVER_FAULT_ONCE  a file path: fault only in the call that creates this file, so a
                          flaky solver fails exactly once however many processes share it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

FAULTS = ("crash", "exit", "hang", "garbage", "nan", "dtype")
FAULT_ENV = "QSAL_SOLVER_FAULT"
FAULT_ONCE_ENV = "QSAL_SOLVER_FAULT_ONCE"


class SolverCrash(RuntimeError):
    """The injected ``crash`` fault when called from Python."""


def phi_functions(z: np.ndarray, num_points: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``φ1(z) = (e^z − 1)/z`` and ``φ2(z) = (e^z − 1 − z)/z²`` for real ``z`` (any shape).

    Contour mean over a unit circle around each ``z`` (Kassam & Trefethen 2005): exact to
    machine precision for ``|z| ≲ 1`` where the closed forms cancel catastrophically.
    """
    r = np.exp(1j * np.pi * (np.arange(1, num_points + 1) - 0.5) / num_points)
    w = z[..., None] + r
    phi1 = np.mean((np.exp(w) - 1) / w, axis=-1).real
    phi2 = np.mean((np.exp(w) - 1 - w) / w**2, axis=-1).real
    return phi1, phi2


def initial_condition(lam: np.ndarray, x: np.ndarray, length: float) -> np.ndarray:
    """``A0 sin(2πx/L + φ0) + A1 sin(4πx/L + φ1)``; ``lam [≥4]``, ``x [N]`` → ``[N]``."""
    a0, a1, p0, p1 = (float(v) for v in lam[:4])
    k = 2 * np.pi / length
    return a0 * np.sin(k * x + p0) + a1 * np.sin(2 * k * x + p1)


def burgers(
    lam: np.ndarray,
    *,
    num_points: int = 64,
    num_frames: int = 11,
    dt: float = 0.05,
    substeps: int = 4,
    nu: float = 0.1,
    length: float = 2 * np.pi,
) -> np.ndarray:
    """Viscous Burgers trajectory from the wave IC of ``lam [≥4]``: ``float32 [num_frames, 1, N]``.

    Frames are ``dt`` apart (time units of ``length``); each frame takes ``substeps`` ETDRK2 steps.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim != 1 or lam.shape[0] < 4:
        raise ValueError(f"burgers: λ must be a vector (A0, A1, φ0, φ1, ...), got shape {lam.shape}")
    x = np.arange(num_points) * (length / num_points)
    k = 2 * np.pi * np.fft.rfftfreq(num_points, d=length / num_points)
    dealias = np.arange(k.size) <= num_points // 3  # 2/3 rule: drop |m| > N/3
    h = dt / substeps
    lin = -nu * k**2
    e = np.exp(h * lin)
    phi1, phi2 = phi_functions(h * lin)

    def nonlinear(v_hat: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(v_hat, n=num_points)
        return -0.5j * k * dealias * np.fft.rfft(u * u)

    v = np.fft.rfft(initial_condition(lam, x, length))
    frames = [np.fft.irfft(v, n=num_points)]
    for _ in range(num_frames - 1):
        for _ in range(substeps):
            n0 = nonlinear(v)
            a = e * v + h * phi1 * n0
            v = a + h * phi2 * (nonlinear(a) - n0)
        frames.append(np.fft.irfft(v, n=num_points))
    return np.stack(frames)[:, None, :].astype(np.float32)


def _claim(flag: str | None) -> bool:
    """True when no flag is set, or when this call is the one that creates the flag file."""
    if not flag:
        return True
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def apply_fault(u: np.ndarray, fault: str | None, fault_once: str | None = None, *, exit_on_crash: bool = False):
    """Corrupt ``u`` (or crash / hang) as ``fault`` says; ``None`` or an unclaimed ``fault_once`` → ``u``."""
    if not fault:
        return u
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    if not _claim(fault_once):
        return u
    if fault in ("crash", "exit"):
        if exit_on_crash:
            print(f"external_solver: injected {fault}", file=sys.stderr)
            sys.exit(3)
        if fault == "exit":
            os._exit(3)  # no cleanup: what a segfaulting solver linked into a worker looks like
        raise SolverCrash("external_solver: injected crash")
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "garbage":
        return u[:, :, : u.shape[-1] // 2]
    if fault == "nan":
        return np.where(np.arange(u.shape[-1]) % 7 == 3, np.nan, u).astype(u.dtype)
    return (1000 * u).astype(np.int64)  # "dtype"


@dataclasses.dataclass(frozen=True)
class Solver:
    """`burgers` as a picklable callable ``solve(lam [D]) -> float32 [T, 1, N]``, with fault hooks."""

    num_points: int = 64
    num_frames: int = 11
    dt: float = 0.05
    substeps: int = 4
    nu: float = 0.1
    fault: str | None = None
    fault_once: str | None = None

    def __call__(self, lam: np.ndarray) -> np.ndarray:
        u = burgers(
            lam, num_points=self.num_points, num_frames=self.num_frames, dt=self.dt, substeps=self.substeps, nu=self.nu
        )
        return apply_fault(u, self.fault, self.fault_once)


def read_lam(path: str) -> np.ndarray:
    """λ from a JSON list given inline (``[0.5, ...]``), a ``.npy`` file, a JSON file (a list, or
    ``{"lam": [...]}``), or JSON on stdin (``-``)."""
    if path.lstrip().startswith("["):
        return np.asarray(json.loads(path), dtype=np.float64)
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False).astype(np.float64)
    data = json.load(sys.stdin) if path == "-" else json.load(open(path, encoding="utf-8"))
    if isinstance(data, dict):
        data = data["lam"]
    return np.asarray(data, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    lam = p.add_mutually_exclusive_group(required=True)
    lam.add_argument("--lam", dest="lam_file", help="λ as a JSON list")
    lam.add_argument("--lam-file", help="λ as .npy or JSON; '-' reads JSON from stdin")
    p.add_argument("--out", required=True, help="trajectory .npy to write, float32 [T, 1, N]")
    p.add_argument("--num-points", type=int, default=64)
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--dt", type=float, default=0.05)
    p.add_argument("--substeps", type=int, default=4)
    p.add_argument("--nu", type=float, default=0.1)
    args = p.parse_args(argv)
    u = burgers(
        read_lam(args.lam_file),
        num_points=args.num_points,
        num_frames=args.num_frames,
        dt=args.dt,
        substeps=args.substeps,
        nu=args.nu,
    )
    u = apply_fault(u, os.environ.get(FAULT_ENV), os.environ.get(FAULT_ONCE_ENV), exit_on_crash=True)
    np.save(args.out, u)
    return 0


if __name__ == "__main__":
    sys.exit(main())
