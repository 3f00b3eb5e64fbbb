"""Breed in generations, as Melissa's default breeder runs it (the authors' online Breed).

`breed_online` moves its proposal after every training batch. Melissa's breeder instead keeps
the proposal fixed for a *generation* and rebuilds it from the losses seen since:

* **Tracking.** Every training batch's per-sample signal becomes ``∂l = max((l − m)/s, 0)``
  (batch z-score, as in `breed_online.batch_excess`) and is summed per simulation id over a
  window of the ``population`` most recent simulations to reach training (the simulations the
  buffer holds). A simulation is a candidate parent once it contributed ``min_rows`` counted
  rows (the authors: ⌈0.33 (T − 1)⌉); its fitness is its mean ∂l.
* **Generations.** A new generation starts every ``generation_every`` surrogate updates (the
  authors: 3 × the trajectories the buffer holds) once ``min_simulations`` λ were launched
  (100). It freezes the window's candidate parents and their fitness.
* **Children.** A draw is a child with probability ``r = r_max · min(1, g / ramp_generations)``
  (g = generations so far: 0 → 0.7 over 3 generations), otherwise uniform
  (`combinators.mix_uniform`). A child picks its parent by fitness-proportional selection and
  adds ``σ ε`` (σ in unit-cube units, 0.1 of the range); a child outside the box is redrawn
  with ``σ · shrink`` (0.3) up to ``redraws`` times, then takes its parent's λ. No reflection,
  no clipping: the draws' law is the authors'.
* No generation yet, or no parent with positive fitness: every draw is uniform.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.proposals.breed_online import BreedOnlineState, breed_online, slot_weights
from qsal_jax.proposals.combinators import mix_uniform
from qsal_jax.simulation.param_space import ParamSpace


class BreedGenerationsState(NamedTuple):
    window: BreedOnlineState  # per-simulation ∂l sums over the most recent `population` simulations
    parents: jax.Array  # [M, D] float: λ of the current generation's parents, unit cube
    parent_cdf: jax.Array  # [M] float: fitness-proportional selection table (`C.categorical_cdf`)
    has_parents: jax.Array  # [] bool: some parent has positive fitness
    generation: jax.Array  # [] int32: generations started so far
    updates: jax.Array  # [] int32: `update` calls (surrogate updates) so far
    last_generation: jax.Array  # [] int32: `updates` when the current generation started
    launched: jax.Array  # [] int32: λ handed out by `sample`
    children: jax.Array  # [] int32: children drawn so far
    to_parent: jax.Array  # [] int32: children that took their parent's λ after `redraws` redraws


def breed_generations(
    space: ParamSpace,
    *,
    sigma: float = 0.1,
    population: int = 1024,
    min_rows: int = 0,
    generation_every: int = 1000,
    min_simulations: int = 100,
    r_max: float = 0.7,
    ramp_generations: int = 3,
    shrink: float = 0.3,
    redraws: int = 10,
    dtype=C.DEFAULT_DTYPE,
) -> Proposal:
    """Generational Breed over ``space`` (module docstring).

    Args:
      sigma: child kernel standard deviation in unit-cube units (scalar or ``[D]``).
      population: M, simulations in the tracking window (the authors: those the buffer holds).
      min_rows: counted rows a simulation needs before it can be a parent.
      generation_every: surrogate updates between generations.
      min_simulations: λ launched before the first generation.
      r_max, ramp_generations: child share ``r_max · min(1, g / ramp_generations)``.
      shrink, redraws: an out-of-box child is redrawn with ``σ · shrink`` up to ``redraws``
        times, then takes its parent's λ.
    """
    name = "breed_generations"
    checks.sigma(name, sigma, space.dim)
    population, min_rows, generation_every, min_simulations, ramp_generations, redraws = (
        checks.integer(name, setting, value, lo=low) for setting, value, low in (
            ("population", population, 1), ("min_rows", min_rows, 0), ("generation_every", generation_every, 1),
            ("min_simulations", min_simulations, 0), ("ramp_generations", ramp_generations, 1), ("redraws", redraws, 0)))
    checks.real(name, "r_max", r_max, 0, 1)
    checks.real(name, "shrink", shrink, 0, 1, open_lo=True)
    dim = space.dim
    sigma = jnp.asarray(sigma, dtype)
    # The window is online Breed's tracker: its update is exactly the per-id ∂l bookkeeping.
    tracker = breed_online(space, sigma=0.1, population=population, min_rows=min_rows, dtype=dtype)
    i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731

    def init(key: jax.Array) -> BreedGenerationsState:
        return BreedGenerationsState(
            window=tracker.init(key),
            parents=jnp.full((population, dim), 0.5, dtype),
            parent_cdf=C.categorical_cdf(jnp.ones((population,), dtype)),
            has_parents=jnp.zeros((), bool),
            generation=i32(0), updates=i32(0), last_generation=i32(0), launched=i32(0), children=i32(0),
            to_parent=i32(0),
        )  # fmt: skip

    def update(state: BreedGenerationsState, feedback: Feedback) -> BreedGenerationsState:
        checks.require(feedback, name, "lam_id", why="parents are tracked by simulation id")
        window = tracker.update(state.window, feedback)
        updates = state.updates + 1
        due = (state.launched >= min_simulations) & (updates - state.last_generation >= generation_every)
        w, has_mass = slot_weights(window, min_rows, dtype)

        def new_generation(s: BreedGenerationsState) -> BreedGenerationsState:
            return s._replace(parents=window.lam, parent_cdf=C.categorical_cdf(w), has_parents=has_mass,
                              generation=s.generation + 1, last_generation=updates)

        state = state._replace(window=window, updates=updates)
        return jax.lax.cond(due, new_generation, lambda s: s, state)

    def share(state: BreedGenerationsState) -> jax.Array:
        ramp = jnp.minimum(state.generation.astype(dtype) / ramp_generations, 1.0)
        return jnp.where(state.has_parents, r_max * ramp, jnp.zeros((), dtype))

    def sample_children(state: BreedGenerationsState, key: jax.Array, n: int):
        k_parent, k_noise = jax.random.split(key)
        parents = state.parents[C.categorical_sample(k_parent, state.parent_cdf, n)]  # [n, D]
        scales = jnp.concatenate([jnp.ones((1,), dtype), jnp.full((redraws,), shrink, dtype)])  # [R + 1]
        noise = jax.random.normal(k_noise, (redraws + 1, n, dim), dtype)
        tries = parents[None] + scales[:, None, None] * sigma * noise  # [R + 1, n, D]
        inside = jnp.all((tries >= 0.0) & (tries <= 1.0), axis=-1)  # [R + 1, n]
        first = jnp.argmax(inside, axis=0)  # the first try inside; 0 if none is
        ok = jnp.any(inside, axis=0)
        child = jnp.where(ok[:, None], jnp.take_along_axis(tries, first[None, :, None], axis=0)[0], parents)
        state = state._replace(children=state.children + n, to_parent=state.to_parent + jnp.sum(~ok, dtype=jnp.int32))
        return C.to_box(space, child), state

    mixed = mix_uniform(Proposal(init, sample_children, update), space, share, split="bernoulli", dtype=dtype)

    def sample(state: BreedGenerationsState, key: jax.Array, n: int):
        lam, state = mixed.sample(state, key, n)
        return lam, state._replace(launched=state.launched + n)

    def diagnostics(state: BreedGenerationsState) -> dict:
        """``generation``: generations so far; ``child_share``: the current child share r;
        ``to_parent_share``: share of children that took their parent's λ (out of the box)."""
        f32 = jnp.float32
        return {"generation": state.generation.astype(f32), "child_share": share(state).astype(f32),
                "to_parent_share": state.to_parent.astype(f32) / jnp.maximum(state.children, 1).astype(f32)}

    return Proposal(init, sample, update, None, diagnostics)
