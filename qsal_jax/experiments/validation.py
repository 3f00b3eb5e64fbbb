"""Validate an experiment config before anything is built or compiled.

Each experiment kind has a schema: field path → rule. A bad value stops the run with
one line naming the field, the value and what is allowed, e.g.

    ConfigError: strategy.settings.alpha_max = 1.5: must be in [0, 1]

Cross-field rules (buffer capacity ≥ batch size, divisibility by the device count,
problem and strategy names that exist) run after the per-field ones. Strategy settings have no
rule here: the strategy is built (abstractly, with the driver's context), its factory checks
them, and `build_strategy` names the field it refuses. No strategy or problem is named here:
what a strategy can do is asked of the built object (``density``), what it needs of the driver
is its factory's to refuse.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from qsal_jax.checks import SettingError
from qsal_jax.online.buffers import POLICIES


class ConfigError(ValueError):
    """A config field has a bad value; the message names the field, the value and what is allowed."""


# ------------------------------------------------------------------ rule makers
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[Any], str | None]:
    def rule(v):
        if not _is_int(v):
            return f"must be an integer, got {type(v).__name__}"
        if lo is not None and v < lo:
            return f"must be >= {lo}"
        if hi is not None and v > hi:
            return f"must be <= {hi}"
        return None

    return rule


def real(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Callable[[Any], str | None]:
    def rule(v):
        if not _is_real(v):
            return f"must be a finite number, got {v!r}"
        if lo is not None and (v <= lo if open_lo else v < lo):
            return f"must be {'>' if open_lo else '>='} {lo}" if hi is None else f"must be in {'(' if open_lo else '['}{lo}, {hi}]"
        if hi is not None and v > hi:
            return f"must be <= {hi}" if lo is None else f"must be in {'(' if open_lo else '['}{lo}, {hi}]"
        return None

    return rule


def one_of(*choices) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def boolean(v):
    return None if isinstance(v, bool) else f"must be true or false, got {type(v).__name__}"


def string(v):
    return None if isinstance(v, str) and v else "must be a non-empty string"


def shard_option(v):
    return None if v in (True, False, "auto") else "must be true, false or 'auto'"


# ------------------------------------------------------------------- schemas
# Strategy settings have no schema here: each factory checks its own (`proposals.checks`), and
# `build_strategy` names the config field of whatever it refuses.
ONLINE = {
    "seed": integer(0),
    "problem.name": string,
    "model.name": string,
    "model.ensemble_size": integer(1),
    "model.residual": boolean,
    "strategy.name": string,
    "strategy.signal": one_of("loss", "disagreement"),
    "strategy.signal_metric": one_of("mse", "relative_mse", "relative_l2", "nrmse"),
    "train.batch_size": integer(1),
    "train.loss": one_of("mse", "relative_mse", "relative_l2", "nrmse"),
    "train.objective": one_of("one_step", "two_step"),
    "train.bf16": boolean,
    "train.importance_clip": real(0),
    "train.optimizer.learning_rate": real(0, open_lo=True),
    "train.optimizer.warmup_steps": integer(0),
    "train.optimizer.weight_decay": real(0),
    "train.optimizer.grad_clip_norm": real(0),
    "online.num_steps": integer(1),
    "online.clients_per_step": integer(1),
    "online.train_steps_per_step": integer(1),
    "online.steps_per_sync": integer(1),
    "online.checkpoint_every": integer(1),
    "online.shard": shard_option,
    "buffer.capacity": integer(1),
    "buffer.policy": one_of(*POLICIES),
    "buffer.seen_threshold": integer(1),
    "buffer.sharded": boolean,
    "buffer.watermark": integer(1),
    "eval.grid_size": integer(0),
    "eval.score_size": integer(1, 100_000),
    "eval.score_draw": one_of("halton", "uniform"),
    "eval.seed": integer(0),
    "eval.every": integer(0),
}

SCHEMAS: dict[str, dict[str, Callable]] = {"online": ONLINE}
REQUIRED = {
    "online": ("seed", "problem.name", "model.name", "strategy.name", "train.batch_size", "online.num_steps", "eval.score_size",
               "online.clients_per_step", "online.train_steps_per_step", "buffer.capacity", "buffer.policy"),
}


def get_field(config, path: str):
    """``config`` at the dotted ``path`` (``"buffer.capacity"``), or `MISSING`."""
    node = config
    for part in path.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            return MISSING
    return node


MISSING = object()  # what `get_field` returns for an absent path


def first_line(e: Exception) -> str:
    """The first line of an exception's message (a one-line error built on top of it)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def heatmap_axes(eval_config, space) -> tuple[str, str]:
    """The two λ names the heat-map grid spans: ``eval.grid_axes``, or, when it is unset (None),
    the problem's first two parameters, so a problem of the user's own needs no setting."""
    axes = eval_config.get("grid_axes") if hasattr(eval_config, "get") else None
    return tuple(axes) if axes else tuple(space.names[:2])


