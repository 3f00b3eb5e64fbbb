"""Fourier Neural Operator (Li et al. 2021, "Fourier Neural Operator for Parametric PDEs").

Layout: the model takes and returns channels-first batches ``[B, C, *grid]`` (the exponax
convention) and works channels-last inside. Any number of spatial dimensions; the registry
exposes 1D and 2D variants.

Architecture::

    lift (pointwise Dense → width)
    depth × [ SpectralConv(width, modes) + pointwise skip Dense → FiLM(cond) → GELU ]  (no GELU after the last)
    project (Dense → projection_features → GELU → Dense → out_channels)

Periodic by construction: every spectral convolution is a multiplication in the rfft basis of
the periodic grid, every other layer is pointwise. The same parameters apply at any resolution
whose grid resolves the kept modes (``2 * modes <= N`` on the full-spectrum axes, ``modes <=
N // 2 + 1`` on the last, half-spectrum axis); for band-limited inputs the outputs agree at
shared points up to the aliasing of the pointwise GELU (discretisation invariance).

Complex spectral weights are stored as real pairs ``[..., 2]`` (real, imaginary) so that every
parameter leaf is a real float array: optax, orbax, weight decay and bf16 casts treat them like
any other weight. FFTs always run in at least float32 (XLA has no bf16 FFT).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from qsal_jax.models.conditioning import CondEmbedding, FiLM, check_cond, is_conditioned

Dtype = Any


def _as_modes(modes: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(modes, int):
        return (modes,) * ndim
    modes = tuple(int(m) for m in modes)
    if len(modes) != ndim:
        raise ValueError(f"modes {modes} has {len(modes)} entries but the input has {ndim} spatial dims")
    return modes


def _check_modes(modes: tuple[int, ...], grid: tuple[int, ...]) -> None:
    for axis, (m, n) in enumerate(zip(modes, grid)):
        last = axis == len(grid) - 1
        limit = n // 2 + 1 if last else n // 2
        if not 1 <= m <= limit:
            raise ValueError(
                f"modes[{axis}]={m} does not fit a grid of {n} points on that axis "
                f"(need 1 <= modes <= {limit}); lower `modes` or use a finer grid."
            )


def _gather_modes(xf: jax.Array, modes: tuple[int, ...]) -> jax.Array:
    """Keep the low modes of an rfftn spectrum ``[B, N1, ..., Nd//2+1, C]``.

    Full-spectrum axes keep ``m`` non-negative and ``m`` negative frequencies (shape ``2m``);
    the last, half-spectrum axis keeps the first ``m``. Result ``[B, 2m1, ..., md, C]``.
    """
    d = len(modes)
    for axis, m in enumerate(modes[:-1]):
        a = axis + 1
        lo = jax.lax.slice_in_dim(xf, 0, m, axis=a)
        hi = jax.lax.slice_in_dim(xf, xf.shape[a] - m, xf.shape[a], axis=a)
        xf = jnp.concatenate([lo, hi], axis=a)
    return jax.lax.slice_in_dim(xf, 0, modes[-1], axis=d)


def _scatter_modes(yk: jax.Array, modes: tuple[int, ...], spec_shape: tuple[int, ...]) -> jax.Array:
    """Inverse of `_gather_modes`: zero-fill ``[B, 2m1, ..., md, C]`` back to ``spec_shape`` (spatial)."""
    d = len(modes)
    pad = [(0, 0)] * yk.ndim
    pad[d] = (0, spec_shape[-1] - modes[-1])
    yk = jnp.pad(yk, pad)
    for axis, m in enumerate(modes[:-1]):
        a = axis + 1
        lo = jax.lax.slice_in_dim(yk, 0, m, axis=a)
        hi = jax.lax.slice_in_dim(yk, m, 2 * m, axis=a)
        zshape = list(yk.shape)
        zshape[a] = spec_shape[axis] - 2 * m
        yk = jnp.concatenate([lo, jnp.zeros(zshape, yk.dtype), hi], axis=a)
    return yk


def spectral_init(key, shape, dtype=jnp.float32):
    """Fan-in init for a complex weight stored as ``[..., C_in, C_out, 2]``: Var(Re)+Var(Im) = 1/C_in."""
    c_in = shape[-3]
    return jax.random.normal(key, shape, dtype) * jnp.sqrt(0.5 / c_in).astype(dtype)


class SpectralConv(nn.Module):
    """Fourier-space convolution with a dense complex weight on the kept low modes.

    Call: ``x: [B, *grid, C_in]`` (channels-last) → ``[B, *grid, features]``.
    Parameter ``weight: [2m1, ..., 2m_{d-1}, m_d, C_in, features, 2]`` (real, imag).
    """

    features: int
    modes: Sequence[int]
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        grid = x.shape[1:-1]
        modes = _as_modes(self.modes, len(grid))
        _check_modes(modes, grid)
        axes = tuple(range(1, len(grid) + 1))
        kept = tuple(2 * m for m in modes[:-1]) + (modes[-1],)
        w = self.param("weight", spectral_init, kept + (x.shape[-1], self.features, 2), self.param_dtype)

        fft_dtype = jnp.promote_types(self.dtype, jnp.float32)
        w = w.astype(fft_dtype)
        wc = jax.lax.complex(w[..., 0], w[..., 1])
        xf = jnp.fft.rfftn(x.astype(fft_dtype), axes=axes)
        yk = jnp.einsum("b...i,...io->b...o", _gather_modes(xf, modes), wc)
        yf = _scatter_modes(yk, modes, xf.shape[1:-1])
        return jnp.fft.irfftn(yf, s=grid, axes=axes).astype(self.dtype)


class FNO(nn.Module):
    """Fourier Neural Operator on a periodic grid, optionally FiLM-conditioned.

    Attributes:
      out_channels: channels of the output field.
      modes: kept Fourier modes per spatial axis (an int means the same on every axis).
      width: hidden channels of the Fourier layers.
      depth: number of Fourier layers.
      projection_features: hidden width of the pointwise projection head.
      residual: if True, predict ``x + f(x)`` (the increment); needs ``in == out`` channels.
      cond_features: width of the λ embedding used by FiLM (only when ``cond`` has P > 0).
      dtype: compute dtype (float32; bfloat16 for mixed precision). param_dtype: storage dtype.

    Call: ``x: [B, C_in, *grid]``, ``cond: [B, P]`` or None → ``[B, out_channels, *grid]``.
    """

    out_channels: int
    modes: int | Sequence[int] = 16
    width: int = 32
    depth: int = 4
    projection_features: int = 128
    residual: bool = False
    cond_features: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        if x.ndim < 3:
            raise ValueError(
                f"FNO expects a batch [B, C, *grid]; got shape {x.shape}. For one state use x[None]."
            )
        check_cond(cond, x.shape[0])
        modes = _as_modes(self.modes, x.ndim - 2)
        dense = lambda n, name: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype, name=name)

        emb = None
        if is_conditioned(cond):
            emb = CondEmbedding(self.cond_features, self.dtype, self.param_dtype, name="cond_embed")(cond)

        h = dense(self.width, "lift")(jnp.moveaxis(x, 1, -1).astype(self.dtype))
        for layer in range(self.depth):
            y = SpectralConv(self.width, modes, self.dtype, self.param_dtype, name=f"spectral_{layer}")(h)
            y = y + dense(self.width, f"skip_{layer}")(h)
            y = FiLM(self.dtype, self.param_dtype, name=f"film_{layer}")(y, emb)
            h = nn.gelu(y) if layer < self.depth - 1 else y
        h = nn.gelu(dense(self.projection_features, "project_hidden")(h))
        out = jnp.moveaxis(dense(self.out_channels, "project_out")(h), -1, 1)
        if self.residual:
            if x.shape[1] != self.out_channels:
                raise ValueError(f"residual=True needs in_channels == out_channels; got {x.shape[1]} vs {self.out_channels}")
            out = x.astype(out.dtype) + out
        return out
