"""The asynchronous mode against the fused engine on one problem at one budget and pacing.

The NumPy Burgers program (`scripts/external_solver.py`, through ``solver.command``) and the JAX
``burgers_1d`` problem compute the same trajectories (to ~1e-6); both runs take 60 simulations at
1.8 updates per simulation with a reservoir buffer, the same surrogate and optimizer, and are
scored on the fused problem's 128-trajectory score set. Prints and writes, per seed, the updates
made and the five numbers, then the async/fused ratios with 95 % t-intervals over seeds.

  python scripts/async_vs_fused.py --workdir=runs/async_vs_fused --seeds=5     # ~2 min a seed on the CPU
"""

import json
import math
import os
import statistics

from absl import app, flags, logging

from qsal_jax.experiments import run_experiment
from qsal_jax.experiments.config_args import load_config

_WORKDIR = flags.DEFINE_string("workdir", "runs/async_vs_fused", "where the runs and results.json go")
_SEEDS = flags.DEFINE_integer("seeds", 5, "seeds 0 … n-1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = {"num_points": 64, "num_steps": 10}
BUDGET, CLIENTS, UPDATES_PER_STEP = 60, 5, 9  # 9 updates per 5 simulations: 1.8 per simulation
OPTIMIZER = {"learning_rate": 3e-3, "warmup_steps": 10, "weight_decay": 1e-5, "grad_clip_norm": 1.0}


def fused_config(seed: int):
    c = load_config(os.path.join(ROOT, "configs", "online_1d.py") + ":uniform")
    c.seed = seed
    c.problem.name, c.problem.kwargs = "burgers_1d", dict(GRID)
    c.online.update(num_steps=BUDGET // CLIENTS, clients_per_step=CLIENTS, train_steps_per_step=UPDATES_PER_STEP,
                    steps_per_sync=4, checkpoint_every=4)
    c.train.batch_size = 32
    c.train.optimizer = dict(OPTIMIZER)
    c.buffer.update(capacity=2048, policy="reservoir", seen_threshold=1, watermark=50)
    c.eval.update(score_size=128, grid_size=0, every=4)
    c.strategy.signal_metric = "mse"
    c.plots = False
    return c


def async_config(seed: int):
    c = load_config(os.path.join(ROOT, "configs", "async_burgers.py") + ":uniform,fused_twin")
    c.seed = seed
    c.solver.update(num_points=GRID["num_points"], num_frames=GRID["num_steps"] + 1, dt=0.01, substeps=1)
    c.eval.update(problem_kwargs=dict(GRID), score_size=128, every=40)
    c.run.update(num_workers=2, simulation_budget=BUDGET, batch_size=32, buffer_capacity=2048, watermark=50,
                 checkpoint_every=40, buffer_policy="reservoir")
    c.optimizer = dict(OPTIMIZER)
    c.plots = False
    return c


def ratio_interval(values):
    """Geometric mean of ``values`` and its 95 % t-interval (on logs)."""
    logs = [math.log(v) for v in values]
    m = statistics.mean(logs)
    if len(logs) < 2:
        return math.exp(m), float("nan"), float("nan")
    from scipy import stats

    half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax's per-save INFO lines
    rows = []
    for seed in range(_SEEDS.value):
        fused = run_experiment(fused_config(seed), os.path.join(_WORKDIR.value, f"fused_s{seed}"), log=lambda *a: None)
        asyn = run_experiment(async_config(seed), os.path.join(_WORKDIR.value, f"async_s{seed}"), log=lambda *a: None)
        rows.append({"seed": seed, "fused_updates": BUDGET // CLIENTS * UPDATES_PER_STEP,
                     "async_updates": asyn["num_train_steps"], "async_updates_per_simulation": asyn["updates_per_simulation"],
                     **{f"{who}_{err}": s[f"{err}_nrmse"] for who, s in (("fused", fused), ("async", asyn))
                        for err in ("one_step", "rollout")}})
        print(json.dumps(rows[-1]))
    ratios = {f"async/fused {err} {n}": ratio_interval([r[f"async_{err}"][n] / r[f"fused_{err}"][n] for r in rows])
              for err in ("one_step", "rollout") for n in ("mean", "max", "p99")}
    for name, (r, lo, hi) in ratios.items():
        print(f"{name}: {r:.2f} [{lo:.2f}, {hi:.2f}]")
    with open(os.path.join(_WORKDIR.value, "results.json"), "w") as f:
        json.dump({"runs": rows, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
