"""Query synthesis by gradient: move candidate λ to where the surrogate is wrong.

Breed and OGAS estimate where the surrogate is wrong from past simulations, because a black-box
solver has no gradient. Here the solver is a JAX program, so the surrogate's error at λ is a
differentiable function of λ (`surrogate_error`): ε(λ) through the solver and the surrogate
(``objective="solver"``), or the solver-free consistency residual r(λ) (``"residual"``).

A *round* draws ``particles`` = Q candidates from a base strategy (Uniform by default; any
registered one), maps them to the unit cube and moves them by K = ``ascent_steps`` steps on
log e(z), z ∈ [0, 1]^D, with every step folded back into the cube by reflection at the faces
(`_common.reflect_unit`: no point mass on a face, nothing outside):

* ``dynamics="ascent"``: normalised gradient ascent, ``z ← R(z + η g / ‖g‖)``, g = ∇ log e, so each
  step moves a particle by η whatever the error's scale (PGD with an L2 step);
* ``dynamics="langevin"``: ``z ← R(z + (η / τ) g + √(2η) ξ)``, ξ ~ N(0, I): unadjusted Langevin
  towards the density ∝ e(z)^{1/τ} (τ = ``temperature``; large τ: nearly uniform);
* ``repulsion = ρ > 0`` adds SVGD's kernel-gradient term ``η ρ (1/Q) Σ_j ∇_{z_j} k(z_j, z_i)`` with
  an RBF kernel of median-heuristic bandwidth, which pushes particles apart so that a round does
  not collapse onto one maximum.

The Q moved particles are handed out by ``sample`` in turn; when they are used up, the next
``update`` that carries the driver's surrogate (`scorers.EnsembleSurrogate` in
``Feedback.surrogate``, with the simulator's differentiable pieces) runs a new round. Draws are
mixed with Uniform by `combinators.mix_uniform`: a draw is a particle with probability
``α = min(α0 + α1 · step, α_max)`` (step = the latest training step), and from ``handback_step``
on α is ``handback_alpha``. No round runs while α = 0, and before the first round every draw is
uniform.

Cost per round: Q × K gradients of e, each one solver window of ``window`` frames (checkpointed
per frame) and ``window`` surrogate applications, forward and backward.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks
from qsal_jax.proposals.base import DriverContext, Feedback, Proposal, ScoredProposal
from qsal_jax.proposals.combinators import mix_uniform, raw_key
from qsal_jax.proposals.surrogate_error import ERRORS
from qsal_jax.simulation.param_space import ParamSpace

DYNAMICS = ("ascent", "langevin")


class AdversarialState(NamedTuple):
    base: Any  # the base strategy's state
    queue: jax.Array  # [Q, D] float: the last round's particles, box units
    queue_pos: jax.Array  # [] int32: next unused particle (Q: used up)
    key: jax.Array  # [2] uint32: raw key of the rounds (update gets no key)
    step: jax.Array  # [] int32: latest training step seen (drives α)
    rounds: jax.Array  # [] int32: rounds run
    log_gain: jax.Array  # [] float32: last round's mean log e(moved) − log e(start)
    spread: jax.Array  # [] float32: last round's mean nearest-neighbour distance, unit cube


def rbf_repulsion(z: jax.Array) -> jax.Array:
    """SVGD's repulsive term ``(1/Q) Σ_j ∇_{z_j} k(z_j, z_i)`` for ``z [Q, D]``, RBF kernel with
    the median heuristic ``h = med(‖z_i − z_j‖²) / log(Q + 1)``; ``[Q, D]``."""
    diff = z[:, None, :] - z[None, :, :]  # [i, j, D]: z_i − z_j
    sq = jnp.sum(diff**2, axis=-1)
    h = jnp.maximum(jnp.median(sq) / jnp.log(z.shape[0] + 1.0), 1e-8)
    k = jnp.exp(-sq / h)
    # ∇_{z_j} k(z_j, z_i) = (2 / h) (z_i − z_j) k: away from z_j.
    return jnp.mean((2.0 / h) * diff * k[..., None], axis=1)


def nearest_distance(z: jax.Array) -> jax.Array:
    """Mean distance from each of ``z [Q, D]`` to its nearest other point, ``[]``."""
    sq = jnp.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1)
    sq = jnp.where(jnp.eye(z.shape[0], dtype=bool), jnp.inf, sq)
    return jnp.mean(jnp.sqrt(jnp.min(sq, axis=1)))


def adversarial(
    space: ParamSpace,
    *,
    particles: int = 20,
    ascent_steps: int = 4,
    step_size: float = 0.03,
    dynamics: str = "ascent",
    temperature: float = 1.0,
    repulsion: float = 0.0,
    objective: str = "solver",
    window: int = 1,
    base: str = "uniform",
    alpha0: float = 0.0,
    alpha1: float = 1e-3,
    alpha_max: float = 0.7,
    handback_step: int = 0,
    handback_alpha: float = 0.0,
    dtype=C.DEFAULT_DTYPE,
    context: DriverContext | None = None,
) -> ScoredProposal:
    """Gradient query synthesis over ``space`` (module docstring).

    Args:
      particles: Q candidates moved per round (and handed out before the next round).
      ascent_steps: K moves per round (0: the base strategy's draws, unmoved).
      step_size: η, unit-cube units (the length of an ascent step).
      dynamics: ``"ascent"`` or ``"langevin"``; temperature: τ of the Langevin target e^{1/τ}.
      repulsion: ρ ≥ 0, weight of the SVGD kernel-gradient term.
      objective: ``"solver"`` (ε through the solver) or ``"residual"`` (the consistency residual).
      window: transitions (frames) the error is averaged over.
      base: registered strategy whose draws start a round (default settings, not mixed twice).
      alpha0, alpha1, alpha_max, handback_step, handback_alpha: the share of particle draws.
      context: the driver's `DriverContext`: a rollout surrogate, trajectories longer than ``window``.
    """
    from qsal_jax import proposals

    name = "adversarial"
    checks.choice(name, "dynamics", dynamics, DYNAMICS)
    checks.choice(name, "objective", objective, tuple(ERRORS))
    particles, ascent_steps, window, handback_step = (checks.integer(name, setting, value, lo=low) for setting, value, low in (
        ("particles", particles, 2), ("ascent_steps", ascent_steps, 0), ("window", window, 1),
        ("handback_step", handback_step, 0)))
    checks.real(name, "step_size", step_size, 0)
    checks.real(name, "temperature", temperature, 0, open_lo=True)
    checks.real(name, "repulsion", repulsion, 0)
    checks.real(name, "handback_alpha", handback_alpha, 0, 1)
    checks.alpha(name, alpha0, alpha1, alpha_max)
    checks.rollout_surrogate(name, context, frames=window)
    if context is not None and context.draws_per_call is not None and particles < context.draws_per_call:
        raise checks.SettingError(name, "particles", f"({particles}) must be >= the driver's draws per sample call "
                                  f"({context.draws_per_call})")
    if base in ("adversarial",):
        raise ValueError("adversarial: base must be another strategy")
    inner_base = proposals.build(base, space)
    if isinstance(inner_base, proposals.ScoredProposal):
        raise ValueError(f"adversarial: base {base!r} scores its own pool; use a strategy that samples directly")
    error = ERRORS[objective]
    q, dim = int(particles), space.dim

    def init(key: jax.Array) -> AdversarialState:
        k_base, k_own = jax.random.split(key)
        zi = jnp.zeros((), jnp.int32)
        return AdversarialState(inner_base.init(k_base), jnp.broadcast_to(space.from_unit(jnp.full((dim,), 0.5, dtype)),
                                                                           (q, dim)).astype(dtype),
                                jnp.asarray(q, jnp.int32), raw_key(k_own), zi, zi, jnp.zeros((), jnp.float32),
                                jnp.zeros((), jnp.float32))

    def alpha(state: AdversarialState) -> jax.Array:
        return C.with_handback(C.alpha_schedule(state.step, alpha0, alpha1, alpha_max, dtype), state.step,
                               handback_step, handback_alpha)

    def run_round(state: AdversarialState, surrogate) -> AdversarialState:
        key, k_base, k_noise = jax.random.split(state.key, 3)
        lam0, base_state = inner_base.sample(state.base, k_base, q)
        z0, _ = C.lam_to_unit(space, lam0, jnp.float32)

        def log_error(z):
            return jnp.log(error(surrogate, space.from_unit(z).astype(dtype), window) + 1e-12)

        value_and_grad = jax.vmap(jax.value_and_grad(log_error))

        def move(z, k):
            value, g = value_and_grad(z)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            if dynamics == "ascent":
                drift = step_size * g / (jnp.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)
            else:
                drift = (step_size / temperature) * g + jnp.sqrt(2.0 * step_size) * jax.random.normal(k, z.shape, z.dtype)
            if repulsion:
                drift = drift + step_size * repulsion * rbf_repulsion(z)
            return C.reflect_unit(z + drift).astype(z.dtype), value

        z, values = jax.lax.scan(move, z0, jax.random.split(k_noise, int(ascent_steps)))
        start = values[0] if ascent_steps else jax.vmap(log_error)(z0)
        end = jax.vmap(log_error)(z)
        ok = jnp.isfinite(end) & jnp.isfinite(start)
        gain = jnp.sum(jnp.where(ok, end - start, 0.0)) / jnp.maximum(jnp.sum(ok), 1)
        return state._replace(base=base_state, queue=C.to_box(space, z).astype(dtype), queue_pos=jnp.zeros((), jnp.int32),
                              key=key, rounds=state.rounds + 1, log_gain=gain.astype(jnp.float32),
                              spread=nearest_distance(z).astype(jnp.float32))

    def update(state: AdversarialState, feedback: Feedback) -> AdversarialState:
        if float(alpha1) > 0 or handback_step:  # the share schedule moves with the step
            checks.require(feedback, name, "step", why="the particles' share moves with it")
        step = state.step if feedback.step is None else jnp.maximum(state.step, jnp.asarray(feedback.step, jnp.int32))
        state = state._replace(base=inner_base.update(state.base, feedback), step=step)
        if feedback.surrogate is None:
            raise ValueError("adversarial differentiates through the driver's surrogate: it needs Feedback.surrogate")
        due = (state.queue_pos >= q) & (alpha(state) > 0)
        return jax.lax.cond(due, lambda s: run_round(s, feedback.surrogate), lambda s: s, state)

    def sample_particles(state: AdversarialState, key: jax.Array, n: int):
        if n > q:
            raise ValueError(f"adversarial: particles ({q}) must be >= the rows of one sample call ({n})")
        fresh = C.to_box(space, C.uniform_unit(key, n, dim, dtype)).astype(dtype)
        ready = state.queue_pos + n <= q
        rows = jax.lax.dynamic_slice_in_dim(state.queue, jnp.minimum(state.queue_pos, q - n), n)
        pos = jnp.where(ready, state.queue_pos + n, state.queue_pos)
        return jnp.where(ready, rows, fresh), state._replace(queue_pos=pos)

    def diagnostics(state: AdversarialState) -> dict:
        """``rounds`` run; the last round's ``log_gain`` (mean log e moved − start) and ``spread``
        (mean nearest-neighbour distance of its particles, unit cube); the share ``alpha``."""
        f32 = jnp.float32
        return {"rounds": state.rounds.astype(f32), "log_gain": state.log_gain, "spread": state.spread,
                "alpha": alpha(state).astype(f32)}

    # A ScoredProposal: it needs the driver's surrogate, so drivers without one refuse it up front.
    mixed = mix_uniform(ScoredProposal(init, sample_particles, update), space, alpha, split="bernoulli", dtype=dtype)
    return mixed._replace(diagnostics=diagnostics)
