"""Named simulation problems: a `ParamSpace` + IC map + PDE, as a `Simulator`.

Every builder takes keyword overrides (grid, steps, ranges) and returns a `Simulator`. In every
builder ``num_steps`` counts saved frames after u0 (the transitions a surrogate learns) and
``save_every`` or ``substeps`` the solver steps between two frames;
`get_problem(name, **kwargs)` is how configs choose one. Sizes default to CPU scale;
the configs' GPU variants pass larger grids.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from qsal_jax import checks
from qsal_jax.simulation import initial_conditions as ics
from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.simulation.simulator import Simulator
from qsal_jax.solvers import (
    AdvectionDiffusion,
    Burgers,
    GrayScott,
    KuramotoSivashinsky,
    NavierStokesVorticity,
    difficulty_pde,
)

# The method's 1D scenarios in APEBench difficulty form (N-independent by construction).
KS_DIFFICULTY = dict(linear_difficulties=(0.0, 0.0, -82.5, 0.0, -18750.0), gradient_norm_difficulty=-150.0)
KS_CONSERVATIVE_DIFFICULTY = dict(
    linear_difficulties=(0.0, 0.0, -82.5, 0.0, -18750.0), convection_difficulty=-10.0, conservative=True
)
KDV_DIFFICULTY = dict(linear_difficulties=(0.0, 0.0, 0.0, -2500.0, -3125.0), convection_difficulty=-10.0)


def _check_grid(name: str, *, num_points, num_steps, output_points=None, order=2, dt=None, **steps_between_frames):
    """Each builder's own check of its grid and step settings (one line naming the keyword)."""
    checks.integer(name, "num_points", num_points, lo=8)
    if output_points is not None:
        checks.integer(name, "output_points", output_points, lo=4)
        if num_points % output_points:
            raise checks.SettingError(name, "output_points", f"must divide num_points ({num_points}), got {output_points}")
    checks.integer(name, "num_steps", num_steps, lo=1)
    for key, value in steps_between_frames.items():
        checks.integer(name, key, value, lo=1)
    checks.integer(name, "order", order, lo=1, hi=4)
    if dt is not None:
        checks.real(name, "dt", dt, lo=0, open_lo=True)


def _wave_space(amplitude, name="waves"):
    lo, hi = checks.increasing_pair(name, "amplitude", amplitude)
    return ParamSpace.box({"A0": (lo, hi), "A1": (lo, hi), "phi0": (0.0, 2 * math.pi), "phi1": (0.0, 2 * math.pi)})


def _wave_ic(p, x, domain_extent):
    return ics.wave_superposition(jnp.stack([p["A0"], p["A1"], p["phi0"], p["phi1"]]), x, domain_extent)


def difficulty_1d_waves(
    *,
    difficulty: dict,
    num_points: int = 160,
    output_points: int | None = None,
    num_steps: int = 50,
    save_every: int = 1,
    substeps: int = 1,
    amplitude=(0.2, 1.0),
    order: int = 2,
    name: str = "difficulty_1d_waves",
) -> Simulator:
    """A 1D APEBench difficulty scenario (L = 1, Δt = 1) with λ = (A0, A1, φ0, φ1).

    The coefficients come from the difficulties at Δt = 1; the solver then takes
    ``substeps`` steps of Δt / substeps per saved frame (same PDE, more stable).
    """
    _check_grid(name, num_points=num_points, num_steps=num_steps, output_points=output_points, order=order,
                save_every=save_every, substeps=substeps)
    space = _wave_space(amplitude, name)
    pde = difficulty_pde(1, num_points, dt=1.0, **difficulty).replace(dt=1.0 / substeps)

    def make_pde(p):
        return pde

    return Simulator(
        space=space,
        make_pde=make_pde,
        initial_condition=_wave_ic,
        num_steps=num_steps * substeps,
        save_every=save_every * substeps,
        order=order,
        output_points=output_points,
        name=name,
    )


def ks_1d(**kw) -> Simulator:
    """Combustion-form KS in difficulty form (γ2 = −82.5, γ4 = −18750, δ2 = −150)."""
    kw.setdefault("name", "ks_1d")
    return difficulty_1d_waves(difficulty=KS_DIFFICULTY, **kw)


def ks_conservative_1d(**kw) -> Simulator:
    """Conservative-form KS, (u²)_x instead of (u_x)²."""
    kw.setdefault("name", "ks_conservative_1d")
    kw.setdefault("substeps", 2)
    return difficulty_1d_waves(difficulty=KS_CONSERVATIVE_DIFFICULTY, **kw)


