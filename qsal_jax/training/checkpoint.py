"""Atomic checkpoints of an arbitrary pytree with orbax.

The state can be any pytree of arrays: a `TrainState`, or the online engine's whole program
state (buffers, strategy state, typed PRNG keys). It is stored as a flat ``{leaf_i: array}``
dict together with JSON metadata (the leaf paths, and the PRNG implementation of each key
leaf), and restored *into the structure of* ``like_state``: NamedTuples and other custom nodes
come back as they were, each array with ``like_state``'s dtype and sharding, so a restored run
continues bit-identically.

Atomicity and retention are orbax ``CheckpointManager``'s: a step is written to a temporary
directory and renamed when complete, so a crash mid-save never leaves a half checkpoint that
`restore_latest` would pick up, and only the ``max_to_keep`` most recent steps are kept. In a
multi-host run every process calls `save`/`restore` with the same shared directory.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read, or does not match the structure asked for."""


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(state: Any) -> tuple[list[str], list[Any]]:
    path_leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return [jax.tree_util.keystr(p) for p, _ in path_leaves], [x for _, x in path_leaves]


def _to_saveable(x: Any) -> Any:
    if _is_key(x):
        return jax.random.key_data(x)
    return x if isinstance(x, (jax.Array, np.ndarray)) else np.asarray(x)


def _abstract(x: Any) -> Any:
    """Restore target for one leaf of ``like_state``: its shape, dtype and (for jax arrays) sharding."""
    if _is_key(x):
        data = jax.random.key_data(x)
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=data.sharding)
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    x = np.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))


def _from_restored(restored: Any, like: Any) -> Any:
    if _is_key(like):
        return jax.random.wrap_key_data(restored, impl=jax.random.key_impl(like))
    if isinstance(like, jax.Array):
        return restored
    if isinstance(like, np.ndarray):
        return np.asarray(restored)
    return type(like)(np.asarray(restored).item())


class Checkpointer:
    """Save and restore numbered checkpoints of one pytree in ``directory``.

    Use as a context manager (or call `close`). ``max_to_keep`` most recent steps are retained.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._manager.close()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Write ``state`` as checkpoint ``step`` (blocks until it is complete on disk)."""
        paths, leaves = _flatten(state)
        meta = {
            "paths": paths,
            "prng_impls": {str(i): str(jax.random.key_impl(x)) for i, x in enumerate(leaves) if _is_key(x)},
        }
        # Zero-size leaves (e.g. an empty conditioning vector) carry no data and orbax refuses
        # them; they are rebuilt from like_state's shape on restore.
        flat = {f"leaf_{i:05d}": _to_saveable(x) for i, x in enumerate(leaves) if np.size(x) > 0}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
        )
        self._manager.wait_until_finished()

    def restore(self, step: int, like_state: Any) -> Any:
        """Checkpoint ``step`` in the structure, dtypes and shardings of ``like_state``.

        Raises FileNotFoundError if there is no such step, CheckpointError if it cannot be read
        or its leaves do not match ``like_state``.
        """
        steps = self.all_steps()
        if step not in steps:
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; available steps: {steps}")
        where = os.path.join(self.directory, str(step))
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # orbax raises a variety of types for damaged files
            raise CheckpointError(f"cannot read checkpoint metadata at {where}: {e}") from e
        paths, leaves = _flatten(like_state)
        if meta["paths"] != paths:
            missing = sorted(set(paths) - set(meta["paths"]))
            extra = sorted(set(meta["paths"]) - set(paths))
            raise CheckpointError(
                f"checkpoint at {where} does not match the structure of like_state: "
                f"missing from checkpoint {missing[:5]}, not in like_state {extra[:5]} "
                f"({len(meta['paths'])} leaves saved, {len(paths)} expected)"
            )
        target = {f"leaf_{i:05d}": _abstract(x) for i, x in enumerate(leaves) if np.size(x) > 0}
        try:
            flat = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
        except Exception as e:
            raise CheckpointError(f"cannot read checkpoint arrays at {where}: {e}") from e
        restored = [
            _from_restored(flat[f"leaf_{i:05d}"], x) if np.size(x) > 0 else jnp.zeros(np.shape(x), x.dtype)
            for i, x in enumerate(leaves)
        ]
        treedef = jax.tree_util.tree_structure(like_state)
        return jax.tree_util.tree_unflatten(treedef, restored)

    def restore_latest(self, like_state: Any) -> tuple[Any, int] | None:
        """``(state, step)`` of the most recent checkpoint, or None if there is none."""
        step = self.latest_step()
        if step is None:
            return None
        return self.restore(step, like_state), step


def save(directory: str | os.PathLike, step: int, state: Any, *, max_to_keep: int = 3) -> None:
    """Atomically write ``state`` as checkpoint ``step`` under ``directory``, keeping the newest ``max_to_keep``."""
    with Checkpointer(directory, max_to_keep=max_to_keep) as ckpt:
        ckpt.save(step, state)


def restore_latest(directory: str | os.PathLike, like_state: Any) -> tuple[Any, int] | None:
    """``(state, step)`` from the newest checkpoint in ``directory``, or None if it has none.

    A missing directory counts as "no checkpoint" (a fresh run); a checkpoint that exists but
    cannot be read, or does not match ``like_state``, raises `CheckpointError`.
    """
    if not os.path.isdir(directory):
        return None
    with Checkpointer(directory, max_to_keep=None) as ckpt:
        return ckpt.restore_latest(like_state)


def restore(directory: str | os.PathLike, step: int, like_state: Any) -> Any:
    """Checkpoint ``step`` from ``directory`` (see `Checkpointer.restore`)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint directory {os.fspath(directory)} does not exist")
    with Checkpointer(directory, max_to_keep=None) as ckpt:
        return ckpt.restore(step, like_state)
