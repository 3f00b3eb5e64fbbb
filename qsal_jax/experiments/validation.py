"""Validate an experiment config before anything is built or compiled.

Each experiment kind has a schema: field path → rule. A bad value stops the run with
one line naming the field, the value and what is allowed, e.g.

    ConfigError: strategy.settings.alpha_max = 1.5: must be in [0, 1]

Cross-field rules (buffer capacity ≥ batch size, divisibility by the device count,
problem and strategy names that exist) run after the per-field ones.
"""

from __future__ import annotations

import math
from typing import Any, Callable

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


def pair_increasing(v):
    try:
        lo, hi = v
    except (TypeError, ValueError):
        return "must be a (low, high) pair"
    if not (_is_real(lo) and _is_real(hi)):
        return "must hold two finite numbers"
    return None if lo < hi else "needs low < high"


def positive_or_vector(v):
    if _is_real(v):
        return None if v > 0 else "must be > 0"
    if isinstance(v, (list, tuple)) and v and all(_is_real(x) and x > 0 for x in v):
        return None
    return "must be a number > 0 or a list of them"


def shard_option(v):
    return None if v in (True, False, "auto") else "must be true, false or 'auto'"


# ------------------------------------------------------------------- schemas
STRATEGY_SETTINGS = {
    "sigma": positive_or_vector,
    "alpha0": real(0, 1),
    "alpha1": real(0),
    "alpha_max": real(0, 1),
    "population": integer(1),
    "pool_size": integer(1),
    "beta": real(0),
    "selection": one_of("power", "topk"),
    "sequence": one_of("halton", "sobol"),
    "scramble": boolean,
    "k": real(0),
    "c": real(0),
    "min_rows": integer(0),
    "handback_step": integer(0),
    "handback_alpha": real(0, 1),
    # OGAS (proposals/ogas.py, OGASSettings)
    "hidden": integer(1),
    "depth": integer(1),
    "steps": integer(2),
    "capacity": integer(1),
    "batch_size": integer(1),
    "train_steps": integer(1),
    "train_every": lambda v: None if v == "auto" else integer(1)(v),
    "generator_share": real(0, 1, open_lo=True),
    "surrogate_step_flops": real(0, open_lo=True),
    "lr": real(0, open_lo=True),
    "grad_clip": real(0),
    "ema_decay": real(0, 1),
    "eps_mode": one_of("clip", "cap"),
    "eps_clip": real(0, open_lo=True),
    "eps_cap": real(0, open_lo=True),
    "guidance": real(0),
    "p_uncond": real(0, 1),
    "schedule": one_of("cosine", "linear"),
    "prior": one_of("proportional", "quantile"),
    "prior_power": real(0),
    "quantile": real(0, 1),
    "r_max": real(0, 1),
    "ramp_updates": integer(0),
    "min_fill": integer(1),
    "reject_rounds": integer(0),
    "draw_batch": integer(0),
    "ratio_hidden": integer(1),
    "ratio_depth": integer(1),
    "ratio_lr": real(0, open_lo=True),
    "weight_clip": real(1),
    # breed_generations
    "generation_every": integer(1),
    "min_simulations": integer(0),
    "ramp_generations": integer(1),
    "shrink": real(0, 1, open_lo=True),
    "redraws": integer(0),
    # adversarial, residual (proposals/adversarial.py, residual.py)
    "particles": integer(2),
    "ascent_steps": integer(0),
    "step_size": real(0),
    "dynamics": one_of("ascent", "langevin"),
    "temperature": real(0, open_lo=True),
    "repulsion": real(0),
    "objective": one_of("solver", "residual"),
    "window": integer(1),
    "base": string,
}