def kdv_1d(**kw) -> Simulator:
    """KdV in difficulty form (γ3 = −2500, γ4 = −3125, δ1 = −10); amplitudes up to 1.5 make steep solitons."""
    kw.setdefault("name", "kdv_1d")
    kw.setdefault("amplitude", (0.2, 1.5))
    kw.setdefault("substeps", 4)
    return difficulty_1d_waves(difficulty=KDV_DIFFICULTY, **kw)


def ks_conservative_bumps_1d(
    *, num_bumps: int = 8, width: float = 0.05, amplitude=(0.2, 1.0), num_points: int = 160,
    output_points: int | None = None, num_steps: int = 20, substeps: int = 2, order: int = 2,
) -> Simulator:
    """Conservative KS (difficulty form) whose dim(λ) is dialled by K without changing the physics.

    λ = (A, c_1…c_K, w_1…w_K), D = 2K + 1: K periodic bumps of fixed width (`periodic_bumps`),
    the field normalised to max |u0| = 1 and scaled by the amplitude A, which sets the nonlinear
    difficulty. The shape dims grow with K; the range of difficulties does not.
    """
    name = f"ks_conservative_bumps_1d_k{num_bumps}"
    _check_grid(name, num_points=num_points, num_steps=num_steps, output_points=output_points, order=order,
                substeps=substeps, num_bumps=num_bumps)
    checks.real(name, "width", width, lo=0, open_lo=True)
    space = (
        ParamSpace.box({"A": checks.increasing_pair(name, "amplitude", amplitude)})
        + ParamSpace.vector("centre", num_bumps, 0.0, 1.0)
        + ParamSpace.vector("weight", num_bumps, -1.0, 1.0)
    )
    pde = difficulty_pde(1, num_points, dt=1.0, **KS_CONSERVATIVE_DIFFICULTY).replace(dt=1.0 / substeps)

    def make_pde(p):
        return pde

    def ic(p, x, length):
        return p["A"] * ics.periodic_bumps(p["centre"], p["weight"], x, length, width)

    return Simulator(space=space, make_pde=make_pde, initial_condition=ic, num_steps=num_steps * substeps,
                     save_every=substeps, order=order, output_points=output_points, name=name)


def advection_diffusion_1d(*, num_points=64, num_steps=20, dt=0.05, velocity=(0.5, 2.0), diffusivity=(0.005, 0.05)):
    """Linear advection–diffusion on L = 2π with λ = (A0, A1, φ0, φ1, c, ν): coefficients are data."""
    _check_grid("advection_diffusion_1d", num_points=num_points, num_steps=num_steps, dt=dt)
    space = _wave_space((0.2, 1.0)) + ParamSpace.box({
        "velocity": checks.increasing_pair("advection_diffusion_1d", "velocity", velocity),
        "diffusivity": checks.increasing_pair("advection_diffusion_1d", "diffusivity", diffusivity)})

    def make_pde(p):
        return AdvectionDiffusion(1, 2 * math.pi, num_points, dt, velocity=p["velocity"], diffusivity=p["diffusivity"])

    return Simulator(space, make_pde, _wave_ic, num_steps=num_steps, cond_names=("velocity", "diffusivity"),
                     name="advection_diffusion_1d")


def burgers_1d(*, num_points=128, num_steps=40, dt=0.01, diffusivity=(0.01, 0.1)):
    """Viscous Burgers on L = 2π with λ = (A0, A1, φ0, φ1, ν)."""
    _check_grid("burgers_1d", num_points=num_points, num_steps=num_steps, dt=dt)
    space = _wave_space((0.2, 1.0)) + ParamSpace.box({"diffusivity": checks.increasing_pair("burgers_1d", "diffusivity",
                                                                                            diffusivity)})

    def make_pde(p):
        return Burgers(1, 2 * math.pi, num_points, dt, diffusivity=p["diffusivity"])

    return Simulator(space, make_pde, _wave_ic, num_steps=num_steps, cond_names=("diffusivity",), name="burgers_1d")


def ks_2d_fourier(
    *, num_points=64, output_points=32, num_modes=150, num_steps=4, save_every=5, dt=0.1,
    domain_extent=(10.0, 130.0), warmup_steps=0,
):
    """2D KS with a truncated-Fourier IC: λ = (a_1…a_K, φ_1…φ_K, L), 2K + 1 dims (301 for K = 150)."""
    _check_grid("ks_2d_fourier", num_points=num_points, num_steps=num_steps, output_points=output_points, dt=dt,
                save_every=save_every, num_modes=num_modes)
    checks.integer("ks_2d_fourier", "warmup_steps", warmup_steps, lo=0)
    domain_extent = checks.increasing_pair("ks_2d_fourier", "domain_extent", domain_extent)
    space = (
        ParamSpace.vector("amp", num_modes, -1.0, 1.0)
        + ParamSpace.vector("phase", num_modes, 0.0, 2 * math.pi)
        + ParamSpace.box({"L": domain_extent})
    )

    def make_pde(p):
        return KuramotoSivashinsky(2, p["L"], num_points, dt)

    def ic(p, x, length):
        return ics.truncated_fourier(p["amp"], p["phase"], x, length)

    return Simulator(space, make_pde, ic, num_steps=num_steps * save_every, save_every=save_every,
                     warmup_steps=warmup_steps, output_points=output_points, cond_names=("L",), name="ks_2d_fourier")


