"""Hostile input through ``scripts/train.py`` as a user's shell would give it.

Every case must end with exit code ≠ 0, a last stderr line ``error: …`` that names the bad field
or the cause, no traceback anywhere, and a workdir that a correct run can still use (nothing of
a previous run lost). Cases run as subprocesses, a few at a time; each fails during validation,
before anything is compiled.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
CONFIG = os.path.join(ROOT, "configs", "online_1d.py")

# (id, config argument after the colon, overrides, words the last stderr line must contain)
OVERRIDES = [
    ("seed_negative", "tiny", ["seed=-1"], "seed"),
    ("problem_unknown", "tiny", ["problem.name=navier"], "problem.name"),
    ("problem_empty", "tiny", ["problem.name="], "problem.name"),
    ("num_points_tiny", "tiny", ["problem.kwargs.num_points=4"], "num_points"),
    ("num_steps_zero", "tiny", ["problem.kwargs.num_steps=0"], "num_steps"),
    ("num_steps_negative", "tiny", ["problem.kwargs.num_steps=-3"], "num_steps"),
    ("model_unknown", "tiny", ["model.name=transformer"], "model.name"),
    ("model_2d_on_1d", "tiny", ["model.name=fno2d_tiny"], "model.name"),
    ("unet_2d_on_1d", "tiny", ["model.name=unet2d_tiny"], "model.name"),
    ("vit_2d_on_1d", "tiny", ["model.name=vit2d_tiny"], "model.name"),
    ("ensemble_zero", "tiny", ["model.ensemble_size=0"], "ensemble_size"),
    ("ensemble_million", "tiny", ["model.ensemble_size=1000000"], "model.ensemble_size"),
    ("strategy_unknown", "tiny", ["strategy.name=bread"], "strategy.name"),
    ("strategy_rad_online", "tiny", ["strategy.name=rad", "strategy.settings={}"], "strategy.name"),
    ("strategy_r3_online", "tiny", ["strategy.name=r3", "strategy.settings={}"], "strategy.name"),
    ("signal_unknown", "tiny", ["strategy.signal=gradient"], "strategy.signal"),
    ("signal_disagreement_single", "tiny", ["strategy.signal=disagreement"], "ensemble_size"),
    ("signal_metric_unknown", "tiny", ["strategy.signal_metric=l1"], "signal_metric"),
    ("sigma_zero", "tiny", ["strategy.settings.sigma=0.0"], "sigma"),
    ("sigma_negative", "tiny", ["strategy.settings.sigma=-0.1"], "sigma"),
    ("alpha0_negative", "tiny", ["strategy.settings.alpha0=-0.1"], "alpha0"),
    ("alpha0_above_max", "tiny", ["strategy.settings.alpha0=0.9"], "alpha0"),
    ("alpha1_negative", "tiny", ["strategy.settings.alpha1=-0.001"], "alpha1"),
    ("alpha_max_above_one", "tiny", ["strategy.settings.alpha_max=1.5"], "alpha_max"),
    ("alpha_max_inf", "tiny", ["strategy.settings.alpha_max=inf"], "alpha_max"),
    ("population_zero", "tiny", ["strategy.settings.population=0"], "population"),
    ("min_rows_negative", "tiny", ["@strategy.settings.min_rows=-1"], "min_rows"),
    ("setting_typo", "tiny", ["strategy.settings.sigmaa=0.1"], "sigmaa"),
    ("handback_alpha_above_one", "tiny", ["@strategy.settings.handback_alpha=2.0"], "handback_alpha"),
    ("batch_zero", "tiny", ["train.batch_size=0"], "batch_size"),
    ("batch_above_capacity", "tiny", ["train.batch_size=4096"], "buffer.capacity"),
    ("loss_unknown", "tiny", ["train.loss=l1"], "train.loss"),
    ("lr_zero", "tiny", ["train.optimizer.learning_rate=0.0"], "learning_rate"),
    ("lr_negative", "tiny", ["train.optimizer.learning_rate=-0.001"], "learning_rate"),
    ("lr_nan", "tiny", ["train.optimizer.learning_rate=nan"], "learning_rate"),
    ("warmup_negative", "tiny", ["train.optimizer.warmup_steps=-5"], "warmup_steps"),
    ("warmup_beyond_training", "tiny", ["train.optimizer.warmup_steps=100000"], "warmup_steps"),
    ("weight_decay_negative", "tiny", ["train.optimizer.weight_decay=-1.0"], "weight_decay"),
    ("grad_clip_negative", "tiny", ["train.optimizer.grad_clip_norm=-1.0"], "grad_clip_norm"),
    ("importance_clip_below_one", "tiny", ["@train.importance_clip=0.5"], "importance_clip"),
    ("importance_clip_uniform", "tiny,uniform", ["@train.importance_clip=10.0"], "importance_clip"),
    ("online_steps_zero", "tiny", ["online.num_steps=0"], "online.num_steps"),
    # Settings only the engine checks (against each other): refused before the workdir is touched.
    ("clients_above_capacity", "tiny", ["online.clients_per_step=100"], "online.clients_per_step"),
    ("clients_above_capacity_by_set", "tiny", ["@online.clients_per_step=100"], "online.clients_per_step"),
    ("clients_zero", "tiny", ["online.clients_per_step=0"], "clients_per_step"),
    ("train_steps_negative", "tiny", ["online.train_steps_per_step=-1"], "train_steps_per_step"),
    ("sync_zero", "tiny", ["online.steps_per_sync=0"], "steps_per_sync"),
    ("checkpoint_zero", "tiny", ["online.checkpoint_every=0"], "checkpoint_every"),
    ("checkpoint_not_multiple", "tiny", ["online.checkpoint_every=4"], "checkpoint_every"),
    ("eval_every_not_multiple", "tiny", ["eval.every=4"], "eval.every"),
    ("eval_every_negative", "tiny", ["eval.every=-1"], "eval.every"),
    ("shard_word", "tiny", ["@online.shard=sometimes"], "shard"),
    ("capacity_zero", "tiny", ["buffer.capacity=0"], "capacity"),
    ("capacity_below_batch", "tiny", ["buffer.capacity=4"], "buffer.capacity"),
    ("capacity_huge", "tiny", ["buffer.capacity=1000000000"], "buffer.capacity"),
    ("policy_unknown", "tiny", ["buffer.policy=lifo"], "buffer.policy"),
    ("seen_threshold_zero", "tiny", ["buffer.seen_threshold=0"], "seen_threshold"),
    ("watermark_above_capacity", "tiny", ["buffer.watermark=1000000"], "watermark"),
    ("grid_size_negative", "tiny", ["eval.grid_size=-1"], "grid_size"),
    ("score_size_zero", "tiny", ["eval.score_size=0"], "score_size"),
    ("score_size_negative", "tiny", ["eval.score_size=-8"], "score_size"),
    ("score_size_huge", "tiny", ["eval.score_size=1000000000"], "eval.score_size"),
    ("score_draw_unknown", "tiny", ["eval.score_draw=grid"], "score_draw"),
    ("grid_axes_one", "tiny", ["eval.grid_axes=('A0',)"], "grid_axes"),
    ("grid_axes_unknown", "tiny", ["eval.grid_axes=('A0','B7')"], "grid_axes"),
    ("watermark_negative", "tiny", ["buffer.watermark=-1"], "watermark"),
    ("eval_seed_negative", "tiny", ["eval.seed=-1"], "eval.seed"),
    ("sbal_single_member", "tiny,sbal", ["model.ensemble_size=1"], "ensemble_size"),
    ("sbal_pool_zero", "tiny,sbal", ["strategy.settings.pool_size=0"], "pool_size"),
    ("ogas_foreign_setting", "tiny,ogas", ["@strategy.settings.sigma=0.1"], "sigma"),
    ("ogas_guidance_negative", "tiny,ogas", ["@strategy.settings.guidance=-1.0"], "guidance"),
    # Types an override cannot convert: absl names the flag.
    ("plots_word", "tiny", ["plots=maybe"], "plots"),
    ("seed_float", "tiny", ["seed=1.5"], "config.seed"),
    ("seed_word", "tiny", ["seed=zero"], "config.seed"),
    ("num_points_float", "tiny", ["problem.kwargs.num_points=100.5"], "num_points"),
    ("residual_word", "tiny", ["model.residual=yes"], "model.residual"),
    ("bf16_number", "tiny", ["train.bf16=2"], "train.bf16"),
    ("capacity_float", "tiny", ["buffer.capacity=1e9"], "buffer.capacity"),
    ("ensemble_float", "tiny", ["model.ensemble_size=1e6"], "model.ensemble_size"),
    # Keys the config does not have.
    ("unknown_top_key", "tiny", ["nonexistent=1"], "nonexistent"),
    ("unknown_online_key", "tiny", ["online.checkpoint_evry=5"], "checkpoint_evry"),
    ("unknown_optimizer_key", "tiny", ["train.optimizer.lr=0.1"], "lr"),
    ("unknown_nested_parent", "tiny", ["solver.dt=0.1"], "solver"),
    ("unknown_setting_listed_by_set", "tiny", ["strategy.settings.bandwidth=0.1"], "--set"),
    ("set_unknown_field", "tiny", ["@train.optimiser.lr=0.1"], "optimiser"),
    ("set_without_value", "tiny", ["@train.loss"], "key=value"),
    # --set values of the wrong type, and lists (split at their commas by absl, joined again).
    ("set_float_for_int", "tiny", ["@online.num_steps=6.0"], "online.num_steps"),
    ("set_word_for_int", "tiny", ["@online.num_steps=six"], "online.num_steps"),
    ("set_list_for_int", "tiny", ["@online.num_steps=[1,2]"], "online.num_steps"),
    ("set_list_reaches_its_field", "tiny", ["@eval.grid_axes=['A0','B7']"], "grid_axes"),
    ("set_tuple_unclosed", "tiny", ["@eval.grid_axes=('A0','A1'"], "eval.grid_axes"),
]

# Cases with other arguments: (id, argv after the script, words)
ARGUMENTS = [
    ("config_argument_typo", [f"--config={CONFIG}:unifrom"], "unifrom"),
    ("config_two_strategies", [f"--config={CONFIG}:uniform,ogas"], "uniform"),
    ("config_two_problems", [f"--config={CONFIG}:ks,ks_conservative"], "problem"),
    ("config_flag_typo", [f"--config={CONFIG}:tiny,gpuu"], "gpuu"),
    ("config_missing_file", ["--config=configs/does_not_exist.py"], "does_not_exist.py"),
    ("config_directory", ["--config=configs"], "configs"),
    ("workdir_missing", [f"--config={CONFIG}:tiny"], "workdir"),
    ("config_missing", [], "config"),
    ("unknown_flag", [f"--config={CONFIG}:tiny", "--sedd=3"], "sedd"),
]

# Config files that are broken in themselves: (id, file text, words)
BROKEN_CONFIGS = [
    ("config_without_get_config", "X = 1\n", "get_config"),
    ("config_syntax_error", "def get_config(arg=None)\n    return 1\n", "syntax"),
    ("config_raises", "def get_config(arg=None):\n    raise RuntimeError('boom')\n", "boom"),
    ("config_returns_none", "def get_config(arg=None):\n    return None\n", "ConfigDict"),
    ("config_import_error", "import not_a_module_anywhere\ndef get_config(arg=None):\n    pass\n", "not_a_module"),
    ("config_missing_section", "import ml_collections\ndef get_config(arg=None):\n"
     "    return ml_collections.ConfigDict({'seed': 0})\n", "is required"),
]

# Workdir problems: (id, how the workdir is prepared, words)
WORKDIRS = ["workdir_is_file", "workdir_read_only", "workdir_empty_string", "workdir_under_a_file",
            "workdir_other_config", "workdir_in_use", "workdir_bad_override_keeps_run"]

# A workdir of the same config whose files are damaged: (id, file, bytes, words). A damaged
# config.json is called damaged (its run cannot be identified) and the run's checkpoints stay; a
# damaged metrics.jsonl names its line. Either file is left as it was.
DAMAGED = [
    ("config_json_not_json", "config.json", b'{"seed": 0, "train": {', "config.json is damaged (not JSON"),
    ("config_json_binary", "config.json", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "config.json is damaged (not text"),
    ("config_json_a_list", "config.json", b"[1, 2, 3]", "config.json is damaged (holds a list"),
    ("config_json_empty", "config.json", b"", "config.json is damaged (not JSON"),
    ("config_json_null", "config.json", b"null", "config.json is damaged (holds a NoneType"),
    ("metrics_damaged_mid_file", "metrics.jsonl", b'{"step": 1}\n{"step": 2, "tr\n{"step": 3}\n', "line 2"),
    ("metrics_binary", "metrics.jsonl", b"\x00\x01\xff\xfebinary\n\x13\x37\n", "line 1"),
    ("metrics_binary_one_line", "metrics.jsonl", b"\x7fELF\x02\x01\x01\xff", "line 1"),
    ("metrics_list_mid_file", "metrics.jsonl", b'{"step": 1}\n[1, 2]\n{"step": 3}\n', "line 2"),
]

CASES = ([(c[0], "override") for c in OVERRIDES] + [(c[0], "argument") for c in ARGUMENTS]
         + [(c[0], "broken") for c in BROKEN_CONFIGS] + [(w, "workdir") for w in WORKDIRS]
         + [(c[0], "damaged") for c in DAMAGED])


def _prepare(case_id, kind, tmp, held):
    """Set up one case; returns (argv, cwd, words, check) where check() verifies the workdir."""
    workdir = os.path.join(tmp, "run")
    untouched = lambda: _assert_untouched(workdir)
    if kind == "override":
        _, arg, overrides, words = next(c for c in OVERRIDES if c[0] == case_id)
        # "@key=value" goes through --set (a field the config may lack), the rest as --config.key=value.
        argv = [f"--config={CONFIG}:{arg}", f"--workdir={workdir}"] + [
            f"--set={o[1:]}" if o.startswith("@") else f"--config.{o}" for o in overrides]
        return argv, tmp, words, untouched
    if kind == "argument":
        _, argv, words = next(c for c in ARGUMENTS if c[0] == case_id)
        if case_id != "workdir_missing":
            argv = argv + [f"--workdir={workdir}"]
        return argv, ROOT, words, untouched
    if kind == "broken":
        _, text, words = next(c for c in BROKEN_CONFIGS if c[0] == case_id)
        path = os.path.join(tmp, "broken_config.py")
        with open(path, "w") as f:
            f.write(text)
        return [f"--config={path}", f"--workdir={workdir}"], tmp, words, untouched
    args = [f"--config={CONFIG}:tiny"]
    nothing = lambda: None
    if kind == "damaged":
        _, name, data, words = next(c for c in DAMAGED if c[0] == case_id)
        _tiny_config_json(workdir)
        if name == "config.json":
            os.makedirs(os.path.join(workdir, "checkpoints", "3"))  # the run's checkpoint, which must stay
        with open(os.path.join(workdir, name), "wb") as f:
            f.write(data)
        return args + [f"--workdir={workdir}"], tmp, words, lambda: _assert_damaged_kept(workdir, name, data)
    if case_id == "workdir_is_file":
        open(workdir, "w").close()
        return args + [f"--workdir={workdir}"], tmp, "not a directory", nothing
    if case_id == "workdir_read_only":
        os.makedirs(workdir)
        os.chmod(workdir, stat.S_IRUSR | stat.S_IXUSR)
        if os.access(workdir, os.W_OK):  # running as root: permissions do not bind
            return None
        return args + [f"--workdir={workdir}"], tmp, "writ", nothing
    if case_id == "workdir_empty_string":
        return args + ["--workdir="], tmp, "workdir", nothing
    if case_id == "workdir_under_a_file":
        open(os.path.join(tmp, "afile"), "w").close()
        return args + [f"--workdir={tmp}/afile/run"], tmp, "afile", nothing
    before = _tiny_config_json(workdir)
    keep = lambda: _assert_config_kept(workdir, before)
    if case_id == "workdir_other_config":
        return args + [f"--workdir={workdir}", "--config.seed=3"], tmp, "seed", keep
    if case_id == "workdir_bad_override_keeps_run":
        return args + [f"--workdir={workdir}", "--config.buffer.policy=lifo"], tmp, "buffer.policy", keep
    if case_id == "workdir_in_use":
        lock = open(os.path.join(workdir, ".lock"), "a+")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(lock)  # held by this process while the case runs
        return args + [f"--workdir={workdir}"], tmp, "in use", keep
    raise AssertionError(case_id)


def _tiny_config_json(workdir):
    """A workdir claimed by the tiny config (as a run that was interrupted before its first sync)."""
    from qsal_jax.experiments.config_args import load_config
    from qsal_jax.experiments.workdir import claim_workdir

    claim_workdir(str(workdir), load_config(f"{CONFIG}:tiny"))
    with open(os.path.join(workdir, "config.json")) as f:
        return f.read()


def _assert_untouched(workdir):
    assert not os.path.exists(os.path.join(workdir, "config.json")), "a refused run claimed the workdir"
    assert not os.path.exists(os.path.join(workdir, "checkpoints")), "a refused run wrote checkpoints"


def _assert_damaged_kept(workdir, name, data):
    with open(os.path.join(workdir, name), "rb") as f:
        assert f.read() == data, f"a refused run changed {name}"
    if name == "config.json":
        assert os.path.isdir(os.path.join(workdir, "checkpoints", "3")), "a refused run deleted a checkpoint"


def _assert_config_kept(workdir, before):
    with open(os.path.join(workdir, "config.json")) as f:
        assert f.read() == before, "a refused run changed the workdir's config"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case, each in its own process running scripts/train.py (`fork_runner`: the imports
    are paid once, then one fork per case, two at a time)."""
    root = tmp_path_factory.mktemp("hostile")
    held, jobs, meta = [], [], {}
    for case_id, kind in CASES:
        tmp = root / case_id
        tmp.mkdir()
        prepared = _prepare(case_id, kind, str(tmp), held)
        if prepared is None:
            meta[case_id] = None
            continue
        argv, cwd, words, check = prepared
        jobs.append({"argv": ["--compilation_cache=off", *argv], "cwd": cwd, "out": str(tmp / "out")})
        meta[case_id] = (len(jobs) - 1, words, check)
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    try:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fork_runner.py"), TRAIN, str(root / "jobs.json"),
                        str(root / "results.json")], env=env, check=True, timeout=600)
    finally:
        for lock in held:
            lock.close()
    codes = json.loads((root / "results.json").read_text())
    out = {}
    for case_id, m in meta.items():
        if m is None:
            out[case_id] = None
            continue
        i, words, check = m
        prefix = jobs[i]["out"]
        with open(prefix + ".stderr") as f:
            stderr = f.read()
        with open(prefix + ".stdout") as f:
            stdout = f.read()
        out[case_id] = (codes[i]["returncode"], stdout, stderr, words, check)
    return out


