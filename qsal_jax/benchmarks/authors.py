"""Authors'-regime suite: where an OGAS run at the authors' settings spends its time.

At the sizes of ``configs/authors_1d.py:ogas`` (KdV, λ of 4 dims, 5,000 simulations, 9,000
surrogate updates of batch 64), the jitted OGAS calls are timed alone (`proposals.time_ogas_calls`):

- ``update_train_us``: an update that trains the generator (4 steps of the width-1024 DDPM and
  of the ratio classifier, batch 128), as on every ``train_every``-th update;
- ``update_push_us``: an update that only pushes (λ, ε) pairs into the 6,000-row FIFO;
- ``refill_us``: a generator call for ``draw_batch`` = 55 rows (100 ancestral steps, up to 4
  rejection rounds), as once per 55 launches.

``estimated_generator_s`` multiplies them by their counts in one run (updates / train_every
training updates, the rest pushes, simulations / draw_batch refills): the generator's share of
a run, to compare with a measured run's wall time (``wall_split_s`` of its summary.json).

cfg keys (all optional): ``repeats``; ``authors_config`` (the path of configs/authors_1d.py,
from which the OGAS settings and sizes are read; scripts/benchmark.py passes it).
"""

from __future__ import annotations

from qsal_jax.benchmarks.proposals import time_ogas_calls
from qsal_jax.benchmarks.timing import backend_info


def run(cfg: dict) -> list[dict]:
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.simulation import get_problem

    path = cfg.get("authors_config")
    if not path:
        raise ValueError("cfg['authors_config']: the path of configs/authors_1d.py is required (scripts/benchmark.py passes it)")
    config = load_config(f"{path}:ogas")
    settings = dict(config.strategy.settings)
    space = get_problem(config.problem.name, **dict(config.problem.kwargs)).space
    repeats = int(cfg.get("repeats", 3)) * 3
    batch, q = int(config.train.batch_size), int(settings["draw_batch"])
    base = dict(settings, min_fill=min(batch, settings["capacity"]), ramp_updates=1)
    train = time_ogas_calls(space, n=q, batch=batch, repeats=repeats, **dict(base, train_every=1))
    push = time_ogas_calls(space, n=q, batch=batch, repeats=repeats, **dict(base, train_every=10**6))
    updates = config.online.num_steps * config.online.train_steps_per_step
    simulations = config.online.num_steps * config.online.clients_per_step
    k = int(settings["train_every"])
    counts = {"training_updates": updates // k, "push_updates": updates - updates // k, "refills": simulations // q}
    estimate = {
        "training_s": counts["training_updates"] * train["update_us"] * 1e-6,
        "push_s": counts["push_updates"] * push["update_us"] * 1e-6,
        "refill_s": counts["refills"] * train["sample_us"] * 1e-6,
    }
    return [{
        "suite": "authors", "name": "kdv_1d/authors/ogas_paper_calls", "config": f"{path}:ogas", **backend_info(),
        "update_train_us": train["update_us"], "update_push_us": push["update_us"], "refill_us": train["sample_us"],
        "draw_batch": q, "train_every": k, **counts, **estimate,
        "estimated_generator_s": sum(estimate.values()),
    }]
