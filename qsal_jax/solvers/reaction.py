"""Reaction–diffusion equations: Allen–Cahn (1D/2D) and Gray–Scott (2 channels)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from qsal_jax.solvers import spectral
from qsal_jax.solvers.pdes import PeriodicPDE


@struct.dataclass
class AllenCahn(PeriodicPDE):
    """Allen–Cahn u_t = ε Δu + c₁ u + c₃ u³.

    Defaults are the PINN benchmark's u_t = 1e-4 u_xx + 5u − 5u³ (Raissi et al.) on
    a domain of length 2 (x ∈ [−1, 1) shifted to [0, 2)). The linear reaction c₁ u
    sits in L; the cubic term uses the 1/2 dealiasing rule that cubic products need.
    """

    diffusivity: jax.Array = 1e-4
    linear_reaction: jax.Array = 5.0
    cubic_reaction: jax.Array = -5.0
    dealiasing_fraction: float = struct.field(pytree_node=False, default=1 / 2)

    def linear_operator(self, derivative):
        return self.diffusivity * spectral.laplacian_symbol(derivative) + self.linear_reaction

    def nonlinear(self, u_hat, derivative, mask):
        u = self.to_physical(u_hat, mask)
        return self.cubic_reaction * self.to_spectral(u**3, mask)


@struct.dataclass
class GrayScott(PeriodicPDE):
    """Gray–Scott, channels (u, v):

        u_t = d₁ Δu − u v² + F (1 − u)
        v_t = d₂ Δv + u v² − (F + k) v

    exponax's parameter names and default box; the linear decay terms −F u and
    −(F + k) v sit in L so the exponential integrator treats them exactly.
    """

    feed_rate: jax.Array = 0.04
    kill_rate: jax.Array = 0.06
    diffusivity_1: jax.Array = 2e-5
    diffusivity_2: jax.Array = 1e-5
    dealiasing_fraction: float = struct.field(pytree_node=False, default=1 / 2)
    num_channels: int = struct.field(pytree_node=False, default=2)

    def linear_operator(self, derivative):
        lap = spectral.laplacian_symbol(derivative)[0]
        return jnp.stack(
            [self.diffusivity_1 * lap - self.feed_rate, self.diffusivity_2 * lap - (self.feed_rate + self.kill_rate)]
        )

    def nonlinear(self, u_hat, derivative, mask):
        uv = self.to_physical(u_hat, mask)
        u, v = uv[0], uv[1]
        reaction = u * v**2
        feed = self.feed_rate * jnp.ones_like(u)
        return self.to_spectral(jnp.stack([feed - reaction, reaction]), mask)
