"""The asynchronous mode: host buffer, external solvers, worker pools, faults and latency.

Workers run ``scripts/external_solver.py`` (NumPy only), imported as a module so that spawned
worker processes start without JAX. Sizes: 32-point grid, 6 frames, tiny FNO, budgets of 4–8.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import math
import multiprocessing
import pickle
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models, proposals, training
from qsal_jax.online import async_mode, external
from qsal_jax.online.host_buffer import HostBuffer, HostItems, trajectory_items
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.simulation.param_space import ParamSpace

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "external_solver.py"
N, T = 32, 6
SHAPE = (T, 1, N)
SPACE = ParamSpace.box({"A0": (0.2, 1.0), "A1": (0.2, 1.0), "phi0": (0.0, 2 * math.pi), "phi1": (0.0, 2 * math.pi)})
LOGGER = "qsal_jax.online.async_mode"
SMALL = dict(num_workers=2, simulation_budget=4, batch_size=8, buffer_capacity=64, watermark=8, task_timeout_s=60.0)


@pytest.fixture(scope="module")
def ext():
    """``scripts/external_solver.py`` as a module; spawned workers inherit the path and import it too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(SCRIPT.parent))
        import external_solver

        yield external_solver


@pytest.fixture(scope="module")
def solver(ext):
    return ext.Solver(num_points=N, num_frames=T, substeps=2)


class Setup(NamedTuple):
    state: training.TrainState
    step: object


@pytest.fixture(scope="module")
def setup():
    """Tiny FNO and its jitted train step, compiled once for the module (no donation: states are reused)."""
    model = models.build("fno1d_tiny")
    optimizer = training.make_optimizer(learning_rate=3e-3, warmup_steps=1)
    state = training.create_train_state(jax.random.PRNGKey(0), model, jnp.zeros((1, 1, N), jnp.float32), optimizer)
    return Setup(state, training.make_train_step(model.apply, optimizer, donate=False))


@pytest.fixture(scope="module")
def process_pool(ext):
    """A borrowed spawn pool shared by the fault tests that need no restart."""
    pool = external.spawn_process_pool(2)
    yield pool
    pool.shutdown(wait=True)


def run(setup, solver, strategy=None, executor=None, seed=0, **overrides):
    strategy = strategy or proposals.build("uniform", SPACE)
    return async_mode.run_async(solver, strategy, setup.step, setup.state, jax.random.PRNGKey(seed),
                                executor=executor, trajectory_shape=SHAPE, **{**SMALL, **overrides})


def check_completed(summary, budget, faults=None, policy="fifo"):
    """The budget completed, every pushed item was trained on (once with fifo + drain), losses finite."""
    expected = {k: 0 for k in external.FAULT_KINDS} | (faults or {})
    assert summary.faults == expected
    assert summary.stopped_early is None
    assert summary.num_completed == budget
    assert summary.num_items_pushed == budget * (T - 1)
    if policy == "fifo":
        assert summary.num_trained_samples == summary.num_items_pushed
    else:
        assert summary.num_trained_samples >= summary.num_items_pushed
    assert summary.num_train_steps == len(summary.losses) > 0
    assert np.all(np.isfinite(summary.losses))
    assert summary.latency_steps["count"] == budget
    assert all(lat.steps >= 0 and lat.seconds >= 0 for lat in summary.latencies)


# ------------------------------------------------------------------- host side
def items(n, lam_id=0):
    u = np.arange(n + 1, dtype=np.float32)[:, None, None] * np.ones((1, 1, 4), np.float32)
    return trajectory_items(u, np.zeros(2), lam_id, np.zeros(0))


