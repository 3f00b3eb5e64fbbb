"""Closed-form densities of the strategies' draws, for importance-weighted surrogate training.

All densities are with respect to the uniform measure on the unit cube (so ``Unif ≡ 1``) and
take unit-cube points ``z [n, D]``. The importance weight of a draw is ``1 / density``.

A Gaussian kernel draw reflected into ``[0, 1]`` at the faces (`_common.reflect_unit`) has, per
coordinate, the density of every mirror image of its centre, ``Σ_m φ_σ(z − c − 2m) + φ_σ(z + c − 2m)``;
for σ ≤ 0.5 the images at ``c``, ``−c`` and ``2 − c`` carry all but ``< 1e-6`` of it, and those are
the three summed here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reflected_kernel_log_density(z: jax.Array, centres: jax.Array, sigma) -> jax.Array:
    """``log k(z_i; c_j)`` of the reflected isotropic kernel, ``z [n, D]``, ``centres [M, D]`` → ``[n, M]``."""
    sigma = jnp.asarray(sigma, z.dtype)
    diff = z[:, None, :] - centres[None, :, :]  # [n, M, D]
    images = jnp.stack([diff, z[:, None, :] + centres[None, :, :], z[:, None, :] - (2.0 - centres[None, :, :])])
    log_phi = -0.5 * jnp.square(images / sigma) - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi)
    return jnp.sum(jax.nn.logsumexp(log_phi, axis=0), axis=-1)


def reflected_mixture_density(z: jax.Array, centres: jax.Array, weights: jax.Array, sigma) -> jax.Array:
    """Density ``[n]`` of ``Σ_j p_j k(·; c_j)`` with ``p = weights / Σ weights`` (non-negative ``[M]``).

    All-zero weights give 1 (the caller's fallback is then uniform draws).
    """
    total = jnp.sum(weights)
    logp = jnp.log(jnp.where(weights > 0, weights, 1.0)) - jnp.log(jnp.where(total > 0, total, 1.0))
    logp = jnp.where(weights > 0, logp, -jnp.inf)
    dens = jnp.exp(jax.nn.logsumexp(reflected_kernel_log_density(z, centres, sigma) + logp[None, :], axis=-1))
    return jnp.where(total > 0, dens, jnp.ones_like(dens))


def mixture_with_uniform(alpha: jax.Array, inner_density: jax.Array) -> jax.Array:
    """``α · q(z) + (1 − α) · 1``: the density of a `mix_uniform` draw."""
    return alpha * inner_density + (1.0 - alpha)


def importance_weights(density: jax.Array, clip: float) -> jax.Array:
    """``clip(1 / density, 1/clip, clip)`` ``[n]``; a non-finite or zero density gets weight ``clip``."""
    w = 1.0 / density
    w = jnp.where(jnp.isfinite(w) & (density > 0), w, clip)
    return jnp.clip(w, 1.0 / clip, clip)
