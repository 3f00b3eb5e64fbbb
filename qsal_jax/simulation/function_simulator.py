"""Simulators of the user's own: any jittable λ → trajectory map, or a stepper built per λ.

    sim = Simulator.from_function(space, lambda lam: my_solver(lam))         # λ [D] -> [T, C, *grid]
    sim = Simulator.from_stepper(space, make_stepper, initial_condition, num_frames=41)

``from_stepper`` is the adapter for exponax and for any solver written the exponax way: a stepper
advances one unbatched state ``[C, *grid]``, and ``make_stepper(params)`` builds it from λ by name
(``params = space.unpack(λ)``), so PDE coefficients carried by λ are traced arrays, differentiable
and batched by ``vmap``. Either simulator works wherever a `Simulator` does: the fused engine, the
score set and its cache, ``load_run``, the export, ``vmap`` and sharding. Only a simulator with a
one-frame step (``from_stepper``, or ``step_fn=``) serves the strategies that step the solver from
a surrogate's state (``residual``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.simulation.trajectories import Batched
from qsal_jax.solvers import repeated, rollout


@dataclasses.dataclass(frozen=True)
class FunctionSimulator(Batched):
    """A simulator from functions (hashable: pass it as static, as a `Simulator`).

    Attributes:
      space: the parameter box.
      trajectory_fn: ``λ [D] -> u [num_frames, *state_shape]``, jittable (and differentiable in λ
        for the gradient strategies).
      num_frames, state_shape: the trajectory's frames (u_0 included) and ``(C, *grid)``.
      step_fn: optional ``(u [C, *grid], λ [D]) -> u`` one saved frame later (Φ).
      initial_state_fn: optional ``λ [D] -> u_0 [C, *grid]``; else the trajectory's first frame.
      domain_extent, frame_dt: the domain's length and the time between frames (metadata for the export).
    """

    space: ParamSpace
    trajectory_fn: Callable[[jax.Array], jax.Array]
    num_frames: int
    state_shape: tuple[int, ...]
    step_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    initial_state_fn: Callable[[jax.Array], jax.Array] | None = None
    dtype: object = jnp.float32
    cond_names: tuple[str, ...] = ()
    name: str = "function_simulator"
    blowup_threshold: float = 1e6
    domain_extent: float = 1.0
    frame_dt: float = 1.0

    warmup_steps = 0  # not a field: the preflight's solver-step count reads it

    @property
    def num_steps(self) -> int:
        return self.num_frames - 1

    def simulate_one(self, lam: jax.Array) -> jax.Array:
        """One trajectory ``[T, C, *grid]`` for ``lam: [D]``."""
        u = self.trajectory_fn(lam)
        expected = (self.num_frames,) + tuple(self.state_shape)
        if tuple(u.shape) != expected:
            raise ValueError(f"{self.name}: trajectory_fn returned shape {tuple(u.shape)}, not [T, C, *grid] = {expected}")
        return u.astype(self.dtype)

    def initial_state(self, lam: jax.Array) -> jax.Array:
        if self.initial_state_fn is not None:
            return self.initial_state_fn(lam).astype(self.dtype)
        return self.simulate_one(lam)[0]

    def simulate_prefix(self, lam: jax.Array, frames: int) -> jax.Array:
        """The first ``frames`` frames; with a step, only those are computed (each frame under
        `jax.checkpoint`, so reverse mode keeps one state per frame)."""
        if self.step_fn is None or self.initial_state_fn is None:
            return super().simulate_prefix(lam, frames)
        if not 1 <= frames <= self.num_frames:
            raise ValueError(f"{self.name}.simulate_prefix: frames must be in [1, {self.num_frames}], got {frames}")
        u0 = self.initial_state(lam)
        chunk = jax.checkpoint(lambda u: self.step_fn(u, lam).astype(self.dtype))

        def body(u, _):
            u = chunk(u)
            return u, u

        _, traj = jax.lax.scan(body, u0, None, length=frames - 1)
        return jnp.concatenate([u0[None], traj], axis=0)

    def frame_step(self, u: jax.Array, lam: jax.Array) -> jax.Array:
        if self.step_fn is None:
            return super().frame_step(u, lam)
        return self.step_fn(u.astype(self.dtype), lam).astype(self.dtype)

    def grid_facts(self) -> tuple[int, float, float]:
        return len(self.state_shape) - 1, float(self.domain_extent), float(self.frame_dt)


def from_function(space: ParamSpace, trajectory_fn: Callable, *, step_fn: Callable | None = None,
                  initial_state: Callable | None = None, cond_names: tuple[str, ...] = (),
                  name: str = "function_simulator", dtype=jnp.float32, blowup_threshold: float = 1e6,
                  domain_extent: float = 1.0, frame_dt: float = 1.0) -> FunctionSimulator:
    """A simulator from any jittable ``trajectory_fn: λ [D] -> [T, C, *grid]``; ``T``, ``C`` and the
    grid are read off one abstract call (nothing is simulated)."""
    if not isinstance(space, ParamSpace):
        raise TypeError(f"from_function: space must be a ParamSpace, got {type(space).__name__}")
    if not callable(trajectory_fn):
        raise TypeError(f"from_function: trajectory_fn must be callable, got {type(trajectory_fn).__name__}")
    unknown = [n for n in cond_names if not space.has(n)]
    if unknown:
        raise ValueError(f"from_function: cond_names {unknown} are not parameters of the space {list(space.names)}")
    out = jax.eval_shape(trajectory_fn, jax.ShapeDtypeStruct((space.dim,), dtype))
    if len(out.shape) < 3 or out.shape[0] < 2:
        raise ValueError(f"from_function: trajectory_fn must return [T >= 2, C, *grid], got shape {tuple(out.shape)}")
    return FunctionSimulator(space, trajectory_fn, int(out.shape[0]), tuple(int(n) for n in out.shape[1:]),
                             step_fn=step_fn, initial_state_fn=initial_state, dtype=dtype, cond_names=tuple(cond_names),
                             name=name, blowup_threshold=blowup_threshold, domain_extent=domain_extent,
                             frame_dt=frame_dt)


def from_stepper(space: ParamSpace, make_stepper: Callable[[dict], Callable], initial_condition: Callable[[dict], jax.Array],
                 *, num_frames: int, save_every: int = 1, cond_names: tuple[str, ...] = (), name: str = "stepper_simulator",
                 dtype=jnp.float32, blowup_threshold: float = 1e6) -> FunctionSimulator:
    """A simulator from a stepper per λ: ``make_stepper(params) -> (u [C, *grid] -> u)`` and
    ``initial_condition(params) -> u_0 [C, *grid]``, with ``params = space.unpack(λ)``; frames are
    ``save_every`` steps apart. An exponax stepper (``exponax.stepper.Burgers(1, L, N, dt,
    diffusivity=params["nu"])``) is such a callable; its ``dt`` and ``domain_extent`` go to the metadata."""
    if num_frames < 2 or save_every < 1:
        raise ValueError(f"from_stepper: num_frames must be >= 2 and save_every >= 1, got {num_frames} and {save_every}")

    def stepper_of(lam):
        stepper = make_stepper(space.unpack(lam))
        return lambda u: stepper(u).astype(u.dtype)  # a solver's own constants may promote the state

    def initial_state(lam):
        return initial_condition(space.unpack(lam))

    def trajectory(lam):
        return rollout(stepper_of(lam), (num_frames - 1) * save_every, save_every=save_every,
                       include_init=True)(initial_state(lam).astype(dtype))

    def step(u, lam):
        return repeated(stepper_of(lam), save_every)(u)

    mid = space.from_unit(jnp.full((space.dim,), 0.5, dtype))
    reference = make_stepper(space.unpack(mid))
    dt = float(getattr(reference, "dt", 1.0)) * save_every
    extent = float(getattr(reference, "domain_extent", 1.0))
    return from_function(space, trajectory, step_fn=step, initial_state=initial_state, cond_names=cond_names,
                         name=name, dtype=dtype, blowup_threshold=blowup_threshold, domain_extent=extent, frame_dt=dt)
