"""The asynchronous mode with a non-JAX solver of another PDE: Allen–Cahn, ``u_t = ε² u_xx + u − u³``.

``solver.command`` runs ``scripts/allen_cahn_solver.py`` (NumPy) once per λ = (ε, A0, A1); with
``pypde`` it runs ``examples/allen_cahn_pypde.py`` instead, the same problem written with py-pde,
under the interpreter of py-pde's own virtual environment (``solver.python``; README, "Solvers
outside JAX")::

  python scripts/train_async.py --config=configs/async_allen_cahn.py --workdir=runs/async_ac
  python scripts/train_async.py --config=configs/async_allen_cahn.py:pypde \\
      --config.solver.python=$HOME/venvs/pypde/bin/python --workdir=runs/async_ac_pypde

Arguments: a strategy (breed_online — the default —, uniform), ``pypde``, ``tiny`` (seconds).
ε is fed to the surrogate (``model.cond_names``), the interface width it must learn.
Cost: ``tiny`` ~1.5 min on one CPU core shared with other work (measured, figures included);
the default's 64 simulations take a few minutes (not timed here).
"""

import os

import ml_collections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLVERS = {"numpy": os.path.join(ROOT, "scripts", "allen_cahn_solver.py"),
           "pypde": os.path.join(ROOT, "examples", "allen_cahn_pypde.py")}


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import load_config, parse_args

    a = parse_args(arg, groups={"strategy": ("breed_online", "uniform")}, flags=("pypde", "tiny"))
    strategy = a["strategy"] or "breed_online"
    c = load_config(os.path.join(ROOT, "configs", "async_burgers.py") + ":" + strategy + (",tiny" if a["tiny"] else ""))
    c.name = f"async_allen_cahn_{strategy}" + ("_pypde" if a["pypde"] else "")
    # "python": "" means the trainer's own interpreter; give py-pde's for the pypde script.
    c.solver = ml_collections.ConfigDict({
        "command": ["{python}", SOLVERS["pypde" if a["pypde"] else "numpy"], "--lam", "{lam}", "--out", "{out}",
                    "--num-points", "{num_points}", "--num-frames", "{num_frames}", "--t-end", "{t_end}",
                    "--substeps", "{substeps}"],
        "python": "", "num_points": 32 if a["tiny"] else 64, "num_frames": 6 if a["tiny"] else 11, "channels": 1,
        "t_end": 2.0, "substeps": 20, "timeout_s": 60.0, "crashes_before_redraw": 1})
    c.space = (("eps", 0.15, 0.5), ("A0", 0.2, 1.0), ("A1", 0.2, 1.0))  # the order of {lam}
    c.model.cond_names = ("eps",)
    c.data.frame_dt = c.solver.t_end / (c.solver.num_frames - 1)
    return c
