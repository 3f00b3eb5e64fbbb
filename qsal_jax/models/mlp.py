"""Multilayer perceptron with optional random Fourier features.

Used for the toy oracle surrogate (λ → outputs) and for PINNs (coordinates → field). A PINN
takes derivatives of the network with respect to its *inputs*, so the forward pass is a plain
smooth function of ``x``: ``jax.grad``, ``jax.jacfwd`` and ``jax.hessian`` of
``lambda x: model.apply(params, x)`` work directly (use a smooth activation such as tanh or
GELU when second derivatives matter).

Random Fourier features (Tancik et al. 2020, "Fourier Features Let Networks Learn High
Frequency Functions"): ``x ↦ [cos(2π x B), sin(2π x B)]`` with ``B ~ N(0, scale²)`` of shape
``[in, fourier_features]``. ``B`` is regenerated from ``fourier_seed`` on every call rather than
stored as a parameter: it is a constant of the architecture, so optimizers (and AdamW's weight
decay) never touch it and checkpoints do not carry it; under jit it is folded to a constant.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "gelu": nn.gelu,
    "relu": nn.relu,
    "silu": nn.silu,
    "sin": jnp.sin,
}


def fourier_matrix(in_features: int, num_features: int, scale: float, seed: int, dtype=jnp.float32) -> jax.Array:
    """The fixed random projection ``B: [in_features, num_features]`` of the Fourier features."""
    return scale * jax.random.normal(jax.random.key(seed), (in_features, num_features), dtype)


class MLP(nn.Module):
    """``x: [..., in]`` → ``[..., out_features]`` (any leading axes, or none).

    Attributes:
      out_features: output width.
      hidden: widths of the hidden layers.
      activation: a name in `ACTIVATIONS`.
      fourier_features: number of random Fourier frequencies (0: feed ``x`` directly).
      fourier_scale: standard deviation of the frequencies (in cycles per unit of ``x``).
      fourier_seed: seed of the fixed frequency matrix.
      dtype / param_dtype: compute / storage dtype.
    """

    out_features: int
    hidden: Sequence[int] = (64, 64, 64)
    activation: str = "tanh"
    fourier_features: int = 0
    fourier_scale: float = 1.0
    fourier_seed: int = 0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[self.activation]
        h = x.astype(self.dtype)
        if self.fourier_features > 0:
            b = fourier_matrix(x.shape[-1], self.fourier_features, self.fourier_scale, self.fourier_seed, self.dtype)
            proj = 2 * jnp.pi * h @ b
            h = jnp.concatenate([jnp.cos(proj), jnp.sin(proj)], axis=-1)
        for i, width in enumerate(self.hidden):
            h = act(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype, name=f"dense_{i}")(h))
        return nn.Dense(self.out_features, dtype=self.dtype, param_dtype=self.param_dtype, name="out")(h)
