"""FiLM conditioning of feature maps on scalar PDE parameters.

Perez et al. (2018), "FiLM: Visual Reasoning with a General Conditioning Layer": a feature map
``h`` is modulated channel-wise as ``h * (1 + gamma(cond)) + beta(cond)``. ``gamma`` and
``beta`` come from a Dense layer initialised at zero, so a freshly built conditioned model
computes exactly what the unconditioned one does and conditioning is learned from there.

``cond`` is ``[B, P]``: one row of P scalar PDE parameters (λ, physical coefficients) per
sample. ``P == 0`` (or ``cond=None``) means unconditioned: `FiLM` is then the identity and
creates no parameters, so one model definition serves both cases.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def is_conditioned(cond: jax.Array | None) -> bool:
    """True when ``cond`` carries at least one scalar per sample (``cond: [B, P]``, P > 0)."""
    return cond is not None and cond.ndim == 2 and cond.shape[-1] > 0


def check_cond(cond: jax.Array | None, batch: int) -> None:
    """Raise a helpful error when ``cond`` does not have shape ``[B, P]`` matching the batch."""
    if cond is None:
        return
    if cond.ndim != 2 or cond.shape[0] != batch:
        raise ValueError(
            f"cond must have shape [B, P] with B={batch} (P may be 0); got {cond.shape}. "
            "For a single sample use cond[None]."
        )


class CondEmbedding(nn.Module):
    """Embed ``cond: [B, P]`` into ``[B, features]`` with a two-layer GELU MLP.

    Done once per forward pass; every FiLM layer of the network reads the same embedding.
    """

    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, cond: jax.Array) -> jax.Array:
        dense = lambda n, name: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype, name=name)
        h = nn.gelu(dense(self.features, "in")(cond.astype(self.dtype)))
        return dense(self.features, "out")(h)


class FiLM(nn.Module):
    """Channel-wise affine modulation of a channels-last feature map.

    Attributes:
      dtype: compute dtype. param_dtype: storage dtype of the (zero-initialised) Dense.

    Call: ``h: [B, *grid, F]``, ``emb: [B, E]`` or None → ``[B, *grid, F]``.
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, emb: jax.Array | None) -> jax.Array:
        if emb is None:
            return h
        f = h.shape[-1]
        gb = nn.Dense(
            2 * f,
            kernel_init=nn.initializers.zeros,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="gamma_beta",
        )(emb)
        gamma, beta = jnp.split(gb, 2, axis=-1)
        # Broadcast [B, F] over the spatial axes of h.
        bshape = (h.shape[0],) + (1,) * (h.ndim - 2) + (f,)
        return h * (1.0 + gamma.reshape(bshape)) + beta.reshape(bshape)
