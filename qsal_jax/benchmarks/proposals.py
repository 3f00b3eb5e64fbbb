"""Proposal suite: µs per jitted ``sample`` and ``update`` call, per strategy, dimension and population.

Each strategy is measured where it is used: offline/PINN strategies draw their whole population
(``breed``, ``r3``, ``uniform``, ``quasirandom``: ``n = population``; ``rad``: ``n = population / 10``
from a pool of ``population``), online/pool strategies draw a launch batch (``breed_online``,
``sbal``, ``ogas``: ``n = 64``) and ``update`` sees a training batch of 256 rows (``breed_online``,
``ogas``) or the whole population / scored pool (the others). The state is one ``update`` old,
so mixtures and pools are live. Times are medians after a warm-up call, ``block_until_ready``;
``update`` donates its state (chained ``state = update(state, fb)``), as the fused online step does.

cfg keys (all optional): ``repeats``; ``gpu`` (adds population 100 000); ``proposal_dims``;
``proposal_populations``; ``proposal_strategies`` (registry names or `VARIANTS` labels; add
``"ogas"`` to time it too).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp

from qsal_jax import proposals
from qsal_jax.benchmarks.timing import backend_info, time_chain, time_fn, time_over
from qsal_jax.proposals.base import Feedback
from qsal_jax.simulation.param_space import ParamSpace

STRATEGIES = ("uniform", "quasirandom", "quasirandom_sobol", "breed", "breed_online", "sbal", "r3", "rad")
# Benchmark labels that are a registered strategy with fixed extra settings.
VARIANTS = {"quasirandom_sobol": ("quasirandom", {"sequence": "sobol"})}
ONLINE_N, TRAIN_BATCH = 64, 256


def _plan(name: str, population: int) -> tuple[dict, int, int]:
    """(settings, n drawn per sample call, feedback rows) for one strategy at one population."""
    if name in ("breed", "r3"):
        return {"population": population}, population, population
    if name == "breed_online":
        return {"population": population, "alpha0": 0.5}, ONLINE_N, TRAIN_BATCH
    if name == "sbal":
        return {"pool_size": population}, ONLINE_N, TRAIN_BATCH
    if name == "rad":
        return {"pool_size": population, "replace": False}, max(1, population // 10), TRAIN_BATCH  # as measured before
    if name == "ogas":
        return {}, ONLINE_N, TRAIN_BATCH
    return {}, population, population


def _feedback(space: ParamSpace, key, rows: int, pool_size: int) -> Feedback:
    """``rows`` training rows, and a scored pool of ``pool_size`` (0: none) for pool strategies."""
    k_lam, k_loss, k_id, k_pool, k_score = jax.random.split(key, 5)
    return Feedback(
        lam=space.sample_uniform(k_lam, rows),
        lam_id=jax.random.randint(k_id, (rows,), 0, 4 * rows, jnp.int32),
        time_index=jnp.zeros((rows,), jnp.int32),
        loss=jax.random.exponential(k_loss, (rows,), jnp.float32),
        valid=jnp.ones((rows,), bool),
        step=jnp.asarray(1000, jnp.int32),
        pool=space.sample_uniform(k_pool, pool_size) if pool_size else None,
        pool_score=jax.random.uniform(k_score, (pool_size,), jnp.float32) if pool_size else None,
    )


def measure(name: str, dim: int, population: int, repeats: int = 5) -> dict:
    """One record: median µs of jitted ``sample`` and ``update`` for ``name`` at (dim, population)."""
    space = ParamSpace.vector("lam", dim, -1.0, 1.0)
    strategy, extra = VARIANTS.get(name, (name, {}))
    settings, n, rows = _plan(strategy, population)
    p = proposals.build(strategy, space, **settings, **extra)
    key = jax.random.PRNGKey(0)
    fb = _feedback(space, jax.random.fold_in(key, 1), rows, int(settings.get("pool_size", 0)))
    sample = jax.jit(p.sample, static_argnums=2)  # -> (λ, state): the state is returned, not chained
    state = jax.jit(p.update)(jax.jit(p.init)(key), fb)
    sample_s = time_fn(sample, state, jax.random.fold_in(key, 2), n, repeats=repeats)
    # The state donated, as in a fused step: without donation a [M, D] state is copied every call.
    update = jax.jit(p.update, donate_argnums=0)
    update_s = time_chain(lambda s: update(s, fb), state, repeats=repeats)
    return {
        "suite": "proposals",
        "name": name,
        "dim": dim,
        "population": population,
        "n": n,
        "feedback_rows": rows,
        "sample_us": sample_s * 1e6,
        "update_us": update_s * 1e6,
        "backend": jax.default_backend(),
    }


def run(cfg: dict) -> list[dict]:
    dims = cfg.get("proposal_dims", (4, 308))
    pops = cfg.get("proposal_populations", (1_000, 10_000, 100_000) if cfg.get("gpu") else (1_000, 10_000))
    names = cfg.get("proposal_strategies", STRATEGIES)
    repeats = int(cfg.get("repeats", 5))
    info = backend_info()
    records = []
    for name in names:
        for dim in dims:
            for pop in pops:
                rec = measure(name, dim, pop, repeats)
                rec["device"] = info["device"]
                records.append(rec)
    return records


def time_ogas_calls(space: ParamSpace, *, n: int = 64, batch: int = 256, repeats: int = 20, warm_updates: int = 3, **settings):
    """Median wall time (µs) of jitted ``sample(n)`` and ``update(B=batch)`` with the generator active.

    Runs ``warm_updates`` updates first (with ``min_fill`` and ``ramp_updates`` small enough that the
    generator trains and draws), then times ``repeats`` calls of each. Returns a dict.
    """
    from qsal_jax.proposals.ogas import DEFAULTS, make_ogas

    settings = {"min_fill": min(batch, settings.get("capacity", DEFAULTS["capacity"])), "ramp_updates": 1, **settings}
    p = make_ogas(space, **settings)
    sample = jax.jit(p.sample, static_argnums=2)
    update = jax.jit(p.update)
    key = jax.random.PRNGKey(0)
    state = p.init(key)

    def feedback(i):
        k1, k2 = jax.random.split(jax.random.fold_in(key, i))
        return proposals.make_feedback(space.sample_uniform(k1, batch), jax.random.uniform(k2, (batch,), jnp.float32), step=i)

    fbs = [feedback(i) for i in range(max(warm_updates, 1) + repeats)]
    for i in range(max(warm_updates, 1)):
        state = jax.block_until_ready(update(state, fbs[i]))
    jax.block_until_ready(sample(state, key, n))

    keys = [jax.random.fold_in(key, 1000 + i) for i in range(repeats)]
    t_sample = 1e6 * time_over(lambda k: sample(state, k, n), [(k,) for k in keys])
    t_update = 1e6 * time_over(lambda fb: update(state, fb), [(fb,) for fb in fbs[-repeats:]])
    return {"dim": space.dim, "n": n, "batch": batch, "sample_us": t_sample, "update_us": t_update,
            "mixing_ratio": float(p.mixing_ratio(state))}  # fmt: skip
