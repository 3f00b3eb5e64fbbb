"""A solver of the user's own as a simulator: `Simulator.from_function`, `Simulator.from_stepper`
(the exponax adapter), the fingerprint that keys cached trajectories, and `LoadedRun.predict`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.experiments import test_sets
from qsal_jax.simulation import ParamSpace, Simulator
from qsal_jax.simulation.fingerprint import simulator_fingerprint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = ParamSpace.box({"a": (0.5, 1.0), "phi": (0.0, 2 * math.pi), "nu": (0.01, 0.05)})


def heat_solution(n=32, frames=6, dt=0.5, mode=1, dtype=jnp.float64):
    """u(x, t) = a exp(-ν k² t) sin(k x + φ) on [0, 2π): the heat equation's closed form."""
    x = jnp.arange(n, dtype=dtype) * 2 * math.pi / n
    t = jnp.arange(frames, dtype=dtype) * dt

    def trajectory(lam):
        a, phi, nu = lam[0], lam[1], lam[2]
        return (a * jnp.exp(-nu * mode**2 * t)[:, None] * jnp.sin(mode * x + phi)[None])[:, None, :]

    return trajectory, x


def heat_stepper(n=32, dt=0.5):
    """The exact one-step heat propagator in Fourier space, exponax-style: one unbatched state [1, N]."""
    k = jnp.fft.rfftfreq(n, 1.0 / n)

    def make_stepper(p):
        return lambda u: jnp.fft.irfft(jnp.fft.rfft(u, axis=-1) * jnp.exp(-p["nu"] * k**2 * dt), n, axis=-1)

    return make_stepper


def test_from_function_reads_shapes_and_flags_blowups():
    trajectory, _ = heat_solution()
    sim = Simulator.from_function(SPACE, trajectory, cond_names=("nu",), dtype=jnp.float64, name="heat")
    assert (sim.num_frames, sim.state_shape, sim.num_steps) == (6, (1, 32), 5)
    lam = SPACE.from_unit(jax.random.uniform(jax.random.PRNGKey(0), (4, 3), jnp.float64))
    traj = jax.jit(sim.simulate)(lam)
    np.testing.assert_allclose(traj.u, jax.vmap(trajectory)(lam), rtol=1e-12)
    assert traj.finite.all()
    np.testing.assert_allclose(sim.conditioning(lam)[:, 0], (lam[:, 2] - 0.01) / 0.04, rtol=1e-12)
    np.testing.assert_allclose(sim.simulate_prefix(lam[0], 3), traj.u[0, :3], rtol=1e-12)
    np.testing.assert_allclose(sim.initial_state(lam[1]), traj.u[1, 0], rtol=1e-12)

    exploding = Simulator.from_function(SPACE, lambda lam: trajectory(lam) * jnp.where(lam[0] > 0.75, jnp.inf, 1.0))
    flags = exploding.simulate(jnp.asarray([[0.6, 0.0, 0.02], [0.9, 0.0, 0.02]])).finite
    assert flags.tolist() == [True, False]


