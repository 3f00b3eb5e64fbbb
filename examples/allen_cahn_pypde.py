"""Allen–Cahn with py-pde, as a user of that package writes it: one ``solver.command`` of
``configs/async_allen_cahn.py:pypde``, run by the interpreter of py-pde's own virtual environment.

    python examples/allen_cahn_pypde.py --lam '[0.3, 0.8, 0.4]' --out out.npy

The same problem and command line as ``scripts/allen_cahn_solver.py`` (NumPy only):
``u_t = ε² u_xx + u − u³`` on the periodic ``[0, 2π)`` from ``u0 = A0 sin(x) + A1 sin(2x + 1)``,
λ = (ε, A0, A1); writes ``float32 [num_frames, 1, N]``. It imports nothing from qsal_jax.
"""

import argparse
import json

import numpy as np
import pde

p = argparse.ArgumentParser()
p.add_argument("--lam", required=True)
p.add_argument("--out", required=True)
p.add_argument("--num-points", type=int, default=64)
p.add_argument("--num-frames", type=int, default=11)
p.add_argument("--t-end", type=float, default=2.0)
p.add_argument("--substeps", type=int, default=20)
a = p.parse_args()
eps, a0, a1 = json.loads(a.lam)[:3]

grid = pde.CartesianGrid([[0, 2 * np.pi]], [a.num_points], periodic=True)
x = grid.axes_coords[0]
state = pde.ScalarField(grid, a0 * np.sin(x) + a1 * np.sin(2 * x + 1.0))
eq = pde.PDE({"u": f"{eps ** 2} * laplace(u) + u - u**3"})
interval = a.t_end / (a.num_frames - 1)
storage = pde.MemoryStorage()
eq.solve(state, t_range=a.t_end, dt=interval / a.substeps, solver="implicit", tracker=storage.tracker(interval))
u = np.stack([field.data for field in storage])[: a.num_frames]
np.save(a.out, u[:, None, :].astype(np.float32))
