"""What every simulator shares: the batched trajectory map with its blow-up flags.

A simulator is anything with ``space``, ``num_frames``, ``state_shape``, ``dtype``,
``cond_names``, ``name``, ``blowup_threshold`` and ``simulate_one(λ [D]) -> [T, C, *grid]``.
`Batched` turns that into the batch map the engine, the score set and the export call,
``simulate(λ [B, D]) -> Trajectories``, so the PDE simulator (`Simulator`) and a user's own
function (`FunctionSimulator`) flag blow-ups, condition surrogates and cut prefixes alike.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Trajectories(NamedTuple):
    u: jax.Array  # [B, T, C, *grid] float, on the output grid
    finite: jax.Array  # [B] bool: False if the trajectory blew up


class Batched:
    """Methods shared by every simulator (a mixin: the dataclasses that use it hold the fields)."""

    def conditioning(self, lam: jax.Array) -> jax.Array:
        """The λ entries a surrogate is conditioned on, in unit-cube units ``[..., P]``."""
        if not self.cond_names:
            return jnp.zeros(lam.shape[:-1] + (0,), lam.dtype)
        idx = jnp.asarray([self.space.index(n) for n in self.cond_names])
        return self.space.to_unit(lam)[..., idx]

    def simulate_prefix(self, lam: jax.Array, frames: int) -> jax.Array:
        """The first ``frames`` frames ``[frames, C, *grid]`` of ``lam: [D]`` (u_0 included)."""
        if not 1 <= frames <= self.num_frames:
            raise ValueError(f"{self.name}.simulate_prefix: frames must be in [1, {self.num_frames}], got {frames}")
        return self.simulate_one(lam)[:frames]

    def frame_step(self, u: jax.Array, lam: jax.Array) -> jax.Array:
        raise NotImplementedError(
            f"{self.name}: this simulator has no one-frame step (Φ); build it with Simulator.from_stepper "
            "or pass step_fn= to Simulator.from_function for strategies that need it (residual)")

    def simulate(self, lam: jax.Array) -> Trajectories:
        """Batched: ``lam [B, D]`` → `Trajectories`; non-finite trajectories (or any value above
        ``blowup_threshold``) are zeroed and flagged, so no blow-up enters a buffer."""
        if lam.ndim != 2 or lam.shape[-1] != self.space.dim:
            raise ValueError(f"{self.name}.simulate: lam must be [batch, {self.space.dim}], got {lam.shape}")
        u = jax.vmap(self.simulate_one)(lam.astype(self.dtype)).astype(self.dtype)
        axes = tuple(range(1, u.ndim))
        finite = jnp.all(jnp.isfinite(u), axis=axes) & (jnp.max(jnp.abs(u), axis=axes) < self.blowup_threshold)
        u = jnp.where(finite.reshape((-1,) + (1,) * (u.ndim - 1)), u, 0.0)
        return Trajectories(u=u, finite=finite)
