"""Bind a parameter space, an IC map and a PDE into a batched simulator.

``Simulator.simulate(lam [B, D]) -> Trajectories(u [B, T, C, *grid], finite [B])``:
one jitted program for the whole batch, whatever PDE coefficients λ carries.
Trajectories that go non-finite (or exceed ``blowup_threshold``) are flagged so the
online engine never lets them into its buffer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from qsal_jax.simulation import function_simulator
from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.simulation.trajectories import Batched, Trajectories
from qsal_jax.solvers import make_stepper, repeated, rollout, spectral
from qsal_jax.solvers.pdes import SemilinearPDE

__all__ = ["Simulator", "Trajectories", "spectral_upsample"]


@dataclasses.dataclass(frozen=True)
class Simulator(Batched):
    """A λ-batch → trajectory map. Hashable (closes over functions), so pass it as static.

    Attributes:
      space: the parameter box.
      make_pde: ``params -> SemilinearPDE`` with ``params = space.unpack(lam)`` (λ by name);
        coefficients and ``domain_extent`` may come from λ.
      initial_condition: ``(params, x [Dsp, *grid], domain_extent) -> u0 [C, *grid]``, same ``params``.
      num_steps: solver steps per trajectory; ``save_every`` of them between saved frames.
      output_points: grid size of the returned states (a divisor of the solver grid):
        solve fine, train coarse.
      cond_names: λ entries a surrogate should be conditioned on (PDE coefficients).
    """

    space: ParamSpace
    make_pde: Callable[[dict], SemilinearPDE]
    initial_condition: Callable[..., jax.Array]
    num_steps: int
    save_every: int = 1
    order: int = 2
    warmup_steps: int = 0
    output_points: int | None = None
    blowup_threshold: float = 1e6
    dtype: object = jnp.float32
    cond_names: tuple[str, ...] = ()
    name: str = "simulator"

    def __post_init__(self):
        if self.num_steps < 1 or self.save_every < 1 or self.num_steps % self.save_every:
            raise ValueError(
                f"{self.name}: num_steps ({self.num_steps}) must be a positive multiple of save_every ({self.save_every})"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"{self.name}: warmup_steps must be >= 0, got {self.warmup_steps}")

    @property
    def num_frames(self) -> int:
        return self.num_steps // self.save_every + 1

    def reference_pde(self) -> SemilinearPDE:
        """The PDE at the centre of the box (for shapes and static facts)."""
        mid = jnp.asarray([(lo + hi) / 2 for lo, hi in zip(self.space.low, self.space.high)], self.dtype)
        return self.make_pde(self.space.unpack(mid))

    @property
    def state_shape(self) -> tuple[int, ...]:
        pde = self.reference_pde()
        n = self.output_points or pde.num_points
        return (pde.num_channels,) + (n,) * pde.num_spatial_dims

    def _initial_state_fine(self, lam: jax.Array):
        params = self.space.unpack(lam)
        pde = self.make_pde(params)
        x = spectral.grid(pde.num_spatial_dims, pde.num_points, pde.domain_extent, self.dtype)
        u0 = self.initial_condition(params, x, pde.domain_extent).astype(self.dtype)
        stepper = make_stepper(pde, self.order, dtype=self.dtype)
        if self.warmup_steps:
            u0 = rollout(stepper, self.warmup_steps, save_every=self.warmup_steps, include_init=False)(u0)[-1]
        return pde, stepper, u0

    def _to_output_grid(self, u: jax.Array, pde) -> jax.Array:
        """Subsample the trailing spatial axes from the solver grid to ``output_points``."""
        if not self.output_points or self.output_points == pde.num_points:
            return u
        stride = pde.num_points // self.output_points
        if stride * self.output_points != pde.num_points:
            raise ValueError(f"{self.name}: output_points ({self.output_points}) must divide num_points ({pde.num_points})")
        index = (Ellipsis,) + (slice(None, None, stride),) * pde.num_spatial_dims
        return u[index]

    def initial_state(self, lam: jax.Array) -> jax.Array:
        """The first frame ``[C, *grid]`` for ``lam: [D]`` on the output grid (no time stepping
        beyond the warm-up): what a surrogate rollout starts from."""
        pde, _, u0 = self._initial_state_fine(lam)
        return self._to_output_grid(u0, pde)

    def simulate_one(self, lam: jax.Array) -> jax.Array:
        """One trajectory ``[T, C, *grid]`` for ``lam: [D]`` (differentiable in λ)."""
        pde, stepper, u0 = self._initial_state_fine(lam)
        traj = rollout(stepper, self.num_steps, save_every=self.save_every, include_init=True)(u0)
        return self._to_output_grid(traj, pde)

    def simulate_prefix(self, lam: jax.Array, frames: int) -> jax.Array:
        """The first ``frames`` saved frames ``[frames, C, *grid]`` of ``lam: [D]`` (u_0 included),
        differentiable in λ, with each frame's solver steps under `jax.checkpoint`: reverse mode
        keeps one state per frame instead of every stage of every step."""
        if not 1 <= frames <= self.num_frames:
            raise ValueError(f"{self.name}.simulate_prefix: frames must be in [1, {self.num_frames}], got {frames}")
        pde, stepper, u0 = self._initial_state_fine(lam)
        frame = repeated(stepper, self.save_every)
        chunk = jax.checkpoint(lambda u: frame(u))  # a closure: the stepper may hold traced coefficients

        def body(u, _):
            u = chunk(u)
            return u, u

        _, traj = jax.lax.scan(body, u0, None, length=frames - 1)
        return self._to_output_grid(jnp.concatenate([u0[None], traj], axis=0), pde)

    def frame_step(self, u: jax.Array, lam: jax.Array) -> jax.Array:
        """Φ: one saved frame of the solver (``save_every`` steps) from any state ``u [C, *grid]``
        on the output grid, with the PDE of ``lam: [D]`` (a surrogate's own state, for the
        consistency residual). A coarse output grid is interpolated onto the solver grid by
        zero-padding its Fourier modes (band-limited: exact for the modes the coarse grid holds)
        and the result is subsampled back."""
        pde = self.make_pde(self.space.unpack(lam))
        stepper = make_stepper(pde, self.order, dtype=self.dtype)
        fine = spectral_upsample(u.astype(self.dtype), pde.num_points, pde.num_spatial_dims)
        frame = repeated(stepper, self.save_every)
        return self._to_output_grid(jax.checkpoint(lambda v: frame(v))(fine), pde)

    def grid_facts(self) -> tuple[int, float, float]:
        """``(spatial dims, domain extent, time between saved frames)`` for metadata (the export)."""
        pde = self.reference_pde()
        return pde.num_spatial_dims, float(pde.domain_extent), float(pde.dt) * self.save_every

    # A simulator of the user's own: any jittable λ → trajectory map, or a stepper per λ.
    from_function = staticmethod(function_simulator.from_function)
    from_stepper = staticmethod(function_simulator.from_stepper)


def spectral_upsample(u: jax.Array, n_fine: int, num_spatial_dims: int) -> jax.Array:
    """Periodic ``u [C, n, …, n]`` → ``[C, n_fine, …]`` by zero-padding its centred Fourier modes
    (the interpolant of the modes u holds); the identity when ``n == n_fine``."""
    n = u.shape[-1]
    if n == n_fine:
        return u
    if n_fine % n:
        raise ValueError(f"spectral_upsample: the solver grid ({n_fine}) must be a multiple of the output grid ({n})")
    axes = tuple(range(u.ndim - num_spatial_dims, u.ndim))
    spec = jnp.fft.fftshift(jnp.fft.fftn(u, axes=axes), axes=axes)
    lo = (n_fine - n) // 2
    pad = [(0, 0)] * (u.ndim - num_spatial_dims) + [(lo, n_fine - n - lo)] * num_spatial_dims
    spec = jnp.pad(spec, pad)
    out = jnp.fft.ifftn(jnp.fft.ifftshift(spec, axes=axes), axes=axes).real
    return (out * (n_fine / n) ** num_spatial_dims).astype(u.dtype)
