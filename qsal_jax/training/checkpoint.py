"""Atomic, verified checkpoints of an arbitrary pytree with orbax.

The state can be any pytree of arrays: a `TrainState`, or the online engine's whole program
state (buffers, strategy state, typed PRNG keys). It is stored as a flat ``{leaf_i: array}``
dict together with JSON metadata (the leaf paths, each leaf's dtype and sha256 digest, the
PRNG implementation of each key leaf, the step and an optional config hash), and restored *into the
structure of* ``like_state``: NamedTuples and other custom nodes come back as they were, each
array with ``like_state``'s dtype and sharding, so a restored run continues bit-identically.

Atomicity and retention are orbax ``CheckpointManager``'s: a step is written to a temporary
directory and renamed when complete, so a crash mid-save never leaves a half checkpoint that
`restore_latest` would pick up, and only the ``max_to_keep`` most recent steps are kept.
Atomic renames do not protect against what happens to the files afterwards (a flipped bit on
disk, a copy cut short, zstd decoding a damaged chunk into wrong numbers without complaint), so
every restored leaf is checked against the digest written with it, and the step recorded inside
against the directory's name (``cp -r 3 6`` makes a step 6 that holds step 3). `restore_latest`
then falls back to the newest intact step, and moves the damaged ones aside so the resumed run
can save those step numbers again.

In a multi-host run every process calls `save`/`restore` with the same shared directory; the
digests cover only fully addressable leaves (the others are verified by nothing but orbax), and
only process 0 removes stale temporary directories and moves damaged steps aside.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

_TMP_MARK = ".orbax-checkpoint-tmp"  # orbax's suffix for a step still being written
_DAMAGED_SUFFIX = ".damaged"  # not an integer, so orbax no longer lists the step


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read, or does not match the structure or config asked for."""


class DamagedCheckpoint(CheckpointError):
    """One step's files are unreadable or fail their digest; an older step may still be intact."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(state: Any) -> tuple[list[str], list[Any]]:
    path_leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return [jax.tree_util.keystr(p) for p, _ in path_leaves], [x for _, x in path_leaves]


def _to_saveable(x: Any) -> Any:
    if _is_key(x):
        return jax.random.key_data(x)
    return x if isinstance(x, (jax.Array, np.ndarray)) else np.asarray(x)


def _digest(x: Any) -> str | None:
    """sha256 (hex) of a saveable leaf's bytes in C order; None where this process cannot see all of it."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            return None
        x = x.addressable_data(0)  # a replicated leaf of a multi-process run: the local copy is all of it
    return hashlib.sha256(np.ascontiguousarray(np.asarray(x)).tobytes()).hexdigest()


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


def _reason(e: BaseException) -> str:
    """The innermost useful message of an orbax/TensorStore exception chain, on one short line.

    Orbax wraps TensorStore errors in messages that embed the whole store spec; the cause at the
    bottom of the chain (e.g. ``OUT_OF_RANGE: ... byte range ... not valid``) is the part to show.
    """
    best, seen = e, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if str(e).strip() and not isinstance(e, StopIteration):
            best = e
        e = e.__cause__ or e.__context__
    text = str(best).split("See full TensorStore details")[0].strip().splitlines()
    text = text[0].strip() if text else type(best).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _no_space(e: BaseException) -> bool:
    """Whether an exception chain (orbax wraps TensorStore's errors) says the disk is full."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def remove_stale_tmp(directory: str | os.PathLike) -> list[str]:
    """Delete orbax temporary step directories (``*.orbax-checkpoint-tmp*``) left by a killed save.

    Call only when no save is in progress in ``directory`` (one run per workdir). Returns the
    paths removed.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory) or jax.process_index() != 0:
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if _TMP_MARK in name and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Snapshot(NamedTuple):
    """What a checkpoint holds, taken off the device: ``{leaf_i: array}`` and its JSON metadata."""

    arrays: dict
    meta: dict