def test_at_least_a_hundred_cases():
    assert len(CASES) >= 100, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_hostile_input_fails_in_one_line(outcomes, case_id):
    if outcomes[case_id] is None:
        pytest.skip("permissions do not bind for this user")
    returncode, stdout, stderr, words, check = outcomes[case_id]
    assert returncode != 0, f"exit 0 for {case_id}: {stdout[-500:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert lines[-1].startswith("error: "), stderr[-2000:]
    assert words.lower() in lines[-1].lower(), f"{words!r} not in: {lines[-1]}"
    check()


# ------------------------------------------------------------------ faults in the middle of a run
# A script run in a subprocess with one library call replaced (``_PATCHED``): it makes the workdir
# a run would have made by then, then meets the fault (a Ctrl-C sent to itself, a full disk).
_PATCHED = r"""
import json, os, runpy, signal, sys
import qsal_jax.experiments, qsal_jax.experiments.compare

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a suite run in the background ignores it)

def fake_run(workdir, steps, checkpoints):
    os.makedirs(os.path.join(workdir, "checkpoints"), exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write("{}")
    for c in checkpoints:
        os.makedirs(os.path.join(workdir, "checkpoints", str(c)))
    os.makedirs(os.path.join(workdir, "checkpoints", "9.orbax-checkpoint-tmp-1"))  # a save in progress
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps({"step": s}) + "\n" for s in steps)
        f.write('{"step": 9, "tra')  # cut short by the interrupt

def interrupt(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    raise AssertionError("SIGINT did not interrupt")

def train_run(config, workdir, **kwargs):
    fake_run(workdir, range(1, 8), [3, 6])
    interrupt()

def compare_runs(config, strategies, seeds, root, **kwargs):
    fake_run(os.path.join(root, "uniform_seed0"), range(1, 13), [12])
    fake_run(os.path.join(root, "uniform_seed1"), range(1, 5), [3])
    interrupt()

qsal_jax.experiments.run_experiment = train_run
qsal_jax.experiments.compare.compare = compare_runs
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def _run_patched(script, args, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", _PATCHED, script, "--compilation_cache=off", *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def _one_line(out) -> str:
    assert out.returncode != 0, out.stdout[-500:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), out.stderr[-2000:]
    return lines[-1]


def test_train_interrupted_names_step_and_checkpoint(tmp_path):
    out = _run_patched(TRAIN, [f"--config={CONFIG}:tiny", f"--workdir={tmp_path / 'run'}"], tmp_path)
    assert _one_line(out) == "error: interrupted at step 7; last checkpoint at step 6; run the same command to resume"


def test_quickstart_interrupted_names_the_run(tmp_path):
    quickstart = os.path.join(ROOT, "scripts", "quickstart.py")
    out = _run_patched(quickstart, ["--config_args=tiny", "--strategies=uniform", f"--workdir={tmp_path / 'q'}"],
                       tmp_path)
    assert _one_line(out) == ("error: uniform_seed1: interrupted at step 4; last checkpoint at step 3; "
                              "run the same command to resume")


def test_set_values_with_commas_are_joined():
    from qsal_jax.experiments.config_args import join_overrides

    assert join_overrides(["a=(1", "2)", "b=[3", " [4", "5]]", "c='x,y'", "d={'k': 1", "'j': 2}", "e=6"]) == [
        "a=(1,2)", "b=[3, [4,5]]", "c='x,y'", "d={'k': 1,'j': 2}", "e=6"]
    assert join_overrides(["c='x", "y'"]) == ["c='x,y'"]


def _unusable_dir(tmp_path, how):
    """A path that cannot be a cache directory: a file, a path under a file, a read-only directory
    (None where permissions do not bind)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    if how == "file":
        return str(afile)
    if how == "under_a_file":
        return str(afile / "cache")
    ro = tmp_path / "read_only"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return None if os.access(ro, os.W_OK) else str(ro)


