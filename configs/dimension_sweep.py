"""Dimension sweep: conservative KS whose dim(λ) is dialled without changing the physics.

λ = (A, c_1…c_K, w_1…w_K), D = 2K + 1 ∈ {5, 17, 65, 257} for K ∈ {2, 8, 32, 128}: K periodic
bumps of fixed width, peak-normalised and scaled by the amplitude A (which sets the difficulty),
so K adds shape dimensions and nothing else (`problems.ks_conservative_bumps_1d`). Everything
else is the 1D online config at the authors' protocol (MSE objective, nRMSE signal), at a smaller
budget so one run takes about a minute on 2 CPU cores.

  python scripts/sweep.py --sweep=dimension --workdir runs/results/dimension_sweep   # every D, strategy, seed
  python scripts/train.py --config=configs/dimension_sweep.py:ogas,k32 --workdir=runs/ds_ogas_k32

Arguments: a strategy (uniform, breed_online, ogas, sbal; default uniform), the number of bumps
(k2, k8 — the default —, k32, k128), ``gpu`` for GPU size (not yet timed on one) and ``tiny``
for a seconds-long smoke run.
"""

import ml_collections

STRATEGY_SETTINGS = {
    "uniform": {},
    "breed_online": {"sigma": 0.05, "population": 128, "alpha0": 0.0, "alpha1": 0.004, "alpha_max": 0.7},
    "ogas": {},
    "sbal": {"pool_size": 256},
}
BUMPS = {"k2": 2, "k8": 8, "k32": 32, "k128": 128}


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import parse_args

    a = parse_args(arg, groups={"strategy": tuple(STRATEGY_SETTINGS), "bumps": tuple(BUMPS)}, flags=("tiny", "gpu"))
    strategy = a["strategy"] or "uniform"
    num_bumps = BUMPS[a["bumps"] or "k8"]

    c = ml_collections.ConfigDict()
    c.name = f"dimension_sweep_d{2 * num_bumps + 1}_{strategy}"
    c.seed = 0
    c.plots = False
    c.problem = ml_collections.ConfigDict(
        {"name": "ks_conservative_bumps_1d", "kwargs": {"num_bumps": num_bumps, "num_points": 128, "num_steps": 16}}
    )
    c.model = ml_collections.ConfigDict({"name": "fno1d_tiny", "ensemble_size": 3 if strategy == "sbal" else 1,
                                         "residual": True})
    c.strategy = ml_collections.ConfigDict(
        {"name": strategy, "signal": "loss", "signal_metric": "nrmse", "settings": dict(STRATEGY_SETTINGS[strategy])}
    )
    c.train = ml_collections.ConfigDict(
        {
            "batch_size": 64,
            "loss": "mse",
            "bf16": False,
            "optimizer": {"learning_rate": 2e-3, "warmup_steps": 40, "weight_decay": 1e-5, "grad_clip_norm": 1.0},
        }
    )
    # 40 × 8 = 320 simulations, 320 training steps.
    c.online = ml_collections.ConfigDict(
        {"num_steps": 40, "clients_per_step": 8, "train_steps_per_step": 8, "steps_per_sync": 10, "checkpoint_every": 20}
    )
    c.buffer = ml_collections.ConfigDict({"capacity": 2048, "policy": "reservoir", "seen_threshold": 2, "watermark": 128})
    c.eval = ml_collections.ConfigDict(
        {"score_size": 512, "score_draw": "halton", "seed": 12345, "grid_size": 4, "grid_axes": ("A", "weight_0"),
         "every": 20}
    )
    if a["gpu"]:  # a GPU machine: a wider grid, a bigger surrogate, 8192 simulations
        c.problem.kwargs.update(num_points=512, output_points=128, num_steps=32)
        c.model.name = "fno1d_small"
        c.online.update(num_steps=512, clients_per_step=16, train_steps_per_step=16, steps_per_sync=32,
                        checkpoint_every=128)
        c.train.batch_size = 256
        c.buffer.update(capacity=32768, watermark=2048)
        c.eval.update(score_size=768, every=128)
    if a["tiny"]:
        c.problem.kwargs.update(num_points=64, num_steps=5)
        c.online.update(num_steps=6, clients_per_step=4, train_steps_per_step=2, steps_per_sync=3, checkpoint_every=3)
        c.train.batch_size = 8
        c.train.optimizer.warmup_steps = 2
        c.buffer.update(capacity=128, watermark=8)
        c.eval.update(grid_size=3, score_size=16, every=3)
    return c
