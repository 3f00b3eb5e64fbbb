"""The authors' regime in 1D: their objective, signal, presets and schedules at 5,000 simulations.

Everything the authors' OGAS code sets for its online 1D runs that this CPU can afford
(docs/design.md, "The authors' regime", lists each value, its source and what still differs):

* objective ½ (MSE at t+1 + MSE of the 2-step rollout), signal the nRMSE of the t+2 prediction
  of the same forward pass; buffer items of three consecutive frames (``train.objective``);
* 1.8 surrogate batches of 64 per simulation (5 clients and 9 updates per online step), Adam at
  5e-4 with 1,000 warm-up steps and a cosine decay to 0 at the last update;
* a reservoir buffer of 1.5 % of the budget's trajectories, training from 50 simulations on;
* the strategies' presets: online Breed (ours, its α ramp reaching 0.7 at 75 % of the run), the
  authors' Breed in generations (``breed_generations``), OGAS as the authors set it.

  python scripts/study.py --study=authors_kdv          # 5 seeds × 4 strategies, records committed
  python scripts/train.py --config=configs/authors_1d.py:ogas --workdir=runs/authors_kdv_ogas

Arguments: a strategy (uniform — the default —, breed_online, breed_generations, ogas), a problem
(kdv — the default, λ = (A0, A1, φ0, φ1) —, ks_conservative, λ of 4 dims, or ``highd``:
conservative KS with 32 bumps, D = 65), ``key=value`` for a strategy setting, ``tiny`` for a seconds-long run of the same code, and
``gpu`` for the authors' own size (800 points, 75 frames, 10,000 simulations; for a GPU machine).
Cost on 2 CPU cores: Uniform ~8 min, OGAS ~12 min (BENCHMARKS.md, "The authors' regime").
"""

import os

STRATEGIES = ("uniform", "breed_online", "breed_generations", "ogas")
PROBLEMS = ("kdv", "ks_conservative", "highd")
UPDATES_PER_SIMULATION = 1.8  # the authors' rate_limit_speed_batch_per_sim
BUFFER_FRACTION = 0.015  # the authors' buffer_size_pct: trajectories held / budget
WATERMARK_SIMULATIONS = 50  # the authors' watermark_num_sim


def get_config(arg: str | None = None):
    from qsal_jax.experiments.config_args import load_config, parse_args, set_settings

    a = parse_args(arg, groups={"strategy": STRATEGIES, "problem": PROBLEMS}, flags=("tiny", "gpu"), settings=True)
    strategy = a["strategy"] or "uniform"
    problem = a["problem"] or "kdv"
    here = os.path.dirname(os.path.abspath(__file__))
    base = "breed_online" if strategy == "breed_generations" else strategy  # online_1d knows no breed_generations
    c = load_config(os.path.join(here, "online_1d.py") + ":" + ",".join(
        [base] + (["ks_conservative"] if problem == "ks_conservative" else [])))
    c.name = f"authors_1d_{problem}_{strategy}"
    c.strategy.name = strategy
    c.plots = False
    if problem == "highd":
        c.problem.name = "ks_conservative_bumps_1d"
        c.problem.kwargs = {"num_bumps": 32, "num_points": 160, "num_steps": 20}

    c.train.loss = "mse"
    c.train.objective = "two_step"
    c.strategy.signal_metric = "nrmse"
    clients, updates = 5, 9  # 1.8 updates per simulation
    simulations = 5000
    if a["gpu"]:  # the authors' size: 800 points, 75 frames, 10,000 simulations, a 550k-parameter FNO
        c.problem.kwargs.update(num_points=800, output_points=160, num_steps=75)
        c.model.name = "fno1d_small"
        clients, updates, simulations = 10, 18, 10000
    c.online.update(num_steps=simulations // clients, clients_per_step=clients, train_steps_per_step=updates,
                    steps_per_sync=25, checkpoint_every=100)
    c.train.batch_size = 64
    if a["tiny"]:
        c.problem.kwargs.update(num_points=64, num_steps=5)
        simulations = 60
        c.online.update(num_steps=simulations // clients, steps_per_sync=3, checkpoint_every=6)
        c.train.batch_size = 8
        c.eval.update(grid_size=0, score_size=16, every=6)
    else:
        c.eval.update(grid_size=0, score_size=512, every=100)
    total_updates = c.online.num_steps * updates
    items = c.problem.kwargs["num_steps"] - 1  # two-step items per trajectory: T − 2 of T frames
    trajectories = max(int(round(BUFFER_FRACTION * simulations)), 2 * clients)
    c.buffer.update(capacity=trajectories * items, policy="reservoir", seen_threshold=1,
                    watermark=min(WATERMARK_SIMULATIONS, trajectories) * items)
    warmup = min(1000, total_updates // 9)
    c.train.optimizer = {"learning_rate": 5e-4, "warmup_steps": warmup, "total_steps": total_updates,
                         "end_lr_factor": 0.0, "weight_decay": 0.0, "grad_clip_norm": 1.0}
    c.strategy.settings = strategy_settings(strategy, c, trajectories, total_updates)
    set_settings(c, a["settings"])  # key=value arguments: the command's own settings win
    return c


def strategy_settings(strategy: str, c, trajectories: int, total_updates: int) -> dict:
    """Each strategy's settings at this budget (docs/design.md, "The authors' regime")."""
    frames = c.problem.kwargs["num_steps"] + 1
    if strategy == "breed_online":  # ours, as in online_1d: α reaches 0.7 at 75 % of the updates
        return {"sigma": 0.05, "population": trajectories, "alpha0": 0.0, "alpha1": 0.7 / (0.75 * total_updates),
                "alpha_max": 0.7}
    if strategy == "breed_generations":  # Melissa's breeder as the authors configure it
        return {"sigma": 0.1, "population": trajectories, "min_rows": int(round(0.33 * frames)),
                "generation_every": 3 * trajectories, "min_simulations": 2 * WATERMARK_SIMULATIONS,
                "r_max": 0.7, "ramp_generations": 3, "shrink": 0.3, "redraws": 10}
    if strategy == "ogas":
        # Guidance 5 in the authors' ε̂_∅ + s (ε̂_c − ε̂_∅) is w = s − 1 = 4 in ours. The generator
        # trains 4 steps on every 22nd update (~0.33 generator steps per simulation, the authors'
        # ~70 passes over a 6,000-row window in 10,000 simulations); the share reaches 0.7 after
        # 4 × 100 updates in the authors' code (2.2 % of their 18,000), here after 2.2 % of ours.
        # The generator draws 55 rows at once (the ~100 updates / 1.8 of one authors' generation).
        train_every = 22
        return {"guidance": 4.0, "steps": 100, "hidden": 1024, "depth": 3, "lr": 2e-4, "capacity": 6000,
                "batch_size": 128, "eps_mode": "cap", "eps_cap": 5.0, "ema_decay": 0.7, "r_max": 0.7,
                "train_steps": 4, "train_every": train_every, "draw_batch": 55,
                "ramp_updates": max(1, int(round(0.022 * total_updates / train_every))), "prior_importance": True}
    return {}
