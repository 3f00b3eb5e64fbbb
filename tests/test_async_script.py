"""scripts/train_async.py with configs/async_burgers.py:tiny, as a user runs it: the budget is
spent through a process pool of external solver programs, a SIGKILLed run resumes from its
checkpoint, a finished one is left as it is, and a bad config is a one-line error."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir, arg="tiny"):
    return [sys.executable, os.path.join(ROOT, "scripts", "train_async.py"),
            f"--config={os.path.join(ROOT, 'configs', 'async_burgers.py')}:{arg}", f"--workdir={workdir}"]


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu")


@pytest.mark.slow
def test_async_script_runs_resumes_and_keeps_a_finished_run(tmp_path):
    workdir = str(tmp_path / "run")
    proc = subprocess.Popen(_command(workdir), env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = os.path.join(workdir, "checkpoints")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.isdir(ckpt) and any(name.isdigit() for name in os.listdir(ckpt)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    out = subprocess.run(_command(workdir), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    if killed:  # (a run that finished before the first checkpoint could be seen is not resumed)
        assert "resumed from checkpoint" in out.stderr
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert summary["num_completed"] == 8 and summary["stopped_early"] is None and summary["faults/crash"] == 0
    assert "8 simulations completed" in out.stdout

    again = subprocess.run(_command(workdir), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resumed" not in again.stderr
    assert json.load(open(os.path.join(workdir, "summary.json"))) == summary


def test_async_script_names_a_bad_config_argument(tmp_path):
    out = subprocess.run(_command(str(tmp_path / "run"), "tiny,unifrom"), env=_env(), cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0 and last.startswith("error:") and "unifrom" in last and "Traceback" not in out.stderr
