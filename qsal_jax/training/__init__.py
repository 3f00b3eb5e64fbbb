"""Training core: train state, per-sample losses, the train step, evaluation, sharding, checkpoints.

Typical use::

    model = models.build("fno1d_small")
    optimizer = training.make_optimizer(learning_rate=1e-3, warmup_steps=100, total_steps=10_000)
    state = training.create_train_state(key, model, x[:1], optimizer, sample_cond=cond[:1])
    step = training.make_train_step(model.apply, optimizer, loss_name="mse")
    state, per_sample_loss, metrics = step(state, training.make_batch(x, y, cond))

Data parallel over every device: `training.sharding.make_sharded_train_step` with the same
arguments plus a mesh. Nothing here knows about proposals or the online engine.
"""

from qsal_jax.training import checkpoint, sharding
from qsal_jax.training.evaluate import evaluate, one_step_errors, rollout_errors, summary_stats, surrogate_rollout
from qsal_jax.training.losses import LOSSES, get_loss, mse, nrmse, relative_l2, relative_mse, weighted_mean
from qsal_jax.training.state import (
    OptimizerConfig,
    TrainState,
    create_train_state,
    init_params,
    make_optimizer,
    make_schedule,
)
from qsal_jax.training.step import Batch, forward, loss_and_per_sample, make_batch, make_train_step, train_step

__all__ = [
    "Batch",
    "LOSSES",
    "OptimizerConfig",
    "TrainState",
    "checkpoint",
    "create_train_state",
    "evaluate",
    "forward",
    "get_loss",
    "init_params",
    "loss_and_per_sample",
    "make_batch",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "mse",
    "nrmse",
    "one_step_errors",
    "relative_l2",
    "relative_mse",
    "surrogate_rollout",
    "rollout_errors",
    "sharding",
    "summary_stats",
    "train_step",
    "weighted_mean",
]
