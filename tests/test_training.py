"""Training core: losses, the train step (alignment, padding, bf16, dtypes), a real learning run
on linear advection–diffusion, and evaluation checked against the exact solution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models, training
from qsal_jax.training import losses


def key(seed):
    # "rbg" compiles much faster than threefry on CPU; model inits draw one array per parameter.
    return jax.random.key(seed, impl="rbg")


# --- linear advection–diffusion on [0, 1), solved exactly in Fourier space ----------------------

N, K_MAX, C_ADV, NU, DT = 64, 8, 1.0, 3e-3, 0.05


def band_limited_ics(k, b):
    """``[b, N]`` float64 periodic fields with modes 1..K_MAX and a 1/k amplitude decay."""
    k1, k2 = jax.random.split(k)
    coef = (jax.random.normal(k1, (b, K_MAX)) + 1j * jax.random.normal(k2, (b, K_MAX))) / jnp.arange(1, K_MAX + 1)
    spec = jnp.zeros((b, N // 2 + 1), jnp.complex128).at[:, 1 : K_MAX + 1].set(coef)
    return jnp.fft.irfft(spec, n=N) * N / 4


def exact_step(u, steps=1):
    """``u_hat(t + dt) = exp((-i c k - nu k²) dt) u_hat(t)`` on the last axis."""
    k = 2 * jnp.pi * jnp.fft.rfftfreq(u.shape[-1], d=1.0 / u.shape[-1])
    return jnp.fft.irfft(jnp.exp((-1j * C_ADV * k - NU * k**2) * DT * steps) * jnp.fft.rfft(u), n=u.shape[-1])


def exact_trajectories(k, n, t):
    """``[n, t, 1, N]`` float32 trajectories of the exact solution."""
    u0 = band_limited_ics(k, n)
    traj = jnp.stack([exact_step(u0, s) for s in range(t)], axis=1)
    return np.asarray(traj[:, :, None], np.float32)


def exact_apply(params, u, cond):
    del params, cond
    return exact_step(u.astype(jnp.float64)).astype(jnp.float32)


# --- losses ---------------------------------------------------------------------------------------


def test_losses_per_sample_against_numpy():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(3, 2, 5, 4)), rng.normal(size=(3, 2, 5, 4))
    err = (pred - target).reshape(3, -1)
    t = target.reshape(3, -1)
    np.testing.assert_allclose(losses.mse(pred, target), (err**2).mean(1), rtol=1e-12)
    rel = np.linalg.norm(err, axis=1) / np.linalg.norm(t, axis=1)
    np.testing.assert_allclose(losses.relative_l2(pred, target), rel, rtol=1e-12)
    np.testing.assert_allclose(losses.nrmse(pred, target), rel, rtol=1e-12)
    np.testing.assert_allclose(losses.relative_mse(pred, target), rel**2, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get_loss("l3")
    with pytest.raises(ValueError, match="shapes differ"):
        losses.mse(pred, target[:2])


def test_weighted_mean_ignores_padding_even_nan():
    v = jnp.array([1.0, 3.0, jnp.nan, jnp.inf])
    w = jnp.array([1.0, 3.0, 0.0, 0.0])
    np.testing.assert_allclose(losses.weighted_mean(v, w), (1 + 9) / 4)
    np.testing.assert_allclose(jax.grad(losses.weighted_mean)(v, w), [0.25, 0.75, 0.0, 0.0])
    np.testing.assert_allclose(losses.weighted_mean(v, jnp.zeros(4)), 0.0)


# --- the train step -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup():
    model = models.build("fno1d_tiny", modes=6, width=8, depth=2)
    x = jax.random.normal(key(0), (8, 1, 32))
    y = jnp.roll(x, 1, axis=-1) * 0.5
    optimizer = training.make_optimizer(learning_rate=1e-2, warmup_steps=2, total_steps=50)
    state = training.create_train_state(key(1), model, x[:1], optimizer)
    return model, optimizer, state, training.make_batch(x, y, lam_id=jnp.arange(8) + 100, time_index=jnp.arange(8) % 3)


def test_train_step_decreases_loss_and_keeps_dtypes(setup):
    model, optimizer, state, batch = setup
    schedule = training.make_schedule(learning_rate=1e-2, warmup_steps=2, total_steps=50)
    step = training.make_train_step(model.apply, optimizer, schedule=schedule, donate=False)
    s = state
    first = None
    for _ in range(10):
        s, per_sample, metrics = step(s, batch)
        first = metrics["loss"] if first is None else first
    assert float(metrics["loss"]) < 0.5 * float(first)
    assert int(s.step) == 10 and s.step.dtype == jnp.int32
    assert per_sample.shape == (8,) and per_sample.dtype == jnp.float32
    assert int(metrics["num_valid"]) == 8
    np.testing.assert_allclose(metrics["learning_rate"], schedule(9), rtol=1e-6)
    # x64 is on in the suite: nothing in the state may drift to float64 (that would also recompile).
    assert jax.tree_util.tree_map(lambda a: a.dtype, s) == jax.tree_util.tree_map(lambda a: a.dtype, state)
    assert step._cache_size() == 1


def test_per_sample_losses_follow_permutation(setup):
    """Permuting the batch permutes the per-sample losses identically; objective and update agree."""
    model, optimizer, state, batch = setup
    step = training.make_train_step(model.apply, optimizer, donate=False)
    perm = np.array([3, 0, 7, 1, 6, 2, 5, 4])
    s1, l1, m1 = step(state, batch)
    s2, l2, m2 = step(state, jax.tree_util.tree_map(lambda a: a[perm], batch))
    np.testing.assert_allclose(l2, np.asarray(l1)[perm], rtol=1e-5)
    assert len(set(np.asarray(l1).round(7))) == 8  # distinct values, so the check is not vacuous
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), s1.params, s2.params)
    # The loss of each entry is that of its own (inputs, targets) pair.
    pred = model.apply(state.params, batch.inputs)
    np.testing.assert_allclose(l1, losses.mse(pred, batch.targets), rtol=1e-5)


def test_padding_is_ignored_and_gradients_finite(setup):
    model, optimizer, state, batch = setup
    step = training.make_train_step(model.apply, optimizer, loss_name="relative_l2", donate=False)
    s_ref, l_ref, m_ref = step(state, jax.tree_util.tree_map(lambda a: a[:6], batch))
    padded = batch._replace(
        inputs=batch.inputs.at[6:].set(0.0),
        targets=batch.targets.at[6:].set(0.0),  # zero targets: relative error is 0/0 there
        weight=batch.weight.at[6:].set(0.0),
        lam_id=batch.lam_id.at[6:].set(-1),
    )
    s, l, m = step(state, padded)
    np.testing.assert_allclose(m["loss"], m_ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(l[:6], l_ref, rtol=1e-5)
    np.testing.assert_array_equal(l[6:], 0.0)
    assert int(m["num_valid"]) == 6
    assert np.isfinite(float(m["grad_norm"]))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), s.params, s_ref.params)


def test_gradient_of_every_loss_is_finite(setup):
    model, _, state, batch = setup
    for name in losses.LOSSES:
        g = jax.grad(lambda p: training.loss_and_per_sample(p, batch, apply_fn=model.apply, loss_name=name)[0])(
            state.params
        )
        assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree_util.tree_leaves(g)), name


def test_bf16_compute_path(setup):
    """bf16 forward with float32 master weights: loss close to float32, params stay float32."""
    model, optimizer, state, batch = setup
    model16 = model.clone(dtype=jnp.bfloat16)
    step32 = training.make_train_step(model.apply, optimizer, donate=False)
    step16 = training.make_train_step(model16.apply, optimizer, compute_dtype=jnp.bfloat16, donate=False)
    s32, l32, m32 = step32(state, batch)
    s16, l16, m16 = step16(state, batch)
    np.testing.assert_allclose(l16, l32, rtol=5e-2)
    np.testing.assert_allclose(m16["grad_norm"], m32["grad_norm"], rtol=5e-2)
    assert {a.dtype for a in jax.tree_util.tree_leaves(s16.params)} == {jnp.dtype(jnp.float32)}
    assert l16.dtype == jnp.float32


def test_ema_tracks_params(setup):
    model, optimizer, _, batch = setup
    state = training.create_train_state(key(1), model, batch.inputs[:1], optimizer, ema=True)
    step = training.make_train_step(model.apply, optimizer, ema_decay=0.5, donate=False)
    new, _, _ = step(state, batch)
    expect = jax.tree_util.tree_map(lambda e, p: 0.5 * e + 0.5 * p, state.ema_params, new.params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.ema_params, expect)


def test_optimizer_schedule_and_config_errors():
    sched = training.make_schedule(learning_rate=1.0, warmup_steps=10, total_steps=110, end_lr_factor=0.0)
    np.testing.assert_allclose([sched(0), sched(5), sched(10), sched(60), sched(110)], [0, 0.5, 1, 0.5, 0], atol=1e-6)
    const = training.make_schedule(learning_rate=2.0, warmup_steps=4)
    np.testing.assert_allclose([const(2), const(4), const(10_000)], [1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="unknown optimizer field"):
        training.make_optimizer(learnig_rate=1.0)
    opt = training.make_optimizer({"learning_rate": 1.0, "warmup_steps": 0, "weight_decay": 0.0, "grad_clip_norm": 0.5})
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    grads = {"w": 100 * jnp.ones((2, 2)), "b": 100 * jnp.ones(2)}
    updates, _ = opt.update(grads, opt.init(params), params)
    # First Adam step is ±lr for each coordinate regardless of clipping scale.
    np.testing.assert_allclose(updates["w"], -jnp.ones((2, 2)), rtol=1e-4)


# --- learning and evaluation --------------------------------------------------------------------


def test_fno1d_learns_advection_diffusion():
    """A small FNO-1D learns the exact one-step map to a few percent nRMSE in 300 steps."""
    x = exact_trajectories(key(0), 512, 2)
    inputs, targets = x[:, 0], x[:, 1]
    test = exact_trajectories(key(1), 32, 6)
    model = models.build("fno1d_tiny", modes=12, width=32, depth=2)
    optimizer = training.make_optimizer(learning_rate=3e-3, warmup_steps=20, total_steps=300)
    state = training.create_train_state(key(2), model, inputs[:1], optimizer)
    step = training.make_train_step(model.apply, optimizer, loss_name="mse")
    rng = np.random.default_rng(0)
    for _ in range(300):
        idx = rng.choice(len(inputs), 32, replace=False)
        state, _, metrics = step(state, training.make_batch(inputs[idx], targets[idx]))
    errors = training.evaluate(model.apply, state.params, test, num_steps=5, batch_size=8)
    identity = np.asarray(losses.nrmse(test[:, 0], test[:, 1])).mean()
    stats = training.summary_stats(errors["one_step"])
    assert stats["mean"] < 0.06, stats  # measured ~0.027
    assert stats["mean"] < 0.1 * identity
    assert np.all(np.isfinite(errors["rollout"]))
    assert errors["rollout_by_time"].shape == (32, 5)


def test_evaluate_against_exact_and_identity_models():
    traj = exact_trajectories(key(3), 5, 4)  # [5, 4, 1, 64]
    one = training.one_step_errors(exact_apply, None, traj, batch_size=2)
    roll = training.rollout_errors(exact_apply, None, traj, batch_size=2)
    assert one.shape == roll.shape == (5, 3)
    np.testing.assert_allclose(one, 0.0, atol=1e-5)
    np.testing.assert_allclose(roll, 0.0, atol=1e-5)
    # Identity "model": rollout error at step t is nRMSE(u0, u_{t+1}); one-step is nRMSE(u_t, u_{t+1}).
    ident = lambda p, u, c: u
    roll_id = training.rollout_errors(ident, None, traj, batch_size=4, num_steps=2)
    expect = np.stack([losses.nrmse(traj[:, 0], traj[:, t]) for t in (1, 2)], axis=1)
    np.testing.assert_allclose(roll_id, expect, rtol=1e-5)
    one_id = training.one_step_errors(ident, None, traj, jnp.ones((5, 2)), batch_size=3)
    expect = np.stack([losses.nrmse(traj[:, t], traj[:, t + 1]) for t in range(3)], axis=1)
    np.testing.assert_allclose(one_id, expect, rtol=1e-5)
    with pytest.raises(ValueError, match="num_steps"):
        training.rollout_errors(ident, None, traj, num_steps=4)


def test_rollout_is_repeated_application():
    u0 = jnp.asarray(exact_trajectories(key(4), 2, 1)[:, 0])
    us = training.surrogate_rollout(exact_apply, None, u0, 3)
    assert us.shape == (2, 3, 1, N)
    np.testing.assert_allclose(us[:, 2], exact_apply(None, exact_apply(None, exact_apply(None, u0, None), None), None), atol=1e-5)


def test_summary_stats():
    e = np.arange(1, 101, dtype=float)
    s = training.summary_stats(e)
    assert s == {
        "mean": 50.5,
        "std": float(np.std(e)),
        "max": 100.0,
        "p95": float(np.percentile(e, 95)),
        "p99": float(np.percentile(e, 99)),
    }
    assert set(training.summary_stats(jnp.ones(3))) == {"mean", "std", "max", "p95", "p99"}
