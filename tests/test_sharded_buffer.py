"""The buffer sharded over 8 simulated devices against the replicated buffer: the same fill,
the same ages handed out by FIFO, the same draw frequencies and evictions for the random
policies, and capacity / 8 items on each device."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.online import buffers as B
from qsal_jax.online import sharded_buffer as SB
from qsal_jax.training.sharding import make_mesh

N = 8
CAPACITY, PUSH, BATCH, STEPS = 128, 16, 16, 60


def _example():
    return B.Items(inputs=jnp.zeros((1, 4)), targets=jnp.zeros((1, 4)), cond=jnp.zeros((0,)), lam=jnp.zeros((2,)),
                   lam_id=jnp.zeros((), jnp.int32), time_index=jnp.zeros((), jnp.int32))


def _items(step):
    """PUSH items of push step ``step``: ids step·PUSH + row, the step in time_index."""
    ids = step * PUSH + jnp.arange(PUSH, dtype=jnp.int32)
    x = jnp.broadcast_to(ids[:, None, None].astype(jnp.float32), (PUSH, 1, 4))
    return B.Items(inputs=x, targets=x, cond=jnp.zeros((PUSH, 0)), lam=jnp.zeros((PUSH, 2)), lam_id=ids,
                   time_index=jnp.full((PUSH,), step, jnp.int32))


def _run(policy, sharded, seed=0, seen_threshold=1, batch=BATCH):
    """STEPS × (push PUSH, draw ``batch``); returns per step the drawn push steps and ids, the sizes,
    and the final buffer."""
    mesh = make_mesh()
    valid = jnp.ones((PUSH,), bool)
    if sharded:
        buf = jax.device_put(SB.init(CAPACITY, _example(), N), SB.shardings(SB.init(CAPACITY, _example(), N), mesh))
        push = jax.jit(lambda b, it, ok: SB.push(b, it, ok, mesh, seen_threshold=seen_threshold))
        draw = jax.jit(lambda b, k: SB.sample(b, k, batch, policy, mesh))
    else:
        buf = B.init_buffer(CAPACITY, _example())
        push = jax.jit(lambda b, it, ok: B.push(b, it, ok, seen_threshold=seen_threshold))
        draw = jax.jit(lambda b, k: B.sample(b, k, batch, policy))
    drawn_steps, drawn_ids, sizes = [], [], []
    key = jax.random.PRNGKey(seed)
    for step in range(STEPS):
        buf = push(buf, _items(step), valid)
        buf, items, ok = draw(buf, jax.random.fold_in(key, step))
        drawn_steps.append(np.asarray(items.time_index)[np.asarray(ok)])
        drawn_ids.append(np.asarray(items.lam_id)[np.asarray(ok)])
        sizes.append(int(B.size(buf)))
    return drawn_steps, drawn_ids, sizes, buf


def test_each_device_holds_its_share_and_the_batch_comes_back_split():
    assert jax.device_count() == N
    mesh = make_mesh()
    buf = SB.init(CAPACITY, _example(), N)
    buf = jax.device_put(buf, SB.shardings(buf, mesh))
    for shard in buf.items.inputs.addressable_shards:
        assert shard.data.shape == (CAPACITY // N, 1, 4)
    buf = SB.push(buf, _items(0), jnp.ones((PUSH,), bool), mesh)
    # Device i got rows 2i, 2i + 1 of the push: its own clients' items, in its own shard.
    for i, shard in enumerate(buf.items.lam_id.addressable_shards):
        held = sorted(int(v) for v, o in zip(np.asarray(shard.data), np.asarray(buf.occupied.addressable_shards[i].data)) if o)
        assert held == [2 * i, 2 * i + 1]
    assert np.asarray(buf.num_pushed).tolist() == [2] * N
    _, items, ok = SB.sample(buf, jax.random.PRNGKey(0), BATCH, "fifo", mesh)
    assert items.inputs.shape == (BATCH, 1, 4) and bool(ok.all())
    assert items.inputs.sharding.spec[0] == "data"
    with pytest.raises(ValueError, match="divisible by the 8 devices"):
        SB.init(100, _example(), N)


def test_fifo_hands_out_items_of_the_same_age_as_the_single_buffer():
    single = _run("fifo", sharded=False)
    sharded = _run("fifo", sharded=True)
    assert single[2] == sharded[2]  # the same fill after every step
    for a, b in zip(single[0], sharded[0]):
        assert sorted(a.tolist()) == sorted(b.tolist())  # items pushed at the same steps
    # Every item is handed out exactly once, and no two draws repeat an item.
    all_ids = np.concatenate(sharded[1])
    assert len(set(all_ids.tolist())) == len(all_ids) == STEPS * BATCH


@pytest.mark.parametrize("policy,batch", [("reservoir", BATCH), ("firo", BATCH // 2)])
def test_random_policies_draw_with_the_single_buffers_frequencies(policy, batch):
    """Over 4 seeds × 60 steps: the same fill, the same mean age of drawn items and the same
    spread of draws over items (reservoir: seen counts), within sampling error. (FIRO draws half
    of what is pushed, so the buffer fills and ages vary.)"""
    stats = {}
    for sharded in (False, True):
        ages, seen, sizes = [], [], []
        for seed in range(4):
            steps, ids, size, buf = _run(policy, sharded, seed, batch=batch)
            ages += [s - k for k, drawn in enumerate(steps) for s in drawn]
            seen.append(np.asarray(buf.seen)[np.asarray(buf.occupied)])
            sizes.append(size)
        stats[sharded] = (np.asarray(ages, float), np.concatenate(seen), sizes)
    (age_a, seen_a, size_a), (age_b, seen_b, size_b) = stats[False], stats[True]
    assert size_a == size_b  # fill and, for firo, removal are deterministic and shard evenly
    se = np.sqrt(age_a.var() / len(age_a) + age_b.var() / len(age_b))
    assert age_a.std() > 0 and abs(age_a.mean() - age_b.mean()) < 4 * se, (age_a.mean(), age_b.mean(), se)
    assert abs(age_a.std() - age_b.std()) < 0.1 * age_a.std()
    assert seen_a.sum() == seen_b.sum()  # every batch is full either way
    if policy == "reservoir":
        se_seen = np.sqrt(seen_a.var() / len(seen_a) + seen_b.var() / len(seen_b))
        assert abs(seen_a.var() - seen_b.var()) < 0.25 * seen_a.var() + 4 * se_seen


def test_reservoir_under_pressure_loses_as_many_unseen_items():
    """Pushing twice what is drawn, the reservoir fills at the same step and then overwrites
    unseen items at the single buffer's rate (over 4 seeds, within 3 %)."""
    lost = {}
    for sharded in (False, True):
        runs = [_run("reservoir", sharded, seed, batch=BATCH // 2) for seed in range(4)]
        for _, _, sizes, _ in runs:
            assert sizes.index(CAPACITY) == CAPACITY // PUSH - 1 and sizes[-1] == CAPACITY
        lost[sharded] = np.mean([int(jnp.sum(buf.num_evicted_unseen)) for *_, buf in runs])
    assert lost[False] > 100  # the pressure is real
    assert abs(lost[True] - lost[False]) < 0.03 * lost[False], lost


def test_online_run_with_a_sharded_buffer(tmp_path):
    """The online loop on 8 devices with buffer.sharded: it trains, every device holds an
    eighth of the buffer, and the fill and budget are those of the replicated-buffer run."""
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.online import build_engine, init_state

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config(os.path.join(root, "configs", "online_1d.py") + ":tiny,uniform")
    with config.unlocked():
        config.online.shard = True
        config.online.clients_per_step = 8
        config.train.batch_size = 16
        config.buffer.capacity = 256
        config.buffer.sharded = True
    summaries = {}
    for sharded in (True, False):
        config.buffer.sharded = sharded
        summaries[sharded] = run_experiment(config, str(tmp_path / str(sharded)), log=lambda *a: None)
    a, b = summaries[True], summaries[False]
    assert a["simulations"] == b["simulations"] == 6 * 8 and a["trained_samples"] == b["trained_samples"] > 0
    assert np.isfinite(a["one_step_nrmse"]["mean"])
    records = [json.loads(line) for line in open(tmp_path / "True" / "metrics.jsonl")]
    records_b = [json.loads(line) for line in open(tmp_path / "False" / "metrics.jsonl")]
    assert [r["buffer_size"] for r in records] == [r["buffer_size"] for r in records_b]

    config.buffer.sharded = True
    engine, model, _, optimizer = build_engine(config)
    state = init_state(engine, model, optimizer, 0)
    state = jax.device_put(state, engine.state_shardings(state))
    for shard in state.buffer.items.inputs.addressable_shards:
        assert shard.data.shape[0] == config.buffer.capacity // N
    assert all(s.data.shape == state.train.step.shape for s in state.train.step.addressable_shards)  # replicated


def test_dry_run_counts_a_sharded_buffer_per_device():
    """`preflight.dry_run` adds up what one device holds: a sharded buffer is an eighth of the
    replicated one on 8 devices, and a buffer too big for the machine is refused naming the field."""
    from qsal_jax.experiments import preflight
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.online import build_engine, init_state
    from qsal_jax.experiments.validation import ConfigError

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config(os.path.join(root, "configs", "online_1d.py") + ":tiny,uniform")
    parts = {}
    for sharded in (False, True):
        with config.unlocked():
            config.online.shard = True
            config.online.clients_per_step = 8
            config.train.batch_size = 16
            config.buffer.capacity = 256
            config.buffer.sharded = sharded
        engine, model, sim, optimizer = built = build_engine(config)
        parts[sharded] = preflight.dry_run(config, built, lambda: init_state(engine, model, optimizer, 0),
                                           log=lambda *a: None)
    # (up to the per-shard counters: 2 × 8 int32 instead of 2)
    assert parts[True]["buffer.capacity"] * N == pytest.approx(parts[False]["buffer.capacity"], rel=1e-3)
    assert parts[True]["model.ensemble_size"] == parts[False]["model.ensemble_size"]
    with config.unlocked():
        config.buffer.capacity = 10**9
        config.buffer.sharded = False
    engine, model, sim, optimizer = built = build_engine(config)
    with pytest.raises(ConfigError, match=r"^buffer.capacity = 1000000000: the run needs"):
        preflight.dry_run(config, built, lambda: init_state(engine, model, optimizer, 0), log=lambda *a: None)
