"""Work beside the loop: the ordered lane, checkpoint snapshots that outlive donation, and a run
whose evaluations, records, checkpoints and figures are made beside it giving the same files."""

import json
import os
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.experiments import cache, run_experiment
from qsal_jax.reporting import plots
from qsal_jax.experiments.config_args import load_config
from qsal_jax.experiments.side_work import SideWork
from qsal_jax.training import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("background", [True, False])
def test_jobs_run_in_submission_order_and_failures_reach_the_caller(background):
    order, gate = [], threading.Event()
    with SideWork(background=background) as side:
        if background:
            side.submit("wait", gate.wait)  # holds the lane until every job below is queued
        for i in range(5):
            side.submit("append", order.append, i)
        gate.set()
        side.drain()
        assert order == list(range(5))
        with pytest.raises(ZeroDivisionError):
            side.submit("fail", lambda: 1 / 0)
            side.drain()
    assert set(side.busy_s) >= {"append", "fail"}


def test_a_failed_job_is_raised_at_the_next_check():
    with SideWork() as side:
        side.submit("fail", lambda: 1 / 0).exception()  # wait until it has failed
        with pytest.raises(ZeroDivisionError):
            side.check()


def test_snapshot_outlives_donation_of_the_state(tmp_path):
    state = {"w": jnp.arange(1024.0), "key": jax.random.key(3)}
    snap = checkpoint.snapshot(state, config_hash="h")
    expected = np.arange(1024.0)
    # The state's buffers are donated and overwritten before the snapshot is written.
    state = jax.jit(lambda s: {"w": s["w"] * 0 - 1, "key": s["key"]}, donate_argnums=0)(state)
    with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.write(7, snap)
    like = {"w": jnp.zeros(1024), "key": jax.random.key(0)}
    restored, step = checkpoint.restore_latest(tmp_path / "ckpt", like, config_hash="h")
    assert step == 7
    np.testing.assert_array_equal(np.asarray(restored["w"]), expected)
    assert np.array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(jax.random.key(3)))


def test_side_work_and_child_figures_leave_the_same_run(tmp_path, monkeypatch):
    """The default path (evaluations and checkpoints beside the loop, figures in a child
    process) against everything in order in one thread: same summary, metrics and figures."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    config = load_config(os.path.join(ROOT, "configs", "online_1d.py:uniform,tiny"))
    with config.unlocked():
        config.plots = True
    beside = run_experiment(config, str(tmp_path / "beside"), log=lambda *a: None, plots_in_child=True)
    done = plots.wait_for_figures(str(tmp_path / "beside"), timeout=120)
    assert sorted(done["figures"]) == ["rollouts.png", "sampling_density.png", "test_error_heatmap.png",
                                       "training_curve.png"]
    assert all((tmp_path / "beside" / f).stat().st_size > 0 for f in done["figures"])
    import qsal_jax.experiments.online as online

    monkeypatch.setattr(online, "SideWork", lambda background: SideWork(background=False))
    inline = run_experiment(config, str(tmp_path / "inline"), log=lambda *a: None)
    for key in ("one_step_nrmse", "rollout_nrmse", "simulations", "trained_samples"):
        assert beside[key] == inline[key], key
    read = lambda d: [json.loads(line) for line in open(tmp_path / d / "metrics.jsonl")]
    assert read("beside") == read("inline")
    assert all((tmp_path / "inline" / f).exists() for f in done["figures"])
    assert sorted(os.listdir(tmp_path / "beside" / "checkpoints")) == sorted(os.listdir(tmp_path / "inline" / "checkpoints"))


def test_figures_are_redrawn_from_the_files_and_a_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    config = load_config(os.path.join(ROOT, "configs", "online_1d.py:uniform,tiny"))
    with config.unlocked():
        config.plots = True
    run_experiment(config, str(tmp_path / "run"), log=lambda *a: None)
    os.remove(tmp_path / "run" / "training_curve.png")
    subprocess.run([sys.executable, "-m", "qsal_jax.reporting.plots", str(tmp_path / "run")], check=True,
                   env=dict(os.environ, MPLBACKEND="Agg"))
    assert (tmp_path / "run" / "training_curve.png").exists()
    os.remove(tmp_path / "run" / "plot_inputs.json")
    plots.draw_in_child(str(tmp_path / "run")).wait(timeout=120)
    with pytest.raises(RuntimeError, match="plot_inputs.json"):
        plots.wait_for_figures(str(tmp_path / "run"), timeout=5)
