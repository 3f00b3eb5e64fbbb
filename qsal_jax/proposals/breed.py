"""Breed, offline rounds (Dymchenko & Raffin, 2023): resample around high-loss samples.

Round ``i`` (``update`` receives the whole current dataset: its λ and one loss per sample, so the
feedback has ``B = N`` rows) builds the proposal

    GM(x) ∝ Σ_{i=1}^{N} l_i N(x; x_i, σ² I)        (x in the unit cube, σ in unit-cube units)

and ``sample(n)`` returns ``N_c = ⌊α_i n + ½⌋`` draws from GM and ``n − N_c`` from Unif, the
split deterministic and the rows shuffled (`combinators.mix_uniform` with ``split="exact"``), with ``α_i = min(α1·i + α0, α_max)`` (the slides write
``max`` but mean a cap) and ``i = 0`` for the first GM built.

Rules (see `_common`):

* boundary: each Gaussian draw is reflected into ``[0, 1]`` coordinate by coordinate, then clipped;
* losses: non-finite, negative, zero or invalid → weight 0; weights are divided by their max
  before normalising, so 1e30 is as good as 1; rows whose λ is non-finite are dropped;
* fallback: no positive weight → the ``N_c`` concentrated draws become uniform draws as well
  (no information, so explore); before the first ``update`` every draw is uniform;
* the round counter is the number of ``update`` calls (``Feedback.step`` is not read), so a
  driver cannot desynchronise α from the GM it belongs to.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import DriverContext, Feedback, Proposal
from qsal_jax.proposals.combinators import mix_uniform
from qsal_jax.simulation.param_space import ParamSpace


class BreedState(NamedTuple):
    centres: jax.Array  # [N, D] float: λ of the last dataset, unit cube
    cdf: jax.Array  # [N] float: inverse-CDF table of the normalised weights l_i / Σ l
    has_mass: jax.Array  # [] bool: some loss was positive (else concentrated draws fall back to Unif)
    round: jax.Array  # [] int32: index i of the GM held (-1 before the first update)


def breed(
    space: ParamSpace,
    *,
    sigma=0.05,
    alpha0: float = 0.5,
    alpha1: float = 0.1,
    alpha_max: float = 0.9,
    population: int = 1024,
    dtype=C.DEFAULT_DTYPE,
    context: DriverContext | None = None,
) -> Proposal:
    """Offline Breed over ``space``.

    Args:
      sigma: kernel standard deviation in unit-cube units, scalar or ``[D]``.
      alpha0, alpha1, alpha_max: the schedule ``α_i = min(α1·i + α0, α_max)``.
      population: N, the most rows a feedback may carry (fewer are padded with zero weight).
      dtype: floating dtype of λ and of the state.
      context: the driver's `DriverContext`; its ``feedback_rows`` must not exceed ``population``.

    ``sample(state, key, n) -> (λ [n, D], state)``; ``update(state, Feedback with B <= N rows) -> state``.
    """
    checks.sigma("breed", sigma, space.dim)
    checks.alpha("breed", alpha0, alpha1, alpha_max)
    population = checks.integer("breed", "population", population, lo=1)
    rows = context.feedback_rows if context is not None else None
    if rows is not None and rows > population:
        raise checks.SettingError("breed", "population", f"({population}) must hold a whole feedback: the driver "
                                  f"gives {rows} rows per update")
    dim = space.dim

    def init(key: jax.Array) -> BreedState:
        del key
        return BreedState(
            centres=jnp.full((population, dim), 0.5, dtype),
            cdf=C.categorical_cdf(jnp.ones((population,), dtype)),
            has_mass=jnp.zeros((), bool),
            round=jnp.full((), -1, jnp.int32),
        )

    def alpha(state: BreedState) -> jax.Array:
        """The mixing weight used by the next ``sample`` (0 without a usable GM)."""
        a = C.alpha_schedule(jnp.maximum(state.round, 0), alpha0, alpha1, alpha_max, dtype)
        return jnp.where(state.has_mass & (state.round >= 0), a, jnp.zeros((), dtype))

    def sample_gm(state: BreedState, key: jax.Array, n: int):
        return C.to_box(space, C.gm_sample(key, state.centres, state.cdf, sigma, n)), state

    def update(state: BreedState, feedback: Feedback) -> BreedState:
        b = feedback.loss.shape[0]
        if b > population:
            raise ValueError(f"breed: feedback has {b} rows but population={population}; build with population >= {b}")
        z, finite = C.lam_to_unit(space, feedback.lam, dtype)
        w, has_mass = C.safe_weights(feedback.loss, jnp.asarray(feedback.valid, bool) & finite, dtype)
        pad = population - b
        centres = jnp.concatenate([z, jnp.full((pad, dim), 0.5, dtype)], axis=0)
        w = jnp.concatenate([w, jnp.zeros((pad,), dtype)])
        return BreedState(centres, C.categorical_cdf(w), has_mass, state.round + jnp.ones((), jnp.int32))

    return mix_uniform(Proposal(init, sample_gm, update), space, alpha, split="exact", dtype=dtype)
