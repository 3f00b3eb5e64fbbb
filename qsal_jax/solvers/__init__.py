"""Differentiable pseudo-spectral ETDRK solvers, rollouts and the rolling-ball oracle."""

from qsal_jax.solvers.difficulty import (
    difficulty_from_linear_coefficients,
    difficulty_pde,
    linear_coefficients_from_difficulty,
    nonlinear_coefficients_from_difficulty,
)
from qsal_jax.solvers.etdrk import ETDRKCoefficients, etdrk_coefficients, etdrk_step
from qsal_jax.solvers.navier_stokes import NavierStokesVorticity, kolmogorov_flow
from qsal_jax.solvers.pdes import (
    AdvectionDiffusion,
    Burgers,
    GeneralNonlinear,
    KortewegDeVries,
    KuramotoSivashinsky,
    KuramotoSivashinskyConservative,
    SemilinearPDE,
)
from qsal_jax.solvers.reaction import AllenCahn, GrayScott
from qsal_jax.solvers.rolling_ball import DoubleWell, basin, default_double_well, oracle, roll, surface
from qsal_jax.solvers.stepper import ETDRKStepper, make_stepper, repeated, rollout

__all__ = [
    "AdvectionDiffusion", "AllenCahn", "Burgers", "DoubleWell", "ETDRKCoefficients", "ETDRKStepper",
    "GeneralNonlinear", "GrayScott", "KortewegDeVries", "KuramotoSivashinsky",
    "KuramotoSivashinskyConservative", "NavierStokesVorticity", "SemilinearPDE", "basin",
    "default_double_well", "difficulty_from_linear_coefficients", "difficulty_pde", "etdrk_coefficients",
    "etdrk_step", "kolmogorov_flow", "linear_coefficients_from_difficulty", "make_stepper",
    "nonlinear_coefficients_from_difficulty", "oracle", "repeated", "roll", "rollout", "surface",
]
