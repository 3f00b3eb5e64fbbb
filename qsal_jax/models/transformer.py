"""Vision-transformer operator surrogate for 1D and 2D periodic fields.

Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words" (ViT): cut the field into
non-overlapping patches, embed each linearly, run pre-LayerNorm self-attention blocks over the
tokens. Herde et al. (2024), "Poseidon: Efficient Foundation Models for PDEs" (scOT): use that
backbone as an operator, decode every token back to its patch, and condition on the PDE
parameters through the layer norms. scOT's Swin windows and U-Net skips are left out: attention
here is global, which at the grids of this project (40 tokens for 160 points with 4-point
patches; 256 tokens at 128² with 8×8 patches, 1024 with 4×4) costs little.

Layout: ``[B, C, *grid]`` in and out (channels-first, like the FNO); tokens ``[B, T, width]``
inside, ``T = prod(grid / patch)`` in row-major patch order.

Architecture::

    patchify (p^d·C values per token) → Dense → width, + position embedding
    depth × [ h += MHSA(FiLM(LN(h))) ; h += MLP(FiLM(LN(h))) ]
    FiLM(LN(h)) → Dense → p^d·out_channels → un-patchify

FiLM after each LayerNorm is scOT's conditional layer norm (DiT's adaLN): zero-initialised, so a
conditioned model starts out as the unconditioned one.

Position embedding (``pos_embedding``):
  ``"sinusoidal"`` (default) — fixed, no parameters: ``sin``/``cos`` of ``2π k x`` for integer
  ``k = 1 … width // (2d)`` per axis, ``x ∈ [0, 1)`` the physical position of the patch. Periodic
  like the domain, and the same function of ``x`` at any grid, so the parameter count does not
  depend on the grid and a model built at one resolution runs at another.
  ``"learned"`` — a ``[T, width]`` parameter sized by the grid seen at ``init``; fixes the grid.
  ``"none"`` — no position information: the network is then equivariant to any permutation of
  tokens, in particular to periodic shifts by whole patches.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from qsal_jax.models.conditioning import CondEmbedding, FiLM, check_cond, is_conditioned

Dtype = Any

POS_EMBEDDINGS = ("sinusoidal", "learned", "none")


def _as_patch(patch_size: int | Sequence[int], grid: tuple[int, ...]) -> tuple[int, ...]:
    """Patch size per axis; raise a one-line error naming ``patch_size`` if it does not tile the grid."""
    patch = (patch_size,) * len(grid) if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
    if len(patch) != len(grid):
        raise ValueError(f"patch_size {patch} has {len(patch)} entries but the input has {len(grid)} spatial dims")
    for axis, (p, n) in enumerate(zip(patch, grid)):
        if p < 1 or n % p:
            raise ValueError(
                f"patch_size={p} does not divide the grid size {n} on axis {axis}; choose a divisor of {n}."
            )
    return patch


def patchify(x: jax.Array, patch: tuple[int, ...]) -> jax.Array:
    """``[B, *grid, C]`` → ``[B, *tokens, prod(patch)·C]`` with ``tokens = grid / patch``."""
    b, *grid, c = x.shape
    d = len(grid)
    split = [b] + [s for n, p in zip(grid, patch) for s in (n // p, p)] + [c]
    # [B, n1, p1, n2, p2, C] → [B, n1, n2, p1, p2, C]
    order = [0] + [1 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)] + [2 * d + 1]
    y = jnp.transpose(x.reshape(split), order)
    return y.reshape([b] + [n // p for n, p in zip(grid, patch)] + [math.prod(patch) * c])


def unpatchify(y: jax.Array, patch: tuple[int, ...], channels: int) -> jax.Array:
    """Inverse of `patchify`: ``[B, *tokens, prod(patch)·C]`` → ``[B, *grid, C]``."""
    b, *tokens, _ = y.shape
    d = len(tokens)
    y = y.reshape([b] + list(tokens) + list(patch) + [channels])
    # [B, n1, n2, p1, p2, C] → [B, n1, p1, n2, p2, C]
    order = [0] + [a for i in range(d) for a in (1 + i, 1 + d + i)] + [2 * d + 1]
    return jnp.transpose(y, order).reshape([b] + [n * p for n, p in zip(tokens, patch)] + [channels])


def sinusoidal_embedding(tokens: tuple[int, ...], width: int) -> jax.Array:
    """Periodic Fourier features of the patch positions, ``[prod(tokens), width]`` float32.

    Axis ``a`` contributes ``sin(2π k x_a), cos(2π k x_a)`` for ``k = 1 … width // (2d)``, with
    ``x_a = i_a / tokens[a]`` the position of the patch's first point in the unit period; the
    ``width mod 2d`` channels left over are zero. Frequencies above ``tokens[a] / 2`` alias on the
    token grid; they are kept so that the embedding is one function of ``x`` at every resolution.
    """
    d = len(tokens)
    k = jnp.arange(1, width // (2 * d) + 1, dtype=jnp.float32)
    coords = jnp.meshgrid(*[jnp.arange(n, dtype=jnp.float32) / n for n in tokens], indexing="ij")
    feats = []
    for x in coords:
        phase = 2 * jnp.pi * x.reshape(-1, 1) * k
        feats += [jnp.sin(phase), jnp.cos(phase)]
    emb = jnp.concatenate(feats, axis=-1)
    return jnp.pad(emb, ((0, 0), (0, width - emb.shape[-1])))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block with FiLM after each norm.

    Call: ``h: [B, T, F]``, ``emb: [B, E]`` or None → ``[B, T, F]``.
    """

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array, emb: jax.Array | None) -> jax.Array:
        f = h.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        y = FiLM(**kw, name="film_attn")(nn.LayerNorm(**kw, name="norm_attn")(h), emb)
        # Softmax in float32 even under bf16 compute: its normaliser is where bf16 loses most.
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, force_fp32_for_softmax=True, deterministic=True, **kw, name="attn"
        )(y)
        h = h + y
        y = FiLM(**kw, name="film_mlp")(nn.LayerNorm(**kw, name="norm_mlp")(h), emb)
        y = nn.Dense(int(self.mlp_ratio * f), **kw, name="mlp_hidden")(y)
        y = nn.Dense(f, **kw, name="mlp_out")(nn.gelu(y))
        return h + y


