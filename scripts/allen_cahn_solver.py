"""A stand-alone Allen–Cahn solver in NumPy, the non-JAX example of ``solver.command``.

    python scripts/allen_cahn_solver.py --lam '[0.3, 0.8, 0.4]' --out out.npy

Equation: ``u_t = ε² u_xx + u − u³`` on the periodic interval ``[0, 2π)``, from
``u0 = A0 sin(x) + A1 sin(2x + 1)`` with ``λ = (ε, A0, A1)``. Semi-implicit Fourier scheme
(the stiff ``ε² u_xx`` implicit, the reaction explicit: first-order IMEX Euler), ``--substeps``
steps between two saved frames. Writes ``float32 [num_frames, 1, N]``, the first frame u0.

It takes the same command line as ``examples/allen_cahn_pypde.py``, the same problem written
with py-pde (a popular PDE package outside JAX) in about thirty lines, so either one is the
``solver.command`` of ``configs/async_allen_cahn.py``; this one needs only NumPy. Cost: a few
milliseconds per call at N = 64, 10 frames.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def allen_cahn(lam, *, num_points: int = 64, num_frames: int = 11, t_end: float = 2.0, substeps: int = 20) -> np.ndarray:
    """``float32 [num_frames, 1, num_points]``: the trajectory of ``λ = (ε, A0, A1)``."""
    eps, a0, a1 = (float(v) for v in np.asarray(lam, np.float64)[:3])
    x = np.arange(num_points) * (2 * np.pi / num_points)
    k = np.fft.rfftfreq(num_points, d=1.0 / num_points)  # integer wave numbers on [0, 2π)
    h = t_end / (num_frames - 1) / substeps
    implicit = 1.0 / (1.0 + h * eps**2 * k**2)
    u = a0 * np.sin(x) + a1 * np.sin(2 * x + 1.0)
    frames = [u]
    for _ in range(num_frames - 1):
        for _ in range(substeps):
            u = np.fft.irfft(implicit * np.fft.rfft(u + h * (u - u**3)), n=num_points)
        frames.append(u)
    return np.stack(frames)[:, None, :].astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lam", required=True, help="λ = (ε, A0, A1) as a JSON list")
    p.add_argument("--out", required=True, help="trajectory .npy to write, float32 [T, 1, N]")
    p.add_argument("--num-points", type=int, default=64)
    p.add_argument("--num-frames", type=int, default=11)
    p.add_argument("--t-end", type=float, default=2.0)
    p.add_argument("--substeps", type=int, default=20)
    a = p.parse_args(argv)
    u = allen_cahn(json.loads(a.lam), num_points=a.num_points, num_frames=a.num_frames, t_end=a.t_end,
                   substeps=a.substeps)
    np.save(a.out, u)
    return 0


if __name__ == "__main__":
    sys.exit(main())
