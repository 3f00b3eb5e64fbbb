"""OGAS: Online Generative Active Sampling.

Cesar, Dymchenko, Purandare & Raffin, "Learning Where to Simulate" (thesis defence, C3). A
conditional diffusion model ``p̂(λ | ε)`` is trained online on pairs (λ, ε), where ε is the
per-sample training signal (loss for OGAS-L, ensemble disagreement for OGAS-U) z-standardised with
moving statistics; new simulations are proposed by drawing a target ε from a prior that favours
hard data and sampling λ from the generator, mixed with Uniform(Λ) for exploration.

    strategy = ogas(space, steps=50, r_max=0.7)
    state = strategy.init(key)
    lam, state = strategy.sample(state, key, n)  # [n, D], always inside the box
    state = strategy.update(state, feedback)     # feedback.loss is the signal, whatever its name

Design (the equations live here; docs/design.md summarises the boundary rule):

* Signal → ε. Valid, finite signals of a batch give batch moments (m_b, v_b); the EMA statistics
  are the moments of the mixture ``d · old + (1 − d) · batch``::

      μ ← d μ + (1 − d) m_b
      σ² ← d σ² + (1 − d) v_b + d (1 − d) (m_b − μ_old)²

  initialised with the first batch that has a valid entry. Then ``ε = clip((ℓ − μ)/σ, ±eps_clip)``
  (``eps_mode="clip"``) or, as in the authors' code, ``ε = min((ℓ − μ)/σ, eps_cap)`` (``"cap"``: hard
  data keep their rank up to 5 σ and the easy tail is not cut; a guard at −1e3 binds only on
  degenerate statistics), with ``σ ≥ 1e-4 |μ|`` (a relative floor: constant signals give ε ≈ 0).
  Signals are clipped to ±1e15 before the moments so that squares stay finite in float32.
  Non-finite signals, non-finite λ and ``valid == False`` entries are ignored.
* FIFO. A ring buffer of C pairs (λ_unit, ε); valid entries are compacted and written at
  ``ptr, ptr+1, …`` (masked scatter, invalid entries dropped); if a batch holds more than C valid
  entries only the newest C are kept.
* Importance weights. The FIFO holds λ drawn from the mixture of generator and uniform draws (as
  seen by training), not from Uniform(Λ); the generator should learn ``p(λ | ε)`` under the uniform
  prior. A logistic-regression MLP ``f(λ)`` is trained at every step to tell FIFO λ (label 1) from
  fresh uniform λ (label 0, same count); at the optimum ``f = log p_fifo/p_unif``, so the weight of a
  pair is ``w = p_unif/p_fifo = (1 − c)/c = exp(−f)``, clipped to ``[1/weight_clip, weight_clip]``
  and self-normalised in the minibatch (the DDPM loss is ``Σ w_i ℓ_i / Σ w_i``). Weights come from
  the current classifier, so no per-pair "proposal draw" flag is needed and they follow the FIFO.
* Generator. Conditional DDPM (diffusion.py) with ε-prediction, cosine β schedule, condition
  dropout ``p_uncond`` (null token) and classifier-free guidance ``w`` at sampling time;
  ``sample_steps < steps`` samples on a respaced schedule (Nichol & Dhariwal 2021) to cut the cost.
* Prior over target ε. ``"proportional"``: an ε is drawn from the stored FIFO ε values with
  probability ∝ ``w_i (ε_i − min ε)^prior_power`` (the positive part above the easiest stored pair;
  ∝ ``w_i`` over stored values if all are equal). With ``prior_importance`` (the default) ``w_i`` is
  the pair's importance weight, so the prior is the distribution of ε under Uniform(Λ), tilted
  towards hard data, as the generator's ``p(λ | ε)`` is: without it the FIFO's bias towards the
  generator's own draws (high ε) would come back through the prior and compound round after round.
  ``prior_importance=False`` gives ``w_i = 1`` (the earlier rule); with ``importance=False`` the
  classifier is never trained and ``w_i = 1`` either way. ``"quantile"``: ε ~ Uniform[q-quantile,
  max] of the stored ε (unweighted).
* Boundary rule: rejection. The sampler clips x̂0 to the cube at every step but the last
  (``clip_denoised=False``: at none); the last x̂0 is returned unclipped, and a row outside the
  open box (or non-finite) is redrawn with the same target ε, up to ``reject_rounds`` generator
  calls in all, then replaced by a uniform draw. Clipping it instead would put point masses
  exactly on the faces (all the mass the model puts outside), which no target density has.
  Nothing out of the box is ever returned.
* Training schedule. Online, ``update`` runs after every surrogate train step, and the generator
  trains (``train_steps`` optimiser steps) on every ``train_every``-th one. ``train_every="auto"``
  takes the least k with ``G / k ≤ share / (1 − share) · S``, where G is the analytic flop count of
  one training round (`training.cost.jaxpr_cost`, loops multiplied out), S = ``surrogate_step_flops``
  and share = ``generator_share``: the generator's training is then at most that share of the
  train-step work, whatever the two networks' sizes. The resolved k is ``parts.settings["train_every"]``.
* Mixing (`combinators.mix_uniform`, per-draw Bernoulli). A fraction ``r = r_max · min(1, n_trained
  / ramp_updates)`` of draws comes from the generator, the rest are uniform; ``n_trained`` counts
  updates that trained the generator (the FIFO held ≥ ``min_fill`` pairs), so before the generator
  has data every draw is uniform (and the generator is not run).
* Drawing ahead (``draw_batch = Q > 0``). The generator is run for Q rows at once, and ``sample``
  hands them out in turn, drawing Q new rows when fewer than n are left. Sampling a wide
  denoiser is memory-bound (its weights are read at every diffusion step whatever the row
  count), so Q rows cost about what n rows do. Rows wait at most Q / n launches, about the
  authors' breeder, which draws a generation's parameters at once every 100 updates.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from qsal_jax.proposals import _common as C
from qsal_jax.training.cost import jaxpr_cost
from qsal_jax.training.state import make_optimizer
from qsal_jax.proposals.base import DriverContext, Feedback, Proposal
from qsal_jax.proposals.combinators import mix_uniform
from qsal_jax.proposals.diffusion import Denoiser, RatioClassifier, ddpm_loss, ddpm_sample, make_noise_schedule, respace
from qsal_jax.proposals.ogas_settings import DEFAULTS, OGASSettings, check_settings as _check
from qsal_jax.simulation.param_space import ParamSpace

_SIGNAL_MAX = 1e15  # |signal| clip before the moments: squares stay finite in float32
_REL_STD_FLOOR = 1e-4
_EPS_GUARD = 1e3  # lower bound of ε in "cap" mode: a numerical guard, not a modelling choice



class OGASState(NamedTuple):
    denoiser: Any  # Flax params of the MLP ε-predictor (float32 leaves)
    denoiser_opt: Any  # optax state of the denoiser (clip ∘ Adam, `training.make_optimizer`)
    ratio: Any  # Flax params of the density-ratio classifier
    ratio_opt: Any  # optax state of the classifier
    fifo_lam: jax.Array  # [C, D] float32: λ of stored pairs, unit cube
    fifo_eps: jax.Array  # [C] float32: ε of stored pairs, in [−eps_clip, eps_clip] ("cap": [−1e3, eps_cap])
    fifo_ptr: jax.Array  # [] int32: next slot to write
    fifo_count: jax.Array  # [] int32: filled slots (≤ C); slots [0, count) hold data
    ema_mean: jax.Array  # [] float32: moving mean of the signal
    ema_var: jax.Array  # [] float32: moving variance of the signal
    ema_count: jax.Array  # [] int32: batches with ≥ 1 valid signal so far
    n_updates: jax.Array  # [] int32: update calls
    n_trained: jax.Array  # [] int32: updates that trained the generator (drives mixing)
    key: jax.Array  # [2] uint32: raw PRNG key used by `update` (the contract gives it none)
    n_drawn: jax.Array  # [] int32: λ handed out by `sample` (generator and uniform)
    generator_share_sum: jax.Array  # [] float32: Σ r·n over sample calls (expected generator draws)
    n_generated: jax.Array  # [] int32: rows the generator was asked for
    n_fallback: jax.Array  # [] int32: of those, rows still outside the box after reject_rounds (uniform instead)
    queue: jax.Array  # [Q, D] float32: rows drawn ahead (``draw_batch`` = Q > 0; Q = 1 unused otherwise), unit cube
    queue_pos: jax.Array  # [] int32: next unused row of ``queue`` (Q: empty)


class OGASParts(NamedTuple):
    """The strategy plus its internals, for tests, diagnostics and benchmarks."""

    init: Callable[[jax.Array], OGASState]
    sample: Callable[[OGASState, jax.Array, int], tuple[jax.Array, OGASState]]  # (λ [n, D] box units, state)
    update: Callable[[OGASState, Feedback], OGASState]
    generate: Callable[[OGASState, jax.Array, jax.Array], jax.Array]  # (state, key, ε [n]) → λ_unit [n, D], inside
    prior: Callable[[OGASState, jax.Array, int], jax.Array]  # (state, key, n) → ε [n]
    importance_weights: Callable[[OGASState, jax.Array], jax.Array]  # (state, λ_unit [N, D]) → w [N]
    mixing_ratio: Callable[[OGASState], jax.Array]  # proportion of generator draws, []
    settings: dict
    diagnostics: Callable[[OGASState], dict]  # generator share, fallback share, generator steps
    draw: Callable[[OGASState, jax.Array, jax.Array], tuple]  # one call, no redraw: (z [n, D], inside [n])


def ema_moments(mean, var, count, x, valid, decay):
    """Mixture-moment EMA of a batch signal ``x [B]`` (masked by ``valid [B]``); see module doc."""
    x = jnp.where(valid, jnp.clip(x, -_SIGNAL_MAX, _SIGNAL_MAX), 0.0)
    nv = jnp.sum(valid)
    denom = jnp.maximum(nv, 1).astype(x.dtype)
    m_b = jnp.sum(x) / denom
    v_b = jnp.sum(jnp.where(valid, (x - m_b) ** 2, 0.0)) / denom
    first = count == 0
    new_mean = jnp.where(first, m_b, decay * mean + (1 - decay) * m_b)
    new_var = jnp.where(first, v_b, decay * var + (1 - decay) * v_b + decay * (1 - decay) * (m_b - mean) ** 2)
    has = nv > 0
    return jnp.where(has, new_mean, mean), jnp.where(has, new_var, var), count + has.astype(jnp.int32)


def standardise(x, mean, var, clip, lower=None):
    """``clip((x − μ)/σ, lower, clip)`` (``lower = −clip`` by default) with the relative σ floor;
    finite for any finite μ, σ²."""
    x = jnp.clip(x, -_SIGNAL_MAX, _SIGNAL_MAX)
    sd = jnp.maximum(jnp.maximum(jnp.sqrt(var), _REL_STD_FLOOR * jnp.abs(mean)), 1e-30)
    return jnp.clip((x - mean) / sd, -clip if lower is None else lower, clip)


def fifo_push(lam_buf, eps_buf, ptr, count, lam, eps, valid):
    """Write the valid rows of ``lam [B, D]``, ``eps [B]`` into the ring buffers at ``ptr, ptr+1, …``."""
    cap = lam_buf.shape[0]
    nv = jnp.sum(valid, dtype=jnp.int32)  # explicit: under x64 a sum would promote to int64
    rank = jnp.cumsum(valid, dtype=jnp.int32) - 1
    keep = valid & (rank >= nv - cap)  # more valid rows than slots: keep the newest
    idx = jnp.where(keep, (ptr + rank) % cap, cap)  # index `cap` is out of range: dropped
    lam_buf = lam_buf.at[idx].set(lam.astype(lam_buf.dtype), mode="drop")
    eps_buf = eps_buf.at[idx].set(eps.astype(eps_buf.dtype), mode="drop")
    i32 = lambda x: jnp.asarray(x, jnp.int32)  # noqa: E731
    return lam_buf, eps_buf, i32((ptr + nv) % cap), i32(jnp.minimum(count + nv, cap))


def auto_train_every(round_flops: float, surrogate_step_flops: float, share: float) -> int:
    """The least k ≥ 1 with ``round_flops / k ≤ share / (1 − share) · surrogate_step_flops``."""
    return max(1, math.ceil(round_flops * (1.0 - share) / (share * surrogate_step_flops) - 1e-9))


def _round_flops(init, train_round, cap: int, dim: int) -> float:
    """Analytic flops of one generator training round, from abstract shapes (nothing runs)."""
    state = jax.eval_shape(init, jax.ShapeDtypeStruct((2,), jnp.uint32))
    carry = (state.denoiser, state.denoiser_opt, state.ratio, state.ratio_opt)
    args = (jax.ShapeDtypeStruct((cap, dim), jnp.float32), jax.ShapeDtypeStruct((cap,), jnp.float32),
            jax.ShapeDtypeStruct((), jnp.int32), carry, jax.ShapeDtypeStruct((2,), jnp.uint32))
    return jaxpr_cost(train_round, *args)[0]


def make_ogas(space: ParamSpace, **settings) -> OGASParts:
    """Build OGAS and its internals; `ogas` returns the `Proposal` view. Settings: `OGASSettings`."""
    C.check_known_settings("ogas", settings, DEFAULTS)
    s = {**DEFAULTS, **settings}
    _check(s)
    dim, cap, bs = space.dim, int(s["capacity"]), int(s["batch_size"])
    draw_batch = int(s["draw_batch"])
    queue_rows = max(draw_batch, 1)
    f32 = jnp.float32
    sched = make_noise_schedule(int(s["steps"]), s["schedule"])
    sample_sched = sched if s["sample_steps"] is None else respace(sched, int(s["sample_steps"]))
    capped = s["eps_mode"] == "cap"
    eps_top = float(s["eps_cap"] if capped else s["eps_clip"])
    net = Denoiser(dim, int(s["hidden"]), int(s["depth"]), int(s["steps"]), eps_top)
    clf = RatioClassifier(int(s["ratio_hidden"]), int(s["ratio_depth"]))
    # Adam at a constant rate (no warm-up, no decay), clipped: the project's one optimizer factory.
    den_tx = make_optimizer(learning_rate=s["lr"], warmup_steps=0, weight_decay=0.0, grad_clip_norm=s["grad_clip"])
    clf_tx = make_optimizer(learning_rate=s["ratio_lr"], warmup_steps=0, weight_decay=0.0, grad_clip_norm=s["grad_clip"])
    log_wclip = float(jnp.log(s["weight_clip"]))
    decay = float(s["ema_decay"])

    def init(key):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        kd, kc, ks = jax.random.split(key, 3)
        one = jnp.zeros((1,), f32)
        den = net.init(kd, jnp.zeros((1, dim), f32), jnp.zeros((1,), jnp.int32), one, jnp.zeros((1,), bool))
        rat = clf.init(kc, jnp.zeros((1, dim), f32))
        zi, zf = jnp.zeros((), jnp.int32), jnp.zeros((), f32)
        return OGASState(
            den, den_tx.init(den), rat, clf_tx.init(rat),
            jnp.zeros((cap, dim), f32), jnp.zeros((cap,), f32), zi, zi,
            zf, jnp.ones((), f32), zi, zi, zi, ks, zi, zf, zi, zi,
            jnp.zeros((queue_rows, dim), f32), jnp.asarray(queue_rows, jnp.int32),
        )  # fmt: skip

    def importance_weights(state, lam_unit):
        logit = clf.apply(state.ratio, lam_unit.astype(f32))
        return jnp.exp(-jnp.clip(logit, -log_wclip, log_wclip))

    def train_step(fifo_lam, fifo_eps, count, carry, key):
        den, den_opt, rat, rat_opt = carry
        ki, ku, kl = jax.random.split(key, 3)
        idx = jax.random.randint(ki, (bs,), 0, jnp.maximum(count, 1), dtype=jnp.int32)
        z, e = fifo_lam[idx], fifo_eps[idx]
        if s["importance"]:
            u = jax.random.uniform(ku, (bs, dim), f32)

            def bce(p):
                return jnp.mean(jax.nn.softplus(-clf.apply(p, z))) + jnp.mean(jax.nn.softplus(clf.apply(p, u)))

            upd, rat_opt = clf_tx.update(jax.grad(bce)(rat), rat_opt, rat)
            rat = optax.apply_updates(rat, upd)
            w = jax.lax.stop_gradient(jnp.exp(-jnp.clip(clf.apply(rat, z), -log_wclip, log_wclip)))
        else:
            w = jnp.ones((bs,), f32)
        grads = jax.grad(lambda p: ddpm_loss(net.apply, p, sched, kl, 2.0 * z - 1.0, e, w, s["p_uncond"]))(den)
        upd, den_opt = den_tx.update(grads, den_opt, den)
        return (optax.apply_updates(den, upd), den_opt, rat, rat_opt), None

    def train_round(fifo_lam, fifo_eps, count, carry, key):
        step = lambda c, k: train_step(fifo_lam, fifo_eps, count, c, k)  # noqa: E731
        return jax.lax.scan(step, carry, jax.random.split(key, int(s["train_steps"])))[0]

    if s["train_every"] == "auto":
        s["generator_round_flops"] = _round_flops(init, train_round, cap, dim)
        s["train_every"] = auto_train_every(s["generator_round_flops"], float(s["surrogate_step_flops"]),
                                            float(s["generator_share"]))

    def update(state, feedback):
        lam = space.to_unit(jnp.asarray(feedback.lam)).astype(f32)
        sig = jnp.asarray(feedback.loss).astype(f32)
        valid = jnp.asarray(feedback.valid, bool) & jnp.isfinite(sig) & jnp.all(jnp.isfinite(lam), axis=-1)
        mean, var, ema_count = ema_moments(state.ema_mean, state.ema_var, state.ema_count, sig, valid, decay)
        eps = jnp.where(valid, standardise(sig, mean, var, eps_top, -_EPS_GUARD if capped else None), 0.0)
        lam = jnp.where(valid[:, None], jnp.clip(lam, 0.0, 1.0), 0.0)
        fifo_lam, fifo_eps, ptr, count = fifo_push(
            state.fifo_lam, state.fifo_eps, state.fifo_ptr, state.fifo_count, lam, eps, valid
        )
        key, sub = jax.random.split(state.key)
        carry = (state.denoiser, state.denoiser_opt, state.ratio, state.ratio_opt)
        # Online, update runs after every training batch; training the generator on every k-th
        # one keeps its cost a small fraction of the surrogate's while the FIFO sees every pair.
        ready = (count >= s["min_fill"]) & (state.n_updates % int(s["train_every"]) == 0)

        if s["train_steps"] > 0:
            carry = jax.lax.cond(ready, lambda c: train_round(fifo_lam, fifo_eps, count, c, sub), lambda c: c, carry)
        return OGASState(
            *carry, fifo_lam, fifo_eps, ptr, count, mean, var, ema_count,
            state.n_updates + 1, state.n_trained + ready.astype(jnp.int32), key,
            state.n_drawn, state.generator_share_sum, state.n_generated, state.n_fallback, state.queue, state.queue_pos,
        )  # fmt: skip

    def prior(state, key, n):
        filled = jnp.arange(cap) < state.fifo_count
        eps = state.fifo_eps
        u = jax.random.uniform(key, (n,), f32)
        if s["prior"] == "proportional":
            iw = importance_weights(state, state.fifo_lam) if s["prior_importance"] else 1.0
            lo = jnp.min(jnp.where(filled, eps, jnp.inf))
            w = jnp.where(filled, iw * jnp.maximum(eps - lo, 0.0) ** s["prior_power"], 0.0)
            w = jnp.where(jnp.sum(w) > 0, w, jnp.where(filled, iw, 0.0))
            cdf = jnp.cumsum(w)
            idx = jnp.searchsorted(cdf, u * cdf[-1], side="right")
            return eps[jnp.clip(idx, 0, cap - 1)]
        srt = jnp.sort(jnp.where(filled, eps, jnp.inf))
        last = jnp.maximum(state.fifo_count - 1, 0)
        lo = srt[jnp.floor(s["quantile"] * last).astype(jnp.int32)]
        hi = srt[last]
        return jnp.where(state.fifo_count > 0, lo + u * (hi - lo), 0.0)

    lo_box, hi_box = jnp.asarray(space.low, f32), jnp.asarray(space.high, f32)

    def draw(state, key, eps):
        """One generator call: unit ``z [n, D]`` and whether each row lies inside the open box."""
        x = ddpm_sample(net.apply, state.denoiser, sample_sched, key, eps, dim, float(s["guidance"]), clip_final=False,
                        clip_denoised=bool(s["clip_denoised"]))
        z = 0.5 * (x + 1.0)
        lam = space.from_unit(z)
        inside = (z > 0) & (z < 1) & (lam > lo_box) & (lam < hi_box)  # NaN compares False
        return z, jnp.all(inside, axis=-1)

    def generate(state, key, eps):
        return generate_counted(state, key, eps)[0]

    def generate_counted(state, key, eps):
        """``generate`` and the number of rows that fell back to a uniform draw, ``[]`` int32."""
        eps = jnp.asarray(eps, f32)
        k0, ku, kr = jax.random.split(key, 3)
        z, ok = draw(state, k0, eps)

        def again(carry):
            r, z, ok, k = carry
            k, sub = jax.random.split(k)
            z_new, ok_new = draw(state, sub, eps)
            return r + 1, jnp.where((ok_new & ~ok)[:, None], z_new, z), ok | ok_new, k

        rounds = int(s["reject_rounds"])
        _, z, ok, _ = jax.lax.while_loop(lambda c: (c[0] < rounds) & ~jnp.all(c[2]), again, (1, z, ok, kr))
        return jnp.where(ok[:, None], z, jax.random.uniform(ku, z.shape, f32)), jnp.sum(~ok, dtype=jnp.int32)

    def mixing_ratio(state):
        frac = state.n_trained.astype(f32) / max(int(s["ramp_updates"]), 1)
        return s["r_max"] * jnp.minimum(frac, 1.0)

    def fresh_rows(state, key, n):
        kp, kg = jax.random.split(key)
        z, fallback = generate_counted(state, kg, prior(state, kp, n))
        return z, state._replace(n_generated=state.n_generated + n, n_fallback=state.n_fallback + fallback)

    def sample_generator(state, key, n):
        if not draw_batch:
            z, state = fresh_rows(state, key, n)
            return C.to_box(space, z), state
        if n > queue_rows:
            raise ValueError(f"ogas: draw_batch ({queue_rows}) must be >= the rows of one sample call ({n})")

        # The generator runs once per draw_batch rows (its cost is the weights' memory traffic,
        # nearly the same for 5 rows as for 60); rows are handed out in turn, as the authors'
        # breeder hands out the parameters of one generation.
        def refill(st):
            z, st = fresh_rows(st, key, queue_rows)
            return st._replace(queue=z, queue_pos=jnp.zeros((), jnp.int32))

        state = jax.lax.cond(state.queue_pos + n > queue_rows, refill, lambda st: st, state)
        z = jax.lax.dynamic_slice_in_dim(state.queue, state.queue_pos, n)
        return C.to_box(space, z), state._replace(queue_pos=state.queue_pos + n)

    mixed = mix_uniform(Proposal(init, sample_generator, update), space, mixing_ratio, split="bernoulli", dtype=f32)

    def sample(state, key, n):
        share = mixing_ratio(state) * n  # before the draw: the ratio this call's rows were mixed with
        lam, state = mixed.sample(state, key, n)
        return lam, state._replace(n_drawn=state.n_drawn + n, generator_share_sum=state.generator_share_sum + share)

    def diagnostics(state):
        """``generator_share``: expected share of generator draws so far (Σ r·n / Σ n);
        ``fallback_share``: share of generator rows replaced by a uniform draw (out of the box
        after ``reject_rounds`` calls); ``generator_steps``: optimiser steps of the generator."""
        return {
            "generator_share": state.generator_share_sum / jnp.maximum(state.n_drawn, 1).astype(f32),
            "fallback_share": state.n_fallback.astype(f32) / jnp.maximum(state.n_generated, 1).astype(f32),
            "generator_steps": (state.n_trained * int(s["train_steps"])).astype(f32),
            "mixing_ratio": mixing_ratio(state).astype(f32),
        }

    return OGASParts(init, sample, update, generate, prior, importance_weights, mixing_ratio, s, diagnostics, draw)


def ogas(space: ParamSpace, *, context: DriverContext | None = None, **settings) -> Proposal:
    """OGAS as a `Proposal` (OGAS-L with ``signal="loss"``, OGAS-U with ``"disagreement"``).

    ``sample(state, key, n) → (λ [n, D] in the box, state)``; ``update(state, feedback) → state``
    consumes ``feedback.lam [B, D]``, ``feedback.loss [B]`` (the signal) and ``feedback.valid [B]``.
    Settings and defaults: `OGASSettings`; the method and its choices: module docstring. With
    ``train_every="auto"`` and no ``surrogate_step_flops``, the driver's ``context`` gives them.
    """
    if settings.get("train_every") == "auto" and settings.get("surrogate_step_flops") is None \
            and context is not None and context.surrogate_step_flops is not None:
        settings = dict(settings, surrogate_step_flops=float(context.surrogate_step_flops()))
    p = make_ogas(space, **settings)
    if settings.get("train_every") == "auto" and context is not None and context.log is not None:
        s = p.settings
        context.log(f"ogas: train_every=auto -> {s['train_every']} (a training round {s['generator_round_flops']:.3g} "
                    f"flops, a surrogate step {s['surrogate_step_flops']:.3g}, share {s['generator_share']:g})")

    def density(state, lam):
        # What OGAS knows of the distribution its data follow is the ratio classifier's estimate
        # p_FIFO / Uniform (the FIFO holds the λ of trained samples), clipped to weight_clip.
        z = space.to_unit(jnp.asarray(lam, jnp.float32))
        return 1.0 / p.importance_weights(state, jnp.clip(z, 0.0, 1.0))

    return Proposal(p.init, p.sample, p.update, density, p.diagnostics)


ogas.settings_type = OGASSettings  # the declaration `proposals.settings_of` reads