# Where each field of the driver's context comes from (a strategy that refuses one names it).
CONTEXT_FIELDS = {"ensemble_size": "model.ensemble_size", "frames_per_trajectory": "problem.kwargs.num_steps",
                  "draws_per_call": "online.clients_per_step", "feedback_rows": "train.batch_size",
                  "surrogate": "strategy.name", "surrogate_step_flops": "model.name"}


def driver_context(config, sim, surrogate_step_flops=None, log=None):
    """The online driver's `proposals.DriverContext` for ``config`` and its simulator ``sim``;
    ``surrogate_step_flops``: a thunk (`experiments.online.surrogate_step_flops`), or None;
    ``log``: where a factory reports what it sized (None: quiet)."""
    from qsal_jax.proposals import DriverContext

    return DriverContext(ensemble_size=int(config.model.get("ensemble_size", 1)), frames_per_trajectory=sim.num_frames,
                         draws_per_call=int(config.online.clients_per_step), feedback_rows=int(config.train.batch_size),
                         surrogate="rollout", surrogate_step_flops=surrogate_step_flops, log=log)


def build_strategy(config, sim, surrogate_step_flops=None, log=None):
    """``proposals.build`` of ``config.strategy`` for the online driver (`driver_context`); what the
    factory refuses is a one-line `ConfigError` naming the config field (the setting, or the field
    the refused context entry comes from)."""
    from qsal_jax import proposals

    settings = dict(config.strategy.get("settings", {}) or {})
    try:
        return proposals.build(config.strategy.name, sim.space,
                               context=driver_context(config, sim, surrogate_step_flops, log), **settings)
    except (ValueError, TypeError, KeyError) as e:
        raise setting_error(config, settings, e) from None


def setting_error(config, settings: dict, e: Exception) -> ConfigError:
    """A factory's error as a `ConfigError` on the field it is about. A `proposals.checks.SettingError`
    names its setting; a plain error of a user's factory is matched on the settings it names."""
    import re

    why = first_line(e).strip("'\"")
    setting = getattr(e, "setting", None)
    if getattr(e, "context", False):
        path = CONTEXT_FIELDS.get(setting, "strategy.name")  # "": the driver as a whole
        return ConfigError(f"{path} = {get_field(config, path)!r}: {why}")
    if setting is None:
        setting = next((k for k in settings if re.search(rf"\b{re.escape(k)}\b", why)), None)
    if setting is None:
        return ConfigError(f"strategy.settings = {settings!r}: {why}")
    value = settings.get(setting, "default")
    return ConfigError(f"strategy.settings.{setting} = {value!r}: {why}")


def fail(path: str, value, why: str):
    raise ConfigError(f"{path} = {value!r}: {why}")


def validate_config(config) -> None:
    """Raise `ConfigError` for the first bad field of an online ``config``; None if it is sound.

    Toy and PINN configs have their own ``check_config`` (`qsal_jax.experiments.check_config`
    dispatches on the kind)."""
    kind = config.get("kind", "online")
    if kind not in SCHEMAS:
        fail("kind", kind, "validate_config checks online configs; qsal_jax.experiments.check_config checks every kind")
    for path in REQUIRED.get(kind, ()):
        if get_field(config, path) is MISSING:
            fail(path, None, "is required")
    for path, rule in SCHEMAS[kind].items():
        value = get_field(config, path)
        if value is MISSING or value is None and path.endswith(("grad_clip_norm", "output_points")):
            continue
        why = rule(value)
        if why:
            fail(path, value, why)
    if kind == "online":
        _online_cross_checks(config)


