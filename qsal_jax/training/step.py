"""The train step: a pure ``(state, batch) -> (state, per_sample_loss, metrics)``.

The per-sample loss vector ``[B]`` is returned in batch order, so entry ``i`` belongs to
``batch.lam_id[i]`` / ``batch.time_index[i]``: active-learning strategies consume it as their
per-simulation signal. The optimisation objective is the ``weight``-weighted mean over valid
entries (``weight > 0``); padding slots (``weight == 0``) contribute nothing, not even NaNs.

Mixed precision: with ``compute_dtype=jnp.bfloat16`` the float32 master parameters and the
inputs are cast to bf16 for the forward pass, gradients flow back through the cast to the
float32 master weights, and the loss is always computed in float32. Build the model with the
same ``dtype`` (``models.build(name, dtype=jnp.bfloat16)``): Flax modules promote their
operands to their ``dtype``, so a float32 module would compute in float32 on bf16-rounded
values.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from qsal_jax.training.losses import get_loss, weighted_mean
from qsal_jax.training.state import TrainState

ApplyFn = Callable[..., jax.Array]  # (params, inputs [B, C, *grid], cond [B, P]) -> [B, C_out, *grid]


class Batch(NamedTuple):
    inputs: jax.Array  # [B, C, *grid] float: state at time index t
    targets: jax.Array  # [B, C_out, *grid] float: state at t + 1 (what the model should predict)
    cond: jax.Array  # [B, P] float: scalar PDE parameters of the sample (P may be 0)
    lam_id: jax.Array  # [B] int32: id of the simulation the sample came from, -1 for padding
    time_index: jax.Array  # [B] int32: t within that trajectory
    weight: jax.Array  # [B] float32: weight in the objective; 0 marks padding
    # [B, C_out, *grid] float: state at t + 2, for the two-step objective; None for the one-step one
    targets2: jax.Array | None = None


def make_batch(inputs, targets, cond=None, lam_id=None, time_index=None, weight=None, targets2=None) -> Batch:
    """A `Batch` with defaults: no conditioning (P = 0), ids ``0..B-1``, time 0, unit weights."""
    inputs = jnp.asarray(inputs)
    b = inputs.shape[0]
    return Batch(
        inputs=inputs,
        targets=jnp.asarray(targets),
        cond=jnp.zeros((b, 0), jnp.float32) if cond is None else jnp.asarray(cond),
        lam_id=jnp.arange(b, dtype=jnp.int32) if lam_id is None else jnp.asarray(lam_id, jnp.int32),
        time_index=jnp.zeros(b, jnp.int32) if time_index is None else jnp.asarray(time_index, jnp.int32),
        weight=jnp.ones(b, jnp.float32) if weight is None else jnp.asarray(weight, jnp.float32),
        targets2=None if targets2 is None else jnp.asarray(targets2),
    )


def _cast_floats(tree: Any, dtype: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def forward(params: Any, batch: Batch, *, apply_fn: ApplyFn, compute_dtype: Any = None) -> jax.Array:
    """Model prediction for ``batch.inputs`` as float32 ``[B, C_out, *grid]``."""
    inputs, cond = batch.inputs, batch.cond
    if compute_dtype is not None:
        params, inputs, cond = _cast_floats((params, inputs, cond), compute_dtype)
    return apply_fn(params, inputs, cond).astype(jnp.float32)


OBJECTIVES = ("one_step", "two_step")


def loss_and_per_sample(
    params: Any,
    batch: Batch,
    *,
    apply_fn: ApplyFn,
    loss_name: str = "mse",
    compute_dtype: Any = None,
    signal_name: str | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """``(objective [], (per_sample_loss [B], per_sample_signal [B]))``.

    One-step objective (``batch.targets2 is None``): the weighted mean of ``loss_name`` of
    ``f(u_t)`` against ``u_{t+1}`` over valid entries. The signal is the per-sample
    ``signal_name`` metric of the *same* prediction (no second forward pass), outside the
    gradient; without ``signal_name`` it is the per-sample loss itself.

    Two-step objective (``batch.targets2`` holds ``u_{t+2}``; the authors' training with their
    ``train_random_t_plus_1_or_2`` flag, which despite its name trains every sample on both): the
    model is rolled out twice, ``û_{t+2} = f(f(u_t))`` with the gradient through both
    applications, and each sample's loss is ``½ (L(û_{t+1}, u_{t+1}) + L(û_{t+2}, u_{t+2}))``. The
    signal is the metric of the t+2 prediction, which the same forward pass has already made.
    """
    pred = forward(params, batch, apply_fn=apply_fn, compute_dtype=compute_dtype)
    target = batch.targets.astype(jnp.float32)
    loss_fn = get_loss(loss_name)
    per_sample = loss_fn(pred, target)
    if batch.targets2 is not None:
        pred2 = forward(params, batch._replace(inputs=pred), apply_fn=apply_fn, compute_dtype=compute_dtype)
        target2 = batch.targets2.astype(jnp.float32)
        per_sample2 = loss_fn(pred2, target2)
        per_sample = 0.5 * (per_sample + per_sample2)
        pred, target, per_signal = pred2, target2, per_sample2
    else:
        per_signal = per_sample
    if signal_name is None or signal_name == loss_name:
        signal = jax.lax.stop_gradient(per_signal)
    else:
        signal = get_loss(signal_name)(jax.lax.stop_gradient(pred), target)
    return weighted_mean(per_sample, batch.weight), (per_sample, signal)


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    loss_name: str = "mse",
    compute_dtype: Any = None,
    ema_decay: float = 0.999,
    schedule: optax.Schedule | None = None,
    signal_name: str | None = None,
) -> tuple[TrainState, jax.Array, dict[str, jax.Array]]:
    """One optimizer step on ``batch``.

    Returns:
      state: advanced by one step (EMA updated with ``ema_decay`` when ``state.ema_params`` is set).
      per_sample_loss: ``[B]`` float32 in batch order, 0 for padding entries.
      metrics: ``loss`` (the objective), ``grad_norm``, ``param_norm``, ``num_valid``,
        ``finite`` (loss and every updated parameter finite: the divergence flag),
        ``per_sample_signal`` ``[B]`` (the strategy's signal metric of the same forward pass,
        0 for padding), and ``learning_rate`` when ``schedule`` is given.
    """
    grad_fn = jax.value_and_grad(loss_and_per_sample, has_aux=True)
    (objective, (per_sample, signal)), grads = grad_fn(
        state.params, batch, apply_fn=apply_fn, loss_name=loss_name, compute_dtype=compute_dtype,
        signal_name=signal_name,
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema_params = state.ema_params
    if ema_params is not None:
        ema_params = jax.tree_util.tree_map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema_params, params)
        ema_params = jax.tree_util.tree_map(lambda e, p: e.astype(p.dtype), ema_params, params)
    metrics = {
        "loss": objective,
        "grad_norm": optax.global_norm(grads),
        "param_norm": optax.global_norm(params),
        "num_valid": jnp.sum(batch.weight > 0).astype(jnp.int32),
        "finite": jnp.isfinite(objective) & tree_all_finite(params),
        "per_sample_signal": jnp.where(batch.weight > 0, signal, 0.0),
    }
    if schedule is not None:
        metrics["learning_rate"] = jnp.asarray(schedule(state.step), jnp.float32)
    per_sample = jnp.where(batch.weight > 0, per_sample, 0.0)
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema_params)
    return new_state, per_sample, metrics


def tree_all_finite(tree: Any) -> jax.Array:
    """``[] bool``: every floating leaf of ``tree`` is finite everywhere (one device reduction)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    *,
    loss_name: str = "mse",
    compute_dtype: Any = None,
    ema_decay: float = 0.999,
    schedule: optax.Schedule | None = None,
    donate: bool = True,
) -> Callable[[TrainState, Batch], tuple[TrainState, jax.Array, dict[str, jax.Array]]]:
    """`train_step` with its settings bound, jitted; ``donate=True`` reuses the state's buffers.

    For data-parallel training over a device mesh use
    `qsal_jax.training.sharding.make_sharded_train_step` instead (same settings).
    """
    step = bind_train_step(
        apply_fn, optimizer, loss_name=loss_name, compute_dtype=compute_dtype, ema_decay=ema_decay, schedule=schedule
    )
    return jax.jit(step, donate_argnums=(0,) if donate else ())


def bind_train_step(
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    *,
    loss_name: str = "mse",
    compute_dtype: Any = None,
    ema_decay: float = 0.999,
    schedule: optax.Schedule | None = None,
    signal_name: str | None = None,
) -> Callable[[TrainState, Batch], tuple[TrainState, jax.Array, dict[str, jax.Array]]]:
    """`train_step` with its settings bound and not jitted: for programs that jit it themselves
    (the online engine's scan, a sharded jit)."""
    get_loss(loss_name)  # fail on a typo now, not at the first trace
    if signal_name is not None:
        get_loss(signal_name)
    return functools.partial(
        train_step,
        apply_fn=apply_fn,
        optimizer=optimizer,
        loss_name=loss_name,
        compute_dtype=compute_dtype,
        ema_decay=ema_decay,
        schedule=schedule,
        signal_name=signal_name,
    )
