"""Semilinear PDEs u_t = L u + N(u) on periodic boxes, as pytrees.

Each PDE is a `flax.struct` dataclass: grid size and dimension are static fields,
while the domain length, dt and every physical coefficient are pytree leaves. They can
therefore be traced arrays taken from the sampled parameters λ — replace them inside a
`vmap` (``pde.replace(domain_extent=lam[0])``) and one compiled rollout serves a batch
of different coefficients.

Sign convention (exponax's): every term is on the right-hand side with its sign, e.g.
the generic form is

    u_t = Σ_j a_j Σ_d ∂_d^j u  +  b0 u²  +  b1 ½ (1·∇)(u²)  +  b2 ½ ‖∇u‖²,

so the Kuramoto–Sivashinsky gradient term has b2 < 0 and dissipative hyper-diffusion
has a4 < 0. The named equations below take positive physical coefficients instead and
say in their docstrings how the signs enter.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
from flax import struct

from qsal_jax.solvers import spectral


class SemilinearPDE(abc.ABC):
    """Interface: a linear Fourier symbol and a pseudo-spectral nonlinear term.

    Subclasses are `flax.struct` dataclasses with static ``num_spatial_dims`` and
    ``num_points`` and leaves ``domain_extent`` and ``dt``.
    """

    num_channels: int = 1
    dealiasing_fraction: float = 2 / 3
    # False where `nonlinear` reads its input in several places (see `etdrk.etdrk_step`).
    fuse_stage_state: bool = True

    @abc.abstractmethod
    def linear_operator(self, derivative: jax.Array) -> jax.Array:
        """Fourier symbol of L, broadcastable to ``[C, *freq]``; ``derivative = i k``, ``[D, *freq]``."""

    @abc.abstractmethod
    def nonlinear(self, u_hat: jax.Array, derivative: jax.Array, mask: jax.Array) -> jax.Array:
        """N(u) in Fourier space, ``[C, *freq]``; ``mask`` is the dealiasing mask ``[1, *freq]``."""

    def forcing(self, dtype=jnp.float32) -> jax.Array | None:
        """A time-independent source term in physical space ``[C, *grid]``, or None.

        The stepper transforms it once and adds it to N(u) at every stage.
        """
        return None

    # Pseudo-spectral helpers: dealias before going to physical space and after coming back.
    def to_physical(self, u_hat: jax.Array, mask: jax.Array) -> jax.Array:
        return spectral.ifft(u_hat * mask, self.num_spatial_dims, self.num_points)

    def to_spectral(self, u: jax.Array, mask: jax.Array) -> jax.Array:
        return spectral.fft(u, self.num_spatial_dims) * mask

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.num_channels,) + (self.num_points,) * self.num_spatial_dims


@struct.dataclass
class PeriodicPDE(SemilinearPDE):
    """The fields every PDE on the periodic box shares, in exponax's argument order:
    ``(num_spatial_dims, domain_extent, num_points, dt, *, coefficients…)``."""

    num_spatial_dims: int = struct.field(pytree_node=False)
    domain_extent: jax.Array
    num_points: int = struct.field(pytree_node=False)
    dt: jax.Array


def is_static_zero(c) -> bool:
    """True for a Python 0 coefficient: the term is skipped at trace time (no FFTs spent on it).

    A traced coefficient is never skipped, even if its value is zero at run time.
    """
    return isinstance(c, (int, float)) and c == 0


def _axis_sum_power(derivative: jax.Array, j: int) -> jax.Array:
    """Σ_d (i k_d)^j, shape ``[1, *freq]`` (exponax's per-axis convention for odd/high orders)."""
    return jnp.sum(derivative**j, axis=0, keepdims=True)


def _convection_term(pde, u_hat, derivative, mask, conservative: bool = True):
    """Single-channel convection in Fourier space: ½ (1·∇)(u²), or u (1·∇)u if not ``conservative``.

    The two agree analytically; discretely the conservative form keeps the mean exactly. When the
    mask makes quadratic products exact on the kept modes (`spectral.quadratic_products_exact`,
    true for the default 2/3 rule), they are the same discrete operator: u·∂u = ½ ∂(u²) holds for
    trigonometric polynomials, and both sides are the exact product cut to the kept modes. The
    non-conservative form then takes the conservative one's 2 transforms instead of 3.
    """
    ones_dot_grad = jnp.sum(derivative, axis=0, keepdims=True)
    if conservative or spectral.quadratic_products_exact(pde.num_points, pde.dealiasing_fraction):
        u = pde.to_physical(u_hat, mask)
        return 0.5 * ones_dot_grad * pde.to_spectral(u * u, mask)
    return _convection_product(pde, u_hat, ones_dot_grad, mask)


def _convection_product(pde, u_hat, ones_dot_grad, mask):
    """u (1·∇)u as the product of two inverse transforms (3 transforms): the form to use when
    the mask lets products alias onto the kept modes."""
    # Two inverse FFTs: under vmap (a batch of states) they beat one FFT of the two fields
    # stacked, which copies both (solver suite, KdV at N = 256, batch 256: 0.22 s against 0.26 s).
    u, du = pde.to_physical(u_hat, mask), pde.to_physical(ones_dot_grad * u_hat, mask)
    return pde.to_spectral(u * du, mask)


def _gradient_norm_term(pde, u_hat, derivative, mask):
    """½ ‖∇u‖² in Fourier space, mean removed (the derivative cannot create a mean)."""
    grad = pde.to_physical(derivative[:, None] * u_hat[None], mask)  # [D, C, *grid], one batched FFT
    norm2 = jnp.sum(grad**2, axis=0)
    # The mean is mode 0: cleared with the dealiasing mask rather than subtracted on the grid,
    # which would cost a reduction over the grid at every stage.
    return 0.5 * pde.to_spectral(norm2, mask & spectral.nonzero_modes(pde.num_spatial_dims, pde.num_points))


@struct.dataclass
class GeneralNonlinear(PeriodicPDE):
    """exponax's generic form: u_t = Σ_j a_j Σ_d ∂_d^j u + b0 u² + b1 ½(1·∇)(u²) + b2 ½‖∇u‖².

    ``linear_coefficients = (a0, a1, …, aJ)`` and ``nonlinear_coefficients = (b0, b1, b2)``
    are tuples of scalars (or traced arrays). Derivatives of order j act per axis,
    Σ_d ∂_d^j (so a4 gives u_xxxx + u_yyyy, not Δ², as in exponax). With
    ``conservative=False`` the convection term is b1 u (1·∇)u. See
    `qsal_jax.solvers.difficulty` for the APEBench γ/δ parameterisation.
    """

    linear_coefficients: tuple = (0.0, 0.0, 0.01)
    nonlinear_coefficients: tuple = (0.0, -1.0, 0.0)
    conservative: bool = struct.field(pytree_node=False, default=True)

    def linear_operator(self, derivative):
        op = self.linear_coefficients[0] * jnp.ones_like(derivative[:1])
        for j, a in enumerate(self.linear_coefficients[1:], start=1):
            if not is_static_zero(a):
                op = op + a * _axis_sum_power(derivative, j)
        return op

    def nonlinear(self, u_hat, derivative, mask):
        b0, b1, b2 = self.nonlinear_coefficients
        out = jnp.zeros_like(u_hat)
        if not is_static_zero(b0):
            u = self.to_physical(u_hat, mask)
            out = out + b0 * self.to_spectral(u * u, mask)
        if not is_static_zero(b1):
            out = out + b1 * _convection_term(self, u_hat, derivative, mask, self.conservative)
        if not is_static_zero(b2):
            out = out + b2 * _gradient_norm_term(self, u_hat, derivative, mask)
        return out


@struct.dataclass
class AdvectionDiffusion(PeriodicPDE):
    """Linear advection–diffusion u_t = −c·∇u + ν Δu; ``velocity`` scalar (all axes) or ``[D]``."""

    velocity: jax.Array = 1.0
    diffusivity: jax.Array = 0.01

    def linear_operator(self, derivative):
        c = jnp.broadcast_to(jnp.asarray(self.velocity), (self.num_spatial_dims,))
        advection = jnp.tensordot(c.astype(derivative.real.dtype), derivative, axes=1)[None]
        return -advection + self.diffusivity * spectral.laplacian_symbol(derivative)

    def nonlinear(self, u_hat, derivative, mask):
        return jnp.zeros_like(u_hat)


@struct.dataclass
class Burgers(PeriodicPDE):
    """Viscous Burgers u_t = −b ½ (1·∇)(u²) + ν Δu (single channel, conservative form)."""

    diffusivity: jax.Array = 0.1
    convection_scale: jax.Array = 1.0

    def linear_operator(self, derivative):
        return self.diffusivity * spectral.laplacian_symbol(derivative)

    def nonlinear(self, u_hat, derivative, mask):
        return -self.convection_scale * _convection_term(self, u_hat, derivative, mask)


@struct.dataclass
class KortewegDeVries(PeriodicPDE):
    """KdV u_t = −b ½ (1·∇)(u²) − δ Σ_d ∂_d³ u − μ Σ_d ∂_d⁴ u + ν Δu.

    With b = 6, δ = 1 this is u_t + 6 u u_x + u_xxx = 0, whose solitons
    u = c/2 sech²(√c/2 (x − c t)) travel at speed c. μ > 0 damps the highest modes.
    """

    convection_scale: jax.Array = 6.0
    dispersivity: jax.Array = 1.0
    hyper_diffusivity: jax.Array = 0.0
    diffusivity: jax.Array = 0.0

    def linear_operator(self, derivative):
        return (
            -self.dispersivity * _axis_sum_power(derivative, 3)
            - self.hyper_diffusivity * _axis_sum_power(derivative, 4)
            + self.diffusivity * spectral.laplacian_symbol(derivative)
        )

    def nonlinear(self, u_hat, derivative, mask):
        return -self.convection_scale * _convection_term(self, u_hat, derivative, mask)


def _ks_linear(pde, derivative):
    """−ν₂ Δ − ν₄ Δ² in Fourier space (anti-diffusion plus hyper-diffusion)."""
    lap = spectral.laplacian_symbol(derivative)
    return -pde.second_order_scale * lap - pde.fourth_order_scale * lap**2


@struct.dataclass
class KuramotoSivashinsky(PeriodicPDE):
    """Combustion-form KS: u_t = −ν₂ Δu − ν₄ Δ²u − b ½ ‖∇u‖² (1D and 2D).

    With ν₂ = ν₄ = b = 1 this is the classic u_t + ½ u_x² + u_xx + u_xxxx = 0
    (exponax's `KuramotoSivashinsky` in 1D). In 2D Δ² is the true bi-Laplacian;
    exponax uses ∂_x⁴ + ∂_y⁴ instead, which `GeneralNonlinear` reproduces. The
    gradient-norm term cannot create a mean, so the mean of u is conserved.
    """

    second_order_scale: jax.Array = 1.0
    fourth_order_scale: jax.Array = 1.0
    gradient_norm_scale: jax.Array = 1.0

    def linear_operator(self, derivative):
        return _ks_linear(self, derivative)

    def nonlinear(self, u_hat, derivative, mask):
        return -self.gradient_norm_scale * _gradient_norm_term(self, u_hat, derivative, mask)


@struct.dataclass
class KuramotoSivashinskyConservative(PeriodicPDE):
    """Conservative-form KS: u_t = −ν₂ Δu − ν₄ Δ²u − b ½ (1·∇)(u²); the mean is conserved."""

    second_order_scale: jax.Array = 1.0
    fourth_order_scale: jax.Array = 1.0
    convection_scale: jax.Array = 1.0

    def linear_operator(self, derivative):
        return _ks_linear(self, derivative)

    def nonlinear(self, u_hat, derivative, mask):
        return -self.convection_scale * _convection_term(self, u_hat, derivative, mask)