def _online_cross_checks(config) -> None:
    from qsal_jax import models, proposals
    from qsal_jax.imports import import_by_path, is_import_path
    from qsal_jax.simulation import PROBLEMS

    if config.problem.name not in PROBLEMS and not is_import_path(config.problem.name):
        fail("problem.name", config.problem.name, f"must be one of {sorted(PROBLEMS)}")
    if is_import_path(config.strategy.name):
        try:
            import_by_path(config.strategy.name, "strategy.name")
        except ValueError as e:
            fail("strategy.name", config.strategy.name, str(e).split(": ", 1)[-1])
    elif config.strategy.name not in proposals.names():
        fail("strategy.name", config.strategy.name, f"must be one of {list(proposals.names())}")
    clip = config.train.get("importance_clip", 0.0)
    if clip and clip < 1:
        fail("train.importance_clip", clip, "must be 0 (off) or >= 1")
    sync = config.online.get("steps_per_sync", 1)
    for path in ("online.checkpoint_every", "eval.every"):
        value = get_field(config, path)
        if value is not MISSING and value and value % sync:
            fail(path, value, f"must be a multiple of online.steps_per_sync ({sync}): syncs are where it happens")
    total_train = config.online.num_steps * config.online.train_steps_per_step
    warmup = config.train.optimizer.get("warmup_steps", 0)
    if warmup and warmup >= total_train:
        fail("train.optimizer.warmup_steps", warmup, f"must be below the run's {total_train} training steps "
             "(online.num_steps × online.train_steps_per_step)")
    if config.model.name not in models.available():
        fail("model.name", config.model.name, f"must be one of {models.available()}")
    if config.buffer.capacity < config.train.batch_size:
        fail("buffer.capacity", config.buffer.capacity, f"must be >= train.batch_size ({config.train.batch_size})")
    if config.buffer.get("watermark", 1) > config.buffer.capacity:
        fail("buffer.watermark", config.buffer.watermark, f"must be <= buffer.capacity ({config.buffer.capacity})")
    kw = config.problem.get("kwargs", {}) or {}
    if config.strategy.get("signal", "loss") == "disagreement" and config.model.get("ensemble_size", 1) < 2:
        fail("model.ensemble_size", config.model.get("ensemble_size", 1), "must be >= 2 for strategy.signal='disagreement'")
    try:
        from qsal_jax.simulation import get_problem

        sim = get_problem(config.problem.name, **dict(kw))
    except SettingError as e:  # the problem's own check, naming its keyword
        fail(f"problem.kwargs.{e.setting}", kw.get(e.setting), first_line(e))
    except TypeError as e:
        fail("problem.kwargs", dict(kw), f"not accepted by problem {config.problem.name!r} ({first_line(e)})")
    except ValueError as e:
        fail("problem.kwargs", dict(kw), first_line(e))
    space = sim.space
    # Built abstractly (no arrays): the factory checks its settings against the driver's context.
    # Validation does not size OGAS's schedule (build_engine does): its flops are a placeholder.
    strategy = build_strategy(config, sim, surrogate_step_flops=lambda: 1.0)
    if clip and strategy.density is None:
        fail("train.importance_clip", clip, f"needs a strategy that knows the density of its draws; "
             f"{config.strategy.name!r} does not")
    if config.eval.get("grid_size", 0):
        axes = heatmap_axes(config.eval, space)
        if len(axes) != 2 or not all(a in space.names for a in axes):
            fail("eval.grid_axes", axes, f"must name two parameters of the problem, from {list(space.names[:8])}")
    shard = config.online.get("shard", "auto")
    if config.buffer.get("sharded", False) and shard is not True:
        fail("buffer.sharded", True, f"needs online.shard = True (it is {shard!r}): the buffer is split over the mesh")
    if shard is True:
        import jax

        d = jax.device_count()
        for path in ("train.batch_size", "online.clients_per_step"):
            if get_field(config, path) % d:
                fail(path, get_field(config, path), f"must be divisible by the device count ({d}) when online.shard is true")
        if config.buffer.get("sharded", False) and config.buffer.capacity % d:
            fail("buffer.capacity", config.buffer.capacity, f"must be divisible by the device count ({d}) when buffer.sharded is true")