class TransformerOperator(nn.Module):
    """ViT/scOT-style operator on a periodic grid, optionally FiLM-conditioned.

    Attributes:
      out_channels: channels of the output field.
      patch_size: patch edge per spatial axis (an int means the same on every axis); must divide the grid.
      width: token embedding dimension; must be divisible by ``num_heads``.
      depth: number of transformer blocks.
      num_heads: attention heads per block.
      mlp_ratio: hidden width of each block's MLP, as a multiple of ``width``.
      pos_embedding: ``"sinusoidal"`` (fixed, any grid), ``"learned"`` (fixes the grid) or ``"none"``.
      residual: if True, predict ``x + f(x)`` (the increment); needs ``in == out`` channels.
      cond_features: width of the λ embedding used by FiLM (only when ``cond`` has P > 0).
      dtype: compute dtype (float32; bfloat16 for mixed precision). param_dtype: storage dtype.

    Call: ``x: [B, C_in, *grid]``, ``cond: [B, P]`` or None → ``[B, out_channels, *grid]``.
    """

    out_channels: int
    patch_size: int | Sequence[int] = 4
    width: int = 96
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    pos_embedding: str = "sinusoidal"
    residual: bool = False
    cond_features: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        if x.ndim < 3:
            raise ValueError(
                f"TransformerOperator expects a batch [B, C, *grid]; got shape {x.shape}. For one state use x[None]."
            )
        if self.width % self.num_heads:
            raise ValueError(f"width={self.width} is not divisible by num_heads={self.num_heads}.")
        if self.pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding={self.pos_embedding!r}; choose one of {POS_EMBEDDINGS}.")
        check_cond(cond, x.shape[0])
        patch = _as_patch(self.patch_size, x.shape[2:])
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        emb = None
        if is_conditioned(cond):
            emb = CondEmbedding(self.cond_features, **kw, name="cond_embed")(cond)

        tokens = patchify(jnp.moveaxis(x, 1, -1).astype(self.dtype), patch)
        token_grid = tokens.shape[1:-1]
        h = nn.Dense(self.width, **kw, name="patch_embed")(tokens.reshape(x.shape[0], -1, tokens.shape[-1]))
        if self.pos_embedding == "sinusoidal":
            h = h + sinusoidal_embedding(token_grid, self.width).astype(self.dtype)
        elif self.pos_embedding == "learned":
            pos = self.param("pos_embed", nn.initializers.normal(0.02), h.shape[1:], self.param_dtype)
            h = h + pos.astype(self.dtype)
        for layer in range(self.depth):
            h = TransformerBlock(self.num_heads, self.mlp_ratio, **kw, name=f"block_{layer}")(h, emb)
        h = FiLM(**kw, name="film_out")(nn.LayerNorm(**kw, name="norm_out")(h), emb)
        y = nn.Dense(math.prod(patch) * self.out_channels, **kw, name="head")(h)
        y = unpatchify(y.reshape(x.shape[:1] + token_grid + y.shape[-1:]), patch, self.out_channels)
        out = jnp.moveaxis(y, -1, 1)
        if self.residual:
            if x.shape[1] != self.out_channels:
                raise ValueError(f"residual=True needs in_channels == out_channels; got {x.shape[1]} vs {self.out_channels}")
            out = x.astype(out.dtype) + out
        return out
