"""Reliability of the asynchronous mode, of the fused run's divergence rule and of what a run
trusts on disk (issue 28).

Each test is one hostile input or fault, on the smallest settings that show it: the async
mode's tiny FNO on a 32-point Burgers grid in thread workers, spawn pools without JAX for the
orphan check, the `:tiny` async config for the script's up-front refusals, and in-process runs
of the `:tiny` online config for the fused run.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import concurrent.futures as cf
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models, proposals, training
from qsal_jax.online import async_checkpoint, async_mode, external
from qsal_jax.online.async_records import AsyncDiverged
from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.training import checkpoint
from qsal_jax.training.divergence import divergence

ROOT = Path(__file__).resolve().parents[1]
N, T = 32, 6
SHAPE = (T, 1, N)
SPACE = ParamSpace.box({"A0": (0.2, 1.0), "A1": (0.2, 1.0), "phi0": (0.0, 2 * math.pi), "phi1": (0.0, 2 * math.pi)})
SMALL = dict(num_workers=2, simulation_budget=4, batch_size=8, buffer_capacity=64, watermark=8, task_timeout_s=60.0)


@pytest.fixture(scope="module")
def burgers():
    """``scripts/external_solver.py``'s in-process `Solver` on the test grid."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "scripts"))
        import external_solver

        yield external_solver.Solver(num_points=N, num_frames=T, substeps=2)


class Setup(NamedTuple):
    state: training.TrainState
    step: object


def _setup(learning_rate: float) -> Setup:
    model = models.build("fno1d_tiny")
    optimizer = training.make_optimizer(learning_rate=learning_rate, warmup_steps=1)
    state = training.create_train_state(jax.random.PRNGKey(0), model, jnp.zeros((1, 1, N), jnp.float32), optimizer)
    return Setup(state, training.make_train_step(model.apply, optimizer, donate=False))


@pytest.fixture(scope="module")
def setup():
    return _setup(3e-3)


def run(setup, solver, **overrides):
    with cf.ThreadPoolExecutor(2) as threads:
        return async_mode.run_async(solver, proposals.build("uniform", SPACE), setup.step, setup.state,
                                    jax.random.PRNGKey(0), executor=threads, trajectory_shape=SHAPE,
                                    **{**SMALL, **overrides})


# ------------------------------------------------------- one guard per data path
class Overflowing:
    """The Burgers solver returning float64, one call with a value beyond float32's range."""

    def __init__(self, solve):
        self.solve, self.lock, self.calls = solve, threading.Lock(), 0

    def __call__(self, lam):
        u = self.solve(lam).astype(np.float64)
        with self.lock:
            self.calls += 1
            if self.calls == 2:
                u[1, 0, 3] = 1e39  # finite in float64, inf in the float32 buffer
        return u


def test_float64_beyond_float32_range_is_a_fault_never_buffered(setup, burgers):
    u = np.zeros(SHAPE)
    u[0, 0, 0] = -4e38
    assert external.check_trajectory(u, SHAPE) is None  # finite where it was computed
    kind, reason = external.check_trajectory(u, SHAPE, np.float32)
    assert kind == "nonfinite" and "beyond the range of float32" in reason
    s = run(setup, Overflowing(burgers)).summary
    assert s.faults["nonfinite"] == 1 and s.num_completed == 4 and s.failure is None
    assert np.all(np.isfinite(s.losses))


def test_divergence_rule():
    ok = [1.0, 0.5, 0.4, 0.3, 0.3]
    assert divergence(0.2, True, ok, 1e4) is None
    assert "not finite" in divergence(float("nan"), True, ok, 1e4)
    assert "not finite" in divergence(0.2, False, ok, 1e4)  # a non-finite parameter
    assert "running median" in divergence(1e31, True, ok, 1e4)  # a finite explosion
    assert divergence(1e31, True, ok[:2], 1e4) is None  # no scale yet
    assert "running median 0.2" in divergence(3e25, True, [0.2], 1e4, min_scale_steps=1)  # the fused run's records
    assert divergence(1e3, True, [0.2], 1e4, min_scale_steps=1) is None
    assert divergence(1e31, True, ok, math.inf) is None  # factor inf: only the non-finite rule


def _poisoned(step, at):
    """``step`` whose update number ``at`` makes every parameter NaN."""

    def poisoned_step(state, batch):
        state, per_sample, metrics = step(state, batch)
        if int(state.step) == at:
            state = state._replace(params=jax.tree_util.tree_map(lambda x: x * jnp.nan, state.params))
            metrics = dict(metrics, finite=jnp.asarray(False))
        return state, per_sample, metrics

    return poisoned_step


