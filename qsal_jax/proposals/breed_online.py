"""Breed online (Dymchenko et al., 2024): a moving population scored by training losses.

Online training has no set of all past samples and no extra scoring pass, so the proposal is
built from the losses the training step already computed. At training step ``i`` the batch
carries losses ``l_{jti}`` (simulation ``j``, time index ``t``); with ``m_i`` and ``s_i`` the mean and
standard deviation (ddof 0) of the batch's valid losses,

    ∂l_{jti} = max((l_{jti} − m_i) / s_i, 0),        ∂l_j = mean over (t, i) of ∂l_{jti},
    GM(λ) ∝ Σ_{j ∈ Q} ∂l_j N(λ; λ_j, σ² I),           λ ~ α GM + (1 − α) Unif,
    α = min(α1 · step + α0, α_max)                    (step = latest Feedback.step).

``Q`` is a ring buffer of ``M = population`` slots keyed by ``lam_id``: a slot holds the id, its λ
(unit cube), and the running sum and count of ``∂l`` for that id. An id already in ``Q`` adds to
its slot; an id not in ``Q`` takes the next slot after the write head (new ids of one batch in
increasing id order), evicting the oldest *inserted* id. ``Q`` is therefore the M most recent
simulations to reach training. If a batch brings more than M new ids only the M largest stay;
an id whose slot is overwritten in the same batch loses that batch's entries.

Rules:

* a row counts when ``valid`` and its loss is finite; non-finite losses are ignored entirely
  (in ``m_i, s_i`` too). Negative losses are legitimate inputs to the z-score. ``m_i, s_i`` are
  computed on losses divided by their largest magnitude, so 1e30 neither overflows nor
  changes ``∂l`` (which is scale-free). ``s_i = 0`` (all equal) → ``∂l = 0`` for the batch;
* rows with ``lam_id < 0`` or non-finite λ count in ``m_i, s_i`` but are not tracked in ``Q``;
* each draw picks GM with probability α independently (`combinators.mix_uniform`, ``split=
  "bernoulli"``: online batches are often n = 1, so the offline deterministic split would be
  all-or-nothing); GM draws are reflected into the cube; no positive ``∂l_j`` in ``Q`` (or before
  any feedback) → every draw is uniform;
* ``min_rows``: a slot has weight in GM only once its simulation contributed at least
  ``min_rows`` counted rows (``dl_count ≥ min_rows``), so one lucky row of a fresh simulation
  does not make it a centre; 0 (the default) and 1 both mean "any row".
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.proposals.combinators import mix_uniform
from qsal_jax.proposals.densities import reflected_mixture_density
from qsal_jax.simulation.param_space import ParamSpace

_NO_ID = jnp.iinfo(jnp.int32).max


class BreedOnlineState(NamedTuple):
    ids: jax.Array  # [M] int32: lam_id held by each slot, -1 if empty
    lam: jax.Array  # [M, D] float: λ of that id, unit cube
    dl_sum: jax.Array  # [M] float: Σ ∂l over the id's rows seen so far
    dl_count: jax.Array  # [M] int32: number of those rows
    head: jax.Array  # [] int32: next slot to write (ring buffer)
    step: jax.Array  # [] int32: latest training step seen (drives α)


def batch_excess(loss: jax.Array, valid: jax.Array, dtype=C.DEFAULT_DTYPE):
    """``∂l = max((l − m)/s, 0)`` over one batch; returns ``(∂l [B] dtype, counted [B] bool)``."""
    x = jnp.asarray(loss)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(dtype)
    ok = jnp.asarray(valid, bool) & jnp.isfinite(x)
    x = jnp.where(ok, x, jnp.zeros((), x.dtype))
    top = jnp.max(jnp.abs(x), initial=jnp.zeros((), x.dtype))
    x = C.divide_by_max(x, jnp.where(top > 0, top, jnp.ones((), x.dtype)))
    cnt = jnp.maximum(jnp.sum(ok), 1).astype(x.dtype)
    m = jnp.sum(x) / cnt
    s = jnp.sqrt(jnp.sum(jnp.where(ok, (x - m) ** 2, 0)) / cnt)
    z = (x - m) / jnp.where(s > 0, s, jnp.ones((), x.dtype))
    dl = jnp.where(ok & (s > 0), jnp.maximum(z, 0), 0)
    return dl.astype(dtype), ok


def slot_weights(state: BreedOnlineState, min_rows: int = 0, dtype=C.DEFAULT_DTYPE):
    """GM weights ``[M]`` (mean ∂l of the slots with at least ``min_rows`` counted rows) and
    whether any is positive: online Breed's centres, and the fitness of Breed's generations."""
    score = state.dl_sum / jnp.maximum(state.dl_count, 1).astype(dtype)
    eligible = (state.ids >= 0) & (state.dl_count > 0) & (state.dl_count >= min_rows)
    return C.safe_weights(score, eligible, dtype)


def breed_online(
    space: ParamSpace,
    *,
    sigma=0.05,
    population: int = 1024,
    alpha0: float = 0.0,
    alpha1: float = 1e-3,
    alpha_max: float = 0.9,
    min_rows: int = 0,
    handback_step: int = 0,
    handback_alpha: float = 0.0,
    dtype=C.DEFAULT_DTYPE,
) -> Proposal:
    """Online Breed over ``space`` (see the module docstring for the equations and rules).

    Args:
      sigma: kernel standard deviation in unit-cube units, scalar or ``[D]``.
      population: M, the number of ring-buffer slots (most recent simulation ids kept).
      alpha0, alpha1, alpha_max: ``α = min(α1·step + α0, α_max)``, α1 per training step.
      min_rows: rows a simulation must have contributed before it has weight in GM.
      handback_step, handback_alpha: from training step ``handback_step`` on (0: never), α is
        ``handback_alpha``: the share handed back to Uniform late in the run.
      dtype: floating dtype of λ and of the state.
    """
    checks.sigma("breed_online", sigma, space.dim)
    alpha0, alpha1, alpha_max = checks.alpha("breed_online", alpha0, alpha1, alpha_max)
    population = checks.integer("breed_online", "population", population, lo=1)
    min_rows = checks.integer("breed_online", "min_rows", min_rows, lo=0)
    handback_step = checks.integer("breed_online", "handback_step", handback_step, lo=0)
    handback_alpha = checks.real("breed_online", "handback_alpha", handback_alpha, 0, 1)
    # The share schedule reads Feedback.step only when it moves with it.
    needs = ("lam_id", "step") if alpha1 > 0 or handback_step else ("lam_id",)
    dim, m_slots = space.dim, population

    def init(key: jax.Array) -> BreedOnlineState:
        del key
        return BreedOnlineState(
            ids=jnp.full((m_slots,), -1, jnp.int32),
            lam=jnp.full((m_slots, dim), 0.5, dtype),
            dl_sum=jnp.zeros((m_slots,), dtype),
            dl_count=jnp.zeros((m_slots,), jnp.int32),
            head=jnp.zeros((), jnp.int32),
            step=jnp.zeros((), jnp.int32),
        )

    def weights(state: BreedOnlineState):
        return slot_weights(state, min_rows, dtype)

    def alpha(state: BreedOnlineState) -> jax.Array:
        """Probability that a draw comes from GM (0 while no slot has positive weight)."""
        _, has_mass = weights(state)
        a = C.with_handback(C.alpha_schedule(state.step, alpha0, alpha1, alpha_max, dtype), state.step,
                            handback_step, handback_alpha)
        return jnp.where(has_mass, a, jnp.zeros((), dtype))

    def density_gm(state: BreedOnlineState, lam: jax.Array) -> jax.Array:
        """Density ``[n]`` of a GM draw at box points ``lam [n, D]`` (reflected kernels, closed form)."""
        w, _ = weights(state)
        z, _ = C.lam_to_unit(space, lam, dtype)
        return reflected_mixture_density(z, state.lam, w, sigma)

    def sample_gm(state: BreedOnlineState, key: jax.Array, n: int):
        w, _ = weights(state)
        return C.to_box(space, C.gm_sample(key, state.lam, C.categorical_cdf(w), sigma, n)), state

    def update(state: BreedOnlineState, feedback: Feedback) -> BreedOnlineState:
        checks.require(feedback, "breed_online", *needs, why="slots are keyed by simulation id; α moves with the step")
        ids = jnp.asarray(feedback.lam_id, jnp.int32)
        b = ids.shape[0]
        dl, counted = batch_excess(feedback.loss, feedback.valid, dtype)
        z, finite = C.lam_to_unit(space, feedback.lam, dtype)
        track = counted & finite & (ids >= 0)

        # Rows whose id already has a slot.
        order = jnp.argsort(state.ids)
        sorted_ids = state.ids[order]
        pos = jnp.clip(jnp.searchsorted(sorted_ids, ids), 0, m_slots - 1)
        found = track & (sorted_ids[pos] == ids)
        slot_old = order[pos].astype(jnp.int32)

        # New ids: rank the distinct ones (increasing id) and give them consecutive slots.
        is_new = track & ~found
        key_new = jnp.where(is_new, ids, _NO_ID)
        by_id = jnp.argsort(key_new)
        sid = key_new[by_id]
        first = (sid != _NO_ID) & jnp.concatenate([jnp.ones((1,), bool), sid[1:] != sid[:-1]])
        rank = jnp.zeros((b,), jnp.int32).at[by_id].set(jnp.cumsum(first, dtype=jnp.int32) - 1)
        k_new = jnp.sum(first, dtype=jnp.int32)
        keep_new = is_new & (rank >= k_new - m_slots)
        slot_new = jnp.where(keep_new, (state.head + rank) % m_slots, m_slots)

        overwritten = jnp.zeros((m_slots,), bool).at[slot_new].set(True, mode="drop")
        keep_old = found & ~overwritten[slot_old]
        slot = jnp.where(keep_new, slot_new, jnp.where(keep_old, slot_old, m_slots))

        new_ids = state.ids.at[slot_new].set(ids, mode="drop")
        new_lam = state.lam.at[slot_new].set(z, mode="drop")
        dl_sum = jnp.where(overwritten, jnp.zeros((), dtype), state.dl_sum).at[slot].add(dl, mode="drop")
        dl_count = jnp.where(overwritten, 0, state.dl_count).at[slot].add(1, mode="drop")
        return BreedOnlineState(
            ids=new_ids,
            lam=new_lam,
            dl_sum=dl_sum,
            dl_count=dl_count.astype(jnp.int32),
            head=((state.head + k_new) % m_slots).astype(jnp.int32),
            step=state.step if feedback.step is None else jnp.maximum(state.step, jnp.asarray(feedback.step, jnp.int32)),
        )

    return mix_uniform(Proposal(init, sample_gm, update, density_gm), space, alpha, split="bernoulli", dtype=dtype)
