"""The one place that decides device placement: a 1-D data-parallel mesh over every device.

Parameters and optimizer state are replicated; every `Batch` field is split along its leading
(batch) axis over the mesh axis ``"data"``. The train step is the ordinary pure `train_step`,
jitted with these input/output shardings, so XLA inserts the gradient all-reduce itself and the
same code runs on one CPU, eight simulated CPU devices (tests), eight GPUs or a TPU pod slice
(with `maybe_initialize_distributed` called first on every host). No ``pmap``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from qsal_jax.training.state import TrainState
from qsal_jax.training.step import ApplyFn, Batch, bind_train_step

DATA_AXIS = "data"

# Environment variables that mark a multi-process launch jax.distributed.initialize can read.
_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")
# An explicit launch (no cluster manager): the process count and this process's rank, read here
# because jax.distributed.initialize reads only the coordinator's address from the environment.
_EXPLICIT_ENV = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def maybe_initialize_distributed(**kwargs: Any) -> bool:
    """Call ``jax.distributed.initialize`` when this process is one of several; else do nothing.

    Multi-host is recognised from an explicit coordinator (``JAX_COORDINATOR_ADDRESS`` with
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or the same as keyword arguments), a SLURM job
    with more than one task, an Open MPI launch with more than one rank, or a multi-worker Cloud
    TPU slice; the keyword arguments are passed through. Must run before any other JAX call.
    Returns True when the runtime is distributed (now or already), False on a single host.
    Idempotent.
    """
    if jax.distributed.is_initialized():
        return True
    multi = (
        bool(kwargs)
        or any(os.environ.get(v) for v in _CLUSTER_ENV)
        or int(os.environ.get("SLURM_NTASKS", "1")) > 1
        or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
        or "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
    )
    if not multi:
        return False
    for name, var in _EXPLICIT_ENV.items():
        if name not in kwargs and os.environ.get(var):
            kwargs[name] = int(os.environ[var])
    jax.distributed.initialize(**kwargs)
    return True


def is_primary() -> bool:
    """Process 0: the one that writes logs, metrics, plots and reports of a multi-process run."""
    return jax.process_index() == 0


def sync_processes(name: str) -> None:
    """Wait until every process reaches this point (no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
    """A pytree of arrays as numpy, on every process.

    A leaf sharded over devices of other processes (the K clients' λ of a step) is gathered, so
    with several processes this is a collective: every process must call it.
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if x.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(one, tree)


def local_replica(tree: Any) -> Any:
    """Each replicated leaf as its copy on this process's first device, so host-side work
    (scoring on a held-out set) runs locally without a cross-process program."""
    def one(x):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1 and x.is_fully_replicated:
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(one, tree)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: every device of every host)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading axis over ``"data"``, replicate the rest."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raise unless ``batch_size`` splits evenly over the mesh's ``"data"`` axis."""
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {n} devices of the data mesh; "
            f"use a multiple of {n} (pad with weight-0 samples if needed)."
        )


def _leading_size(batch: Batch) -> int:
    sizes = {x.shape[0] for x in jax.tree_util.tree_leaves(batch)}
    if len(sizes) != 1:
        raise ValueError(f"all Batch fields need the same leading (batch) size; got {sorted(sizes)}")
    return sizes.pop()


def shard_batch(batch: Batch, mesh: Mesh) -> Batch:
    """Place a batch split over the mesh's ``"data"`` axis.

    On one host ``batch`` is the global batch. On several hosts each process passes its own
    slice (global batch size = local size × process count), assembled without gathering.
    """
    sharding = batch_sharding(mesh)
    if jax.process_count() > 1:
        check_batch_size(_leading_size(batch) * jax.process_count(), mesh)
        return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
    check_batch_size(_leading_size(batch), mesh)
    return jax.device_put(batch, sharding)


def place(tree: Any, shardings: Any) -> Any:
    """A fresh copy of ``tree`` placed with ``shardings`` (one sharding, or a matching pytree).

    Always a fresh copy: a jitted step donates its state, and ``device_put`` may reuse the
    caller's buffer for the device-0 replica (even with ``may_alias=False`` on CPU in jax 0.10),
    so donating it would silently delete the caller's original.
    """
    return jax.device_put(jax.tree_util.tree_map(jnp.copy, tree), shardings)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copy a pytree (params, a `TrainState`) onto every device of the mesh (`place`)."""
    return place(tree, replicated_sharding(mesh))


def make_sharded_train_step(
    apply_fn: ApplyFn,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    *,
    loss_name: str = "mse",
    compute_dtype: Any = None,
    ema_decay: float = 0.999,
    schedule: optax.Schedule | None = None,
    donate: bool = True,
) -> Callable[[TrainState, Batch], tuple[TrainState, jax.Array, dict[str, jax.Array]]]:
    """Data-parallel `train_step`: replicated state in and out, batch and per-sample loss sharded.

    Pass a state placed with `replicate` and a batch placed with `shard_batch` (an unplaced batch
    is placed on the fly). The returned per-sample loss ``[B]`` stays sharded like the batch.
    """
    step = bind_train_step(
        apply_fn, optimizer, loss_name=loss_name, compute_dtype=compute_dtype, ema_decay=ema_decay, schedule=schedule
    )
    rep, data = replicated_sharding(mesh), batch_sharding(mesh)
    jitted = jax.jit(
        step,
        in_shardings=(rep, data),
        out_shardings=(rep, data, rep),
        donate_argnums=(0,) if donate else (),
    )

    def sharded_step(state: TrainState, batch: Batch):
        check_batch_size(_leading_size(batch), mesh)
        return jitted(state, batch)

    return sharded_step