def test_divergence_stops_naming_the_last_good_checkpoint(setup, burgers, tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(AsyncDiverged, match=r"diverged at training step 3 .*last good checkpoint: step 2") as e:
        run(setup._replace(step=_poisoned(setup.step, 3)), burgers, checkpoint_dir=str(ckpt), checkpoint_every=1,
            watermark=5, batch_size=4, simulation_budget=6)
    assert "\n" not in str(e.value)
    with checkpoint.Checkpointer(ckpt) as c:
        assert c.all_steps() == [0, 1, 2]  # the first arrival, then each step; the diverged step was never written
    state = checkpoint.restore(ckpt, 2, async_checkpoint._tree(_like_run(setup, ckpt)))["train"]
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state.params))


def _like_run(setup, ckpt):
    """A fresh `_Run` of the test's run, as a template of its checkpoints."""
    config = async_mode.AsyncConfig(**{**SMALL, "watermark": 5, "batch_size": 4, "simulation_budget": 6},
                                    checkpoint_dir=str(ckpt), checkpoint_every=1)
    trainer = async_mode.AsyncTrainer(lambda lam: lam, proposals.build("uniform", SPACE), setup.step, config,
                                      trajectory_shape=SHAPE)
    strategy = trainer.strategy.init(jax.random.PRNGKey(0))
    return async_mode._Run(trainer, None, setup.state, strategy, None, np.random.default_rng(0))


def test_huge_learning_rate_diverges_instead_of_finishing(burgers):
    with pytest.raises(AsyncDiverged, match="diverged at training step .*no checkpoint written"):
        run(_setup(1e6), burgers, simulation_budget=6, watermark=5, batch_size=4)


# ------------------------------------------------ a run that did not do its work
class Breaking:
    """The Burgers solver that fails every call after its first ``good`` (until ``fixed``)."""

    def __init__(self, solve, good):
        self.solve, self.good, self.lock, self.calls, self.fixed = solve, good, threading.Lock(), 0, False

    def __call__(self, lam):
        with self.lock:
            self.calls += 1
            broken = self.calls > self.good and not self.fixed
        if broken:
            raise external.SolverError("licence server unreachable")
        return self.solve(lam)


def test_fault_limit_is_a_failure_and_the_rerun_resumes(setup, burgers, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    solver = Breaking(burgers, good=2)
    settings = dict(checkpoint_dir=ckpt, checkpoint_every=100, max_faults=3, simulation_budget=6, watermark=5,
                    batch_size=4)
    s = run(setup, solver, **settings).summary
    assert s.failure.startswith("more than 3 faults (error 4)") and s.num_completed == 2
    faults = s.faults["error"]  # 4, or 5 when the other task in flight failed too
    assert s.num_train_steps > 0
    with checkpoint.Checkpointer(ckpt) as c:  # the first arrival, and at the failure, off the checkpoint_every schedule
        assert c.all_steps() == [0, s.num_train_steps]
    solver.fixed = True
    again = run(setup, solver, **settings).summary
    assert again.failure is None and again.num_completed == 6 and again.num_launched == 4
    assert again.faults["error"] == faults  # restored; the limit counts this session's faults only


def test_an_outage_is_a_failure(setup):
    s = run(setup, external.ExecutableSolver(("false", "{out}"), timeout_s=10), max_faults=1).summary
    assert s.num_completed == 0 and s.failure.startswith("more than 1 faults (error")


def _script(workdir, *flags, arg="uniform,tiny"):
    return [sys.executable, str(ROOT / "scripts" / "train_async.py"),
            f"--config={ROOT / 'configs' / 'async_burgers.py'}:{arg}", f"--workdir={workdir}", *flags]


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="", JAX_PLATFORMS="cpu", **extra)


@pytest.mark.parametrize("flag, field", [("--config.solver.num_frames=1", "solver.num_frames"),
                                         ("--config.strategy.name=unifrom", "strategy.name")])