def test_trajectory_items_pairs_consecutive_frames():
    it = items(3, lam_id=7)
    np.testing.assert_array_equal(it.inputs[:, 0, 0], [0, 1, 2])
    np.testing.assert_array_equal(it.targets[:, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(it.time_index, [0, 1, 2])
    assert it.lam_id.tolist() == [7, 7, 7] and it.cond.shape == (3, 0) and it.lam.shape == (3, 2)


def test_host_buffer_fifo_takes_oldest_and_pads():
    buf = HostBuffer(8, "fifo", rng=np.random.default_rng(0))
    buf.push(items(3, lam_id=0))
    buf.push(items(3, lam_id=1))
    batch, valid = buf.sample(4)
    assert batch.lam_id.tolist() == [0, 0, 0, 1] and valid.all()
    batch, valid = buf.sample(4)
    assert valid.tolist() == [True, True, False, False] and batch.lam_id.tolist() == [1, 1, -1, -1]
    np.testing.assert_array_equal(batch.inputs[2:], 0)
    assert buf.size == 0


def test_host_buffer_reservoir_keeps_and_evicts_seen_first():
    buf = HostBuffer(4, "reservoir", rng=np.random.default_rng(0))
    buf.push(items(4, lam_id=0))
    batch, valid = buf.sample(2)
    assert buf.size == 4 and buf.num_seen() == 2 and buf.has_room()
    seen = set(batch.time_index.tolist())
    assert buf.push(items(2, lam_id=1)) == 0  # overwrites the two seen items, loses nothing
    assert buf.num_unseen == 4 and not buf.has_room()
    kept = {int(t) for t, i in zip(buf._items.time_index, buf._items.lam_id) if i == 0}
    assert kept == {0, 1, 2, 3} - seen
    assert buf.push(items(1, lam_id=2)) == 1 and buf.num_evicted_unseen == 1


def test_host_buffer_rejects_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="policy"):
        HostBuffer(4, "lifo", rng=np.random.default_rng(0))
    buf = HostBuffer(4, "firo", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="exceed the capacity"):
        buf.push(items(5))
    buf.push(items(2))
    bad = HostItems(*(np.zeros((1, 1, 5), np.float32) if i < 2 else x[:1] for i, x in enumerate(items(1))))
    with pytest.raises(ValueError, match="differ from"):
        buf.push(bad)


@pytest.mark.parametrize(
    "u, kind",
    [
        (np.zeros(SHAPE, np.float32), None),
        (np.zeros(SHAPE, np.float64), None),
        ([[0.0]], "garbage"),
        (np.zeros(SHAPE, np.int64), "garbage"),
        (np.zeros((1, 1, N)), "garbage"),
        (np.zeros((T, N)), "garbage"),
        (np.zeros((T, 1, N // 2)), "garbage"),
        (np.full(SHAPE, np.inf), "nonfinite"),
    ],
)
def test_check_trajectory(u, kind):
    problem = external.check_trajectory(u, SHAPE)
    assert (problem and problem[0]) == kind


def test_config_validation():
    with pytest.raises(ValueError, match="watermark"):
        async_mode.AsyncConfig(watermark=100, buffer_capacity=10)
    with pytest.raises(ValueError, match="unknown async field"):
        async_mode.AsyncConfig.from_config({"budget": 3})
    assert async_mode.AsyncConfig.from_config({"num_workers": 3}, drain=False).num_workers == 3
    pool_strategy = proposals.build("sbal", SPACE, pool_size=8)  # a ScoredProposal: needs a surrogate
    with pytest.raises(ValueError, match="candidate pool"):
        async_mode.AsyncTrainer(lambda lam: lam, pool_strategy, lambda s, b: s)
    with pytest.raises(ValueError, match="trajectory_shape is required"):
        async_mode.AsyncTrainer(lambda lam: lam, proposals.build("uniform", SPACE), lambda s, b: s)
    with pytest.raises(ValueError, match="raise buffer_capacity"):
        async_mode.AsyncTrainer(lambda lam: lam, proposals.build("uniform", SPACE), lambda s, b: s,
                                async_mode.AsyncConfig(buffer_capacity=4, watermark=2, batch_size=2),
                                trajectory_shape=(6, 1, 8))
    with pytest.raises(ValueError, match="below task_timeout_s"):
        async_mode.AsyncTrainer(executable(timeout_s=60), proposals.build("uniform", SPACE), lambda s, b: s,
                                async_mode.AsyncConfig(task_timeout_s=30), trajectory_shape=SHAPE)


# ---------------------------------------------------------- external program
def executable(tmp_path=None, fault=None, once=None, lam_format="json", timeout_s=60.0):
    env = {"QSAL_SOLVER_FAULT": fault or ""}
    if once:
        env["QSAL_SOLVER_FAULT_ONCE"] = str(once)
    argv = (sys.executable, str(SCRIPT), "--lam-file", "{lam_file}", "--out", "{out}", "--num-points", str(N),
            "--num-frames", str(T), "--substeps", "2")
    return external.ExecutableSolver(argv, timeout_s=timeout_s, lam_format=lam_format, env=env)


@pytest.mark.parametrize("lam_format", ["json", "npy", "stdin"])
def test_executable_matches_in_process_solver(solver, lam_format):
    lam = np.array([0.7, 0.4, 1.0, 2.0])
    solve = executable(lam_format=lam_format)
    assert pickle.loads(pickle.dumps(solve)) == solve  # travels to process workers
    u = solve(lam)
    assert u.shape == SHAPE and u.dtype == np.float32 and external.check_trajectory(u, SHAPE) is None
    np.testing.assert_allclose(u, solver(lam), rtol=1e-6, atol=1e-6)


def test_executable_faults_raise_or_are_flagged(tmp_path):
    lam = np.array([0.7, 0.4, 1.0, 2.0])
    with pytest.raises(external.SolverError, match="status 3") as e:
        executable(fault="crash")(lam)
    assert external.classify_exception(e.value) == "error"
    with pytest.raises(external.SolverTimeout) as e:
        executable(fault="hang", timeout_s=1.0)(lam)
    assert external.classify_exception(e.value) == "timeout"
    assert external.check_trajectory(executable(fault="garbage")(lam), SHAPE)[0] == "garbage"
    assert external.check_trajectory(executable(fault="nan")(lam), SHAPE)[0] == "nonfinite"
    silent = external.ExecutableSolver((sys.executable, "-c", "pass", "{out}"), timeout_s=30)
    with pytest.raises(external.SolverOutputError) as e:
        silent(lam)
    assert external.classify_exception(e.value) == "garbage"


def test_executable_in_thread_workers_with_a_hang(setup, tmp_path, caplog):
    """Threads wait on subprocesses; the subprocess timeout kills the hung program."""
    caplog.set_level(logging.INFO, LOGGER)
    solve = executable(fault="hang", once=tmp_path / "hang.flag", timeout_s=2.0)
    threads = functools.partial(cf.ThreadPoolExecutor, 2)
    summary = run(setup, solve, executor=threads).summary
    check_completed(summary, 4, {"timeout": 1})
    assert summary.num_redrawn == 1 and summary.num_launched == 5 and summary.num_pool_restarts == 0
    assert "fault timeout" in caplog.text


# --------------------------------------------------------------- worker pools
def test_default_process_pool_trains(setup, solver, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    before = set(multiprocessing.active_children())
    strategy = proposals.build("breed_online", SPACE, population=16, alpha1=0.1)
    result = run(setup, solver, strategy, simulation_budget=6)
    s = result.summary
    check_completed(s, 6)
    assert s.num_launched == 6 and s.num_requeued == 0 and s.num_pool_restarts == 0
    assert int(result.train_state.step) == s.num_train_steps
    assert int(result.strategy_state.step) == s.num_train_steps  # breed saw every step's feedback
    for lat in s.latencies:  # first use lies between the launch and the end of training
        assert s.launches[lat.lam_id].step + lat.steps < s.num_train_steps
    assert s.latency_steps["max"] >= s.latency_steps["median"] >= 0 and s.latency_s["mean"] >= 0
    assert all(SPACE.contains(jnp.asarray(x.lam)) for x in s.launches)
    assert caplog.text.count("launch id=") == 6 and caplog.text.count("first use id=") == 6
    assert set(multiprocessing.active_children()) <= before  # the owned pool is shut down


def test_dask_local_cluster(setup, solver):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        summary = run(setup, solver, executor=client, buffer_policy="reservoir").summary
    check_completed(summary, 4, policy="reservoir")


@pytest.mark.parametrize("fault, kind", [("crash", "error"), ("garbage", "garbage"), ("nan", "nonfinite"),
                                         ("dtype", "garbage")])
def test_faulty_result_is_logged_counted_and_redrawn(setup, ext, process_pool, tmp_path, caplog, fault, kind):
    caplog.set_level(logging.WARNING, LOGGER)
    solve = ext.Solver(num_points=N, num_frames=T, substeps=2, fault=fault, fault_once=str(tmp_path / "flag"))
    summary = run(setup, solve, executor=process_pool).summary
    check_completed(summary, 4, {kind: 1})
    assert summary.num_redrawn == 1 and summary.num_launched == 5
    assert caplog.text.count(f"fault {kind} id=") == 1
    faulty = {int(line.split("id=")[1].split()[0]) for line in caplog.text.splitlines() if "fault" in line}
    assert not faulty & {lat.lam_id for lat in summary.latencies}  # the faulty λ never reached training


@pytest.mark.parametrize("fault, kind", [("hang", "timeout"), ("exit", "crash")])
def test_hung_or_dead_worker_rebuilds_the_pool(setup, ext, tmp_path, caplog, fault, kind):
    """A hung or dead process is killed with its pool; the run completes and nothing lingers."""
    caplog.set_level(logging.WARNING, LOGGER)
    solve = ext.Solver(num_points=N, num_frames=T, substeps=2, fault=fault, fault_once=str(tmp_path / "flag"))
    before = set(multiprocessing.active_children())  # the shared pool of other tests
    summary = run(setup, solve, task_timeout_s=4.0).summary
    assert summary.faults[kind] >= 1 and summary.num_pool_restarts >= 1
    assert summary.num_completed == 4 and summary.stopped_early is None
    assert f"fault {kind}" in caplog.text and "worker pool rebuilt" in caplog.text
    assert set(multiprocessing.active_children()) <= before


def test_broken_solver_stops_after_max_faults(setup):
    with cf.ThreadPoolExecutor(2) as threads:
        summary = run(setup, external.ExecutableSolver(("false", "{out}"), timeout_s=10), executor=threads, max_faults=3).summary
    assert summary.faults["error"] >= 4 and summary.num_completed == 0 and summary.stopped_early
    assert summary.num_train_steps == 0 and summary.latency_steps["count"] == 0


# ----------------------------------------------------------- strategy contract
class SpyState(NamedTuple):
    updates: jax.Array  # [] int32: update calls so far


def spy(space: ParamSpace) -> Proposal:
    """Uniform draws with one extra coordinate: the number of updates the sampled state had seen."""

    def init(key):
        return SpyState(jnp.zeros((), jnp.int32))

    def sample(state, key, n):
        lam = space.sample_uniform(key, n)
        return jnp.concatenate([lam, jnp.full((n, 1), state.updates, lam.dtype)], axis=1), state

    def update(state, feedback: Feedback):
        return SpyState(state.updates + 1)

    return Proposal(init, sample, update)


def test_each_launch_samples_the_latest_strategy_state(setup, solver):
    space = SPACE + ParamSpace.box({"updates": (0.0, 1e6)})  # the solver reads λ[:4] only
    with cf.ThreadPoolExecutor(2) as threads:
        result = run(setup, solver, spy(space), executor=threads, simulation_budget=8, watermark=5)
    s = result.summary
    assert int(result.strategy_state.updates) == s.num_train_steps
    assert [int(x.lam[-1]) for x in s.launches] == [x.step for x in s.launches]
    assert max(x.step for x in s.launches) > 0  # launches happened after training began


def test_max_train_steps_stops_launching(setup, solver):
    with cf.ThreadPoolExecutor(2) as threads:
        summary = run(setup, solver, executor=threads, simulation_budget=30, watermark=5, max_train_steps=3).summary
    assert summary.num_train_steps == 3 and "max_train_steps" in summary.stopped_early
    assert summary.num_completed < 30 and summary.num_launched == summary.num_completed


def test_sequence_strategy_continues_across_launches(setup, solver):
    """Each launch keeps the state its draw returned: quasi-random launches are one sequence."""
    p = proposals.build("quasirandom", SPACE)
    with cf.ThreadPoolExecutor(2) as threads:
        result = run(setup, solver, p, executor=threads, simulation_budget=6, watermark=5)
    s = result.summary
    assert s.num_launched == 6
    key_init = jax.random.split(jax.random.PRNGKey(0), 3)[0]  # as `AsyncTrainer.run` splits the run key
    expected = np.asarray(p.sample(p.init(key_init), None, 6)[0], np.float64)
    np.testing.assert_allclose(np.stack([x.lam for x in s.launches]), expected, rtol=1e-6)
    assert int(result.strategy_state.index) == 6


# ---------------------------------------------------------------- checkpoints
def test_sigkill_mid_run_then_resume_spends_the_budget_exactly(tmp_path):
    """Kill an async run after its second checkpoint; the same command resumes from it and
    completes exactly the budget's trajectories, with the train state continuing past the kill."""
    import json
    import os
    import signal
    import subprocess
    import time

    job = Path(__file__).resolve().parent / "async_job.py"
    ckpt, result = tmp_path / "ckpt", tmp_path / "result.json"
    env = dict(os.environ, PYTHONPATH=str(job.parents[1]), XLA_FLAGS="", JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, str(job), str(ckpt), str(result)], env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [int(p.name) for p in ckpt.glob("*") if p.name.isdigit()] if ckpt.exists() else []
        if len(steps) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(int(p.name) for p in ckpt.glob("*") if p.name.isdigit())
    assert not result.exists()
    out = subprocess.run([sys.executable, str(job), str(ckpt), str(result)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed from checkpoint" in out.stderr
    r = json.loads(result.read_text())
    assert r["completed"] == 24  # the budget, exactly: in-flight work at the kill was launched again
    assert r["train_steps"] > killed_at and r["final_step"] == r["train_steps"]
    # The resumed run launched only what was missing: the work before the checkpoint was kept.
    assert 0 < r["launched"] < 24


# ------------------------------------------------------------- solver commands
def test_command_placeholders_are_filled():
    from qsal_jax.online.solver_command import check_command, fill_command

    argv = check_command(["{python}", "s.py", "--lam", "{lam}", "--a", "{A0:.3f}", "-n", "{n}", "{{x}}", "{out}",
                          "{lam_file}"], names=("A0", "A1"), constants={"python": "py", "n": 64})
    assert argv[0] == "py" and argv[7] == "64" and argv[8] == "{{x}}"  # constants now; λ, paths per run
    filled = fill_command(argv, [0.25, 0.5], ("A0", "A1"), "o.npy", "l.json")
    assert filled == ["py", "s.py", "--lam", "[0.25, 0.5]", "--a", "0.250", "-n", "64", "{x}", "o.npy", "l.json"]


@pytest.mark.parametrize("argv, message", [
    (["prog", "{out}", "{A2}"], "unknown placeholder {A2}; known: {A0}, {A1}, {lam}, {lam_file}, {out}"),
    (["prog", "{lam}"], "must contain the {out} placeholder"),
    ("prog --out {out}", "must be a list of argument strings, not the string"),
    ([], "non-empty list"),
    (["prog", "{out", "x"], "argument 1 '{out'"),
    (["prog", "{out}", "{A0:d}"], "format spec 'd' of {A0}"),
])
def test_bad_commands_are_one_line_errors(argv, message):
    from qsal_jax.online.solver_command import check_command

    with pytest.raises(ValueError) as e:
        check_command(argv, names=("A0", "A1"))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_executable_solver_given_a_string_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^ExecutableSolver: argv: must be a list of argument strings, not the string"):
        external.ExecutableSolver(f"{sys.executable} {SCRIPT} --out {{out}}")


def test_lam_inline_and_by_name_match_the_in_process_solver(solver):
    """λ as a JSON list ({lam}) and component by component ({A0} ...) give the same trajectory."""
    lam = np.array([0.7, 0.4, 1.0, 2.0])
    common = ("--out", "{out}", "--num-points", str(N), "--num-frames", str(T), "--substeps", "2")
    inline = external.ExecutableSolver((sys.executable, str(SCRIPT), "--lam", "{lam}", *common), timeout_s=30)
    by_name = external.ExecutableSolver((sys.executable, str(SCRIPT), "--lam", "[{A0!r}, {A1!r}, {phi0!r}, {phi1!r}]",
                                         *common), timeout_s=30, names=tuple(SPACE.names))
    np.testing.assert_allclose(inline(lam), solver(lam), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(by_name(lam), inline(lam))


# A program for each way an external solver goes wrong, and the fault kind it must be counted as
# (a worker that dies, the twelfth way, is `test_hung_or_dead_worker_rebuilds_the_pool`'s "exit").
_PY = sys.executable
FAULTY_PROGRAMS = {
    "crash": ([_PY, "-c", "import sys; sys.exit(3)", "{out}"], "error"),
    "segfault": ([_PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "{out}"], "error"),
    "hang": ([_PY, "-c", "import time; time.sleep(600)", "{out}"], "timeout"),
    "slow": ([_PY, "-c", "import time, sys, numpy; time.sleep(5); numpy.save(sys.argv[1], numpy.zeros((6, 1, 32)))",
              "{out}"], "timeout"),
    "garbage": ([_PY, "-c", "import sys; open(sys.argv[1], 'w').write('not an array')", "{out}"], "garbage"),
    "wrong shape": ([_PY, "-c", "import sys, numpy; numpy.save(sys.argv[1], numpy.zeros((6, 1, 31)))", "{out}"],
                    "garbage"),
    "nan": ([_PY, "-c", "import sys, numpy; numpy.save(sys.argv[1], numpy.full((6, 1, 32), numpy.nan))", "{out}"],
            "nonfinite"),
    "empty file": ([_PY, "-c", "import sys; open(sys.argv[1], 'w').close()", "{out}"], "garbage"),
    "exit 0 without output": ([_PY, "-c", "pass", "{out}"], "garbage"),
    "missing program": (["/nonexistent/solver", "{out}"], "error"),
}


@pytest.mark.parametrize("name", [*FAULTY_PROGRAMS, "not executable"])
def test_every_kind_of_faulty_program_is_classified(tmp_path, name):
    if name == "not executable":
        program = tmp_path / "solver.sh"
        program.write_text("#!/bin/sh\nexit 0\n")  # no x bit
        argv, kind = [str(program), "{out}"], "error"
    else:
        argv, kind = FAULTY_PROGRAMS[name]
    solve = external.ExecutableSolver(argv, timeout_s=2.0)
    try:
        u = solve(np.zeros(4))
    except Exception as e:  # what a worker hands back; the trainer classifies it
        assert external.classify_exception(e) == kind
    else:
        problem = external.check_trajectory(u, SHAPE, np.float32)
        assert problem is not None and problem[0] == kind


# ------------------------------------------------------- pacing and fault policy
@pytest.mark.parametrize("policy", ["reservoir", "firo", "fifo"])
def test_pacing_takes_the_owed_updates_per_simulation(setup, solver, policy):
    with cf.ThreadPoolExecutor(2) as threads:
        s = run(setup, solver, executor=threads, buffer_policy=policy, updates_per_simulation=1.5, watermark=5,
                batch_size=4).summary
    assert s.num_completed == 4 and np.all(np.isfinite(s.losses))
    if policy == "reservoir":  # never short of items: exactly floor(1.5 × 4) steps
        assert s.num_train_steps == 6
    else:  # FIFO and FIRO hand each item out once: a step is owed but the buffer may be empty
        assert 1 <= s.num_train_steps <= 6 and s.num_trained_samples <= s.num_items_pushed


def test_a_faulty_lambda_is_launched_again_before_a_redraw(setup, ext, tmp_path, caplog):
    caplog.set_level(logging.INFO, LOGGER)
    flaky = ext.Solver(num_points=N, num_frames=T, substeps=2, fault="crash", fault_once=str(tmp_path / "flag"))
    with cf.ThreadPoolExecutor(2) as threads:
        s = run(setup, flaky, executor=threads, crashes_before_redraw=1).summary
    check_completed(s, 4, {"error": 1})
    assert s.num_retried == 1 and s.num_redrawn == 0 and s.num_launched == 4  # the same λ, not a fresh one
    assert caplog.text.count("retry id=") == 1


def test_hooks_and_a_checkpoint_at_the_first_arrival(setup, solver, tmp_path):
    from qsal_jax.online.async_records import AsyncHooks

    seen = {"started": [], "launched": [], "trained": [], "saving": []}
    hooks = AsyncHooks(*(lambda *a, k=k: seen[k].append(a) for k in ("started", "launched", "trained", "saving")))
    with cf.ThreadPoolExecutor(2) as threads:
        s = run(setup, solver, executor=threads, hooks=hooks, checkpoint_dir=str(tmp_path / "ckpt"),
                checkpoint_every=1000).summary
    assert seen["started"] == [(None, 0)]
    assert [x[0].lam_id for x in seen["launched"]] == list(range(s.num_launched))
    assert [x[0] for x in seen["trained"]] == list(range(1, s.num_train_steps + 1))
    assert {"train_loss", "buffer_size", "simulations", "owed_updates", "faults"} <= set(seen["trained"][-1][2])
    # The first arrival (before any training: watermark 8 > one trajectory's 5 items), then the end.
    assert seen["saving"] == [(0,), (s.num_train_steps,)]
