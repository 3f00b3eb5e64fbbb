"""Per-sample losses and error metrics: ``(pred [B, ...], target [B, ...]) -> [B]``.

Every function reduces over all non-batch axes (channels and grid) and keeps the batch axis,
so a loss vector stays aligned with the ids of the samples it came from (``Batch.lam_id``,
``Batch.time_index``) and the active-learning strategies can read it per sample.

nRMSE follows APEBench (Koehler et al. 2024, "APEBench: A Benchmark for Autoregressive Neural
Emulators of PDEs") and exponax's ``nRMSE``: ``||pred - target||_2 / ||target||_2`` per sample.
On a uniform grid the RMS normalisations cancel, so this is also the relative L2 error
``relative_l2``; both names are kept because the literature uses both. ``relative_mse`` is its
square, a smooth training loss without the ``sqrt`` kink at zero error.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

# Guards the division for an all-zero target; tiny next to any float32 field norm.
_EPS = 1e-12
# sqrt is clamped away from 0 so its gradient stays finite when an error is exactly zero (e.g. a
# zero-padded batch slot): otherwise 0 * inf = NaN would leak through the masked mean.
_TINY = 1e-30


def _sqrt(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.maximum(x, _TINY))


def _sum_sq(x: jax.Array) -> jax.Array:
    return jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim)))


def _check(pred: jax.Array, target: jax.Array) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    if pred.ndim < 1:
        raise ValueError("losses need a leading batch axis: shapes [B, ...]")


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error per sample, averaged over all non-batch axes. ``[B, ...] -> [B]``."""
    _check(pred, target)
    return jnp.mean(jnp.square(pred - target), axis=tuple(range(1, pred.ndim)))


def relative_mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """``||pred - target||² / ||target||²`` per sample. ``[B, ...] -> [B]``."""
    _check(pred, target)
    return _sum_sq(pred - target) / jnp.maximum(_sum_sq(target), _EPS)


def relative_l2(pred: jax.Array, target: jax.Array) -> jax.Array:
    """``||pred - target||_2 / ||target||_2`` per sample. ``[B, ...] -> [B]``."""
    _check(pred, target)
    return _sqrt(_sum_sq(pred - target)) / jnp.maximum(_sqrt(_sum_sq(target)), _EPS)


def nrmse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """APEBench nRMSE per sample: ``RMS(pred - target) / RMS(target)`` (= `relative_l2`). ``[B, ...] -> [B]``."""
    return relative_l2(pred, target)


LOSSES: dict[str, LossFn] = {
    "mse": mse,
    "relative_mse": relative_mse,
    "relative_l2": relative_l2,
    "nrmse": nrmse,
}


def get_loss(name: str) -> LossFn:
    """The per-sample loss called ``name`` (one of `LOSSES`)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}") from None


def weighted_mean(values: jax.Array, weight: jax.Array) -> jax.Array:
    """``sum(w * v) / sum(w)`` over the batch; padding entries have ``w = 0`` and are ignored.

    Entries with zero weight are masked with ``where`` rather than multiplied, so a NaN or inf in
    a padding slot cannot poison the mean or its gradient. Returns 0 for an all-padding batch.
    """
    valid = weight > 0
    total = jnp.sum(jnp.where(valid, weight * values, 0.0))
    return total / jnp.maximum(jnp.sum(jnp.where(valid, weight, 0.0)), _EPS)