@pytest.mark.parametrize("bad, message", [
    (dict(trajectory_fn=lambda lam: jnp.zeros((5, 8))), "[T >= 2, C, *grid]"),
    (dict(trajectory_fn="not a function"), "trajectory_fn must be callable"),
    (dict(trajectory_fn=lambda lam: jnp.zeros((5, 1, 8)), cond_names=("kappa",)), "cond_names ['kappa']"),
])
def test_from_function_refuses_bad_input_in_one_line(bad, message):
    with pytest.raises((ValueError, TypeError)) as e:
        Simulator.from_function(SPACE, **bad)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_from_stepper_matches_the_closed_form_and_steps_one_frame():
    trajectory, x = heat_solution(dtype=jnp.float64)
    sim = Simulator.from_stepper(SPACE, heat_stepper(), lambda p: (p["a"] * jnp.sin(x + p["phi"]))[None],
                                 num_frames=6, cond_names=("nu",), dtype=jnp.float64)
    lam = jnp.asarray([[0.7, 1.0, 0.03], [0.9, 4.0, 0.011]], jnp.float64)
    np.testing.assert_allclose(sim.simulate(lam).u, jax.vmap(trajectory)(lam), atol=1e-12)
    np.testing.assert_allclose(sim.frame_step(trajectory(lam[0])[2], lam[0]), trajectory(lam[0])[3], atol=1e-12)
    np.testing.assert_allclose(sim.simulate_prefix(lam[1], 4), trajectory(lam[1])[:4], atol=1e-12)

    # ∂/∂ν of the prefix through the stepper = the closed form's derivative
    loss = lambda lam: jnp.sum(sim.simulate_prefix(lam, 4) ** 2)  # noqa: E731
    exact = jax.grad(lambda lam: jnp.sum(trajectory(lam)[:4] ** 2))(lam[0])
    np.testing.assert_allclose(jax.grad(loss)(lam[0]), exact, rtol=1e-9, atol=1e-10)


