"""APEBench's difficulty parameterisation (Koehler et al. 2024), mapped to physical coefficients.

A scenario given by γ/δ numbers behaves the same whatever N and dt: the linear
difficulties measure how far a step moves the highest resolved mode, the nonlinear ones
how strongly the nonlinearity acts at the grid scale for states of size M. With
D spatial dimensions, N points, domain length L and step Δt (exponax
`stepper/generic/_utils.py`, APEBench appendix):

    α_j = a_j Δt / L^j                   γ_0 = α_0,  γ_j = α_j N^j 2^(j−1) D
    β_1 = b_1 Δt / L   (convection)      δ_1 = β_1 M N D
    β_2 = b_2 Δt / L²  (gradient norm)   δ_2 = β_2 M N² D
    β_0 = b_0 Δt       (square)          δ_0 = β_0

so a_j = γ_j L^j / (Δt N^j 2^(j−1) D), b_1 = δ_1 L / (Δt M N D), b_2 = δ_2 L² / (Δt M N² D).

APEBench's difficulty steppers (exponax `DifficultyConvectionStepper`,
`DifficultyGradientNormStepper`) put these terms on the right-hand side with a minus,
N(u) = −b_1 ½ (u²)_x − b_2 ½ ‖∇u‖², so `difficulty_pde` negates b_1, b_2 when it fills
`GeneralNonlinear` (whose terms carry a plus): a δ read from an APEBench scenario means
the same PDE here.
APEBench uses L = 1 and Δt = 1 in difficulty mode; both are arguments here so a
difficulty scenario can be run at any physical size. Coefficients may be traced arrays.
"""

from __future__ import annotations

from qsal_jax.solvers.pdes import GeneralNonlinear


def linear_coefficients_from_difficulty(gammas, *, num_spatial_dims, num_points, domain_extent=1.0, dt=1.0):
    """γ_j → a_j."""
    return tuple(
        g / dt if j == 0 else g * domain_extent**j / (dt * num_points**j * 2 ** (j - 1) * num_spatial_dims)
        for j, g in enumerate(gammas)
    )


def difficulty_from_linear_coefficients(coefficients, *, num_spatial_dims, num_points, domain_extent=1.0, dt=1.0):
    """a_j → γ_j (inverse of `linear_coefficients_from_difficulty`)."""
    return tuple(
        a * dt if j == 0 else a * dt / domain_extent**j * num_points**j * 2 ** (j - 1) * num_spatial_dims
        for j, a in enumerate(coefficients)
    )


def nonlinear_coefficients_from_difficulty(
    deltas, *, num_spatial_dims, num_points, maximum_absolute=1.0, domain_extent=1.0, dt=1.0
):
    """(δ_0, δ_1, δ_2) → (b_0, b_1, b_2) for square, convection and gradient-norm terms."""
    d0, d1, d2 = deltas
    m, n, d = maximum_absolute, num_points, num_spatial_dims
    return (
        d0 / dt,
        d1 * domain_extent / (dt * m * n * d),
        d2 * domain_extent**2 / (dt * m * n**2 * d),
    )


def difficulty_pde(
    num_spatial_dims: int,
    num_points: int,
    *,
    linear_difficulties=(0.0,),
    convection_difficulty=0.0,
    gradient_norm_difficulty=0.0,
    square_difficulty=0.0,
    maximum_absolute=1.0,
    domain_extent=1.0,
    dt=1.0,
    conservative: bool = False,
) -> GeneralNonlinear:
    """A `GeneralNonlinear` PDE from APEBench difficulties.

    Examples from the method's 1D experiments (N = 800, dt = 1):
    KS ``linear_difficulties=(0, 0, -82.5, 0, -18750), gradient_norm_difficulty=-150``;
    KdV ``linear_difficulties=(0, 0, 0, -2500, -3125), convection_difficulty=-10``.
    Convection is u u_x by default, as in APEBench's convection scenarios; pass
    ``conservative=True`` for ½ (u²)_x.
    """
    kw = dict(num_spatial_dims=num_spatial_dims, num_points=num_points, domain_extent=domain_extent, dt=dt)
    return GeneralNonlinear(
        num_spatial_dims=num_spatial_dims,
        domain_extent=domain_extent,
        num_points=num_points,
        dt=dt,
        linear_coefficients=linear_coefficients_from_difficulty(linear_difficulties, **kw),
        conservative=conservative,
        nonlinear_coefficients=nonlinear_coefficients_from_difficulty(
            (square_difficulty, -convection_difficulty, -gradient_norm_difficulty),
            maximum_absolute=maximum_absolute,
            **kw,
        ),
    )
