"""An asynchronous experiment's config, checked and built: the solver command, the trajectory
shape, the model in the fused engine's residual form, the strategy and the `AsyncConfig`.

Nothing here writes to disk: `build` runs before a workdir is claimed, so a refused config leaves
no ``config.json`` behind, and every error is one line naming the config field.

The config (``configs/async_burgers.py`` is the example to copy):

  solver.command      the program, a list of argument strings with the placeholders of
                      `qsal_jax.online.solver_command` ({out}, {lam}, {lam_file}, {<λ name>}),
                      ``{python}`` (``solver.python``, by default the interpreter running the trainer) and ``{<field>}`` for
                      any other scalar field of ``solver`` (its grid size, say), filled up front
  solver.num_frames, solver.num_points, solver.channels, solver.spatial_dims
                      the ``[T, C, *grid]`` every result must have
  solver.timeout_s    per simulation: past it the program's process tree is killed
  solver.crashes_before_redraw   a faulty λ is launched again this many times, then redrawn
  space               ((name, low, high), ...): λ's box, in the order of {lam} (a list: a mapping's
                      order does not survive config.json, whose keys are sorted)
  model               name and overrides (`models.get_model`); ``residual`` (default True) and
                      ``cond_names`` (λ components fed to the model, in unit-cube units)
  strategy, optimizer, run (`AsyncConfig` fields), train.updates_per_simulation, train.loss
  eval                score_size, seed, draw, every (training steps; 0: only at the end),
                      problem (optional: a registered problem whose score set to use)
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NamedTuple

import numpy as np

EXECUTORS = ("process", "dask")
SOLVER_FIELDS = ("command", "num_frames", "num_points", "timeout_s")


def field(name: str, build: Callable, *args, **kwargs):
    """``build(*args, **kwargs)``, its error (KeyError, ValueError, TypeError) as one ValueError naming ``name``."""
    try:
        return build(*args, **kwargs)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{name}: {e.args[0] if e.args else e}") from None


class Parts(NamedTuple):
    """What a run is built from, each part checked against the config field it comes from."""

    space: Any  # ParamSpace
    strategy: Any  # Proposal
    model: Any  # flax module
    apply_fn: Callable  # (params, u [B, C, *grid], cond [B, P]) -> u_next, the fused engine's form
    optimizer: Any
    run_config: Any  # AsyncConfig
    trajectory_shape: tuple  # [T, C, *grid]
    solver: Any  # ExecutableSolver
    conditioning: Callable  # lam [D] -> cond [P] float32
    cond_dim: int


def solver_constants(solver_config) -> dict:
    """What ``{python}`` and ``{<field>}`` stand for in ``solver.command``: every scalar solver field."""
    out = {k: v for k, v in solver_config.items() if k != "command" and isinstance(v, (int, float, str, bool))}
    return {**out, "python": solver_config.get("python", "") or sys.executable}


def make_solver(c, names: tuple[str, ...]):
    """``solver.command`` as an `ExecutableSolver`; ValueError naming ``solver.command``."""
    from qsal_jax.online.external import ExecutableSolver
    from qsal_jax.online.solver_command import check_command

    s = c.solver
    command = s.get("command")
    if command is None:
        raise ValueError("solver.command: missing; give the solver program as a list of argument strings")
    constants = solver_constants(s)
    clash = sorted(set(constants) & set(names))
    if clash:
        raise ValueError(f"solver.{clash[0]}: a solver field and a λ component share the name {clash[0]!r}; rename one")
    argv = field("solver.command", check_command, list(command) if not isinstance(command, str) else command,
                 names, constants)
    env = dict(s.get("env", None) or {})
    return field("solver", ExecutableSolver, argv, timeout_s=float(s.timeout_s), lam_format=s.get("lam_format", "json"),
                 env=env, cwd=s.get("cwd", None) or None, names=names)


def trajectory_shape(c) -> tuple:
    s = c.solver
    for name in ("num_frames", "num_points"):
        if not isinstance(s.get(name), int) or isinstance(s.get(name), bool):
            raise ValueError(f"solver.{name} = {s.get(name)!r}: must be an integer")
    t, n = int(s.num_frames), int(s.num_points)
    channels, dims = int(s.get("channels", 1)), int(s.get("spatial_dims", 1))
    if t < 2:
        raise ValueError(f"solver.num_frames = {t}: a trajectory needs at least 2 frames to give a training pair")
    if n < 2 or channels < 1 or dims not in (1, 2, 3):
        raise ValueError(f"solver: num_points = {n}, channels = {channels}, spatial_dims = {dims}: "
                         "need num_points >= 2, channels >= 1, spatial_dims 1, 2 or 3")
    return (t, channels) + (n,) * dims


def space_bounds(space) -> dict:
    """``((name, low, high), ...)`` as ``{name: (low, high)}`` in that order; ValueError for anything else."""
    if isinstance(space, dict) or hasattr(space, "items"):
        raise ValueError("give a list of (name, low, high) in λ's order, not a mapping: config.json sorts a "
                         "mapping's keys, and {lam} would change order on a resume")
    try:
        out = {str(name): (float(low), float(high)) for name, low, high in space}
    except (TypeError, ValueError):
        raise ValueError(f"{space!r}: must be a list of (name, low, high)") from None
    if len(out) != len(space):
        raise ValueError(f"{space!r}: a name appears twice")
    return out


def unit_conditioning(space, cond_names: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """``lam [D] -> [P]``: the named λ components in unit-cube units (the fused simulator's convention)."""
    idx = np.asarray([space.index(n) for n in cond_names], int)
    low, high = np.asarray(space.low, np.float64)[idx], np.asarray(space.high, np.float64)[idx]
    return lambda lam: ((np.asarray(lam, np.float64)[idx] - low) / (high - low)).astype(np.float32)


def build(c, workdir: str) -> Parts:
    """Check and build every cheap part of the run of config ``c``; ValueError naming the field."""
    from qsal_jax import models, proposals, training
    from qsal_jax.experiments.workdir import config_hash
    from qsal_jax.online.async_records import AsyncConfig, check_trainer_args
    from qsal_jax.simulation.param_space import ParamSpace
    from qsal_jax.training.surrogate import surrogate_apply

    shape = trajectory_shape(c)
    if c.executor.kind not in EXECUTORS:
        raise ValueError(f"executor.kind = {c.executor.kind!r}: must be one of {', '.join(EXECUTORS)}")
    space = field("space", lambda s: ParamSpace.box(space_bounds(s)), c.space)
    solver = make_solver(c, tuple(space.names))
    field("strategy.name", proposals.get, c.strategy.name)
    strategy = field("strategy.settings", proposals.build, c.strategy.name, space, **dict(c.strategy.settings))
    model_cfg = dict(c.model)
    residual = bool(model_cfg.pop("residual", True))
    cond_names = tuple(model_cfg.pop("cond_names", ()) or ())
    conditioning = field("model.cond_names", unit_conditioning, space, cond_names)
    model_cfg.setdefault("out_channels", shape[1])
    model = field("model", models.get_model, model_cfg)
    optimizer = field("optimizer", training.make_optimizer, dict(c.optimizer))
    train = c.get("train", None) or {}
    field("train.loss", training.get_loss, train.get("loss", "mse"))
    pace = train.get("updates_per_simulation", None)
    run_config = field("run", AsyncConfig.from_config, dict(c.run), config_hash=config_hash(c),
                       checkpoint_dir=os.path.join(os.path.abspath(workdir), "checkpoints"),
                       crashes_before_redraw=c.solver.get("crashes_before_redraw", 0))
    run_config = field("train.updates_per_simulation", AsyncConfig.from_config,
                       {**run_config.__dict__, "updates_per_simulation": pace})
    field("run", check_trainer_args, solver, strategy, run_config, shape)
    e = c.eval
    field("eval.score_size", _positive, e.score_size)
    field("eval.every", _non_negative, e.get("every", 0))
    if e.get("problem", None):
        from qsal_jax.simulation import get_problem

        field("eval.problem", get_problem, e.problem, **dict(e.get("problem_kwargs", None) or {}))
    return Parts(space, strategy, model, surrogate_apply(model, residual), optimizer, run_config, shape, solver,
                 conditioning, len(cond_names))


def _positive(v) -> None:
    if not isinstance(v, int) or v < 1:
        raise ValueError(f"{v!r}: must be an integer >= 1")


def _non_negative(v) -> None:
    if not isinstance(v, int) or v < 0:
        raise ValueError(f"{v!r}: must be an integer >= 0 (0: only at the end)")
