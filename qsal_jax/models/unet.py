"""U-Net for periodic PDE fields, in the "modern U-Net" style of PDE surrogates.

Gupta & Brandstetter (2022), "Towards Multi-spatiotemporal-scale Generalized PDE Modeling"
(PDEArena's UNetmod): pre-activation residual blocks (GroupNorm → GELU → conv), channel
multipliers per level, concatenated skip connections, and conditioning by scale–shift of the
second normalisation (FiLM).

Every convolution pads circularly, downsampling is a stride-2 circular convolution and
upsampling is nearest-neighbour repetition followed by a circular convolution, and GroupNorm
statistics are shift-invariant. The network is therefore exactly equivariant to periodic shifts
by multiples of the total downsampling factor ``2 ** (len(channel_mults) - 1)``, and every grid
axis must be divisible by that factor.

Layout: ``[B, C, *grid]`` in and out (channels-first, like exponax); channels-last inside.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from qsal_jax.models.conditioning import CondEmbedding, FiLM, check_cond, is_conditioned

Dtype = Any


class CircularConv(nn.Module):
    """Convolution on a periodic grid: wrap-pad by ``kernel_size // 2`` on each side, then VALID.

    Call: ``x: [B, *grid, C]`` → ``[B, *grid / stride, features]``.
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d = x.ndim - 2
        p = self.kernel_size // 2
        x = jnp.pad(x, [(0, 0)] + [(p, p)] * d + [(0, 0)], mode="wrap")
        return nn.Conv(
            self.features,
            (self.kernel_size,) * d,
            strides=(self.stride,) * d,
            padding="VALID",
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )(x)


def _group_norm(channels: int, num_groups: int, dtype, param_dtype, name: str) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=math.gcd(num_groups, channels), dtype=dtype, param_dtype=param_dtype, name=name)


class ResidualBlock(nn.Module):
    """Pre-activation residual block with FiLM on the second normalisation.

    Call: ``x: [B, *grid, C]``, ``emb: [B, E]`` or None → ``[B, *grid, features]``.
    """

    features: int
    num_groups: int = 8
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array | None) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        h = nn.gelu(_group_norm(x.shape[-1], self.num_groups, name="norm1", **kw)(x))
        h = CircularConv(self.features, name="conv1", **kw)(h)
        h = _group_norm(self.features, self.num_groups, name="norm2", **kw)(h)
        h = FiLM(name="film", **kw)(h, emb)
        h = CircularConv(self.features, name="conv2", **kw)(nn.gelu(h))
        if x.shape[-1] != self.features:
            x = nn.Dense(self.features, name="skip", **kw)(x)
        return x + h


def _upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour ×2 along every spatial axis of ``[B, *grid, C]``."""
    for axis in range(1, x.ndim - 1):
        x = jnp.repeat(x, 2, axis=axis)
    return x


class UNet(nn.Module):
    """Circular-padding U-Net for 1D/2D periodic fields, optionally FiLM-conditioned.

    Attributes:
      out_channels: channels of the output field.
      hidden: channels at the finest level.
      channel_mults: per-level multiplier of ``hidden``; ``len - 1`` stride-2 downsamplings.
      num_blocks: residual blocks per level (the up path uses one more to absorb the skip).
      num_groups: GroupNorm groups (reduced to gcd with the channel count where needed).
      residual: if True, predict ``x + f(x)``; needs ``in == out`` channels.
      cond_features: width of the λ embedding (only when ``cond`` has P > 0).
      spatial_dims: if set, the number of grid axes the input must have (1 or 2).
      dtype / param_dtype: compute / storage dtype.

    Call: ``x: [B, C_in, *grid]``, ``cond: [B, P]`` or None → ``[B, out_channels, *grid]``.
    """

    out_channels: int
    hidden: int = 32
    channel_mults: Sequence[int] = (1, 2, 2, 4)
    num_blocks: int = 1
    num_groups: int = 8
    residual: bool = False
    cond_features: int = 64
    spatial_dims: int | None = None
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        if x.ndim < 3:
            raise ValueError(f"UNet expects a batch [B, C, *grid]; got shape {x.shape}. For one state use x[None].")
        if self.spatial_dims is not None and x.ndim - 2 != self.spatial_dims:
            raise ValueError(f"this UNet is {self.spatial_dims}D: expected [B, C] + {self.spatial_dims} grid axes, got {x.shape}")
        check_cond(cond, x.shape[0])
        f = self.downsampling_factor
        if any(n % f for n in x.shape[2:]):
            raise ValueError(
                f"every grid axis must be divisible by the downsampling factor {f} "
                f"(channel_mults={tuple(self.channel_mults)}); got grid {x.shape[2:]}"
            )
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        block = lambda n, name: ResidualBlock(n, self.num_groups, name=name, **kw)

        emb = CondEmbedding(self.cond_features, name="cond_embed", **kw)(cond) if is_conditioned(cond) else None
        h = CircularConv(self.hidden, name="conv_in", **kw)(jnp.moveaxis(x, 1, -1).astype(self.dtype))

        skips = []
        levels = len(self.channel_mults)
        for level, mult in enumerate(self.channel_mults):
            for i in range(self.num_blocks):
                h = block(self.hidden * mult, f"down_{level}_{i}")(h, emb)
                skips.append(h)
            if level < levels - 1:
                h = CircularConv(h.shape[-1], stride=2, name=f"downsample_{level}", **kw)(h)

        h = block(h.shape[-1], "mid_0")(h, emb)
        h = block(h.shape[-1], "mid_1")(h, emb)

        for level in reversed(range(levels)):
            width = self.hidden * self.channel_mults[level]
            for i in range(self.num_blocks):
                h = block(width, f"up_{level}_{i}")(jnp.concatenate([h, skips.pop()], axis=-1), emb)
            h = block(width, f"up_{level}_{self.num_blocks}")(h, emb)
            if level > 0:
                h = CircularConv(width, name=f"upsample_{level}", **kw)(_upsample(h))

        h = nn.gelu(_group_norm(h.shape[-1], self.num_groups, name="norm_out", **kw)(h))
        out = jnp.moveaxis(CircularConv(self.out_channels, name="conv_out", **kw)(h), -1, 1)
        if self.residual:
            if x.shape[1] != self.out_channels:
                raise ValueError(f"residual=True needs in_channels == out_channels; got {x.shape[1]} vs {self.out_channels}")
            out = x.astype(out.dtype) + out
        return out
