"""The Allen–Cahn PINN problem: PDE residual, hard-constrained ansatz, spectral reference.

The PDE (Raissi et al. 2019's benchmark) on x ∈ [−1, 1], t ∈ [0, 1], periodic in x:

    F[u] = u_t − ε u_xx + c (u³ − u) = 0,   ε = 1e-4,  c = 5,   u(x, 0) = x² cos(πx).

**Ansatz.** The initial condition and periodicity are built in:

    u_θ(x, t) = x² cos(πx) + t · [N_θ(s, k, τ)₀ + (x² − 1) · N_θ(s, k, τ)₁],
    s = sin(πx), k = cos(πx), τ = 2t − 1,

so ``u_θ(x, 0)`` is the initial condition exactly and ``u_θ(−1, t) = u_θ(1, t)`` for every θ.
Why the second term: the initial condition is periodic in value but not in slope
(``u₀'(±1) = ∓2``), while the true periodic solution is smooth for t > 0. A network of
periodic features alone (``corner_term=False``, the simpler ``u₀ + t N_θ``) keeps that slope
jump forever; ``(x² − 1) N₁`` has slope jump ``4 N₁(1, t)`` and value 0 at ±1, so the network
can cancel the kink without breaking value periodicity. The slope is not periodic by
construction, only representable. On the CPU default (uniform collocation) the two ansätze
measured 0.37 / 0.30 (with the term, seeds 0 / 1) against 0.29 / 0.35 (without): no clear
winner at that size, so the default keeps the term that can represent the smooth solution.

**Reference.** `reference_solution`: the project's ETDRK4 spectral solver (`AllenCahn` on
``[0, 2)``, x shifted by one), saved at the evaluation times and subsampled in x. Scores: relative
L2 error of ``u_θ`` over the whole (x, t) grid (``relative_l2``) and per time slice (`relative_l2_errors`).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.solvers.reaction import AllenCahn
from qsal_jax.solvers.stepper import make_stepper, rollout


# --------------------------------------------------------------------------- the PDE
def domain(config_pde=None) -> ParamSpace:
    """The collocation box ``(x, t) ∈ [x_low, x_high] × [0, t_end]``."""
    x_low, x_high, t_end = (-1.0, 1.0, 1.0) if config_pde is None else (
        float(config_pde.x_low), float(config_pde.x_high), float(config_pde.t_end))
    return ParamSpace.box({"x": (x_low, x_high), "t": (0.0, t_end)})


def initial_condition(x):
    """``u₀(x) = x² cos(πx)``."""
    return x**2 * jnp.cos(jnp.pi * x)


def residual(u_fn: Callable, xt: jax.Array, diffusivity, reaction) -> jax.Array:
    """``r = u_t − ε u_xx + c (u³ − u)`` at points ``xt [B, 2]`` (columns x, t) → ``[B]``.

    ``u_fn(x, t)`` maps two scalars to a scalar. Derivatives are forward mode: one jvp in t,
    a jvp of a jvp in x.
    """

    def one(x, t):
        ux = lambda x: jax.jvp(lambda x: u_fn(x, t), (x,), (jnp.ones_like(x),))
        (u, _), (_, u_xx) = jax.jvp(ux, (x,), (jnp.ones_like(x),))
        _, u_t = jax.jvp(lambda t: u_fn(x, t), (t,), (jnp.ones_like(t),))
        return u_t - diffusivity * u_xx + reaction * (u**3 - u)

    return jax.vmap(one)(xt[:, 0], xt[:, 1])


def make_solution(model, *, corner_term: bool = True) -> Callable:
    """``u(params, x, t)`` for scalar x, t: the hard-constrained ansatz of the module docstring."""

    def u(params, x, t):
        feats = jnp.stack([jnp.sin(jnp.pi * x), jnp.cos(jnp.pi * x), 2.0 * t - 1.0])
        out = model.apply(params, feats)
        correction = out[0] + ((x**2 - 1.0) * out[1] if corner_term else 0.0)
        return initial_condition(x) + t * correction

    return u


# --------------------------------------------------------------------------- reference
@functools.lru_cache(maxsize=4)
def reference_solution(num_points: int = 1024, dt: float = 1e-3, num_times: int = 101, subsample: int = 2,
                       t_end: float = 1.0, diffusivity: float = 1e-4, reaction: float = 5.0, dtype=np.float32):
    """``(x [X], t [T], u [T, X])`` of the periodic Allen–Cahn problem by ETDRK4.

    The solver's grid ``[0, 2)`` is shifted to ``x ∈ [−1, 1)``; states are saved at
    ``num_times`` equally spaced times in ``[0, t_end]`` (so ``t_end / (num_times − 1)`` must be a
    multiple of ``dt``) and every ``subsample``-th grid point is kept. Cached per settings.
    """
    steps = int(round(t_end / dt))
    save_every = steps // (num_times - 1)
    if save_every * (num_times - 1) != steps or abs(steps * dt - t_end) > 1e-9:
        raise ValueError(f"reference_solution: t_end/(num_times-1) = {t_end / (num_times - 1)} is not a multiple of dt = {dt}")
    pde = AllenCahn(1, jnp.asarray(2.0, dtype), num_points, jnp.asarray(dt, dtype),
                    diffusivity=jnp.asarray(diffusivity, dtype), linear_reaction=jnp.asarray(reaction, dtype),
                    cubic_reaction=jnp.asarray(-reaction, dtype))
    stepper = make_stepper(pde, order=4, dtype=dtype)
    x = (np.arange(num_points) / num_points * 2.0 - 1.0).astype(dtype)
    u0 = jnp.asarray(np.asarray(initial_condition(x))[None], dtype)
    traj = jax.jit(rollout(stepper, steps, save_every=save_every, include_init=True))(u0)  # [T, 1, N]
    u = np.asarray(traj)[:, 0, ::subsample]
    t = np.linspace(0.0, t_end, num_times).astype(dtype)
    return x[::subsample], t, u


def relative_l2_errors(pred: np.ndarray, ref: np.ndarray) -> tuple[float, np.ndarray]:
    """Global relative L2 error and per-time-slice relative L2 errors ``[T]`` of ``[T, X]`` fields."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    glob = float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))
    per_t = np.linalg.norm(pred - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-30)
    return glob, per_t