@pytest.mark.parametrize("how", ["file", "under_a_file", "read_only"])
def test_unusable_cache_dirs(tmp_path, monkeypatch, how):
    """$QSAL_CACHE holds the score sets: an error naming it. The compilation cache is only a
    speed-up: one warning line and the run goes on without it."""
    from qsal_jax.experiments.cache import CacheDirError, check_cache_dir, enable_compilation_cache

    path = _unusable_dir(tmp_path, how)
    if path is None:
        pytest.skip("permissions do not bind for this user")
    monkeypatch.setenv("QSAL_CACHE", path)
    with pytest.raises(CacheDirError, match=f"QSAL_CACHE={path} .*; set QSAL_CACHE to a writable directory"):
        check_cache_dir()
    lines = []
    assert enable_compilation_cache(os.path.join(path, "xla") if how == "read_only" else path, log=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("warning: compilation cache ") and "running without it" in lines[0]


def test_train_with_qsal_cache_a_file_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu", QSAL_CACHE=str(afile))
    out = subprocess.run([sys.executable, TRAIN, f"--config={CONFIG}:tiny", f"--workdir={tmp_path / 'run'}",
                          f"--compilation_cache={afile}"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert _one_line(out) == f"error: QSAL_CACHE={afile} is a file, not a directory; set QSAL_CACHE to a writable directory"
    assert f"warning: compilation cache {afile} is a file" in out.stderr
    _assert_untouched(str(tmp_path / "run"))


@pytest.mark.parametrize("wrapped", [False, True])
def test_full_disk_during_a_checkpoint_is_one_line(tmp_path, monkeypatch, wrapped):
    """ENOSPC in the middle of orbax's save (bare, or wrapped as orbax wraps TensorStore's errors):
    one line naming the step and the intact one before it; the half-written step is removed."""
    import errno

    import numpy as np
    import orbax.checkpoint as ocp

    from qsal_jax.training.checkpoint import CheckpointError, Checkpointer

    state = {"w": np.arange(4.0, dtype=np.float32)}
    directory = tmp_path / "checkpoints"
    with Checkpointer(directory) as ckpt:
        ckpt.save(3, state)

        def full(self, step, *args, **kwargs):
            (directory / f"{step}.orbax-checkpoint-tmp-123").mkdir()  # what a save had written so far
            e = OSError(errno.ENOSPC, "No space left on device")
            if wrapped:
                try:
                    raise e
                except OSError as cause:
                    raise ValueError("Error writing local file: ...") from cause
            raise e

        monkeypatch.setattr(ocp.CheckpointManager, "save", full)
        with pytest.raises(CheckpointError) as info:
            ckpt.save(6, state)
        monkeypatch.undo()
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("no space left on device while writing checkpoint 6; checkpoint 3 is intact; ")
        assert message.endswith("run the same command to resume")
        assert sorted(p.name for p in directory.iterdir()) == ["3"]
        restored, step = ckpt.restore_latest(state)
        assert step == 3
        np.testing.assert_array_equal(restored["w"], state["w"])


def test_interrupted_before_anything_is_written(tmp_path):
    from qsal_jax.experiments.cli import interrupted

    assert interrupted(str(tmp_path / "none")) == "interrupted; no checkpoint yet; run the same command to resume"


@pytest.mark.slow
def test_ctrl_c_of_a_real_run_is_one_line(tmp_path, sigint_reaches_children):
    """Ctrl-C as a terminal sends it (to the process group) once a checkpoint is on disk. The run
    is made long (the first checkpoint at step 3 of 300), so the interrupt always lands in it."""
    import signal
    import time

    workdir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, TRAIN, f"--config={CONFIG}:tiny", "--config.online.num_steps=300",
                             f"--workdir={workdir}", "--compilation_cache=off"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not any(
            p.name.isdigit() for p in workdir.glob("checkpoints/*")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0, "the run finished before the interrupt"
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted at step ") and "; last checkpoint at step " in last, last
    assert last.endswith("; run the same command to resume"), last


def test_study_interrupted_names_the_run_and_keeps_the_records(tmp_path):
    """A Ctrl-C in the study's second run (the first has its record): one line naming the run,
    its step and checkpoint, and the records kept."""
    from qsal_jax.experiments import study
    from qsal_jax.experiments.workdir import claim_workdir, write_json

    records = tmp_path / "records"
    first = study.record_dir(str(records), "authors_tiny", "uniform", 0)
    claim_workdir(first, study.run_config(study.get_study("authors_tiny"), "uniform", 0))
    write_json(os.path.join(first, "summary.json"), {"mean": 0.5})
    out = _run_patched(os.path.join(ROOT, "scripts", "study.py"),
                       ["--study=authors_tiny", f"--records={records}", f"--scratch={tmp_path / 'scratch'}"], ROOT)
    assert _one_line(out) == (f"error: interrupted at breed_online seed 0 (step 7, last checkpoint at step 6); records so "
                              f"far are kept (1 of 8 runs' records in {records}/authors_tiny); run the same command "
                              "to resume")


def test_sweep_interrupted_names_the_point_and_run(tmp_path):
    finished = tmp_path / "sweep" / "k2" / "ogas_seed0"
    finished.mkdir(parents=True)
    (finished / "summary.json").write_text("{}")
    out = _run_patched(os.path.join(ROOT, "scripts", "sweep.py"),
                       ["--sweep=dimension", f"--workdir={tmp_path / 'sweep'}", "--points=k2,k8",
                        "--strategies=uniform,ogas", "--seeds=2", "--config_args=tiny"], ROOT)
    assert _one_line(out) == (f"error: interrupted at point k2, uniform_seed1 (step 4, last checkpoint at step 3); "
                              f"records so far are kept (1 of 8 runs finished under {tmp_path / 'sweep'}); "
                              "run the same command to resume")


def test_interrupted_outside_a_run_of_a_series():
    from qsal_jax.experiments.cli import interrupted_series
    from qsal_jax.experiments.workdir import Interrupted

    kept = "records so far are kept (3 of 8)"
    assert interrupted_series(KeyboardInterrupt(), kept) == f"interrupted; {kept}; run the same command to resume"
    assert interrupted_series(Interrupted("uniform seed 1", "/nonexistent/run"), kept) == (
        f"interrupted at uniform seed 1; {kept}; run the same command to resume")


# --------------------------- hostile flags of scripts/study.py, scripts/sweep.py and scripts/report.py
# (id, argv after the script, words the last stderr line must contain). {tmp} is the case's own
# directory, {file} a file in it; every study case has its records and scratch there.
STUDY_CASES = [
    ("study_unknown", ["--study=nope"], "--study"),
    ("study_missing", [], "--study"),
    ("study_strategy_unknown", ["--study=authors_tiny", "--strategies=bread"], "--strategies"),
    ("study_strategy_of_another_study", ["--study=authors_tiny", "--strategies=sbal"], "--strategies"),
    ("study_seed_word", ["--study=authors_tiny", "--seeds=a"], "--seeds"),
    ("study_seed_float", ["--study=authors_tiny", "--seeds=1.5"], "--seeds"),
    ("study_seed_negative", ["--study=authors_tiny", "--seeds=-1"], "--seeds"),
    ("study_max_runs_negative", ["--study=authors_tiny", "--max_runs=-1"], "--max_runs"),
    ("study_max_runs_word", ["--study=authors_tiny", "--max_runs=two"], "--max_runs"),
    ("study_report_only_without_records", ["--study=authors_tiny", "--report_only"], "no records"),
    ("study_report_only_word", ["--study=authors_tiny", "--report_only=maybe"], "report_only"),
    ("study_unknown_flag", ["--study=authors_tiny", "--seed=1"], "'seed'"),
    ("study_scratch_under_a_file", ["--study=authors_tiny", "--max_runs=1", "--scratch={file}/scratch"], "afile"),
]
SWEEP_CASES = [
    ("sweep_unknown", ["--sweep=nope", "--workdir={tmp}/s"], "--sweep"),
    ("sweep_workdir_missing", ["--sweep=dimension"], "--workdir"),
    ("sweep_points_unknown", ["--points=k3", "--workdir={tmp}/s"], "--points"),
    ("sweep_points_twice", ["--points=k2,k2", "--workdir={tmp}/s"], "--points"),
    ("sweep_points_of_the_other_sweep", ["--points=fno1d_tiny", "--workdir={tmp}/s"], "--points"),
    ("sweep_capacity_point_unknown", ["--sweep=capacity", "--points=fno1d_huge", "--workdir={tmp}/s"], "--points"),
    ("sweep_capacity_point_of_dimension", ["--sweep=capacity", "--points=k2", "--workdir={tmp}/s"], "--points"),
    ("sweep_strategy_unknown", ["--strategies=uniform,bread", "--workdir={tmp}/s"], "--strategies"),
    ("sweep_seeds_zero", ["--seeds=0", "--workdir={tmp}/s"], "--seeds"),
    ("sweep_seeds_negative", ["--seeds=-2", "--workdir={tmp}/s"], "--seeds"),
    ("sweep_seeds_word", ["--seeds=five", "--workdir={tmp}/s"], "--seeds"),
    ("sweep_config_args_typo", ["--config_args=tinyy", "--workdir={tmp}/s"], "--config_args"),
    ("sweep_config_args_a_point", ["--points=k2", "--config_args=k8", "--workdir={tmp}/s"], "--points k2"),
    ("sweep_unknown_flag", ["--pointz=k2", "--workdir={tmp}/s"], "'pointz'"),
    ("sweep_workdir_under_a_file", ["--points=k2", "--strategies=uniform", "--seeds=1", "--config_args=tiny",
                                    "--workdir={file}/s"], "afile"),
]

_BARE = {"strategy": "uniform", "seed": 0, "metrics": ["one_step_nrmse"],
         "one_step_nrmse": dict(mean=0.5, std=0.1, max=1.0, p95=0.9, p99=0.95)}
_SUMMARY = json.dumps(dict(_BARE, simulations=8)).encode()
REPORT_CASES = [
    ("report_run_without_summary", ["--workdirs={tmp}/run"], "no summary.json"),
    ("report_summary_not_json", ["--workdirs={tmp}/run"], "summary.json is damaged (not JSON"),
    ("report_summary_binary", ["--workdirs={tmp}/run"], "summary.json is damaged (not JSON"),
    ("report_summary_a_list", ["--workdirs={tmp}/run"], "summary.json is damaged (holds a list"),
    ("report_unknown_metric", ["--workdirs={tmp}/run", "--metrics=one_step_rmse"], "one_step_rmse"),
    ("report_summary_without_a_field", ["--workdirs={tmp}/run"], "'simulations'"),
    ("report_no_workdirs", [], "--workdirs"),
    ("report_out_under_a_file", ["--workdirs={tmp}/run", "--out={file}/report"], "afile"),
    ("report_unknown_flag", ["--workdir={tmp}/run"], "'workdir'"),
]
# What a report case finds on disk: (case, bytes of {tmp}/run/summary.json)
REPORT_FILES = {"report_summary_not_json": b'{"strategy": "uniform", "se', "report_summary_binary": b"\x00\xff\xfe\x01",
                "report_summary_a_list": b"[0.5, 1.0]", "report_unknown_metric": _SUMMARY,
                "report_summary_without_a_field": json.dumps(_BARE).encode(),
                "report_out_under_a_file": _SUMMARY}


@pytest.fixture(scope="module")
def series_outcomes(tmp_path_factory):
    """Every study and sweep case, each in its own process (`fork_runner`, one per script)."""
    root = tmp_path_factory.mktemp("series")
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    out = {}
    for script, cases in (("study.py", STUDY_CASES), ("sweep.py", SWEEP_CASES), ("report.py", REPORT_CASES)):
        jobs = []
        for case_id, argv, _ in cases:
            tmp = root / case_id
            (tmp / "run").mkdir(parents=True)
            (tmp / "afile").write_text("")
            if case_id in REPORT_FILES:
                (tmp / "run" / "summary.json").write_bytes(REPORT_FILES[case_id])
            if script == "report.py" and not any(a.startswith("--out") for a in argv):
                argv = argv + ["--out={tmp}/report"]
            argv = [a.format(tmp=tmp, file=tmp / "afile") for a in argv]
            if script == "study.py":  # never the committed records
                argv.append(f"--records={tmp}/records")
                if not any(a.startswith("--scratch") for a in argv):
                    argv.append(f"--scratch={tmp}/scratch")
            cache = ["--compilation_cache=off"] if script != "report.py" else []
            jobs.append({"argv": [*cache, *argv], "cwd": ROOT, "out": str(tmp / "out")})
        (root / f"{script}.json").write_text(json.dumps(jobs))
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fork_runner.py"),
                        os.path.join(ROOT, "scripts", script), str(root / f"{script}.json"),
                        str(root / f"{script}.results.json")], env=env, check=True, timeout=600)
        codes = json.loads((root / f"{script}.results.json").read_text())
        for (case_id, _, words), job, code in zip(cases, jobs, codes):
            with open(job["out"] + ".stderr") as f:
                out[case_id] = (code["returncode"], f.read(), words)
    return out


@pytest.mark.parametrize("case_id", [c[0] for c in STUDY_CASES + SWEEP_CASES + REPORT_CASES])
def test_hostile_study_sweep_and_report_flags_fail_in_one_line(series_outcomes, case_id):
    returncode, stderr, words = series_outcomes[case_id]
    assert returncode != 0
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr[-2000:]
    assert words.lower() in lines[-1].lower(), f"{words!r} not in: {lines[-1]}"