def test_exponax_stepper_gradient_matches_finite_differences_and_shards():
    exponax = pytest.importorskip("exponax")
    x = exponax.make_grid(1, 1.0, 32)
    sim = Simulator.from_stepper(
        SPACE, lambda p: exponax.stepper.Burgers(1, 1.0, 32, 0.01, diffusivity=p["nu"]),
        lambda p: p["a"] * jnp.sin(2 * jnp.pi * x + p["phi"]), num_frames=5, save_every=2, cond_names=("nu",))
    assert sim.grid_facts() == (1, 1.0, pytest.approx(0.02))
    lam = jnp.asarray([0.8, 1.0, 0.02], jnp.float32)
    traj = sim.simulate_one(lam)
    np.testing.assert_allclose(sim.frame_step(traj[1], lam), traj[2], atol=1e-6)

    # The viscosity reaches exponax as a traced array: a gradient, checked by central differences.
    f = lambda nu: jnp.sum(sim.simulate_prefix(lam.at[2].set(nu), 5) ** 2)  # noqa: E731
    h = 1e-3
    fd = (f(lam[2] + h) - f(lam[2] - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(f)(lam[2]), fd, rtol=2e-2)

    # Under sharding: λ split over the 8 simulated devices gives the unsharded trajectories.
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ("data",))
    batch = SPACE.from_unit(jax.random.uniform(jax.random.PRNGKey(3), (8, 3)))
    sharded = jax.device_put(batch, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    out = jax.jit(sim.simulate)(sharded)
    np.testing.assert_allclose(out.u, sim.simulate(batch).u, rtol=1e-5, atol=1e-6)


def _heat_sim(n=32, mode=1, nu_scale=1.0):
    trajectory, _ = heat_solution(n=n, mode=mode, dtype=jnp.float32)
    return Simulator.from_function(SPACE, lambda lam: trajectory(lam.at[2].multiply(nu_scale)), name="heat")


def test_the_fingerprint_changes_with_grid_ic_and_coefficient_and_not_otherwise():
    base = simulator_fingerprint(_heat_sim())
    assert simulator_fingerprint(_heat_sim()) == base  # a new object computing the same: same name
    assert simulator_fingerprint(_heat_sim(n=16)) != base  # grid
    assert simulator_fingerprint(_heat_sim(mode=2)) != base  # initial condition
    assert simulator_fingerprint(_heat_sim(nu_scale=1.5)) != base  # coefficient


def test_the_score_set_cache_misses_when_the_physics_changes(tmp_path):
    lines = []
    first = test_sets.make_score_set(_heat_sim(), {}, size=8, cache_dir=str(tmp_path), log=lines.append)
    assert any(line.startswith("simulating") for line in lines)
    lines.clear()
    again = test_sets.make_score_set(_heat_sim(), {}, size=8, cache_dir=str(tmp_path), log=lines.append)
    assert not lines and again.info == first.info  # a hit: nothing simulated
    np.testing.assert_array_equal(again.u, first.u)
    changed = test_sets.make_score_set(_heat_sim(mode=2), {}, size=8, cache_dir=str(tmp_path), log=lines.append)
    assert any(line.startswith("simulating") for line in lines)  # same name and settings, new physics: a miss
    assert changed.info["key"] == first.info["key"] and changed.info["simulator"] != first.info["simulator"]
    assert not np.allclose(changed.u, first.u)


@pytest.mark.slow
def test_readme_exponax_example_runs_through_the_script_and_load_run(tmp_path):
    pytest.importorskip("exponax")
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "examples/exponax_burgers.py:burgers" in readme
    workdir = str(tmp_path / "own")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
           "--config", os.path.join(ROOT, "configs", "online_1d.py") + ":uniform,tiny", "--workdir", workdir,
           "--set=problem.name=examples/exponax_burgers.py:burgers", "--noplots_in_child"]
    env = dict(os.environ, QSAL_CACHE=str(tmp_path / "cache"))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["simulations"] == 24 and summary["score_set"]["simulator"]

    from qsal_jax.experiments import load_run

    run = load_run(workdir)
    lam = run.simulator.space.from_unit(jnp.asarray([[0.2, 0.4, 0.6, 0.8, 0.5], [0.9, 0.1, 0.3, 0.7, 0.2]]))
    predicted = run.predict(lam)
    solved = run.simulator.simulate(lam).u
    assert predicted.shape == solved.shape == (2, run.simulator.num_frames) + run.simulator.state_shape
    np.testing.assert_allclose(predicted[:, 0], solved[:, 0], atol=1e-6)  # both start from the solver's u0
    assert np.all(np.isfinite(predicted))
    np.testing.assert_array_equal(run.rollout(solved[:, 2], 0, lam=lam)[:, 0], solved[:, 2])
    cond = run.simulator.conditioning(lam)
    two_steps = run.apply_fn(run.params, run.apply_fn(run.params, solved[:, 2], cond), cond)
    np.testing.assert_allclose(run.rollout(solved[:, 2], 3, lam=lam)[:, 2], two_steps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.rollout(solved[0, 2], 2, lam=lam[0])[2], two_steps[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="conditioned on"):
        run.rollout(solved[:, 0], 2)


def test_reports_compare_records_by_their_simulator_fingerprint():
    from qsal_jax.reporting.report import score_set_line

    info = {"size": 8, "drawn": 8, "draw": "scrambled Halton (seed 1)", "dropped_blowups": 0, "key": "abc"}
    old, new = {"score_set": info}, {"score_set": dict(info, simulator="f1")}
    assert "cache key abc" in score_set_line([old, new])  # records from before the fingerprint still combine
    with pytest.raises(ValueError, match="different simulators"):
        score_set_line([new, {"score_set": dict(info, simulator="f2")}])


def test_run_arrays_are_written_atomically_and_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    from qsal_jax.reporting import run_files

    path = str(tmp_path / "test_errors.npz")
    run_files.save_arrays(path, a=np.arange(3), b=np.ones(2))
    with np.load(path) as f:
        np.testing.assert_array_equal(f["a"], np.arange(3))
    run_files.save_arrays(str(tmp_path / "lam.npy"), np.eye(2))
    np.testing.assert_array_equal(np.load(str(tmp_path / "lam.npy")), np.eye(2))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(run_files.DiskFull) as e:
        run_files.save_arrays(path, a=np.zeros(3))
    message = str(e.value)
    assert "test_errors.npz" in message and "before is intact" in message and "\n" not in message
    with np.load(path) as f:  # the file before is untouched, and no temporary file is left
        np.testing.assert_array_equal(f["a"], np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["lam.npy", "test_errors.npz"]
