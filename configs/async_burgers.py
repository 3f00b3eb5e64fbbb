"""The asynchronous mode: an external solver (a separate program per simulation) in a worker pool.

The solver is ``solver.command``: here ``scripts/external_solver.py``, a NumPy Burgers code that
imports nothing from qsal_jax, run as a subprocess per λ = (A0, A1, φ0, φ1) given as a JSON list
(``{lam}``); any executable that writes a ``[T, C, *grid]`` ``.npy`` to ``{out}`` works the same
way (``configs/async_allen_cahn.py`` runs a py-pde-style script). A tiny FNO in the fused
engine's residual form trains on results as they arrive, 1.8 updates per arrived simulation (the
authors' batches per simulation), and the strategy draws each new λ from its latest state when a
worker frees.

  python scripts/train_async.py --config=configs/async_burgers.py --workdir=runs/async_burgers
  python scripts/train_async.py --config=configs/async_burgers.py:uniform,tiny --workdir=runs/async_tiny

Arguments: a strategy (breed_online — the default —, uniform, quasirandom); ``dask`` to run the
workers on a dask cluster (``executor.address``; empty: a local cluster) instead of a process
pool; ``tiny`` for a seconds-long run; ``fused_twin``: λ gains the viscosity (``--nu
{diffusivity}``) and the grid, steps and score set of the fused ``burgers_1d`` problem, so the
run compares with a fused run of that problem on one score set. Run the same command again after
an interruption and it resumes from the last checkpoint, launching again what was in flight.
Cost: ``tiny`` ~1 min on one CPU core shared with other work (measured; 8 simulations and an
8-trajectory score set, simulated once and cached, each a Python start-up of ~0.3 s, plus
compiling the train step and the evaluation); the default's 64 simulations and 64-trajectory
score set take a few minutes (not timed here). ``fused_twin`` at 60 simulations of 64 points
(RESULTS: none yet) took ~2.5 min, its fused twin ~1.3 min, on one busy core.
"""

import math
import os

import ml_collections

STRATEGY_SETTINGS = {
    "breed_online": {"sigma": 0.05, "population": 64, "alpha0": 0.0, "alpha1": 0.01, "alpha_max": 0.7},
    "uniform": {},
    "quasirandom": {},
}
SOLVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "external_solver.py")


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import parse_args

    a = parse_args(arg, groups={"strategy": tuple(STRATEGY_SETTINGS)}, flags=("dask", "tiny", "fused_twin"))
    strategy = a["strategy"] or "breed_online"

    c = ml_collections.ConfigDict()
    c.kind = "async"
    c.name = f"async_burgers_{strategy}"
    c.seed = 0
    # The program and its settings: {python}, {num_points}, ... are this group's fields, {lam} λ as a
    # JSON list, {<name>} one λ component, {out} the .npy to write. timeout_s kills a run's process
    # tree; a faulty λ is launched again crashes_before_redraw times, then a fresh one is drawn.
    c.solver = ml_collections.ConfigDict({
        "command": ["{python}", SOLVER, "--lam", "{lam}", "--out", "{out}", "--num-points", "{num_points}",
                    "--num-frames", "{num_frames}", "--dt", "{dt}", "--substeps", "{substeps}", "--nu", "{nu}"],
        "num_points": 64, "num_frames": 11, "channels": 1, "dt": 0.05, "substeps": 4, "nu": 0.1,
        "timeout_s": 60.0, "crashes_before_redraw": 1})
    # λ's names and box, in the order {lam} gives them to the program.
    c.space = (("A0", 0.2, 1.0), ("A1", 0.2, 1.0), ("phi0", 0.0, 2 * math.pi), ("phi1", 0.0, 2 * math.pi))
    c.model = ml_collections.ConfigDict({"name": "fno1d_tiny", "residual": True, "cond_names": ()})
    c.strategy = ml_collections.ConfigDict({"name": strategy, "settings": dict(STRATEGY_SETTINGS[strategy])})
    c.optimizer = ml_collections.ConfigDict({"learning_rate": 3e-3, "warmup_steps": 20, "weight_decay": 1e-5})
    c.train = ml_collections.ConfigDict({"updates_per_simulation": 1.8, "loss": "mse"})
    # `qsal_jax.online.async_records.AsyncConfig` fields (checkpoint_dir is the workdir's).
    c.run = ml_collections.ConfigDict(
        {"num_workers": 4, "simulation_budget": 64, "batch_size": 32, "buffer_capacity": 2048,
         "buffer_policy": "reservoir", "watermark": 64, "task_timeout_s": 120.0, "checkpoint_every": 20,
         "checkpoint_every_s": 60.0, "max_train_steps": None, "max_faults": 100}
    )
    # The score set: score_size λ by scrambled Halton over the box, simulated once by the command.
    c.eval = ml_collections.ConfigDict({"score_size": 64, "seed": 12345, "draw": "halton", "every": 40,
                                        "problem": "", "problem_kwargs": {}})
    c.executor = ml_collections.ConfigDict({"kind": "dask" if a["dask"] else "process", "address": ""})
    # What the program does not say, for exports (The Well's layout): the grid's length, time between frames.
    c.data = ml_collections.ConfigDict({"domain_length": 2 * math.pi, "frame_dt": c.solver.dt})
    c.plots = True
    if a["fused_twin"]:  # burgers_1d's grid, steps and λ; its score set, shared with fused runs of it
        c.name = f"async_burgers_twin_{strategy}"
        c.solver.command[-1] = "{diffusivity}"
        c.solver.update(num_points=128, num_frames=41, dt=0.01, substeps=1)
        c.data.frame_dt = 0.01
        c.space = c.space + (("diffusivity", 0.01, 0.1),)
        c.model.cond_names = ("diffusivity",)
        c.eval.update(problem="burgers_1d", score_size=512)
    if a["tiny"]:
        c.solver.update(num_points=32, num_frames=6, substeps=1 if a["fused_twin"] else 2)
        c.run.update(num_workers=2, simulation_budget=8, batch_size=8, buffer_capacity=128, watermark=8,
                     checkpoint_every=4, max_faults=16)
        c.eval.update(score_size=8, every=4)
        c.optimizer.warmup_steps = 2
        if a["fused_twin"]:
            c.eval.problem_kwargs = {"num_points": 32, "num_steps": 5}
            c.eval.score_size = 16
    return c
