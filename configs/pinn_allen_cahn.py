"""PINN for Allen–Cahn (u_t − 1e-4 u_xx + 5u³ − 5u = 0, periodic, u₀ = x² cos πx): collocation by strategy.

The collocation points are redrawn every ``resample_every`` Adam steps by Uniform, offline Breed
(signal r²), R3 or RAD (signal |r|); the error is the relative L2 distance to an ETDRK4 spectral
reference (see `qsal_jax.experiments.pinn`, which also documents the hard-constrained ansatz).

  python scripts/train.py --config=configs/pinn_allen_cahn.py:breed --workdir=runs/pinn/breed
  python scripts/train.py --config=configs/pinn_allen_cahn.py:rad --workdir=runs/pinn/rad
  python scripts/train.py --config=configs/pinn_allen_cahn.py:compare --workdir=runs/pinn_compare

Arguments (comma-separated after the colon): a strategy (``uniform``, ``breed``, ``r3``,
``rad``); ``compare`` for all four and ``report.md``; ``tiny`` for a seconds-long smoke run;
``gpu`` for the full-size network and budget.

Cost: CPU default measured 90–135 s per strategy on 2 shared cores (4 × 64 tanh MLP, 1,024
points, 4,000 Adam steps at ~35–45 steps/s), ``compare`` ~8 min. It is not converged at this size;
measured relative L2 (seed 0): uniform 0.37, breed 0.092, r3 0.096, rad 0.16. ``tiny``: ~10 s,
mostly compilation. ``gpu`` (4 × 128 MLP with 64 Fourier features, 8,192 points, 40,000 steps):
not yet timed on a GPU; expect minutes per strategy on one GPU.
"""

import ml_collections

STRATEGIES = {
    # name: (signal fed to the strategy, settings)
    "uniform": ("abs", {}),
    "breed": ("square", {"sigma": 0.02, "alpha0": 0.3, "alpha1": 0.05, "alpha_max": 0.8}),
    "r3": ("abs", {}),
    "rad": ("abs", {"k": 1.0, "c": 1.0}),
}


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import parse_args

    a = parse_args(arg, groups={"strategy": tuple(STRATEGIES)}, flags=("compare", "tiny", "gpu"))
    args = {k for k, v in a.items() if v is True}
    strategy = a["strategy"] or "breed"

    c = ml_collections.ConfigDict()
    c.kind = "pinn"
    c.name = f"pinn_allen_cahn_{strategy}"
    c.seed = 0
    c.compare = "compare" in args

    c.pde = ml_collections.ConfigDict({"diffusivity": 1e-4, "reaction": 5.0, "x_low": -1.0, "x_high": 1.0, "t_end": 1.0})
    c.model = ml_collections.ConfigDict(
        {"name": "mlp", "hidden": (64, 64, 64, 64), "activation": "tanh", "fourier_features": 0, "fourier_scale": 1.0,
         "corner_term": True}
    )
    signal, settings = STRATEGIES[strategy]
    c.strategy = ml_collections.ConfigDict({"name": strategy, "signal": signal, "settings": dict(settings)})
    c.collocation = ml_collections.ConfigDict({"num_points": 1024, "resample_every": 100})
    c.train = ml_collections.ConfigDict(
        {"iterations": 4000, "learning_rate": 3e-3, "warmup_steps": 100, "end_lr_factor": 0.01, "grad_clip_norm": 1.0}
    )
    # Spectral reference: N = 1024 points (2^-10 · 2 spacing), saved every 0.01, kept on 512 points.
    c.reference = ml_collections.ConfigDict({"num_points": 1024, "dt": 1e-3, "num_times": 101, "subsample": 2})
    c.eval = ml_collections.ConfigDict({"every_rounds": 10, "num_residual_points": 8192})
    c.comparison = ml_collections.ConfigDict(
        {
            "strategies": tuple(STRATEGIES),
            "seeds": (0,),
            "signals": {k: v[0] for k, v in STRATEGIES.items()},
            "settings": {k: dict(v[1]) for k, v in STRATEGIES.items()},
        }
    )

    if "gpu" in args:
        c.model.update(hidden=(128, 128, 128, 128), fourier_features=64)
        c.collocation.update(num_points=8192, resample_every=500)
        c.train.update(iterations=40000, learning_rate=1e-3, warmup_steps=1000)
        c.eval.update(every_rounds=10, num_residual_points=65536)
        c.comparison.seeds = (0, 1, 2)
    if "tiny" in args:
        c.model.hidden = (16, 16)
        c.collocation.update(num_points=64, resample_every=10)
        c.train.update(iterations=30, warmup_steps=5)
        c.reference.update(num_points=256, dt=5e-3, num_times=11, subsample=2)
        c.eval.update(every_rounds=1, num_residual_points=256)
    if c.strategy.name == "rad" or "compare" in args:
        pool = 4 * c.collocation.num_points
        c.comparison.settings["rad"]["pool_size"] = pool
        if c.strategy.name == "rad":
            c.strategy.settings["pool_size"] = pool
    return c
