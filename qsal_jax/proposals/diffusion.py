"""Conditional DDPM machinery for OGAS: noise schedule, MLP ε-predictor, loss, ancestral sampler.

Data live in ``x = 2 λ_unit − 1 ∈ [−1, 1]^D``. The generator models ``p(x | ε)`` with the
ε-prediction objective of Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models",
and classifier-free guidance of Ho & Salimans (2022): one network sees either the condition ε or
a null token (dropped with probability ``p_uncond`` during training) and at sampling time the two
predictions are combined as ``ε̃ = (1 + w) ε̂(x, t, ε) − w ε̂(x, t, ∅)``.

Everything here is pure and batched over a leading axis; shapes are static (T, D, widths).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class Schedule(NamedTuple):
    """Precomputed DDPM coefficients, all ``[T]`` float32, index ``t = 0 … T−1`` ↔ paper's ``1 … T``."""

    beta: jax.Array
    alpha_bar: jax.Array  # ∏_{s≤t} (1 − β_s)
    sqrt_ab: jax.Array  # √ᾱ_t
    sqrt_1m_ab: jax.Array  # √(1 − ᾱ_t)
    post_c0: jax.Array  # posterior mean coefficient of x̂0
    post_ct: jax.Array  # posterior mean coefficient of x_t
    post_std: jax.Array  # √β̃_t, zero at t = 0 (the last step is deterministic)
    t_model: jax.Array  # [T] int32: the network's time index of each step (identity unless respaced)


def make_noise_schedule(steps: int, kind: str = "cosine") -> Schedule:
    """β schedule: ``"cosine"`` (Nichol & Dhariwal 2021, s = 0.008) or ``"linear"`` (Ho et al. 2020,
    rescaled from 1000 steps so that ``T β̄`` is preserved)."""
    if steps < 2:
        raise ValueError(f"diffusion steps must be >= 2, got {steps}")
    if kind == "cosine":
        s = 0.008
        u = np.arange(steps + 1, dtype=np.float64) / steps
        f = np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
        beta = np.clip(1.0 - f[1:] / f[:-1], 1e-5, 0.999)
    elif kind == "linear":
        scale = 1000.0 / steps
        beta = np.linspace(1e-4 * scale, 0.02 * scale, steps)
    else:
        raise ValueError(f"unknown beta schedule {kind!r}; use 'cosine' or 'linear'")
    return _from_alpha_bar(np.cumprod(1.0 - beta), np.arange(steps))


def respace(sched: Schedule, steps: int) -> Schedule:
    """A ``steps``-step sampling schedule on an evenly spaced subset of the training steps.

    Respacing of Nichol & Dhariwal (2021): keep ᾱ at the chosen steps (always including the
    first, so the last sampling step stays deterministic) and recompute β from their ratios; the
    network still sees its training time indices through ``t_model``.
    """
    total = sched.alpha_bar.shape[0]
    if not 2 <= steps <= total:
        raise ValueError(f"sampling steps must be in [2, {total}], got {steps}")
    keep = np.unique(np.round(np.linspace(0, total - 1, steps)).astype(np.int64))
    ab = np.asarray(sched.alpha_bar, np.float64)
    return _from_alpha_bar(ab[keep], np.asarray(sched.t_model)[keep])


def _from_alpha_bar(ab: np.ndarray, t_model: np.ndarray) -> Schedule:
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    beta = 1.0 - ab / ab_prev
    post_var = beta * (1.0 - ab_prev) / (1.0 - ab)
    c = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return Schedule(
        beta=c(beta),
        alpha_bar=c(ab),
        sqrt_ab=c(np.sqrt(ab)),
        sqrt_1m_ab=c(np.sqrt(1.0 - ab)),
        post_c0=c(beta * np.sqrt(ab_prev) / (1.0 - ab)),
        post_ct=c((1.0 - ab_prev) * np.sqrt(1.0 - beta) / (1.0 - ab)),
        post_std=c(np.sqrt(post_var)),
        t_model=jnp.asarray(t_model, jnp.int32),
    )


def _fourier(x: jax.Array, n: int, max_freq: float) -> jax.Array:
    """``[N] → [N, 2n]`` sin/cos features with geometric frequencies 1 … max_freq."""
    freqs = jnp.exp(jnp.linspace(0.0, jnp.log(max_freq), n, dtype=jnp.float32))
    a = x[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(a), jnp.cos(a)], axis=-1)


