"""Checkpoints: bit-identical continuation after save/restore, arbitrary pytrees (NamedTuples,
None, typed PRNG keys, numpy and Python scalars), retention, clear errors, and integrity:
damaged steps (a flipped bit, a truncated chunk, an empty step directory) are detected by their
digests and skipped for the newest intact one; another config's checkpoints are refused."""

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models, training
from qsal_jax.training import checkpoint


def key(seed):
    # "rbg" compiles much faster than threefry on CPU; model inits draw one array per parameter.
    return jax.random.key(seed, impl="rbg")


def _batches(n):
    x = jax.random.normal(key(0), (n, 8, 1, 32))
    return [training.make_batch(x[i], jnp.roll(x[i], 1, axis=-1)) for i in range(n)]


def _assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_restore_continues_bit_identically(tmp_path):
    model = models.build("fno1d_tiny", modes=6, width=8, depth=2)
    optimizer = training.make_optimizer(learning_rate=1e-2, warmup_steps=2, total_steps=20)
    step = training.make_train_step(model.apply, optimizer)
    batches = _batches(6)
    init = lambda: training.create_train_state(key(1), model, batches[0].inputs[:1], optimizer, ema=True)

    uninterrupted = init()
    for b in batches:
        uninterrupted, _, _ = step(uninterrupted, b)

    state = init()
    for b in batches[:3]:
        state, _, _ = step(state, b)
    checkpoint.save(tmp_path / "ckpt", int(state.step), state)
    del state
    restored, at = checkpoint.restore_latest(tmp_path / "ckpt", init())
    assert at == 3 and int(restored.step) == 3
    for b in batches[3:]:
        restored, _, _ = step(restored, b)
    _assert_trees_equal(restored, uninterrupted)


class EngineLike(NamedTuple):
    rng: jax.Array  # typed key
    raw_key: jax.Array  # uint32[2] legacy key
    buffer: jax.Array
    ids: np.ndarray
    count: int
    nothing: None
    nested: dict


def _engine_state(seed):
    return EngineLike(
        rng=jax.random.key(seed),
        raw_key=jax.random.PRNGKey(seed),
        buffer=jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4) + seed,
        ids=np.arange(3, dtype=np.int32) + seed,
        count=seed,
        nothing=None,
        nested={"a": jnp.full((2,), seed, jnp.int32), "b": (jnp.bfloat16(seed),)},
    )


def test_arbitrary_pytree_round_trip_and_retention(tmp_path):
    d = tmp_path / "engine"
    with checkpoint.Checkpointer(d, max_to_keep=2) as ckpt:
        for s in (1, 2, 3):
            ckpt.save(s * 10, _engine_state(s))
        assert ckpt.all_steps() == [20, 30]
    out, at = checkpoint.restore_latest(d, _engine_state(0))
    assert at == 30
    expect = _engine_state(3)
    assert isinstance(out, EngineLike) and out.nothing is None and out.count == 3 and isinstance(out.ids, np.ndarray)
    np.testing.assert_array_equal(jax.random.key_data(out.rng), jax.random.key_data(expect.rng))
    np.testing.assert_array_equal(jax.random.normal(out.rng, (3,)), jax.random.normal(expect.rng, (3,)))
    for name in ("raw_key", "buffer", "ids"):
        np.testing.assert_array_equal(getattr(out, name), getattr(expect, name))
    assert out.nested["b"][0].dtype == jnp.bfloat16
    older = checkpoint.restore(d, 20, _engine_state(0))
    np.testing.assert_array_equal(older.buffer, _engine_state(2).buffer)


def test_missing_and_unreadable_checkpoints(tmp_path):
    like = _engine_state(0)
    assert checkpoint.restore_latest(tmp_path / "never_written", like) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.restore(tmp_path / "never_written", 1, like)

    d = tmp_path / "c"
    checkpoint.save(d, 5, like)
    with pytest.raises(FileNotFoundError, match=r"available steps: \[5\]"):
        checkpoint.restore(d, 6, like)
    with pytest.raises(checkpoint.CheckpointError, match="does not match the structure"):
        checkpoint.restore_latest(d, {"other": jnp.zeros(3)})

    # Damage every array file of the step: restoring must fail loudly, naming the path.
    for root, _, files in os.walk(d / "5" / "state"):
        for f in files:
            if not f.startswith("_"):
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read") as err:
        checkpoint.restore_latest(d, like)
    # One line naming the step, without orbax's TensorStore spec dump.
    assert "\n" not in str(err.value) and "TensorStore" not in str(err.value), str(err.value)
    assert "step 5 cannot be read" in str(err.value)


def _small_state(seed):
    # float64 noise does not compress, so the chunk holding "noise" is the step's largest file.
    return {
        "noise": jax.random.normal(jax.random.key(seed, impl="rbg"), (4096,), jnp.float64),
        "count": jnp.array(seed, jnp.int32),
    }