def gray_scott_blobs(
    *, num_points=64, output_points=32, num_blobs=12, num_steps=4, save_every=10, dt=1.0,
    domain_extent=(0.5, 10.0), feed_rate=0.04, kill_rate=0.06,
):
    """Gray–Scott with K Gaussian blobs (cx, cy, width, amplitude) and the domain length: 4K + 1 dims (49)."""
    _check_grid("gray_scott_blobs", num_points=num_points, num_steps=num_steps, output_points=output_points, dt=dt,
                save_every=save_every, num_blobs=num_blobs)
    domain_extent = checks.increasing_pair("gray_scott_blobs", "domain_extent", domain_extent)
    blob_bounds = []
    for i in range(num_blobs):
        blob_bounds += [(f"cx_{i}", (0.0, 1.0)), (f"cy_{i}", (0.0, 1.0)), (f"w_{i}", (0.02, 0.1)), (f"amp_{i}", (0.2, 1.0))]
    space = ParamSpace.box(dict(blob_bounds)) + ParamSpace.box({"L": domain_extent})

    def make_pde(p):
        return GrayScott(2, p["L"], num_points, dt, feed_rate=feed_rate, kill_rate=kill_rate)

    def ic(p, x, length):
        blobs = jnp.stack([jnp.stack([p[f"cx_{i}"], p[f"cy_{i}"], p[f"w_{i}"], p[f"amp_{i}"]]) for i in range(num_blobs)])
        return ics.gaussian_blobs(blobs, x, length)

    return Simulator(space, make_pde, ic, num_steps=num_steps * save_every, save_every=save_every,
                     output_points=output_points, cond_names=("L",), name="gray_scott_blobs")


def kolmogorov_fourier(
    *, num_points=64, output_points=32, num_modes=32, num_steps=5, save_every=10, dt=0.01,
    diffusivity=(0.003, 0.008), amplitude_scale=4.0,
):
    """Kolmogorov flow on L = 2π, truncated-Fourier vorticity IC and viscosity ν in λ: 2K + 1 dims."""
    _check_grid("kolmogorov_fourier", num_points=num_points, num_steps=num_steps, output_points=output_points, dt=dt,
                save_every=save_every, num_modes=num_modes)
    diffusivity = checks.increasing_pair("kolmogorov_fourier", "diffusivity", diffusivity)
    space = (
        ParamSpace.vector("amp", num_modes, -1.0, 1.0)
        + ParamSpace.vector("phase", num_modes, 0.0, 2 * math.pi)
        + ParamSpace.box({"nu": diffusivity})
    )

    def make_pde(p):
        return NavierStokesVorticity(2 * math.pi, num_points, dt, diffusivity=p["nu"], drag=-0.1, injection_scale=1.0)

    def ic(p, x, length):
        return amplitude_scale * ics.truncated_fourier(p["amp"], p["phase"], x, length)

    return Simulator(space, make_pde, ic, num_steps=num_steps * save_every, save_every=save_every,
                     output_points=output_points, cond_names=("nu",), name="kolmogorov_fourier")


PROBLEMS = {
    "ks_1d": ks_1d,
    "ks_conservative_1d": ks_conservative_1d,
    "kdv_1d": kdv_1d,
    "ks_conservative_bumps_1d": ks_conservative_bumps_1d,
    "advection_diffusion_1d": advection_diffusion_1d,
    "burgers_1d": burgers_1d,
    "ks_2d_fourier": ks_2d_fourier,
    "gray_scott_blobs": gray_scott_blobs,
    "kolmogorov_fourier": kolmogorov_fourier,
}


def get_problem(name: str, **kwargs) -> Simulator:
    """Build a named problem, or a problem factory of the user's own named ``"package.module:factory"``
    or ``"path/to/file.py:factory"`` (`qsal_jax.imports`); unknown names list the known ones."""
    from qsal_jax.imports import import_by_path, is_import_path

    if is_import_path(name):
        return import_by_path(name, "problem.name")(**kwargs)
    if name not in PROBLEMS:
        raise ValueError(f"problem.name: unknown problem {name!r}; choose one of {sorted(PROBLEMS)}")
    return PROBLEMS[name](**kwargs)