ONLINE = {
    "seed": integer(0),
    "problem.name": string,
    "problem.kwargs.num_points": integer(8),
    "problem.kwargs.output_points": integer(4),
    "problem.kwargs.num_steps": integer(1),
    "problem.kwargs.save_every": integer(1),
    "problem.kwargs.substeps": integer(1),
    "problem.kwargs.dt": real(0, open_lo=True),
    "problem.kwargs.amplitude": pair_increasing,
    "problem.kwargs.domain_extent": pair_increasing,
    "problem.kwargs.diffusivity": pair_increasing,
    "problem.kwargs.order": integer(1, 4),
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
for _k, _rule in STRATEGY_SETTINGS.items():
    ONLINE[f"strategy.settings.{_k}"] = _rule

SCHEMAS: dict[str, dict[str, Callable]] = {"online": ONLINE}
OFFLINE_ONLY = ("r3", "rad")  # collocation-point strategies of the PINN experiments
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
    from qsal_jax.simulation import PROBLEMS

    from qsal_jax.imports import is_import_path

    if config.problem.name not in PROBLEMS and not is_import_path(config.problem.name):
        fail("problem.name", config.problem.name, f"must be one of {sorted(PROBLEMS)}")
    from qsal_jax.imports import import_by_path, is_import_path

    if is_import_path(config.strategy.name):
        try:
            import_by_path(config.strategy.name, "strategy.name")
        except ValueError as e:
            fail("strategy.name", config.strategy.name, str(e).split(": ", 1)[-1])
    elif config.strategy.name not in proposals.names():
        fail("strategy.name", config.strategy.name, f"must be one of {list(proposals.names())}")
    if config.strategy.name in OFFLINE_ONLY:
        fail("strategy.name", config.strategy.name, f"is not an online strategy (it samples collocation points of "
             f"a PINN); choose one of {[n for n in proposals.names() if n not in OFFLINE_ONLY]}")
    known = proposals.settings_of(config.strategy.name)
    for key in (config.strategy.get("settings", {}) or {}):
        if key not in known or key == "dtype":
            fail(f"strategy.settings.{key}", config.strategy.settings[key],
                 f"unknown setting of {config.strategy.name}; known: {', '.join(k for k in known if k != 'dtype')}")
    clip = config.train.get("importance_clip", 0.0)
    if clip and clip < 1:
        fail("train.importance_clip", clip, "must be 0 (off) or >= 1")
    if clip and config.strategy.name not in ("breed_online", "ogas"):
        fail("train.importance_clip", clip, f"needs a strategy that knows the density of its draws (breed_online, "
             f"ogas), not {config.strategy.name!r}")
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
    s = config.get("strategy", {}).get("settings", {}) or {}
    if "alpha0" in s and "alpha_max" in s and s["alpha0"] > s["alpha_max"]:
        fail("strategy.settings.alpha0", s["alpha0"], f"must not exceed alpha_max ({s['alpha_max']})")
    if config.buffer.capacity < config.train.batch_size:
        fail("buffer.capacity", config.buffer.capacity, f"must be >= train.batch_size ({config.train.batch_size})")
    if config.buffer.get("watermark", 1) > config.buffer.capacity:
        fail("buffer.watermark", config.buffer.watermark, f"must be <= buffer.capacity ({config.buffer.capacity})")
    kw = config.problem.get("kwargs", {}) or {}
    n, out = kw.get("num_points"), kw.get("output_points")
    if n and out and n % out:
        fail("problem.kwargs.output_points", out, f"must divide problem.kwargs.num_points ({n})")
    if config.strategy.get("signal", "loss") == "disagreement" and config.model.get("ensemble_size", 1) < 2:
        fail("model.ensemble_size", config.model.get("ensemble_size", 1), "must be >= 2 for strategy.signal='disagreement'")
    if config.strategy.name == "sbal" and config.model.get("ensemble_size", 1) < 2:
        fail("model.ensemble_size", config.model.get("ensemble_size", 1), "must be >= 2 for strategy 'sbal'")
    try:
        from qsal_jax.simulation import get_problem

        space = get_problem(config.problem.name, **dict(kw)).space
    except TypeError as e:
        fail("problem.kwargs", dict(kw), f"not accepted by problem {config.problem.name!r} ({e})")
    except ValueError as e:
        fail("problem.kwargs", dict(kw), str(e))
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