def _largest_data_file(step_dir):
    """The biggest file under a step directory: an array chunk, whatever orbax/TensorStore's layout
    (today ``state/ocdbt.process_0/d/<hash>``)."""
    files = [os.path.join(root, f) for root, _, names in os.walk(step_dir) for f in names]
    return max(files, key=os.path.getsize)


def _flip_bit(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x04
    open(path, "wb").write(bytes(data))


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _empty_step(step_dir):
    import shutil

    shutil.rmtree(step_dir)
    os.makedirs(step_dir)


@pytest.mark.parametrize("damage", [_flip_bit, _truncate, None], ids=["bit_flip", "truncated_chunk", "empty_step_dir"])
def test_damaged_latest_step_falls_back_to_the_newest_intact_one(tmp_path, damage):
    d = tmp_path / "c"
    for s in (1, 2):
        checkpoint.save(d, s, _small_state(s))
    if damage is None:
        _empty_step(d / "2")
    else:
        damage(_largest_data_file(d / "2"))
    with pytest.raises(checkpoint.DamagedCheckpoint, match=r"^checkpoint step 2 (is damaged \(leaf '\['noise'\]' digest mismatch\)|cannot be read)") as err:
        checkpoint.restore(d, 2, _small_state(0))
    assert "\n" not in str(err.value) and "TensorStore" not in str(err.value), str(err.value)

    with pytest.warns(RuntimeWarning, match=r"resuming from checkpoint step 1, skipping damaged newer step\(s\) \[2\]"):
        out, at = checkpoint.restore_latest(d, _small_state(0))
    assert at == 1
    _assert_trees_equal(out, _small_state(1))
    # The damaged step is kept for inspection but out of the way: the resumed run can write step 2 again.
    assert (d / "2.damaged").is_dir()
    checkpoint.save(d, 2, _small_state(22))
    out, at = checkpoint.restore_latest(d, _small_state(0))
    assert at == 2
    _assert_trees_equal(out, _small_state(22))


def test_no_intact_step_is_one_clear_error(tmp_path):
    d = tmp_path / "c"
    checkpoint.save(d, 1, _small_state(1))
    _flip_bit(_largest_data_file(d / "1"))
    with pytest.raises(checkpoint.CheckpointError, match=r"none of steps \[1\] is intact.*step 1 is damaged") as err:
        checkpoint.restore_latest(d, _small_state(0))
    assert "\n" not in str(err.value)
    assert (d / "1").is_dir()  # nothing is moved when there is nothing to resume from


def test_another_configs_checkpoint_is_refused(tmp_path):
    d = tmp_path / "c"
    checkpoint.save(d, 1, _small_state(1), config_hash="aaaa1111")
    with pytest.raises(checkpoint.CheckpointError, match=r"config hash aaaa1111, this run's bbbb2222"):
        checkpoint.restore_latest(d, _small_state(0), config_hash="bbbb2222")
    # The same hash, or none on either side, restores.
    for h in ("aaaa1111", None):
        out, at = checkpoint.restore_latest(d, _small_state(0), config_hash=h)
        assert at == 1
    checkpoint.save(d, 2, _small_state(2))
    assert checkpoint.restore_latest(d, _small_state(0), config_hash="bbbb2222")[1] == 2


def test_stale_tmp_dirs_are_removed_and_skipped_saves_raise(tmp_path):
    d = tmp_path / "c"
    checkpoint.save(d, 1, _small_state(1))
    stale = d / "2.orbax-checkpoint-tmp-1712345678"
    (stale / "state").mkdir(parents=True)
    (stale / "state" / "half_written").write_bytes(b"x" * 10)
    assert checkpoint.restore_latest(d, _small_state(0))[1] == 1
    assert not stale.exists()
    stale.mkdir()
    checkpoint.save(d, 2, _small_state(2))
    assert not stale.exists()
    assert sorted(os.listdir(d)) == ["1", "2"]
    with pytest.raises(checkpoint.CheckpointError, match=r"step 2 was not written .*steps there: \[1, 2\]"):
        checkpoint.save(d, 2, _small_state(3))


def test_a_copied_step_is_damage(tmp_path):
    """``cp -r 3 6``: step 6 holds step 3's state, so it is skipped for the newest intact step."""
    import shutil

    d = tmp_path / "c"
    for s in (3, 4):
        checkpoint.save(d, s, _small_state(s))
    shutil.copytree(d / "3", d / "6")
    with pytest.raises(checkpoint.DamagedCheckpoint, match=r"^checkpoint step 6 is damaged \(it holds step 3"):
        checkpoint.restore(d, 6, _small_state(0))
    with pytest.warns(RuntimeWarning, match=r"resuming from checkpoint step 4, skipping damaged newer step\(s\) \[6\]"):
        out, at = checkpoint.restore_latest(d, _small_state(0))
    assert at == 4
    _assert_trees_equal(out, _small_state(4))
    assert (d / "6.damaged").is_dir()
