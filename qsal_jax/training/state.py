"""Train state and optimizer: AdamW with linear warm-up, cosine decay and global-norm clipping.

The train state is a `NamedTuple` of arrays only (no functions), so it jits, shards and
checkpoints as one pytree; the model's ``apply`` and the optax transformation are passed to the
train step separately (`qsal_jax.training.step.make_train_step`).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class TrainState(NamedTuple):
    step: jax.Array  # [] int32: optimizer steps taken
    params: Any  # the variables dict of model.init, {"params": {...}}; float32 master weights
    opt_state: Any  # optax state of the optimizer the step was built with
    ema_params: Any  # like params: exponential moving average of params, or None (no EMA)


class OptimizerConfig(NamedTuple):
    """Defaults of `make_optimizer`; any field can be overridden by a config or keyword."""

    learning_rate: float = 1e-3  # peak learning rate, reached at the end of warm-up
    warmup_steps: int = 100  # linear warm-up from 0
    total_steps: int | None = None  # cosine decay ends here; None: constant after warm-up (online training)
    end_lr_factor: float = 0.01  # final learning rate / peak
    weight_decay: float = 1e-4  # decoupled (AdamW); applied to kernels only, not biases or norm scales
    grad_clip_norm: float | None = 1.0  # global-norm clipping; None or 0 disables
    b1: float = 0.9
    b2: float = 0.999


def optimizer_config(config: Mapping[str, Any] | Any = None, **overrides: Any) -> OptimizerConfig:
    """Merge a dict / ConfigDict and keyword overrides onto `OptimizerConfig` defaults, rejecting typos."""
    fields = dict(config.to_dict() if hasattr(config, "to_dict") else (config or {}))
    fields.update(overrides)
    unknown = set(fields) - set(OptimizerConfig._fields)
    if unknown:
        raise ValueError(f"unknown optimizer field(s) {sorted(unknown)}; known: {OptimizerConfig._fields}")
    return OptimizerConfig(**fields)


def make_schedule(config: Mapping[str, Any] | Any = None, **overrides: Any) -> optax.Schedule:
    """Learning rate as a function of the step: warm-up then cosine decay (or constant)."""
    c = optimizer_config(config, **overrides)
    if c.total_steps is None:
        warmup = optax.linear_schedule(0.0, c.learning_rate, max(c.warmup_steps, 1))
        return optax.join_schedules([warmup, optax.constant_schedule(c.learning_rate)], [c.warmup_steps])
    if c.total_steps <= c.warmup_steps:
        raise ValueError(f"total_steps ({c.total_steps}) must exceed warmup_steps ({c.warmup_steps})")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=c.learning_rate,
        warmup_steps=c.warmup_steps,
        decay_steps=c.total_steps,
        end_value=c.learning_rate * c.end_lr_factor,
    )


def _decay_mask(params: Any) -> Any:
    # Decay matrices and spectral weights (ndim >= 2); leave biases, norm scales/offsets alone.
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make_optimizer(config: Mapping[str, Any] | Any = None, **overrides: Any) -> optax.GradientTransformation:
    """``clip_by_global_norm → AdamW(schedule)``, from an `OptimizerConfig`-shaped config.

    Example: ``make_optimizer(config.optimizer, total_steps=config.num_steps)``.
    """
    c = optimizer_config(config, **overrides)
    adamw = optax.adamw(make_schedule(c._asdict()), b1=c.b1, b2=c.b2, weight_decay=c.weight_decay, mask=_decay_mask)
    if not c.grad_clip_norm:
        return adamw
    return optax.chain(optax.clip_by_global_norm(c.grad_clip_norm), adamw)


def init_params(key: jax.Array, model: nn.Module, sample_input: jax.Array, sample_cond: jax.Array | None = None) -> Any:
    """``model.init`` under jit (one compilation instead of one per parameter shape).

    ``sample_input: [B, C, *grid]`` (B = 1 is enough); ``sample_cond: [B, P]`` or None (then the
    model is initialised from the input alone, so modules without a ``cond`` argument — the
    MLP — work too).
    """
    if sample_cond is None:
        return jax.jit(model.init)(key, sample_input)
    return jax.jit(model.init)(key, sample_input, sample_cond)


def create_train_state(
    key: jax.Array,
    model: nn.Module,
    sample_input: jax.Array,
    optimizer: optax.GradientTransformation,
    *,
    sample_cond: jax.Array | None = None,
    ema: bool = False,
) -> TrainState:
    """Initialise parameters and optimizer state; ``ema=True`` also keeps an EMA copy of params.

    The conditioning width is fixed here: pass ``sample_cond: [B, P]`` with the P the model will
    see in training (P = 0 or None: unconditioned).
    """
    params = init_params(key, model, sample_input, sample_cond)
    # A separate buffer: the EMA must not alias params, or donating the state would donate it twice.
    ema_params = jax.tree_util.tree_map(jnp.copy, params) if ema else None
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        ema_params=ema_params,
    )
