"""A multi-host run on this machine: 2 processes on localhost (coordinator on 127.0.0.1), 2
simulated CPU devices each, running scripts/train.py as a user would launch it on 2 hosts. Its
result must be the 1-process, 4-device run's: the same mesh, the same program, so the same
numbers up to float32 reduction order; only process 0 writes the run's files."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [f"--config={os.path.join(ROOT, 'configs', 'online_1d.py')}:tiny,uniform", "--set=online.shard=True",
        "--compilation_cache=off"]


def _env(devices: int, **extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(workdir):
    return [sys.executable, os.path.join(ROOT, "scripts", "train.py"), *ARGS, f"--workdir={workdir}"]


def _two_processes(workdir) -> list[subprocess.CompletedProcess]:
    port = _free_port()
    procs = [subprocess.Popen(_train(workdir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                                       JAX_PROCESS_ID=str(i)))
             for i in range(2)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    for i, r in enumerate(out):
        assert r.returncode == 0, f"process {i}: {r.stderr[-2000:]}"
    return out


def _records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _summary(workdir):
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


@pytest.mark.slow
def test_two_processes_match_one_process_with_four_devices(tmp_path):
    single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
    subprocess.run(_train(single), cwd=ROOT, env=_env(4), check=True, capture_output=True, timeout=600)
    first, second = _two_processes(multi)

    a, b = _summary(single), _summary(multi)
    for key in ("simulations", "rejected_simulations", "trained_samples"):
        assert a[key] == b[key], key
    for metric in a["metrics"]:
        for n, v in a[metric].items():
            assert b[metric][n] == pytest.approx(v, rel=1e-5), (metric, n)
    ra, rb = _records(single), _records(multi)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    np.testing.assert_allclose([r["train_loss"] for r in rb], [r["train_loss"] for r in ra], rtol=1e-5)
    for name in sorted(os.listdir(os.path.join(single, "samples"))):  # λ of every launch, gathered over processes
        np.testing.assert_array_equal(np.load(os.path.join(multi, "samples", name)),
                                      np.load(os.path.join(single, "samples", name)))
    # Only process 0 logs; both wrote their checkpoint shards into one set of steps.
    assert "score set (16)" in first.stdout and "steps/s" in first.stdout
    assert "steps/s" not in second.stdout and "score set" not in second.stdout
    assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == sorted(os.listdir(os.path.join(single, "checkpoints")))

    # The same 2-process command again resumes from the collective checkpoint and ends the same.
    again, _ = _two_processes(multi)
    assert "resumed from checkpoint at online step 6" in again.stdout
    assert _summary(multi)["one_step_nrmse"] == b["one_step_nrmse"]
