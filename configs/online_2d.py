"""2D online active learning with high-dimensional λ (the OGAS study's setting).

Problems (first argument): ``ks`` — Kuramoto–Sivashinsky, truncated-Fourier IC (K = 150
modes: 301 dims with the domain length L ∈ [10, 130]); ``gray_scott`` — 12 Gaussian blobs
and L ∈ [0.5, 10] (49 dims); ``kolmogorov`` — Kolmogorov flow, 32-mode vorticity IC and
ν ∈ [0.003, 0.008] (65 dims). Solved on a fine grid, trained on a coarse one. Surrogate:
``fno`` (default) or ``unet``. Strategy: ogas (default), breed, sbal, uniform, adversarial, residual. Protocol: the
authors' by default (MSE objective, nRMSE signal), ``nrmse`` or ``mse`` for both. ``key=value``
sets a strategy setting (a Python literal). Unknown arguments are an error. Scored on a 256-trajectory scrambled-Halton score set over the whole
box (768 for ``gpu``); the grid over (amp_0, L/ν) is for heat maps only.

  python scripts/train.py --config=configs/online_2d.py:ks,ogas --workdir=runs/ks2d_ogas
  python scripts/train.py --config=configs/online_2d.py:gray_scott,unet,uniform --workdir=...
  python scripts/train.py --config=configs/online_2d.py:kolmogorov,sbal,gpu --workdir=...

Cost: CPU default (64² solve, 32² train, budget 160 simulations) measured 70 s per Kolmogorov run
on 2 cores (KS and Gray–Scott not re-timed); at this size the Kolmogorov surrogates beat persistence by only
~15 % (RESULTS.md);
``gpu``: 256² solve, 128² train, fno2d_28m, budget 8192 simulations (hours on one GPU).
The AL overhead of each strategy is measured by the online benchmark suite.
"""

import ml_collections

PROBLEMS = {
    "ks": ("ks_2d_fourier", ("amp_0", "L")),
    "gray_scott": ("gray_scott_blobs", ("amp_0", "L")),
    "kolmogorov": ("kolmogorov_fourier", ("amp_0", "nu")),
}
STRATEGIES = {
    "ogas": {},
    "breed": {"sigma": 0.05, "population": 512, "alpha0": 0.0, "alpha1": 0.002, "alpha_max": 0.7},
    "sbal": {"pool_size": 128},
    "uniform": {},
    # Gradient query synthesis through the 2D solver (docs/design.md): rounds of 8 particles
    # (two launch batches), 4 ascent steps; the residual scores 128 candidates over 2 frames.
    "adversarial": {"particles": 8, "ascent_steps": 4, "step_size": 0.03, "window": 1, "alpha0": 0.0,
                    "alpha1": 0.002, "alpha_max": 0.7},
    "residual": {"pool_size": 128, "window": 2},
}


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import parse_args, set_settings

    a = parse_args(arg, groups={"problem": tuple(PROBLEMS), "strategy": tuple(STRATEGIES), "model": ("fno", "unet"),
                                "protocol": ("nrmse", "mse")}, flags=("gpu", "tiny"), settings=True)
    args = {v for v in a.values() if isinstance(v, str)} | {k for k, v in a.items() if v is True}
    problem_key = a["problem"] or "ks"
    strategy = a["strategy"] or "ogas"
    problem, axes = PROBLEMS[problem_key]

    c = ml_collections.ConfigDict()
    c.name = f"online_2d_{problem_key}_{strategy}"
    c.seed = 0
    c.plots = True
    c.problem = ml_collections.ConfigDict({"name": problem, "kwargs": {"num_points": 64, "output_points": 32}})
    c.model = ml_collections.ConfigDict(
        {"name": "unet2d_tiny" if "unet" in args else "fno2d_tiny", "ensemble_size": 3 if strategy == "sbal" else 1,
         "residual": True}
    )
    c.strategy = ml_collections.ConfigDict(
        {"name": "breed_online" if strategy == "breed" else strategy, "signal": "loss", "signal_metric": "nrmse",
         "settings": dict(STRATEGIES[strategy])}
    )
    c.train = ml_collections.ConfigDict(
        {"batch_size": 32, "loss": "mse", "bf16": False,
         "optimizer": {"learning_rate": 2e-3, "warmup_steps": 50, "weight_decay": 1e-5, "grad_clip_norm": 1.0}}
    )
    c.online = ml_collections.ConfigDict(
        {"num_steps": 40, "clients_per_step": 4, "train_steps_per_step": 8, "steps_per_sync": 10, "checkpoint_every": 20}
    )
    c.buffer = ml_collections.ConfigDict({"capacity": 1024, "policy": "reservoir", "seen_threshold": 2, "watermark": 64})
    c.eval = ml_collections.ConfigDict(
        {"score_size": 256, "score_draw": "halton", "seed": 12345, "grid_size": 4, "grid_axes": axes, "every": 20}
    )
    if a["protocol"]:
        c.train.loss = c.strategy.signal_metric = a["protocol"]
        c.name += f"_{a['protocol']}"

    if "gpu" in args:
        c.problem.kwargs = {"num_points": 256, "output_points": 128}
        c.model.name = "unet2d_medium" if "unet" in args else "fno2d_28m"
        c.train.update(batch_size=64, bf16=True)
        c.online.update(num_steps=1024, clients_per_step=8, train_steps_per_step=16, steps_per_sync=32, checkpoint_every=128)
        c.buffer.update(capacity=16384, watermark=1024)
        c.eval.update(grid_size=8, score_size=768, every=128)
    if "tiny" in args:
        c.problem.kwargs = {"num_points": 16, "output_points": 16, "num_steps": 2, "save_every": 2}
        c.online.update(num_steps=4, clients_per_step=2, train_steps_per_step=2, steps_per_sync=2, checkpoint_every=2)
        c.train.batch_size = 4
        c.train.optimizer.warmup_steps = 2
        c.buffer.update(capacity=64, watermark=4)
        c.eval.update(grid_size=2, score_size=4, every=2)
        c.plots = False
    if strategy == "residual":  # the pool is scored once per selection round (10 per run)
        c.strategy.settings["launches_per_round"] = max(1, c.online.num_steps * c.online.clients_per_step // 10)
    if strategy == "adversarial":  # a round spans whole launch batches
        c.strategy.settings["particles"] = max(c.strategy.settings["particles"], c.online.clients_per_step)
    set_settings(c, a["settings"])  # key=value arguments: the command's own settings win
    return c