def _host_copy(x: Any) -> Any:
    """A host copy that no later donation can touch (``np.asarray`` of a CPU array may be a view
    of the device buffer); a leaf spread over processes stays a jax array for orbax to gather."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x
    return np.array(x, copy=True)


def snapshot(state: Any, *, config_hash: str | None = None) -> Snapshot:
    """Copy ``state`` to the host with its leaf paths, dtypes, sha256 digests and ``config_hash``."""
    paths, leaves = _flatten(state)
    saveable = [_host_copy(_to_saveable(x)) for x in leaves]
    meta = {
        "paths": paths,
        "prng_impls": {str(i): str(jax.random.key_impl(x)) for i, x in enumerate(leaves) if _is_key(x)},
        "dtypes": [str(np.dtype(x.dtype)) for x in saveable],
        "sha256": [_digest(x) if np.size(x) > 0 else None for x in saveable],
        "config_hash": config_hash,
    }
    # Zero-size leaves (e.g. an empty conditioning vector) carry no data and orbax refuses
    # them; they are rebuilt from like_state's shape on restore.
    return Snapshot({f"leaf_{i:05d}": x for i, x in enumerate(saveable) if np.size(x) > 0}, meta)


class Checkpointer:
    """Save and restore numbered, digest-checked checkpoints of one pytree in ``directory``.

    Use as a context manager (or call `close`). ``max_to_keep`` most recent steps are retained.
    Opening one removes stale temporary directories of interrupted saves.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = 3):
        self.directory = os.path.abspath(os.fspath(directory))
        remove_stale_tmp(self.directory)
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

    def save(self, step: int, state: Any, *, config_hash: str | None = None) -> None:
        """Write ``state`` as checkpoint ``step`` (blocks until it is complete on disk).

        ``config_hash`` (e.g. `qsal_jax.experiments.workdir.config_hash`) is stored so that a
        restore with another config's hash is refused. Raises CheckpointError if orbax declines
        the save (a step not newer than the newest one in the directory).
        """
        self.write(step, snapshot(state, config_hash=config_hash))

    def write(self, step: int, snap: Snapshot) -> None:
        """Write a `snapshot` as checkpoint ``step``; safe on another thread than the one that
        took it, once the state it was taken from has been donated or overwritten."""
        step = int(step)
        meta = dict(snap.meta, step=step)  # the step's identity, checked against its directory on restore
        try:
            saved = self._manager.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(snap.arrays), meta=ocp.args.JsonSave(meta))
            )
            self._manager.wait_until_finished()
        except Exception as e:
            if not _no_space(e):
                raise
            # The half-written step is a temporary directory orbax never lists: removing it frees
            # what it took, and the steps before it are untouched.
            remove_stale_tmp(self.directory)
            self._manager.reload()
            before = [s for s in self.all_steps() if s < step]
            intact = f"checkpoint {before[-1]} is intact" if before else "no earlier checkpoint"
            raise CheckpointError(f"no space left on device while writing checkpoint {step}; {intact}; free space "
                                  f"in {self.directory} and run the same command to resume") from None
        if not saved:
            raise CheckpointError(
                f"checkpoint step {step} was not written to {self.directory}: orbax skipped it "
                f"(steps there: {self.all_steps()}; a new step must be newer than all of them)"
            )

    def restore(self, step: int, like_state: Any, *, config_hash: str | None = None) -> Any:
        """Checkpoint ``step`` in the structure, dtypes and shardings of ``like_state``.

        Every leaf is checked against the sha256 digest saved with it. Raises FileNotFoundError
        if there is no such step; DamagedCheckpoint (a CheckpointError) if its files cannot be
        read, record another step than its directory's name, or a leaf fails its digest;
        CheckpointError if its leaves do not match ``like_state``, or if it was saved with a
        ``config_hash`` other than the one given.
        """
        steps = self.all_steps()
        if step not in steps:
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; available steps: {steps}")
        where = os.path.join(self.directory, str(step))
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if not isinstance(meta, dict) or not isinstance(meta.get("paths"), list):
                raise ValueError("metadata has no leaf paths")
        except Exception as e:  # orbax raises a variety of types for damaged files
            raise DamagedCheckpoint(f"checkpoint step {step} cannot be read (metadata: {_reason(e)}): {where}", step) from e
        saved_step = meta.get("step")  # None in checkpoints written before steps were recorded
        if saved_step is not None and saved_step != step:
            raise DamagedCheckpoint(f"checkpoint step {step} is damaged (it holds step {saved_step}: copied or "
                                    f"renamed): {where}", step)
        saved_hash = meta.get("config_hash")
        if config_hash is not None and saved_hash is not None and saved_hash != config_hash:
            raise CheckpointError(
                f"checkpoint step {step} at {where} was written by another config (config hash {saved_hash}, "
                f"this run's {config_hash}); use another workdir or start afresh"
            )
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
            raise DamagedCheckpoint(f"checkpoint step {step} cannot be read (arrays: {_reason(e)}): {where}", step) from e
        # Checkpoints written before digests have none. A leaf restored into another dtype than it
        # was saved in (orbax casts) has other bytes, and one this process sees only part of has
        # no digest here: those are left to orbax.
        digests = meta.get("sha256") or [None] * len(paths)
        dtypes = meta.get("dtypes") or [None] * len(paths)
        for i, path in enumerate(paths):
            name = f"leaf_{i:05d}"
            if digests[i] is None or name not in flat or str(np.dtype(flat[name].dtype)) != dtypes[i]:
                continue
            got = _digest(flat[name])
            if got is not None and got != digests[i]:
                raise DamagedCheckpoint(f"checkpoint step {step} is damaged (leaf '{path}' digest mismatch): {where}", step)
        restored = [
            _from_restored(flat[f"leaf_{i:05d}"], x) if np.size(x) > 0 else jnp.zeros(np.shape(x), x.dtype)
            for i, x in enumerate(leaves)
        ]
        treedef = jax.tree_util.tree_structure(like_state)
        return jax.tree_util.tree_unflatten(treedef, restored)

    def restore_latest(self, like_state: Any, *, config_hash: str | None = None) -> tuple[Any, int] | None:
        """``(state, step)`` of the newest intact checkpoint, or None if there is none at all.

        Steps are tried newest first. A damaged step (unreadable, or a leaf failing its digest)
        is skipped with a warning; once an intact one is found, the skipped ones are renamed
        ``<step>.damaged`` so the resumed run can write those step numbers again. Raises
        CheckpointError if steps exist but none is intact (leaving them all in place), and at
        once on a structure or config-hash mismatch (an older step would not fix either).
        """
        skipped: list[DamagedCheckpoint] = []
        for step in reversed(self.all_steps()):
            try:
                state = self.restore(step, like_state, config_hash=config_hash)
            except DamagedCheckpoint as e:
                skipped.append(e)
                continue
            if skipped:
                bad = [e.step for e in skipped]
                moved = self._move_aside(bad)
                warnings.warn(
                    f"resuming from checkpoint step {step}, skipping damaged newer step(s) {bad} "
                    f"(moved to {', '.join(moved)}); newest: {skipped[0]}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return state, step
        if skipped:
            raise CheckpointError(
                f"cannot read checkpoint from {self.directory}: none of steps {sorted(e.step for e in skipped)} "
                f"is intact; newest: {skipped[0]}"
            )
        return None

    def _move_aside(self, steps: list[int]) -> list[str]:
        """Rename damaged step directories out of orbax's sight (kept for inspection)."""
        moved = []
        for step in steps:
            src = os.path.join(self.directory, str(step))
            dst = src + _DAMAGED_SUFFIX
            moved.append(dst)
            if jax.process_index() == 0 and os.path.isdir(src):
                if os.path.exists(dst):
                    shutil.rmtree(dst)
                os.replace(src, dst)
        self._manager.reload()
        return moved


def save(
    directory: str | os.PathLike, step: int, state: Any, *, max_to_keep: int = 3, config_hash: str | None = None
) -> None:
    """Atomically write ``state`` as checkpoint ``step`` under ``directory``, keeping the newest
    ``max_to_keep``; ``config_hash`` is stored for `restore_latest` to check."""
    with Checkpointer(directory, max_to_keep=max_to_keep) as ckpt:
        ckpt.save(step, state, config_hash=config_hash)


def restore_latest(
    directory: str | os.PathLike, like_state: Any, config_hash: str | None = None
) -> tuple[Any, int] | None:
    """``(state, step)`` from the newest intact checkpoint in ``directory``, or None if it has none.

    A missing directory counts as "no checkpoint" (a fresh run). Damaged steps are skipped with
    a warning (see `Checkpointer.restore_latest`); steps that exist but are all damaged, a
    mismatch with ``like_state``'s structure, or a ``config_hash`` other than the saved one
    raise `CheckpointError`.
    """
    if not os.path.isdir(directory):
        return None
    with Checkpointer(directory, max_to_keep=None) as ckpt:
        return ckpt.restore_latest(like_state, config_hash=config_hash)


def restore(directory: str | os.PathLike, step: int, like_state: Any, *, config_hash: str | None = None) -> Any:
    """Checkpoint ``step`` from ``directory`` (see `Checkpointer.restore`)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint directory {os.fspath(directory)} does not exist")
    with Checkpointer(directory, max_to_keep=None) as ckpt:
        return ckpt.restore(step, like_state, config_hash=config_hash)
