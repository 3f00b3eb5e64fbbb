"""Query-synthesis suite: what gradient query synthesis costs on top of Uniform, against K and the window.

The fused loop of the online suite (``configs/online_1d.py:ks`` at `online.CPU_SIZES` or
`online.GPU_SIZES`) with ``adversarial`` at ``ascent_steps`` K ∈ `STEPS` and ``window`` w ∈
`WINDOWS`, its residual objective, and the ``residual`` pool strategy; every timed call of every
entry is interleaved with Uniform's, round by round. Per entry:

- ``overhead_pct`` (medians) and ``overhead_pct_paired`` with its 95 % interval (per-round ratios),
  as the online suite reports them;
- ``temp_bytes``: the compiled loop's temporary buffers (XLA's memory analysis of the whole
  ``run_steps`` program), and ``temp_bytes_over_uniform``: what the strategy adds to the loop's
  peak (0 while a round needs less than the train step already holds);
- ``round_temp_bytes``: the temporary buffers of the strategy's ``update`` compiled alone, the
  peak memory of one round (one pool scoring for ``residual``). The solver window is
  checkpointed per frame, so it grows with particles × window, not with the solver's stages.

cfg keys (all optional): ``gpu``, ``repeats``, ``online_min_rounds``, ``qs_entries`` (strategy
entries ``name:key=value,...`` instead of the default grid).
"""

from __future__ import annotations

import jax

from qsal_jax.benchmarks.online import CPU_SIZES, GPU_SIZES, _Run, config_path, make_config, paired_overhead
from qsal_jax.benchmarks.timing import backend_info

STEPS = (1, 4, 8)
WINDOWS = (1, 4)


def default_entries() -> list[str]:
    entries = [f"adversarial:ascent_steps={k},window={w}" for w in WINDOWS for k in STEPS]
    entries += ["adversarial:objective=residual,ascent_steps=4,window=4", "residual:window=4"]
    return entries


def temp_bytes(run: _Run) -> int | None:
    """Temporary buffers of the compiled loop (None where the backend gives no memory analysis)."""
    compiled = jax.jit(run.engine.run_steps, static_argnums=1).lower(run.state, run.steps).compile()
    analysis = compiled.memory_analysis()
    return None if analysis is None else int(analysis.temp_size_in_bytes)


def round_temp_bytes(run: _Run) -> int | None:
    """Temporary buffers of the strategy's ``update`` compiled alone (one round or one pool
    scoring: the branch that runs when it is due), with the run's surrogate."""
    import jax.numpy as jnp

    from qsal_jax.proposals.base import Feedback

    engine, state = run.engine, run.state
    b, d = engine.batch_size, engine.simulator.space.dim
    params = state.train.params
    fb = Feedback(lam=jnp.zeros((b, d), engine.simulator.dtype), lam_id=jnp.zeros((b,), jnp.int32),
                  time_index=jnp.zeros((b,), jnp.int32), loss=jnp.ones((b,), engine.simulator.dtype),
                  valid=jnp.ones((b,), bool), step=jnp.asarray(1, jnp.int32), surrogate=engine.surrogate(params))
    analysis = jax.jit(engine.strategy.update).lower(state.strategy, fb).compile().memory_analysis()
    return None if analysis is None else int(analysis.temp_size_in_bytes)


def run(cfg: dict) -> list[dict]:
    gpu = bool(cfg.get("gpu"))
    sizes = dict(GPU_SIZES if gpu else CPU_SIZES, **cfg.get("online_sizes", {}))
    entries = list(cfg.get("qs_entries", default_entries()))
    repeats = max(int(cfg.get("repeats", 3)), int(cfg.get("online_min_rounds", 5)))
    path = config_path(cfg)
    runs = {e: _Run(make_config(e, sizes, path, gpu=gpu), sizes["steps"]) for e in ["uniform", *entries]}
    memory = {e: temp_bytes(r) for e, r in runs.items()}
    round_memory = {e: round_temp_bytes(r) for e, r in runs.items() if e != "uniform"}
    for _ in range(repeats):
        for timer in runs.values():
            timer.timed_call()
    base = runs["uniform"]
    common = {"suite": "query_synthesis", "problem": "ks_1d", "config": path, "sizes": sizes, **backend_info()}
    records = []
    for entry, r in runs.items():
        if entry == "uniform":
            continue
        settings = dict(item.split("=") for item in filter(None, entry.partition(":")[2].split(",")))
        records.append({
            **common,
            "name": f"ks_1d/query_synthesis/{entry}",
            "strategy": entry.partition(":")[0],
            "ascent_steps": int(settings.get("ascent_steps", 0)) or None,
            "window": int(settings.get("window", 1)),
            "objective": settings.get("objective", "solver" if entry.startswith("adversarial") else "residual"),
            "wall_s": r.wall,
            "baseline_wall_s": base.wall,
            "overhead_pct": 100.0 * (r.wall / base.wall - 1.0),
            **paired_overhead(r.times, base.times),
            "temp_bytes": memory[entry],
            "temp_bytes_over_uniform": None if memory[entry] is None or memory["uniform"] is None
            else memory[entry] - memory["uniform"],
            "round_temp_bytes": round_memory[entry],
            # adversarial rounds run in all (a pool strategy has none)
            "rounds": int(r.state.strategy.rounds) if hasattr(r.state.strategy, "rounds") else None,
        })
    return records
