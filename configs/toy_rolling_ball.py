"""Toy: offline Breed rounds vs Uniform on the rolling-ball double well (Dymchenko & Raffin 2023).

An MLP learns where a ball released at x ∈ [−2, 2]^2 comes to rest; 100 initial oracle calls,
then 20 rounds of 100 new calls each chosen by the strategy; scored by MSE on a uniform and a
near-boundary validation set (see `qsal_jax.experiments.toy`).

  python scripts/train.py --config=configs/toy_rolling_ball.py --workdir=runs/toy/breed_accumulate
  python scripts/train.py --config=configs/toy_rolling_ball.py:uniform --workdir=runs/toy/uniform
  python scripts/train.py --config=configs/toy_rolling_ball.py:breed,replace --workdir=runs/toy/breed_replace
  python scripts/train.py --config=configs/toy_rolling_ball.py:compare --workdir=runs/toy_compare

Arguments (comma-separated after the colon): a strategy (``breed``, ``uniform``,
``quasirandom``); a data-update rule (``replace``, ``accumulate``, ``window``); ``compare`` to
run breed/{replace,accumulate,window} and uniform/accumulate over 3 seeds and write
``report.md``; ``tiny`` for a seconds-long smoke run; ``gpu`` for a bigger network, 5D and a
larger budget.

Cost: CPU default ~3–10 s per run on 2 shared cores after a one-off ~15–40 s (oracle compile,
validation sets, jit); ``compare`` (4 variants × 3 seeds) measured 2 min. ``tiny``: ~20 s, mostly
compilation. ``gpu``: not measured on a GPU; the runs are small and the oracle's adaptive ODE
solve is the bulk of it, so expect minutes rather than hours.
Measured (CPU default, 8 seeds, MSE relative to uniform/accumulate): breed/accumulate 0.90 on the
uniform set and 0.66 on the near-boundary set (lower in 7 of 8 seeds); breed/window 2.5 and 1.4;
breed/replace 9.6 and 3.7 (it trains on the last round's 100 points only).
"""

import ml_collections

STRATEGY_SETTINGS = {
    # sigma in unit-cube units (0.02 → 0.08 in the [−2, 2] box); α grows from exploration to 0.8.
    "breed": {"sigma": 0.02, "alpha0": 0.3, "alpha1": 0.05, "alpha_max": 0.8},
    "uniform": {},
    "quasirandom": {},
}
RULES = ("replace", "accumulate", "window")


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import parse_args

    a = parse_args(arg, groups={"strategy": tuple(STRATEGY_SETTINGS), "rule": RULES}, flags=("compare", "tiny", "gpu"))
    args = {k for k, v in a.items() if v is True}
    strategy = a["strategy"] or "breed"
    rule = a["rule"] or "accumulate"

    c = ml_collections.ConfigDict()
    c.kind = "toy"
    c.name = f"toy_rolling_ball_{strategy}_{rule}"
    c.seed = 0
    c.compare = "compare" in args

    c.problem = ml_collections.ConfigDict({"dim": 2, "low": -2.0, "high": 2.0, "method": "flow"})
    c.model = ml_collections.ConfigDict({"name": "mlp", "hidden": (64, 64, 64), "activation": "tanh"})
    c.strategy = ml_collections.ConfigDict({"name": strategy, "settings": dict(STRATEGY_SETTINGS[strategy])})
    c.data_update = ml_collections.ConfigDict({"rule": rule, "window": 500})
    # Budget: initial + num_rounds * per_round oracle calls; (num_rounds + 1) * iterations Adam steps.
    c.rounds = ml_collections.ConfigDict({"initial": 100, "per_round": 100, "num_rounds": 20, "iterations": 500})
    c.train = ml_collections.ConfigDict(
        {
            "batch_size": 128,  # minibatches drawn with replacement; 0: full batch
            "optimizer": {"learning_rate": 3e-3, "warmup_steps": 100, "weight_decay": 0.0, "grad_clip_norm": 1.0},
        }
    )
    c.eval = ml_collections.ConfigDict(
        {"num_uniform": 2000, "num_hard": 1000, "epsilon": 0.05, "bisection_steps": 20, "seed": 1234}
    )
    c.comparison = ml_collections.ConfigDict(
        {
            "variants": ("breed/replace", "breed/accumulate", "breed/window", "uniform/accumulate"),
            "seeds": (0, 1, 2),
            "settings": {k: dict(v) for k, v in STRATEGY_SETTINGS.items()},
        }
    )

    if "gpu" in args:
        c.problem.dim = 5
        c.model.hidden = (256, 256, 256, 256)
        c.rounds.update(initial=1000, per_round=1000, num_rounds=30, iterations=2000)
        c.train.batch_size = 1024
        c.data_update.window = 5000
        c.eval.update(num_uniform=10000, num_hard=5000)
        c.comparison.seeds = (0, 1, 2, 3, 4)
    if "tiny" in args:
        c.model.hidden = (16, 16)
        c.rounds.update(initial=32, per_round=32, num_rounds=2, iterations=20)
        c.train.optimizer.warmup_steps = 5
        c.data_update.window = 48
        c.eval.update(num_uniform=128, num_hard=64, bisection_steps=10)
        c.comparison.seeds = (0,)
    return c
