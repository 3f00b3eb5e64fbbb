"""Dimension sweep: conservative KS whose dim(λ) is dialled without changing the physics.

λ = (A, c_1…c_K, w_1…w_K), D = 2K + 1 ∈ {5, 17, 65, 257} for K ∈ {2, 8, 32, 128}: K periodic
bumps of fixed width, peak-normalised and scaled by the amplitude A (which sets the difficulty),
so K adds shape dimensions and nothing else (`problems.ks_conservative_bumps_1d`). Everything
else is ``configs/online_1d.py`` (loaded here, then the differences set) at the authors'
protocol (MSE objective, nRMSE signal), at a smaller budget so one run takes about a minute on
2 CPU cores.

  python scripts/sweep.py --sweep=dimension --workdir runs/results/dimension_sweep   # every D, strategy, seed
  python scripts/train.py --config=configs/dimension_sweep.py:ogas,k32 --workdir=runs/ds_ogas_k32

Arguments: a strategy (uniform, breed_online, ogas, sbal; default uniform), the number of bumps
(k2, k8 — the default —, k32, k128), ``gpu`` for GPU size (not yet timed on one) and ``tiny``
for a seconds-long smoke run.
"""

import os

STRATEGY_SETTINGS = {
    "uniform": {},
    "breed_online": {"sigma": 0.05, "population": 128, "alpha0": 0.0, "alpha1": 0.004, "alpha_max": 0.7},
    "ogas": {},
    "sbal": {"pool_size": 256},
}
BUMPS = {"k2": 2, "k8": 8, "k32": 32, "k128": 128}


def get_config(arg: str | None = None):
    """online_1d's config for the same strategy and size, with this problem and budget."""
    from qsal_jax.experiments.config_args import load_config, parse_args, set_settings

    a = parse_args(arg, groups={"strategy": tuple(STRATEGY_SETTINGS), "bumps": tuple(BUMPS)}, flags=("tiny", "gpu"),
                   settings=True)
    strategy = a["strategy"] or "uniform"
    num_bumps = BUMPS[a["bumps"] or "k8"]
    size = ",".join(flag for flag in ("gpu", "tiny") if a[flag])
    c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "online_1d.py") + f":{strategy},{size}")

    c.name = f"dimension_sweep_d{2 * num_bumps + 1}_{strategy}"
    c.plots = False
    c.problem.name = "ks_conservative_bumps_1d"
    c.problem.kwargs = {"num_bumps": num_bumps, "num_points": 128, "num_steps": 16}
    c.strategy.settings = dict(STRATEGY_SETTINGS[strategy])
    c.train.optimizer.warmup_steps = 40
    c.online.num_steps = 40  # × 8 clients = 320 simulations, 320 training steps
    c.buffer.watermark = 128
    c.eval.update(grid_size=4, grid_axes=("A", "weight_0"))
    if a["gpu"]:  # a GPU machine: a wider grid, a bigger surrogate, 8192 simulations
        c.problem.kwargs.update(num_points=512, output_points=128, num_steps=32)
        c.online.num_steps = 512
        c.buffer.watermark = 2048
        c.eval.grid_size = 4
    if a["tiny"]:
        c.problem.kwargs.update(num_points=64, num_steps=5)
        c.online.num_steps = 6
        c.train.optimizer.warmup_steps = 2
        c.buffer.watermark = 8
        c.eval.grid_size = 3
    set_settings(c, a["settings"])  # key=value arguments: the command's own settings win
    return c
