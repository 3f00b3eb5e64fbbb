"""The asynchronous mode: an external solver (a separate program per simulation) in a worker pool.

The solver is ``scripts/external_solver.py``, a NumPy Burgers code that imports nothing from
qsal_jax, run as a subprocess per λ = (A0, A1, φ0, φ1); a tiny FNO trains on results as they
arrive, and the strategy draws each new λ from its latest state when a worker frees.

  python scripts/train_async.py --config=configs/async_burgers.py --workdir=runs/async_burgers
  python scripts/train_async.py --config=configs/async_burgers.py:uniform,tiny --workdir=runs/async_tiny

Arguments: a strategy (breed_online — the default —, uniform, quasirandom); ``dask`` to run the
workers on a dask cluster (``executor.address``; empty: a local cluster) instead of a process
pool; ``tiny`` for a seconds-long run. Run the same command again after an interruption and it
resumes from the last checkpoint, launching again what was in flight.
Cost: default ~1 min on 2 CPU cores (64 simulations of 0.2 s each plus Python start-up).
"""

import math

import ml_collections

STRATEGY_SETTINGS = {
    "breed_online": {"sigma": 0.05, "population": 64, "alpha0": 0.0, "alpha1": 0.01, "alpha_max": 0.7},
    "uniform": {},
    "quasirandom": {},
}


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import parse_args

    a = parse_args(arg, groups={"strategy": tuple(STRATEGY_SETTINGS)}, flags=("dask", "tiny"))
    strategy = a["strategy"] or "breed_online"

    c = ml_collections.ConfigDict()
    c.kind = "async"
    c.name = f"async_burgers_{strategy}"
    c.seed = 0
    # scripts/external_solver.py's command-line settings, and the limit on one of its runs.
    c.solver = ml_collections.ConfigDict({"num_points": 64, "num_frames": 11, "substeps": 4, "nu": 0.1, "timeout_s": 60.0})
    c.space = ml_collections.ConfigDict({"A0": (0.2, 1.0), "A1": (0.2, 1.0), "phi0": (0.0, 2 * math.pi),
                                         "phi1": (0.0, 2 * math.pi)})
    c.model = ml_collections.ConfigDict({"name": "fno1d_tiny"})
    c.strategy = ml_collections.ConfigDict({"name": strategy, "settings": dict(STRATEGY_SETTINGS[strategy])})
    c.optimizer = ml_collections.ConfigDict({"learning_rate": 3e-3, "warmup_steps": 20, "weight_decay": 1e-5})
    # `qsal_jax.online.async_records.AsyncConfig` fields (checkpoint_dir is the workdir's).
    c.run = ml_collections.ConfigDict(
        {"num_workers": 4, "simulation_budget": 64, "batch_size": 32, "buffer_capacity": 2048, "buffer_policy": "fifo",
         "watermark": 64, "task_timeout_s": 120.0, "checkpoint_every": 20, "max_train_steps": None, "max_faults": 100}
    )
    c.executor = ml_collections.ConfigDict({"kind": "dask" if a["dask"] else "process", "address": ""})
    if a["tiny"]:
        c.solver.update(num_points=32, num_frames=6, substeps=2)
        c.run.update(num_workers=2, simulation_budget=8, batch_size=8, buffer_capacity=128, watermark=8,
                     checkpoint_every=4, max_faults=16)
        c.optimizer.warmup_steps = 2
    return c
