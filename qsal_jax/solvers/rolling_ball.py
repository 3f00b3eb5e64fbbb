"""The toy oracle of Breed (Dymchenko & Raffin 2023): a ball rolling to one of two minima.

The surface in R^D is two Gaussian wells over a weak quadratic bowl,

    f(x) = −h_A exp(−‖x − x_A‖² / 2s_A²) − h_B exp(−‖x − x_B‖² / 2s_B²) + ½ κ ‖x‖²,

and the oracle maps an initial position to the minimum its gradient flow
ẋ = −∇f(x) reaches (integrated with diffrax, stopped at steady state), or, with
``method="descent"``, to the end of fixed-step gradient descent x ← x − η ∇f(x).
Unequal well widths make the basin boundary curved; near it the answer flips, which
is where a surrogate has trouble.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp


class DoubleWell(NamedTuple):
    """Surface parameters; ``x_a``, ``x_b``: ``[D]``."""

    x_a: jax.Array
    x_b: jax.Array
    height_a: float = 1.0
    height_b: float = 1.2
    width_a: float = 0.9
    width_b: float = 0.6
    bowl: float = 0.02


def default_double_well(dim: int = 2, dtype=jnp.float32) -> DoubleWell:
    """Wells at (−1, 0, …) and (1, ½, 0, …) of unequal widths."""
    x_a = jnp.zeros(dim, dtype).at[0].set(-1.0)
    x_b = jnp.zeros(dim, dtype).at[0].set(1.0)
    if dim > 1:
        x_b = x_b.at[1].set(0.5)
    return DoubleWell(x_a, x_b)


def surface(well: DoubleWell, x: jax.Array) -> jax.Array:
    """f(x) for one point ``x: [D]``."""
    da = jnp.sum((x - well.x_a) ** 2)
    db = jnp.sum((x - well.x_b) ** 2)
    return (
        -well.height_a * jnp.exp(-da / (2 * well.width_a**2))
        - well.height_b * jnp.exp(-db / (2 * well.width_b**2))
        + 0.5 * well.bowl * jnp.sum(x**2)
    )


def roll(
    well: DoubleWell,
    x0: jax.Array,
    *,
    method: str = "flow",
    t_max: float = 500.0,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    learning_rate: float = 0.1,
    num_iterations: int = 2000,
) -> jax.Array:
    """Where the ball from ``x0: [D]`` comes to rest, ``[D]``. Batch with `jax.vmap`."""
    grad_f = jax.grad(surface, argnums=1)
    if method == "descent":
        return jax.lax.fori_loop(0, num_iterations, lambda _, x: x - learning_rate * grad_f(well, x), x0)
    if method != "flow":
        raise ValueError(f"roll: method must be 'flow' or 'descent', got {method!r}")
    term = diffrax.ODETerm(lambda t, x, args: -grad_f(well, x))
    solution = diffrax.diffeqsolve(
        term,
        diffrax.Tsit5(),
        t0=0.0,
        t1=t_max,
        dt0=0.1,
        y0=x0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        event=diffrax.Event(diffrax.steady_state_event(rtol=rtol, atol=atol)),
        max_steps=100_000,
        throw=False,
    )
    return solution.ys[-1]


def basin(well: DoubleWell, x_min: jax.Array) -> jax.Array:
    """0 if ``x_min`` is nearer x_A, 1 if nearer x_B; shape ``[...]``."""
    da = jnp.sum((x_min - well.x_a) ** 2, axis=-1)
    db = jnp.sum((x_min - well.x_b) ** 2, axis=-1)
    return (db < da).astype(jnp.int32)


def oracle(well: DoubleWell, xs: jax.Array, **kwargs) -> jax.Array:
    """Batched oracle ``O(x)``: ``xs [B, D]`` → rest positions ``[B, D]``."""
    return jax.vmap(lambda x: roll(well, x, **kwargs))(xs)
