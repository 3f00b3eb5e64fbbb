"""Parameterised initial conditions: λ block → state ``[C, *grid]``.

Every map takes the parameter block it owns (already in physical units) and the grid
coordinates ``x: [D, *grid]`` (from `qsal_jax.solvers.spectral.grid`) plus the domain
length, and is pure and differentiable in λ, so gradients flow from a rollout back to
the initial-condition parameters.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np


def wave_superposition(params: jax.Array, x: jax.Array, domain_extent, wavenumbers=(1, 2)) -> jax.Array:
    """u0 = A0 sin(k0 x + φ0) + A1 sin(k1 x + φ1), k_i = 2π m_i / L; ``params = (A0, A1, φ0, φ1)``.

    ``x: [1, N]`` → ``[1, N]``. The method's 1D experiments use this with λ = (A0, A1, φ0, φ1).
    """
    a0, a1, p0, p1 = params[0], params[1], params[2], params[3]
    k0, k1 = (2 * jnp.pi * m / domain_extent for m in wavenumbers)
    return a0 * jnp.sin(k0 * x + p0) + a1 * jnp.sin(k1 * x + p1)


def fourier_modes(num_spatial_dims: int, num_modes: int) -> np.ndarray:
    """The ``num_modes`` lowest non-zero integer wave vectors (one of each ±k pair), ``[K, D]``.

    Ordered by |k| then lexicographically, so the first modes are the largest scales.
    """
    radius = 1
    while True:
        cands = [
            k
            for k in itertools.product(range(-radius, radius + 1), repeat=num_spatial_dims)
            if any(k) and next(c for c in k if c != 0) > 0  # keep one of ±k
        ]
        if len(cands) >= num_modes:
            break
        radius += 1
    cands.sort(key=lambda k: (sum(c * c for c in k), k))
    return np.asarray(cands[:num_modes], dtype=np.int32)


def truncated_fourier(amplitudes: jax.Array, phases: jax.Array, x: jax.Array, domain_extent, normalize: bool = True):
    """u0 = Σ_k a_k sin(2π k·x / L + φ_k) over the K lowest modes; ``x: [D, *grid]`` → ``[1, *grid]``.

    With ``normalize`` the field is scaled to max |u0| = 1 (when non-zero), as exponax's
    random ICs are, which keeps the nonlinear difficulty comparable across λ.
    """
    num_spatial_dims = x.shape[0]
    modes = jnp.asarray(fourier_modes(num_spatial_dims, amplitudes.shape[-1]), x.dtype)  # [K, D]
    phase = 2 * jnp.pi / domain_extent * jnp.tensordot(modes, x, axes=1)  # [K, *grid]
    expand = (slice(None),) + (None,) * num_spatial_dims
    u = jnp.sum(amplitudes[expand] * jnp.sin(phase + phases[expand]), axis=0)
    if normalize:
        peak = jnp.max(jnp.abs(u))
        u = u / jnp.where(peak > 0, peak, 1.0)
    return u[None]


def periodic_bumps(centres: jax.Array, weights: jax.Array, x: jax.Array, domain_extent, width: float = 0.05):
    """u0 = Σ_j w_j g(x − c_j L) with periodic (von Mises) bumps of fixed width, zero mean, max |u0| = 1.

    ``centres, weights: [K]`` (centres as fractions of the domain, weights in [−1, 1]), ``x: [1, N]``
    → ``[1, N]``. The bump width fixes the spectral content, so the field's smoothness, and with
    the peak normalisation its amplitude, do not depend on K: K dials dim(λ) = 2K and nothing else.
    """
    rel = x[0] / domain_extent  # [N] in [0, 1)
    kappa = 1.0 / (2 * jnp.pi * width) ** 2
    bumps = jnp.exp(kappa * (jnp.cos(2 * jnp.pi * (rel[None] - centres[:, None])) - 1.0))  # [K, N]
    u = jnp.sum(weights[:, None] * bumps, axis=0)
    u = u - jnp.mean(u)
    peak = jnp.max(jnp.abs(u))
    return (u / jnp.maximum(peak, 1e-6))[None]


def gaussian_blobs(params: jax.Array, x: jax.Array, domain_extent) -> jax.Array:
    """Gray–Scott IC from K periodic Gaussian blobs; ``params [K, 4]`` rows (cx, cy, width, amplitude).

    Centres and widths are fractions of the domain (periodic distance), amplitude in
    [0, 1]. Returns channels (u, v) = (1 − b, b) with b = min(Σ blobs, 1), ``[2, N, N]``.
    """
    rel = x / domain_extent  # [2, N, N] in [0, 1)
    centre = params[:, :2, None, None]  # [K, 2, 1, 1]
    diff = rel[None] - centre
    diff = diff - jnp.round(diff)  # periodic distance
    dist2 = jnp.sum(diff**2, axis=1)  # [K, N, N]
    width = params[:, 2, None, None]
    amp = params[:, 3, None, None]
    blobs = jnp.sum(amp * jnp.exp(-dist2 / (2 * width**2)), axis=0)
    v = jnp.clip(blobs, 0.0, 1.0)
    return jnp.stack([1.0 - v, v])
