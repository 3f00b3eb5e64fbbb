"""SIGKILL a real training process at several points; the same command then finishes with
the numbers of an uninterrupted run (bit-identical on the CPU)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "online_1d.py") + ":tiny"


def _command(workdir):
    return [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--config={CONFIG}", f"--workdir={workdir}"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["XLA_FLAGS"] = ""  # one device, as a user's run
    return env


def _run(workdir):
    subprocess.run(_command(workdir), check=True, env=_env(), cwd=ROOT, capture_output=True, timeout=600)
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def _kill_when(workdir, predicate, timeout=300):
    """Start the run, SIGKILL it as soon as ``predicate(workdir)`` holds (or it ends)."""
    proc = subprocess.Popen(_command(workdir), env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        if predicate(workdir):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    return proc.returncode


def _checkpoints(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(x) for x in os.listdir(d) if x.isdigit()) if os.path.isdir(d) else []


def _lines(workdir):
    p = os.path.join(workdir, "metrics.jsonl")
    return sum(1 for _ in open(p)) if os.path.exists(p) else 0


KILL_POINTS = {
    "while_compiling": lambda w: os.path.exists(os.path.join(w, "config.json")),
    "after_first_sync": lambda w: _lines(w) >= 3,
    "during_checkpoint_write": lambda w: any(".orbax-checkpoint-tmp" in x for x in os.listdir(os.path.join(w, "checkpoints"))) if os.path.isdir(os.path.join(w, "checkpoints")) else False,
    "after_first_checkpoint": lambda w: len(_checkpoints(w)) >= 1,
}


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_gives_uninterrupted_numbers(tmp_path):
    reference = _run(str(tmp_path / "reference"))
    for name, predicate in KILL_POINTS.items():
        workdir = str(tmp_path / name)
        _kill_when(workdir, predicate)
        resumed = _run(workdir)
        for key in ("one_step_nrmse", "rollout_nrmse", "simulations", "rejected_simulations", "trained_samples"):
            assert resumed[key] == reference[key], (name, key)
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            steps = [json.loads(line)["step"] for line in f]
        assert steps == sorted(set(steps)), f"{name}: metrics.jsonl has duplicated or missing steps"
