"""Exponential time-differencing Runge–Kutta schemes of orders 1–4 for u_t = L u + N(u).

L is diagonal in Fourier space. The φ-function coefficients are evaluated by the
contour-integral trick of Kassam & Trefethen (2005): each coefficient is the mean of
its formula over ``M`` points on a circle of radius ``r`` around ``z = L·dt``, which
avoids the catastrophic cancellation of the closed forms near z = 0. The full circle
is used because L may be complex (dispersion, advection), with nodes at half-offset
angles so none lies on the real axis.

Schemes (Cox & Matthews 2002), with E = e^{L dt}, E2 = e^{L dt / 2}:
  1: u' = E u + φ1 N(u)
  2: a = E u + φ1 N(u);  u' = a + φ2 (N(a) − N(u))
  3: a = E2 u + φ1/2 N(u);  b = E u + φ1 (2 N(a) − N(u));
     u' = E u + f1 N(u) + 4 f2 N(a) + f3 N(b)
  4: a = E2 u + φ1/2 N(u);  b = E2 u + φ1/2 N(a);  c = E2 a + φ1/2 (2 N(b) − N(u));
     u' = E u + f1 N(u) + 2 f2 (N(a) + N(b)) + f3 N(c)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class ETDRKCoefficients(NamedTuple):
    """Per-mode coefficients; every field has the shape of the linear operator ``[C, *freq]``."""

    exp_full: jax.Array  # e^{L dt}
    exp_half: jax.Array  # e^{L dt / 2}
    phi1: jax.Array  # dt · mean[(e^z − 1)/z]            (orders 1, 2, 3)
    phi1_half: jax.Array  # dt · mean[(e^{z/2} − 1)/z]    (orders 3, 4: half-step stages)
    phi2: jax.Array  # dt · mean[(e^z − 1 − z)/z²]        (order 2)
    f1: jax.Array  # dt · mean[(−4 − z + e^z (4 − 3z + z²))/z³]
    f2: jax.Array  # dt · mean[(2 + z + e^z (z − 2))/z³]
    f3: jax.Array  # dt · mean[(−4 − 3z − z² + e^z (4 − z))/z³]


def etdrk_coefficients(
    linear_operator: jax.Array,
    dt,
    *,
    num_circle_points: int = 16,
    circle_radius: float = 1.0,
) -> ETDRKCoefficients:
    """Contour-integral ETDRK coefficients for a diagonal complex operator ``[C, *freq]``."""
    cdtype = linear_operator.dtype
    dt = jnp.asarray(dt).astype(jnp.finfo(cdtype).dtype)
    # Half-offset angles keep every contour point off the real axis, so a real L·dt that
    # lands exactly at −r (e.g. ν k² dt = 1) cannot put a node on the pole at z = 0.
    theta = 2 * jnp.pi * (jnp.arange(num_circle_points) + 0.5) / num_circle_points
    roots = (circle_radius * jnp.exp(1j * theta)).astype(cdtype)

    def contour_means(carry, root):
        z = linear_operator * dt + root
        ez = jnp.exp(z)
        ez2 = jnp.exp(z / 2)
        terms = (
            (ez - 1) / z,
            (ez2 - 1) / z,
            (ez - 1 - z) / z**2,
            (-4 - z + ez * (4 - 3 * z + z**2)) / z**3,
            (2 + z + ez * (z - 2)) / z**3,
            (-4 - 3 * z - z**2 + ez * (4 - z)) / z**3,
        )
        return tuple(c + t for c, t in zip(carry, terms)), None

    zeros = (jnp.zeros_like(linear_operator),) * 6
    sums, _ = jax.lax.scan(contour_means, zeros, roots)
    phi1, phi1_half, phi2, f1, f2, f3 = (dt * s / num_circle_points for s in sums)
    return ETDRKCoefficients(
        exp_full=jnp.exp(linear_operator * dt),
        exp_half=jnp.exp(linear_operator * dt / 2),
        phi1=phi1,
        phi1_half=phi1_half,
        phi2=phi2,
        f1=f1,
        f2=f2,
        f3=f3,
    )


def etdrk_step(
    u_hat: jax.Array,
    coefficients: ETDRKCoefficients,
    nonlinear: Callable[[jax.Array], jax.Array],
    order: int,
    fuse_stage_state: bool = True,
) -> jax.Array:
    """One ETDRK step of the given order in Fourier space; ``u_hat: [C, *freq]``.

    ``fuse_stage_state`` (order 2): write the step without reusing the stage state ``a``, so
    that its only reader is the nonlinear term and XLA computes it inside that term's first
    fused op instead of writing it out (one pass over the state fewer per step). A nonlinear
    term that reads its input in several places would then recompute it in each; such PDEs
    set ``SemilinearPDE.fuse_stage_state = False``.
    """
    c = coefficients
    n_u = nonlinear(u_hat)
    if order == 1:
        return c.exp_full * u_hat + c.phi1 * n_u
    if order == 2:
        a = c.exp_full * u_hat + c.phi1 * n_u
        if fuse_stage_state:  # = a + φ2 (N(a) − N(u))
            return c.exp_full * u_hat + (c.phi1 - c.phi2) * n_u + c.phi2 * nonlinear(a)
        return a + c.phi2 * (nonlinear(a) - n_u)
    if order == 3:
        a = c.exp_half * u_hat + c.phi1_half * n_u
        n_a = nonlinear(a)
        b = c.exp_full * u_hat + c.phi1 * (2 * n_a - n_u)
        return c.exp_full * u_hat + c.f1 * n_u + 4 * c.f2 * n_a + c.f3 * nonlinear(b)
    if order == 4:
        a = c.exp_half * u_hat + c.phi1_half * n_u
        n_a = nonlinear(a)
        b = c.exp_half * u_hat + c.phi1_half * n_a
        n_b = nonlinear(b)
        cc = c.exp_half * a + c.phi1_half * (2 * n_b - n_u)
        return c.exp_full * u_hat + c.f1 * n_u + 2 * c.f2 * (n_a + n_b) + c.f3 * nonlinear(cc)
    raise ValueError(f"ETDRK order must be 1, 2, 3 or 4, got {order}")
