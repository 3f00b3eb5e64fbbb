"""ETDRK steppers and rollouts, in the style of exponax.

A stepper advances *one unbatched* state ``[C, *grid]``; batch with `jax.vmap`.
`make_stepper` computes the ETDRK coefficients from the PDE's (possibly traced)
coefficients, so building a stepper inside a vmapped function gives one compiled
program for a batch of different PDE parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from qsal_jax.solvers import spectral
from qsal_jax.solvers.etdrk import ETDRKCoefficients, etdrk_coefficients, etdrk_step
from qsal_jax.solvers.pdes import SemilinearPDE


@struct.dataclass
class ETDRKStepper:
    """``u_{n+1} = stepper(u_n)`` for a semilinear PDE; a pytree (jit/vmap/grad friendly)."""

    pde: SemilinearPDE
    coefficients: ETDRKCoefficients  # each [C, *freq] complex
    derivative: jax.Array  # [D, *freq] complex, i k
    mask: jax.Array  # [1, *freq] bool, dealiasing mask
    forcing_hat: jax.Array | None  # [C, *freq] complex constant source, or None
    order: int = struct.field(pytree_node=False)

    def __call__(self, u: jax.Array) -> jax.Array:
        expected = self.pde.state_shape
        if u.shape != expected:
            raise ValueError(
                f"stepper expects one state of shape {expected} (channels, *grid), got {u.shape}; "
                "for batched operation use jax.vmap"
            )
        return self.to_physical(self.step_hat(self.to_fourier(u)), u.dtype)

    def to_fourier(self, u: jax.Array) -> jax.Array:
        """``[C, *grid]`` real → ``[C, *freq]`` (rfft layout)."""
        return spectral.fft(u, self.pde.num_spatial_dims)

    def to_physical(self, u_hat: jax.Array, dtype=jnp.float32) -> jax.Array:
        return spectral.ifft(u_hat, self.pde.num_spatial_dims, self.pde.num_points).astype(dtype)

    def step_hat(self, u_hat: jax.Array) -> jax.Array:
        """One step in Fourier space, ``[C, *freq]`` → ``[C, *freq]``: the state never leaves it;
        only the nonlinear term goes to physical space (and back) at each stage."""
        if self.forcing_hat is None:
            nonlinear = lambda v_hat: self.pde.nonlinear(v_hat, self.derivative, self.mask)
        else:
            nonlinear = lambda v_hat: self.pde.nonlinear(v_hat, self.derivative, self.mask) + self.forcing_hat
        return etdrk_step(u_hat, self.coefficients, nonlinear, self.order, self.pde.fuse_stage_state)


def make_stepper(
    pde: SemilinearPDE,
    order: int = 2,
    *,
    dtype=jnp.float32,
    num_circle_points: int = 16,
    circle_radius: float = 1.0,
) -> ETDRKStepper:
    """Build an `ETDRKStepper` for states of real ``dtype`` (float32 by default)."""
    if order not in (1, 2, 3, 4):
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order}")
    cdtype = jnp.complex64 if jnp.dtype(dtype) == jnp.float32 else jnp.complex128
    derivative = spectral.derivative_operator(pde.num_spatial_dims, pde.num_points, pde.domain_extent, cdtype)
    linear = pde.linear_operator(derivative).astype(cdtype)
    linear = jnp.broadcast_to(linear, (pde.num_channels,) + linear.shape[1:])
    coefficients = etdrk_coefficients(
        linear, pde.dt, num_circle_points=num_circle_points, circle_radius=circle_radius
    )
    mask = jnp.asarray(spectral.dealiasing_mask(pde.num_spatial_dims, pde.num_points, pde.dealiasing_fraction))
    forcing = pde.forcing(dtype)
    forcing_hat = None if forcing is None else (spectral.fft(forcing, pde.num_spatial_dims) * mask).astype(cdtype)
    return ETDRKStepper(
        pde=pde, coefficients=coefficients, derivative=derivative, mask=mask, forcing_hat=forcing_hat, order=order
    )


def repeated(stepper, num_substeps: int, *, spectral_state: bool = True):
    """A stepper that applies ``stepper`` ``num_substeps`` times (fine dt, coarse saving).

    For an `ETDRKStepper` the state stays in Fourier space between the two ends
    (``spectral_state``): one transform in, one out, instead of a pair per substep; the
    physical-space path (``spectral_state=False``) is the reference the tests compare with.
    """
    if num_substeps == 1:
        return stepper
    if spectral_state and isinstance(stepper, ETDRKStepper):

        def step_spectral(u):
            u_hat = jax.lax.fori_loop(0, num_substeps, lambda _, v: stepper.step_hat(v), stepper.to_fourier(u))
            return stepper.to_physical(u_hat, u.dtype)

        return step_spectral

    def step(u):
        return jax.lax.fori_loop(0, num_substeps, lambda _, v: stepper(v), u)

    return step


def rollout(stepper, num_steps: int, *, save_every: int = 1, include_init: bool = False, spectral_state: bool = True):
    """Return ``fn(u0) -> trajectory [T, C, *grid]`` on `lax.scan`.

    Saves every ``save_every``-th state, so T = num_steps // save_every, plus the initial state
    first with ``include_init`` (exponax's ``rollout`` convention, and the same default).
    ``num_steps`` must be a multiple of ``save_every``. Between saved frames an `ETDRKStepper`'s
    state stays in Fourier space (`repeated`).
    """
    if num_steps < 0 or save_every < 1 or num_steps % save_every:
        raise ValueError(
            f"rollout: num_steps ({num_steps}) must be a non-negative multiple of save_every ({save_every})"
        )
    chunk = repeated(stepper, save_every, spectral_state=spectral_state)

    def run(u0):
        def body(u, _):
            u = chunk(u)
            return u, u

        _, traj = jax.lax.scan(body, u0, None, length=num_steps // save_every)
        if include_init:
            traj = jnp.concatenate([u0[None], traj], axis=0)
        return traj

    return run
