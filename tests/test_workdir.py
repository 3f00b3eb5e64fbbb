"""Workdir bookkeeping: one run per workdir (flock), clear errors for unusable workdirs,
overwrite that spares the user's files, metric logs that survive a write cut short, and the
config fingerprint that checkpoints carry."""

import json
import math
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from qsal_jax.experiments import workdir as wd

# The lock holder runs workdir.py alone (stdlib only): no jax import, so it starts in well under a second.
_HOLDER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("workdir", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
lock = m.lock_workdir(sys.argv[2])
print("locked", flush=True)
sys.stdin.read()
"""


def _hold_lock(workdir):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, wd.__file__, str(workdir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_workdir_is_refused_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        with pytest.raises(wd.WorkdirInUse, match=rf"^workdir {run} in use by pid {holder.pid}$"):
            wd.lock_workdir(run)
        assert isinstance(wd.WorkdirInUse("x"), RuntimeError)
    finally:
        holder.kill()  # the kernel drops the lock however its holder dies
        holder.wait()
    with wd.lock_workdir(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())
    holder = _hold_lock(run)  # released on exit from the with block: another process can take it
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    lock = wd.lock_workdir(tmp_path)
    with pytest.raises(wd.WorkdirInUse, match=f"in use by pid {os.getpid()}"):
        wd.lock_workdir(tmp_path)
    lock.release()
    lock.release()  # idempotent
    wd.lock_workdir(tmp_path).release()


def test_unusable_workdirs_give_one_line_errors(tmp_path, monkeypatch):
    config = {"seed": 0}
    with pytest.raises(wd.WorkdirError, match="workdir '' is not a directory name"):
        wd.claim_workdir("", config)
    afile = tmp_path / "afile"
    afile.write_text("not a run")
    with pytest.raises(wd.WorkdirError, match=rf"^workdir {afile} is an existing file, not a directory$"):
        wd.claim_workdir(str(afile), config)
    with pytest.raises(wd.WorkdirError, match=rf"^workdir {afile}/sub cannot be created"):
        wd.claim_workdir(str(afile / "sub"), config)
    with pytest.raises(wd.WorkdirError, match="is an existing file"):
        wd.lock_workdir(afile)
    # Permission bits do not stop root (the test may run as root): simulate a read-only directory.
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(wd.WorkdirError, match=rf"^workdir {tmp_path} is not writable$"):
        wd.claim_workdir(str(tmp_path), config)


def test_overwrite_deletes_only_what_a_run_writes(tmp_path):
    wd.claim_workdir(str(tmp_path), {"seed": 0})
    run_files = ["metrics.jsonl", "summary.json", "test_errors.npz", "training_curve.png", "report.md"]
    user_files = ["notes.txt", "my_data.csv", "summary.json.bak", ".lock"]
    for name in run_files + user_files:
        (tmp_path / name).write_text("x")
    for name in ("checkpoints/3/state", "samples", "tb", "my_inputs/checkpoints"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "f").write_text("x")
    with pytest.raises(wd.WorkdirMismatch, match="seed: 0 != 1"):
        wd.claim_workdir(str(tmp_path), {"seed": 1})
    assert isinstance(wd.WorkdirMismatch("x"), wd.WorkdirError)
    wd.claim_workdir(str(tmp_path), {"seed": 1}, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == sorted(user_files + ["config.json", "my_inputs"])
    assert (tmp_path / "my_inputs" / "checkpoints" / "f").exists()
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 1}


def test_metric_log_drops_a_partial_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = wd.MetricLog(str(path))
    log.write([{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}])
    with open(path, "a") as f:
        f.write('{"step": 3, "lo')  # killed mid-write
    assert [r["step"] for r in log.read()] == [1, 2]
    log.write([{"step": 3, "loss": 0.125}])  # the partial line is cut, not glued to
    assert [r["step"] for r in log.read()] == [1, 2, 3]
    with open(path, "a") as f:
        f.write('{"step": 4, "loss": 0.0625}')  # complete, only the newline is missing
    log.write([{"step": 5}])
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4, 5]
    with open(path, "a") as f:
        f.write('{"step": 6, "lo')
    log.truncate(2)
    assert path.read_text() == '{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.25}\n'
    # Damage in the middle is not a partial write: say where it is.
    path.write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a JSON record"):
        log.read()
    with pytest.raises(ValueError, match="line 2"):
        log.truncate(5)


def test_metric_log_writes_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = wd.MetricLog(str(path))
    log.write([{"step": 1, "loss": math.nan, "grad": np.float32("inf"), "ok": np.float64(2.0),
                "nested": {"errs": [1.0, -math.inf, (math.nan, 3)]}, "tag": "a"}])
    strict = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert strict == {"step": 1, "loss": None, "grad": None, "ok": 2.0, "nested": {"errs": [1.0, None, [None, 3]]}, "tag": "a"}
    (r,) = log.read()
    assert math.isnan(r["loss"]) and math.isnan(r["grad"]) and r["ok"] == 2.0
    assert r["nested"]["errs"][0] == 1.0 and math.isnan(r["nested"]["errs"][1])


def test_config_hash_is_a_short_stable_fingerprint():
    a = ml_collections.ConfigDict({"seed": 0, "model": {"width": 8, "name": "fno"}})
    b = ml_collections.ConfigDict({"model": {"name": "fno", "width": 8}, "seed": 0})
    h = wd.config_hash(a)
    assert len(h) == 16 and int(h, 16) >= 0
    assert h == wd.config_hash(b) == wd.config_hash(a.to_dict())  # key order and container do not matter
    b.model.width = 16
    assert wd.config_hash(b) != h
    # Pinned: a change to the hashing would make every existing checkpoint refuse to resume.
    assert h == "e050de6a07c45129"