class Denoiser(nn.Module):
    """MLP ε-predictor ``(x_t [N, D], t [N] int, ε [N], null [N] bool) → ε̂ [N, D]``.

    Residual MLP. Time step and condition (ε, or a learned null token when ``null``) are embedded
    linearly once per call into ``c [N, hidden]`` and added before the nonlinearity of every block; no FiLM,
    because sampling cost is dominated by ``depth × hidden²`` per step and is part of the AL overhead.
    """

    dim: int
    hidden: int = 128
    depth: int = 3
    steps: int = 50
    eps_scale: float = 3.0  # ε is divided by this so the condition is O(1)

    @nn.compact
    def __call__(self, x, t, eps, null):
        f32 = jnp.float32
        t_feat = _fourier(t.astype(f32) / self.steps * jnp.pi, 16, 64.0)
        ef = eps.astype(f32) / self.eps_scale
        e_feat = jnp.concatenate([ef[:, None], _fourier(ef, 8, 8.0)], axis=-1)
        null_tok = self.param("null_token", nn.initializers.normal(1.0), (e_feat.shape[-1],), f32)
        e_feat = jnp.where(null[:, None], null_tok[None, :], e_feat)
        c = nn.Dense(self.hidden)(jnp.concatenate([t_feat, e_feat, null[:, None].astype(f32)], axis=-1))
        h = nn.Dense(self.hidden)(x)
        for _ in range(self.depth):
            h = h + nn.Dense(self.hidden)(nn.silu(nn.LayerNorm()(h) + c))
        return nn.Dense(self.dim)(nn.silu(nn.LayerNorm()(h)))


class RatioClassifier(nn.Module):
    """Logistic-regression MLP ``λ_unit [N, D] → logit [N]`` (FIFO pair vs uniform draw)."""

    hidden: int = 64
    depth: int = 2

    @nn.compact
    def __call__(self, z):
        h = 2.0 * z - 1.0
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.hidden)(h))
        return nn.Dense(1, kernel_init=nn.initializers.zeros)(h)[:, 0]


def ddpm_loss(apply, params, sched: Schedule, key, x0, eps, weight, p_uncond: float):
    """Importance-weighted ε-prediction loss ``Σ w_i ‖ε̂ − z‖²/D / Σ w_i`` on a minibatch.

    ``x0 [N, D]`` in [−1, 1], ``eps [N]`` conditions, ``weight [N] ≥ 0`` (zero for empty slots).
    The condition is replaced by the null token with probability ``p_uncond`` (CFG training).
    """
    n = x0.shape[0]
    steps = sched.beta.shape[0]
    kt, kz, kd = jax.random.split(key, 3)
    t = jax.random.randint(kt, (n,), 0, steps, dtype=jnp.int32)
    z = jax.random.normal(kz, x0.shape, jnp.float32)
    null = jax.random.uniform(kd, (n,), jnp.float32) < p_uncond
    xt = sched.sqrt_ab[t, None] * x0 + sched.sqrt_1m_ab[t, None] * z
    err = jnp.mean((apply(params, xt, t, eps, null) - z) ** 2, axis=-1)
    return jnp.sum(weight * err) / jnp.maximum(jnp.sum(weight), 1e-12)


def ddpm_sample(apply, params, sched: Schedule, key, eps, dim: int, guidance: float, *, clip_final: bool = True,
                clip_denoised: bool = True):
    """Ancestral DDPM sampling with classifier-free guidance, one ``lax.scan`` over the T steps of
    ``sched`` (the training schedule, or a `respace` of it).

    ``eps [n]`` target conditions → ``x0 [n, D]``. Boundary rule: the predicted clean sample x̂0 is
    clipped to [−1, 1] at every step ("clip_denoised", Ho et al. 2020). The last step has zero
    noise and ``post_c0 = 1, post_ct = 0``, so with ``clip_final`` the result is the clipped x̂0 and
    lies in the cube whenever it is finite — with point masses on the faces for the mass the
    model puts outside. ``clip_final=False`` returns the last x̂0 unclipped (the intermediate steps
    stay clipped), for a caller that rejects what lies outside. ``clip_denoised=False`` clips no
    step (and ``clip_final`` is then ignored). Conditional and unconditional predictions share one
    network call on a ``[2n, D]`` batch.
    """
    n = eps.shape[0]
    steps = sched.beta.shape[0]
    k0, kl = jax.random.split(key)
    x = jax.random.normal(k0, (n, dim), jnp.float32)
    guided = guidance != 0.0  # static: w = 0 needs only the conditional half
    m = 2 * n if guided else n
    eps2 = jnp.concatenate([eps, eps] if guided else [eps]).astype(jnp.float32)
    null2 = jnp.arange(m) >= n

    def step(x, inp):
        t, k = inp
        tm = jnp.full((m,), sched.t_model[t], jnp.int32)
        out = apply(params, jnp.concatenate([x, x]) if guided else x, tm, eps2, null2)
        e = (1.0 + guidance) * out[:n] - guidance * out[n:] if guided else out
        x0 = (x - sched.sqrt_1m_ab[t] * e) / sched.sqrt_ab[t]
        if clip_denoised:
            clipped = jnp.clip(x0, -1.0, 1.0)
            x0 = clipped if clip_final else jnp.where(t > 0, clipped, x0)
        mean = sched.post_c0[t] * x0 + sched.post_ct[t] * x
        x = mean + sched.post_std[t] * jax.random.normal(k, x.shape, jnp.float32)
        return x, None

    ts = jnp.arange(steps - 1, -1, -1, dtype=jnp.int32)
    x, _ = jax.lax.scan(step, x, (ts, jax.random.split(kl, steps)))
    return x
