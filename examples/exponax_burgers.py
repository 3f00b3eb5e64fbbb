"""Bring your own solver: an exponax Burgers stepper as a qsal_jax problem, nothing in the package edited.

    python scripts/train.py --config=configs/online_1d.py:uniform,tiny --workdir=runs/own_burgers \
        --set=problem.name=examples/exponax_burgers.py:burgers

λ = (A0, A1, φ0, φ1, ν): two Fourier modes of the initial condition and the viscosity, which the
surrogate is conditioned on. ν reaches the stepper as a traced array, so the simulator is batched
by ``vmap`` and differentiable in every entry of λ.
"""

import math

import exponax
import jax.numpy as jnp

from qsal_jax.simulation import ParamSpace, Simulator


def burgers(num_points: int = 128, num_steps: int = 20, save_every: int = 4, dt: float = 0.01,
            viscosity=(0.005, 0.02), name: str = "exponax_burgers"):
    """``num_steps`` saved frames after u0, ``save_every`` exponax steps of ``dt`` apart, on [0, 1)."""
    space = ParamSpace.box({"A0": (0.2, 1.0), "A1": (0.2, 1.0), "phi0": (0.0, 2 * math.pi),
                            "phi1": (0.0, 2 * math.pi), "nu": tuple(viscosity)})
    x = exponax.make_grid(1, 1.0, num_points)  # [1, N]

    def make_stepper(p):
        return exponax.stepper.Burgers(1, 1.0, num_points, dt, diffusivity=p["nu"])

    def initial_condition(p):
        u = p["A0"] * jnp.sin(2 * jnp.pi * x + p["phi0"]) + p["A1"] * jnp.sin(4 * jnp.pi * x + p["phi1"])
        return u  # [1, N]

    return Simulator.from_stepper(space, make_stepper, initial_condition, num_frames=num_steps + 1,
                                  save_every=save_every, cond_names=("nu",), name=name)
