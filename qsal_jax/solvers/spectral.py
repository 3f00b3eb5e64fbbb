"""Fourier machinery on the periodic box [0, L)^D with N points per axis.

Conventions follow exponax: a state is ``[C, N, ..., N]`` (channels first), the grid
includes the left end and excludes the right one, x_i = i L / N, and spectral arrays
are real-FFT layouts ``[C, N, ..., N//2 + 1]`` (the last axis halved).

The domain length L may be a traced array: wavenumbers are ``2π/L`` times a static
integer grid, so one compiled program serves a batch of different lengths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def spatial_axes(num_spatial_dims: int) -> tuple[int, ...]:
    """The trailing axes holding space, e.g. (-2, -1) in 2D."""
    return tuple(range(-num_spatial_dims, 0))


def fft(u: jax.Array, num_spatial_dims: int) -> jax.Array:
    """Real FFT over the spatial axes: ``[C, *grid]`` → ``[C, *freq]``."""
    return jnp.fft.rfftn(u, axes=spatial_axes(num_spatial_dims))


def ifft(u_hat: jax.Array, num_spatial_dims: int, num_points: int) -> jax.Array:
    """Inverse of `fft`: ``[C, *freq]`` → ``[C, *grid]``."""
    return jnp.fft.irfftn(u_hat, s=(num_points,) * num_spatial_dims, axes=spatial_axes(num_spatial_dims))


def integer_wavenumbers(num_spatial_dims: int, num_points: int) -> np.ndarray:
    """Integer wavenumbers per axis in rfft layout, shape ``[D, N, ..., N//2+1]`` (static)."""
    full = np.fft.fftfreq(num_points, 1.0 / num_points)
    half = np.fft.rfftfreq(num_points, 1.0 / num_points)
    axes = [full] * (num_spatial_dims - 1) + [half]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def derivative_operator(num_spatial_dims: int, num_points: int, domain_extent, dtype=jnp.complex64) -> jax.Array:
    """``i k`` per axis, shape ``[D, N, ..., N//2+1]``; ``domain_extent`` may be traced.

    The Nyquist mode of even N is kept as exponax does; the 2/3 dealiasing mask removes
    it from every nonlinear evaluation.
    """
    k_int = integer_wavenumbers(num_spatial_dims, num_points)
    scale = (2 * jnp.pi / jnp.asarray(domain_extent)).astype(jnp.finfo(dtype).dtype)
    return (1j * scale * k_int).astype(dtype)


def dealiasing_mask(num_spatial_dims: int, num_points: int, fraction: float = 2 / 3) -> np.ndarray:
    """Keep modes with ``|k_d| <= fraction · (N//2) − 1`` on every axis; shape ``[1, N, ..., N//2+1]``.

    The same cut as exponax (one mode below Orszag's N/3), so results agree with that ecosystem
    to rounding.
    """
    k_int = integer_wavenumbers(num_spatial_dims, num_points)
    keep = np.all(np.abs(k_int) <= fraction * (num_points // 2) - 1, axis=0)
    return keep[None]


def nonzero_modes(num_spatial_dims: int, num_points: int) -> np.ndarray:
    """True everywhere but the zero mode (the mean), shape ``[1, N, ..., N//2+1]`` (static)."""
    keep = np.ones((1,) + (num_points,) * (num_spatial_dims - 1) + (num_points // 2 + 1,), bool)
    keep[(0,) * (num_spatial_dims + 1)] = False
    return keep


def quadratic_products_exact(num_points: int, fraction) -> bool:
    """Whether `dealiasing_mask` makes a product of two masked fields exact on the kept modes.

    With every kept ``|k_d| <= K``, the product has ``|k_d| <= 2K`` and its aliases fold onto
    ``|k_d| >= N − 2K``, so ``3K < N`` leaves the kept modes clean (Orszag's 2/3 rule). False for
    a traced ``fraction``.
    """
    if not isinstance(fraction, (int, float)):
        return False
    k = np.arange(num_points // 2 + 1)
    kept = k[k <= fraction * (num_points // 2) - 1]  # the comparison of `dealiasing_mask`
    return kept.size > 0 and 3 * int(kept.max()) < num_points


def grid(num_spatial_dims: int, num_points: int, domain_extent, dtype=jnp.float32) -> jax.Array:
    """Coordinates ``[D, N, ..., N]`` of the grid points, ``x_i = i L / N``."""
    unit = np.arange(num_points) / num_points
    mesh = np.stack(np.meshgrid(*([unit] * num_spatial_dims), indexing="ij"))
    return jnp.asarray(mesh, dtype=dtype) * jnp.asarray(domain_extent, dtype=dtype)


def laplacian_symbol(derivative: jax.Array) -> jax.Array:
    """Fourier symbol of Δ, ``Σ_d (i k_d)^2 = -|k|^2``, shape ``[1, *freq]``."""
    return jnp.sum(derivative**2, axis=0, keepdims=True)


def inverse_laplacian_symbol(derivative: jax.Array) -> jax.Array:
    """Fourier symbol of Δ⁻¹ with the mean mode mapped to zero, shape ``[1, *freq]``."""
    lap = laplacian_symbol(derivative)
    safe = jnp.where(lap == 0, 1.0, lap)
    return jnp.where(lap == 0, 0.0, 1.0 / safe)
