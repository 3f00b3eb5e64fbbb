"""Pool selection by the surrogate's consistency residual: SBAL's loop without an ensemble.

A pool of ``pool_size`` uniform λ is scored with r(λ) (`surrogate_error.consistency_residual`):
the surrogate rolls out ``window`` frames from λ's initial condition and, at each of its own
frames, is compared with one solver frame taken from the same state. No label, no ensemble, and
no solver trajectory from u_0: ``window`` solver frames per candidate. ``sample(n)`` picks pool
members as SBAL does (power sampling ∝ r^β without replacement, or the top n), re-scoring once
per selection round of ``launches_per_round`` launches (0: every launch batch), after
``warmup_simulations`` uniform draws.
"""

from __future__ import annotations

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import DriverContext, ScoredProposal
from qsal_jax.proposals.combinators import with_pool
from qsal_jax.proposals.sbal import pool_selection, power_log_weights
from qsal_jax.proposals.surrogate_error import residual_scorer
from qsal_jax.simulation.param_space import ParamSpace


def residual(
    space: ParamSpace,
    *,
    pool_size: int = 256,
    beta: float = 1.0,
    selection: str = "power",
    window: int = 1,
    warmup_simulations: int = 0,
    launches_per_round: int = 0,
    dtype=C.DEFAULT_DTYPE,
    context: DriverContext | None = None,
) -> ScoredProposal:
    """Residual-scored pool selection over ``space`` (module docstring); ``context``: the driver
    must hand a rollout surrogate whose trajectories are longer than ``window`` frames."""
    checks.choice("residual", "selection", selection, ("power", "topk"))
    beta = checks.real("residual", "beta", beta, 0)
    pool_size = checks.integer("residual", "pool_size", pool_size, lo=1)
    window = checks.integer("residual", "window", window, lo=1)
    checks.integer("residual", "warmup_simulations", warmup_simulations, lo=0)
    checks.integer("residual", "launches_per_round", launches_per_round, lo=0)
    checks.rollout_surrogate("residual", context, frames=window)
    select = pool_selection(space, pool_size, lambda r: power_log_weights(r, beta, dtype), replace=False,
                            greedy=selection == "topk", name="residual", dtype=dtype)
    return with_pool(select, space, pool_size, residual_scorer(window), round_size=launches_per_round,
                     warmup=warmup_simulations, name="residual", dtype=dtype)
