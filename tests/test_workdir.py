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


def _strict(text):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_metric_log_writes_non_finite_numbers_as_strings_and_reads_them_back(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = wd.MetricLog(str(path))
    log.write([{"step": 1, "loss": math.nan, "grad": np.float32("inf"), "ok": np.float64(2.0),
                "nested": {"errs": [1.0, -math.inf, (math.nan, 3)]}, "tag": "a"}])
    assert _strict(path.read_text()) == {"step": 1, "loss": "nan", "grad": "inf", "ok": 2.0,
                                         "nested": {"errs": [1.0, "-inf", ["nan", 3]]}, "tag": "a"}
    (r,) = log.read()
    assert math.isnan(r["loss"]) and r["grad"] == math.inf and r["ok"] == 2.0 and r["tag"] == "a"
    assert r["nested"]["errs"][:2] == [1.0, -math.inf] and math.isnan(r["nested"]["errs"][2][0])
    with open(path, "a") as f:
        f.write('{"step": 2, "loss": null}\n')  # written before the strings: null was a non-finite number
    assert math.isnan(log.read()[1]["loss"])


def test_json_files_are_strict_and_keep_inf_apart_from_nan(tmp_path):
    path = str(tmp_path / "summary.json")
    summary = {"rollout_nrmse": {"mean": np.float64("inf"), "p95": math.inf, "std": 0.5}, "unevenness": math.nan,
               "scored_member": None, "label": "uniform"}
    wd.write_json(path, summary, indent=1)
    assert _strict(open(path).read())["rollout_nrmse"] == {"mean": "inf", "p95": "inf", "std": 0.5}
    back = wd.read_json(path)
    assert back["rollout_nrmse"] == {"mean": math.inf, "p95": math.inf, "std": 0.5}
    assert math.isnan(back["unevenness"]) and back["scored_member"] is None and back["label"] == "uniform"
    assert os.listdir(tmp_path) == ["summary.json"]  # written through a temporary file, atomically
    with open(path, "w") as f:
        f.write('{"max": Infinity, "p95": NaN}')  # a summary written before: still read
    old = wd.read_json(path)
    assert old["max"] == math.inf and math.isnan(old["p95"])


def test_metric_records_are_on_disk_when_write_returns(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    log = wd.MetricLog(str(tmp_path / "metrics.jsonl"))
    log.write([{"step": 1}])
    assert synced == [str(tmp_path / "metrics.jsonl"), str(tmp_path)]  # the new file's directory entry too
    synced.clear()
    log.write([{"step": 2}])
    assert synced == [str(tmp_path / "metrics.jsonl")]


def test_missing_metric_records_are_named(tmp_path):
    log = wd.MetricLog(str(tmp_path / "metrics.jsonl"))
    log.write([{"step": s} for s in (1, 2, 4, 5, 8)])
    assert log.missing_steps(8) == [3, 6, 7] and log.missing_steps(2) == []
    assert wd.steps_text([3, 6, 7]) == "3, 6-7" and wd.steps_text([1, 2, 3, 5]) == "1-3, 5"


def test_a_damaged_metric_log_is_one_line_workdir_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n\xff\xfe\x00binary\n{"step": 3}\n')
    with pytest.raises(wd.WorkdirError, match=r"metrics.jsonl: line 2 is not a JSON record \(UnicodeDecodeError\)"):
        wd.MetricLog(str(path)).truncate(3)
    path.write_text('{"step": 1}\n[1, 2]\n{"step": 3}\n')
    with pytest.raises(wd.MetricLogDamaged, match="line 2"):
        wd.MetricLog(str(path)).read()


@pytest.mark.parametrize("damage", [b'{"seed": 0, "mod', b"\x89PNG\r\n\x1a\n\x00\x00", b"[]", b""])
def test_a_damaged_config_json_is_called_damaged_and_overwrite_says_what_it_deletes(tmp_path, damage):
    wd.claim_workdir(str(tmp_path), {"seed": 0})
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)
    (tmp_path / "checkpoints" / "6").mkdir()
    (tmp_path / "config.json").write_bytes(damage)
    with pytest.raises(wd.WorkdirDamaged, match=rf"^workdir {tmp_path}: config.json is damaged \(.+\), so its run "
                                                r"\(checkpoints of steps 3, 6\) cannot be identified; .*--overwrite"):
        wd.claim_workdir(str(tmp_path), {"seed": 0})
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "6"]
    lines = []
    wd.claim_workdir(str(tmp_path), {"seed": 0}, overwrite=True, log=lines.append)
    (line,) = lines
    assert line.startswith(f"overwrite: deleting the run in {tmp_path} (config.json damaged: ") and \
        line.endswith("; checkpoints of steps 3, 6)") and not (tmp_path / "checkpoints").exists()


def test_overwrite_of_another_config_says_which_checkpoints_it_deletes(tmp_path):
    wd.claim_workdir(str(tmp_path), {"seed": 0})
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)
    with pytest.raises(wd.WorkdirMismatch, match=r"seed: 0 != 1\); .*--overwrite to delete that run \(checkpoints of steps 3\)"):
        wd.claim_workdir(str(tmp_path), {"seed": 1})
    lines = []
    wd.claim_workdir(str(tmp_path), {"seed": 1}, overwrite=True, log=lines.append)
    assert lines == [f"overwrite: deleting the run in {tmp_path} (seed: 0 != 1; checkpoints of steps 3)"]
    wd.claim_workdir(str(tmp_path), {"seed": 1}, overwrite=True, log=lines.append)  # the same config: nothing goes
    assert len(lines) == 1


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