def test_impossible_settings_are_refused_before_the_workdir_is_touched(tmp_path, flag, field):
    workdir = tmp_path / "run"
    out = subprocess.run(_script(workdir, flag), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[-1].startswith(f"error: {field}"), lines[-1]
    assert not workdir.exists()


@pytest.mark.slow
def test_script_outage_exits_non_zero_and_the_same_command_resumes(tmp_path):
    workdir = tmp_path / "run"
    out = subprocess.run(_script(workdir), env=_env(QSAL_SOLVER_FAULT="crash"), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the run did not finish: more than 16 faults") and "0 of 8 simulations" in last, last
    assert not (workdir / "summary.json").exists()
    out = subprocess.run(_script(workdir), env=_env(), cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((workdir / "summary.json").read_text())["num_completed"] == 8


def test_a_ctrl_c_waits_for_the_checkpoint_being_written():
    finished = []
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a suite run in the background
    with pytest.raises(KeyboardInterrupt):
        with async_checkpoint._interrupt_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, in the block
            finished.append(True)
    assert finished and signal.getsignal(signal.SIGINT) is before


@pytest.mark.slow
def test_script_interrupted_is_one_line_and_resumes(tmp_path, sigint_reaches_children):
    workdir = tmp_path / "run"
    long_run = "--config.run.simulation_budget=48"  # 6x the tiny budget: the interrupt lands in the run
    proc = subprocess.Popen(_script(workdir, long_run), env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    saved = lambda: any(p.name.isdigit() for p in workdir.glob("checkpoints/*"))  # not a save in progress
    while time.monotonic() < deadline and proc.poll() is None and not saved():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0, "the run finished before the interrupt"
    assert "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == "error: interrupted; run the same command to resume from the last checkpoint"
    # The resumed run finishes the same (long) budget: its config must match the checkpoint's.
    out = subprocess.run(_script(workdir, long_run), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "resumed from checkpoint" in out.stderr, out.stderr[-2000:]


# ------------------------------------------------------------------ no orphans
_TRAINER = r"""
import time
from qsal_jax.online import external
pool = external.WorkerPool(None, 2)
futures = [pool.submit(time.sleep, 120) for _ in range(2)]
while len(pool.executor._processes) < 2:
    time.sleep(0.05)
print(" ".join(str(pid) for pid in pool.executor._processes), flush=True)
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkilled_trainer_leaves_no_worker_alive(tmp_path):
    """Kill the trainer mid-task: its pool's workers (and the resource tracker) are gone within
    10 s, and a caller reading the trainer's stdout sees its end instead of hanging."""
    proc = subprocess.Popen([sys.executable, "-c", _TRAINER], env=_env(), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        family = set(workers) | set(_children(proc.pid))
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        proc.kill()
    proc.wait()
    reader = threading.Thread(target=proc.stdout.read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in family):
        time.sleep(0.1)
    survivors = [pid for pid in family if _alive(pid)]
    for pid in survivors:  # leave nothing behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors
    reader.join(timeout=1)
    assert not reader.is_alive(), "the trainer's stdout is still held open"


# -------------------------------------------------------- identity before trust
def test_a_score_set_cache_of_other_frames_or_digest_is_rebuilt(tmp_path):
    from qsal_jax.experiments import test_sets
    from qsal_jax.simulation import get_problem

    kwargs = {"num_points": 32, "num_steps": 5}
    sim = get_problem("kdv_1d", **kwargs)
    lines = []
    good = test_sets.make_score_set(sim, kwargs, size=8, seed=3, cache_dir=str(tmp_path), log=lines.append)
    (path,) = (tmp_path / "score_sets").iterdir()
    with np.load(path) as f:
        lam, u, finite = f["lam"], f["u"], f["finite"]
    assert u.shape[1] == 6
    half = {"lam": lam, "u": u[:, :3], "finite": finite}  # same λ, 3 of 6 frames, its own digest
    np.savez(path, digest=np.asarray(test_sets.arrays_digest(half)), **half)
    lines.clear()
    again = test_sets.make_score_set(sim, kwargs, size=8, seed=3, cache_dir=str(tmp_path), log=lines.append)
    assert "holds trajectories of shape (8, 3, 1, 32), not (8, 6, 1, 32); rebuilding it" in lines[0]
    np.testing.assert_array_equal(again.u, good.u)
    np.savez(path, digest=np.asarray(test_sets.arrays_digest({"lam": lam, "u": u, "finite": finite})), lam=lam,
             u=u + 1.0, finite=finite)  # a changed array under the old digest
    lines.clear()
    np.testing.assert_array_equal(test_sets.make_score_set(sim, kwargs, size=8, seed=3, cache_dir=str(tmp_path),
                                                           log=lines.append).u, good.u)
    assert "fails its digest; rebuilding it" in lines[0]
    lines.clear()
    test_sets.make_score_set(sim, kwargs, size=8, seed=3, cache_dir=str(tmp_path), log=lines.append)
    assert lines == []  # the rebuilt file is trusted


# ------------------------------------------------- the fused run (scripts/train.py)
def _fused(arg="uniform,tiny", **train):
    from qsal_jax.experiments.config_args import load_config

    config = load_config(str(ROOT / "configs" / f"online_1d.py:{arg}"))
    with config.unlocked():
        config.train.optimizer.update(train)
    return config


@pytest.fixture
def score_cache(tmp_path_factory, monkeypatch):
    """One score-set cache for the fused-run tests (the `:tiny` set of 16 trajectories)."""
    from qsal_jax.experiments import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "fused_cache"))


def _train_script(workdir, *flags):
    return [sys.executable, str(ROOT / "scripts" / "train.py"), f"--config={ROOT / 'configs' / 'online_1d.py'}:tiny,uniform",
            f"--workdir={workdir}", *flags]


def test_a_finite_explosion_of_the_fused_run_is_divergence(tmp_path, score_cache):
    """``learning_rate=100`` took the loss from 0.2 to 1e25 in one step and to 1e31 by the end,
    exit 0; now the run stops at that step, before anything is checkpointed."""
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.online import RunStopped

    workdir = tmp_path / "run"
    with pytest.raises(RunStopped, match=r"^surrogate diverged at online step 2 \(loss \S+, more than 10000 times its "
                                         r"running median 0\.\d+\); no checkpoint written; try a lower "
                                         r"train.optimizer.learning_rate$"):
        run_experiment(_fused(learning_rate=100.0), str(workdir), log=lambda *a: None)
    assert not any((workdir / "checkpoints").iterdir()) and not (workdir / "summary.json").exists()


@pytest.mark.slow
def test_the_exploding_script_exits_non_zero_in_one_line(tmp_path, score_cache):
    """The audit's command itself: ``scripts/train.py ... --set=train.optimizer.learning_rate=100``."""
    workdir = tmp_path / "run"
    out = subprocess.run(_train_script(workdir, "--set=train.optimizer.learning_rate=100"), env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: surrogate diverged at online step 2 (") and "no checkpoint written" in last, last
    assert not any((workdir / "checkpoints").iterdir()) and not (workdir / "summary.json").exists()


def test_the_fused_divergence_rule_skips_steps_that_did_not_train():
    from qsal_jax.experiments.guards import RunStopped, check_sync

    def sync(loss, trained, finite=True):
        n = len(loss)
        return {"train_loss": np.asarray(loss), "trained_samples": np.asarray(trained), "finite": np.full(n, finite),
                "rejected": np.zeros(n)}

    losses = []
    check_sync(sync([0.0, 0.0, 0.3], [0, 0, 16]), 0, 3, "no checkpoint written", 0, 12, losses)
    assert losses == [0.3]  # below the watermark a loss of 0 is no scale
    check_sync(sync([0.2, 2e3], [16, 16]), 3, 2, "no checkpoint written", 0, 20, losses)
    with pytest.raises(RunStopped, match=r"online step 7 \(loss 1e\+05, more than 10000 times its running median "
                                         r"0.3\); last good checkpoint: step 3 in c; try"):
        check_sync(sync([1e5], [16]), 6, 1, "last good checkpoint: step 3 in c", 0, 28, losses)
    with pytest.raises(RunStopped, match=r"online step 8 \(loss nan; the loss or the parameters are not finite\)"):
        check_sync(sync([np.nan], [0], finite=False), 7, 1, "x", 0, 32, [])


def test_non_finite_score_set_predictions_stop_the_fused_run(tmp_path, score_cache, monkeypatch):
    """A surrogate that predicts inf for one score trajectory at the step-3 evaluation: the run
    stops naming it, and neither that state nor a later one is checkpointed."""
    from qsal_jax.experiments import run_experiment, test_sets
    from qsal_jax.experiments.online import RunStopped

    real = test_sets.score

    def one_diverged(*args, **kwargs):
        errs = real(*args, **kwargs)
        if "one_step" in errs:
            errs["one_step"][0] = errs["one_step_by_time"][0, 0] = np.inf
        return errs

    monkeypatch.setattr(test_sets, "score", one_diverged)
    workdir = tmp_path / "run"
    with pytest.raises(RunStopped, match=r"^surrogate diverged at online step 3: its one-step predictions of 1 of the 16 "
                                         r"score-set trajectories are not finite; no checkpoint written; try a lower"):
        run_experiment(_fused(), str(workdir), log=lambda *a: None)
    assert not any((workdir / "checkpoints").iterdir()) and not (workdir / "summary.json").exists()
    steps = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
    assert steps == [1, 2, 3]  # the record that shows it is kept (a rerun resumes before it and drops it)


def _strict_json(text):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_a_metrics_record_cut_short_is_named_on_resume(tmp_path, score_cache):
    """The run stopped after checkpoint 3 and 40 bytes of metrics.jsonl were lost: the resume says
    which record is gone instead of going on without it, and ends with the same numbers."""
    from qsal_jax.experiments import run_experiment

    workdir = tmp_path / "run"
    whole = run_experiment(_fused(), str(workdir), log=lambda *a: None)
    _strict_json((workdir / "summary.json").read_text())
    for line in open(workdir / "metrics.jsonl"):
        _strict_json(line)
    subprocess.run(["rm", "-r", str(workdir / "checkpoints" / "6"), str(workdir / "summary.json")], check=True)
    first3 = b"".join(open(workdir / "metrics.jsonl", "rb").readlines()[:3])
    (workdir / "metrics.jsonl").write_bytes(first3[:-40])
    lines = []
    again = run_experiment(_fused(), str(workdir), log=lines.append)
    assert "warning: metrics.jsonl lacks the records of online step 3 (up to checkpoint 3, lost or cut short); " \
           "they are not rebuilt" in lines, lines
    assert [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")] == [1, 2, 4, 5, 6]
    assert again["one_step_nrmse"] == whole["one_step_nrmse"]


# ------------------------------------------- a full disk while a run file is written
class _Filling:
    """A file that takes ``room`` more bytes, then fails as a full disk does (``err``)."""

    def __init__(self, f, room, err):
        self.f, self.room, self.err = f, room, err

    def write(self, text):
        if len(text) > self.room:
            self.f.write(text[:self.room])
            self.f.flush()
            self.room = 0
            raise OSError(self.err, os.strerror(self.err))
        self.room -= len(text)
        return self.f.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _disk_fills(monkeypatch, name, room=10, err=None):
    """Writes of the run file ``name`` (or its ``.tmp``) fail after ``room`` bytes."""
    import builtins
    import errno

    from qsal_jax.reporting import run_files
    from qsal_jax.experiments import workdir

    def fake_open(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        if ("w" in mode or "a" in mode) and os.path.basename(path) in (name, name + ".tmp"):
            return _Filling(f, room, err or errno.ENOSPC)
        return f

    for module in (run_files, workdir):
        monkeypatch.setattr(module, "open", fake_open, raising=False)


def _run_so_far(workdir: Path, steps=3, checkpoint=3):
    """A workdir as a run leaves it after ``steps`` records and a checkpoint."""
    from qsal_jax.experiments.workdir import MetricLog

    MetricLog(str(workdir / "metrics.jsonl")).write([{"step": s, "train_loss": 0.5} for s in range(1, steps + 1)])
    (workdir / "checkpoints" / str(checkpoint)).mkdir(parents=True)
    return (workdir / "metrics.jsonl").read_bytes()


RESUME = "free space there and run the same command to resume"


@pytest.mark.parametrize("err", ["ENOSPC", "EDQUOT"])
def test_full_disk_while_writing_metrics_keeps_the_records_before(tmp_path, monkeypatch, err):
    import errno

    from qsal_jax.experiments.workdir import DiskFull, MetricLog

    before = _run_so_far(tmp_path)
    _disk_fills(monkeypatch, "metrics.jsonl", err=getattr(errno, err))
    with pytest.raises(DiskFull) as e:
        MetricLog(str(tmp_path / "metrics.jsonl")).write([{"step": 4, "train_loss": 0.25, "test_mean": math.inf}])
    assert str(e.value) == (f"no space left on device while writing metrics.jsonl in {tmp_path}; the record of step 4 "
                            f"was not written; the records up to step 3 and checkpoint 3 are intact; {RESUME}")
    assert (tmp_path / "metrics.jsonl").read_bytes() == before  # the half-written line is cut off


def test_full_disk_while_cutting_the_metrics_back_on_resume(tmp_path, monkeypatch):
    from qsal_jax.experiments.workdir import DiskFull, MetricLog

    before = _run_so_far(tmp_path, steps=5)
    _disk_fills(monkeypatch, "metrics.jsonl", room=5)
    with pytest.raises(DiskFull, match=r"writing metrics.jsonl in .*; it is intact; the records up to step 5 and "
                                       r"checkpoint 3 are intact; free space"):
        MetricLog(str(tmp_path / "metrics.jsonl")).truncate(3)
    assert (tmp_path / "metrics.jsonl").read_bytes() == before
    assert not (tmp_path / "metrics.jsonl.tmp").exists()


@pytest.mark.parametrize("earlier", [False, True])
def test_full_disk_while_writing_a_summary_keeps_the_one_before(tmp_path, monkeypatch, earlier):
    from qsal_jax.experiments.workdir import DiskFull, write_json

    _run_so_far(tmp_path, steps=6, checkpoint=6)
    if earlier:
        write_json(str(tmp_path / "summary.json"), {"mean": 0.5})
    old = (tmp_path / "summary.json").read_bytes() if earlier else None
    _disk_fills(monkeypatch, "summary.json")
    with pytest.raises(DiskFull) as e:
        write_json(str(tmp_path / "summary.json"), {"mean": 0.25, "max": math.inf, "per_seed": list(range(100))})
    before = "the summary.json before is intact" if earlier else "it was not written"
    assert str(e.value) == (f"no space left on device while writing summary.json in {tmp_path}; {before}; "
                            f"the records up to step 6 and checkpoint 6 are intact; {RESUME}")
    assert not (tmp_path / "summary.json.tmp").exists()
    assert (tmp_path / "summary.json").read_bytes() == old if earlier else not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("name", ["training_curve.png", "report.svg"])
def test_full_disk_while_drawing_a_figure_keeps_the_one_before(tmp_path, monkeypatch, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qsal_jax.reporting.run_files import DiskFull, save_figure

    _run_so_far(tmp_path, steps=4, checkpoint=4)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert save_figure(fig, str(tmp_path / name), dpi=30) == str(tmp_path / name)
    old = (tmp_path / name).read_bytes()
    assert old.startswith(b"\x89PNG") if name.endswith(".png") else b"<svg" in old[:400]
    _disk_fills(monkeypatch, name, room=100)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(DiskFull) as e:
        save_figure(fig, str(tmp_path / name), dpi=30)
    assert str(e.value) == (f"no space left on device while writing {name} in {tmp_path}; the {name} before is intact; "
                            f"the records up to step 4 and checkpoint 4 are intact; {RESUME}")
    assert (tmp_path / name).read_bytes() == old and not (tmp_path / (name + ".tmp")).exists()
    assert not plt.get_fignums()  # closed on both paths


def test_compressed_arrays_round_trip_and_a_full_disk_is_one_line(tmp_path, monkeypatch):
    from qsal_jax.reporting.run_files import DiskFull, save_arrays

    errors = np.linspace(0.0, 1.0, 512, dtype=np.float32)
    save_arrays(str(tmp_path / "test_errors.npz"), compressed=True, mean=errors)
    with np.load(tmp_path / "test_errors.npz") as f:
        np.testing.assert_array_equal(f["mean"], errors)
    _disk_fills(monkeypatch, "draws.npz", room=50)
    with pytest.raises(DiskFull, match=r"^no space left on device while writing draws.npz in .*; it was not written"):
        save_arrays(str(tmp_path / "draws.npz"), compressed=True, lam=np.zeros((100, 4), np.float16))
    assert sorted(os.listdir(tmp_path)) == ["test_errors.npz"]


def test_full_disk_while_claiming_a_workdir(tmp_path, monkeypatch):
    from qsal_jax.experiments.workdir import DiskFull, claim_workdir

    _disk_fills(monkeypatch, "config.json", room=3)
    with pytest.raises(DiskFull, match=r"^no space left on device while writing config.json in .*; nothing of the run "
                                       r"was changed; free space there and run the same command to resume$"):
        claim_workdir(str(tmp_path / "run"), {"seed": 0, "name": "x" * 100})
    assert os.listdir(tmp_path / "run") == []


def test_a_failed_job_of_the_side_lane_stops_the_jobs_behind_it():
    """Records that could not be written: the checkpoint queued behind them is not written either
    (without a background lane the error reaches the loop before the checkpoint is submitted)."""
    from qsal_jax.experiments.side_work import SideWork
    from qsal_jax.experiments.workdir import DiskFull

    done = []

    def records():
        raise DiskFull("no space left on device while writing metrics.jsonl")

    with SideWork() as side, pytest.raises(DiskFull):  # at the checkpoint's submit or at the drain
        side.submit("evaluation", done.append, "evaluation")
        side.submit("records", records)
        side.submit("checkpoint", done.append, "checkpoint")
        side.drain()
    assert done == ["evaluation"]


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    import errno

    from qsal_jax.experiments.workdir import DiskFull, MetricLog

    _disk_fills(monkeypatch, "metrics.jsonl", err=errno.EIO)
    with pytest.raises(OSError) as e:
        MetricLog(str(tmp_path / "metrics.jsonl")).write([{"step": 1}])
    assert e.value.errno == errno.EIO and not isinstance(e.value, DiskFull)


def test_a_full_disk_mid_run_is_one_line_and_the_rerun_finishes(tmp_path, score_cache, monkeypatch):
    """The fused run: the disk fills while the step-4 records are written, and again while the
    summary is; each stop names the file and what is intact, and the run then finishes as one
    uninterrupted run would."""
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.workdir import DiskFull, MetricLog

    workdir = tmp_path / "run"
    real_write = MetricLog.write

    def full_at_step_4(self, records):
        if any(r.get("step") == 4 for r in records):
            _disk_fills(monkeypatch, "metrics.jsonl")
        return real_write(self, records)

    monkeypatch.setattr(MetricLog, "write", full_at_step_4)
    with pytest.raises(DiskFull, match=r"^no space left on device while writing metrics.jsonl in \S+; the records? "
                                       r"of steps? 4\S* (was|were) not written; the records up to step 3 and "
                                       r"checkpoint 3 are intact; free space"):
        run_experiment(_fused(), str(workdir), log=lambda *a: None)
    monkeypatch.undo()
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["3"]  # none past the lost records
    _disk_fills(monkeypatch, "summary.json")
    with pytest.raises(DiskFull, match=r"writing summary.json in \S+; it was not written; the records up to step 6 "
                                       r"and checkpoint 6 are intact; free space"):
        run_experiment(_fused(), str(workdir), log=lambda *a: None)
    monkeypatch.undo()
    lines = []
    run_experiment(_fused(), str(workdir), log=lines.append)
    assert "resumed from checkpoint at online step 6" in lines and not any("lacks" in line for line in lines)
    assert [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    _strict_json((workdir / "summary.json").read_text())


# ------------------------------------ strict JSON from every writer (toy and PINN runs)
def _assert_strict_and_read_back(workdir: Path, key: str):
    """summary.json parses as strict JSON with ``key``'s mean written as "inf", and a rerun of the
    same config reads it back as the float inf."""
    text = (workdir / "summary.json").read_text()
    on_disk = _strict_json(text)
    assert on_disk[key]["mean"] == "inf", on_disk[key]
    from qsal_jax.experiments.workdir import read_json

    assert read_json(str(workdir / "summary.json"))[key]["mean"] == math.inf


def test_a_diverged_toy_run_writes_strict_json(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "configs"))
    import toy_rolling_ball

    from qsal_jax.experiments import toy

    real = toy._errors
    monkeypatch.setattr(toy, "_errors", lambda *a: {k: np.where(np.arange(v.size) == 0, np.inf, v)
                                                    for k, v in real(*a).items()})
    config = toy_rolling_ball.get_config("tiny")
    config.rounds.update(num_rounds=1, iterations=5)
    toy.train_and_evaluate(config, str(tmp_path), log=lambda *a: None)
    _assert_strict_and_read_back(tmp_path, "uniform_mse")
    for line in open(tmp_path / "metrics.jsonl"):
        assert _strict_json(line)["mse_uniform"] == "inf"
    assert toy.train_and_evaluate(config, str(tmp_path), log=lambda *a: None)["hard_mse"]["mean"] == math.inf


def test_a_diverged_pinn_run_writes_strict_json(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "configs"))
    import pinn_allen_cahn

    from qsal_jax.experiments import pinn

    real = pinn.evaluate

    def diverged(*args):
        out = real(*args)
        return dict(out, relative_l2=math.nan, per_time=np.full_like(out["per_time"], np.inf))

    monkeypatch.setattr(pinn, "evaluate", diverged)
    config = pinn_allen_cahn.get_config("tiny,uniform")
    config.train.iterations = 10
    pinn.train_and_evaluate(config, str(tmp_path), log=lambda *a: None)
    _assert_strict_and_read_back(tmp_path, "relative_l2_per_time")
    assert _strict_json((tmp_path / "summary.json").read_text())["relative_l2"] == "nan"


def test_full_disk_while_a_study_record_is_written_leaves_no_half_record(tmp_path, monkeypatch):
    """The disk fills while summary.json (copied last) goes into the record: one line, and no
    half-copied summary is left to pass for a finished record; the run's workdir is untouched."""
    import errno
    import shutil

    from qsal_jax.experiments import study
    from qsal_jax.experiments.workdir import DiskFull, claim_workdir, write_json

    cfg = study.run_config(study.get_study("authors_tiny"), "uniform", 0)
    run = tmp_path / "scratch"
    claim_workdir(str(run), cfg)
    np.savez(run / "test_errors.npz", one_step=np.ones(4), lam=np.zeros((4, 2)))
    (run / "metrics.jsonl").write_text('{"step": 3, "test_mean": 0.5}\n')
    write_json(str(run / "summary.json"), {"mean": 0.5})
    record = tmp_path / "records" / "uniform_s0"
    copy = shutil.copyfile

    def full_at_summary(src, dst):
        if os.path.basename(dst) != "summary.json":
            return copy(src, dst)
        Path(dst).write_text('{"me')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_at_summary)
    with pytest.raises(DiskFull, match=rf"^no space left on device while writing the record {record}; the run in "
                                       rf"{run} is intact; free space there and run the same command to write the "
                                       r"record$"):
        study.write_record(str(run), str(record))
    assert not (record / "summary.json").exists() and not study.has_record(str(record), cfg)
    assert read_summary(run) == {"mean": 0.5}


def read_summary(workdir):
    from qsal_jax.experiments.workdir import read_json

    return read_json(str(workdir / "summary.json"))


# ---------------------------------------- what metrics.jsonl may hold after a crash, or damage
# (id, bytes on disk, steps read back, or the line MetricLogDamaged names)
METRIC_FILES = [
    ("whole", b'{"step": 1}\n{"step": 2}\n', [1, 2]),
    ("partial_last_record", b'{"step": 1}\n{"step": 2, "train_lo', [1]),
    ("zeros_after_a_crash", b'{"step": 1}\n' + b"\0" * 64, [1]),
    ("zeros_then_a_partial_record", b'{"step": 1}\n\0\0\0{"step": 2', [1]),
    ("utf8_cut_inside_a_character", b'{"step": 1}\n{"step": 2, "label": "\xc3', [1]),
    ("blank_lines", b'{"step": 1}\n\n\n{"step": 2}\n', [1, 2]),
    ("crlf_line_ends", b'{"step": 1}\r\n{"step": 2}\r\n', [1, 2]),
    ("last_record_without_newline", b'{"step": 1}\n{"step": 2}', [1, 2]),
    ("nan_and_inf_as_written_before", b'{"step": 1, "loss": NaN, "max": Infinity}\n', [1]),
    ("empty_file", b"", []),
    ("garbage_mid_file", b'{"step": 1}\nnot json\n{"step": 3}\n', 2),
    ("cut_record_mid_file", b'{"step": 1}\n{"step": 2, "tr\n{"step": 3}\n', 2),
    ("list_mid_file", b'{"step": 1}\n[1, 2]\n{"step": 3}\n', 2),
    ("number_mid_file", b'{"step": 1}\n42\n{"step": 3}\n', 2),
    ("binary_lines", b"\x00\x01\xff\xfebinary\n\x13\x37\n", 1),
    ("binary_blob", b"\x7fELF\x02\x01\x01\xff\xfe", 1),
    ("binary_after_records", b'{"step": 1}\n\x89PNG\r\n\x1a\n', 2),
    ("latin1_mid_file", b'{"step": 1}\n{"label": "caf\xe9"}\n{"step": 3}\n', 2),
]


@pytest.mark.parametrize("case_id, data, expected", METRIC_FILES, ids=[c[0] for c in METRIC_FILES])
def test_metric_log_after_a_crash_or_damage(tmp_path, case_id, data, expected):
    from qsal_jax.experiments.workdir import MetricLog, MetricLogDamaged

    path = tmp_path / "metrics.jsonl"
    path.write_bytes(data)
    log = MetricLog(str(path))
    if isinstance(expected, int):
        with pytest.raises(MetricLogDamaged, match=rf"metrics.jsonl: line {expected} is not a JSON record \(.+\); "
                                                   r"fix or delete that line$"):
            log.read()
        assert path.read_bytes() == data
        return
    assert [r["step"] for r in log.read()] == expected
    log.write([{"step": 9, "loss": math.inf}])  # a resumed run appends after what it kept
    assert [r["step"] for r in log.read()] == expected + [9] and log.read()[-1]["loss"] == math.inf
    new = path.read_text().splitlines()[-1]
    assert _strict_json(new) == {"step": 9, "loss": "inf"}


# ------------------------------------------------------------- strict JSON of what a run returns
NON_FINITE = [
    ("python_inf", math.inf, "inf"),
    ("python_minus_inf", -math.inf, "-inf"),
    ("python_nan", math.nan, "nan"),
    ("numpy_float32_inf", np.float32("inf"), "inf"),
    ("numpy_float64_nan", np.float64("nan"), "nan"),
    ("numpy_array", np.array([1.0, np.inf, -np.inf]), [1.0, "inf", "-inf"]),
    ("jax_scalar", jnp.asarray(jnp.inf), "inf"),
    ("nested", {"a": [{"b": (math.nan, 2)}]}, {"a": [{"b": ["nan", 2]}]}),
    ("finite_stays", 0.25, 0.25),
    ("string_stays", "inference", "inference"),
]


@pytest.mark.parametrize("case_id, value, written", NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_non_finite_numbers_are_strict_json_and_read_back(tmp_path, case_id, value, written):
    from qsal_jax.experiments.workdir import read_json, write_json

    path = tmp_path / "summary.json"
    write_json(str(path), {"x": value})
    assert _strict_json(path.read_text())["x"] == written
    back = read_json(str(path))["x"]
    expected = np.asarray(value, dtype=float) if not isinstance(value, (str, dict)) else value
    if isinstance(value, dict):
        assert math.isnan(back["a"][0]["b"][0]) and back["a"][0]["b"][1] == 2
    elif isinstance(value, str):
        assert back == value
    else:
        np.testing.assert_array_equal(np.asarray(back, float), expected)


@pytest.mark.parametrize("damage", [b'{"mean": 0.', b"\x00\xff", b"[1, 2]"], ids=["cut", "binary", "a_list"])
def test_a_damaged_summary_of_a_run_without_checkpoints_is_made_again(tmp_path, damage):
    """Toy and PINN runs reuse a finished run's summary; a damaged one is said so and rerun."""
    from qsal_jax.experiments.workdir import start_or_reuse

    assert start_or_reuse(str(tmp_path), {"seed": 0}, log=lambda *a: None) is None
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "summary.json").write_bytes(damage)
    lines = []
    assert start_or_reuse(str(tmp_path), {"seed": 0}, log=lines.append) is None
    assert lines == [f"warning: {tmp_path / 'summary.json'} is damaged; running again to write it"]
    assert not (tmp_path / "metrics.jsonl").exists()  # the rerun starts its records afresh
