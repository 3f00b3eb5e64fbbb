"""The asynchronous experiment's workdir (`qsal_jax.experiments.async_run`), in-process with the
`:tiny` configs: what it holds after a run, load_run, up-front refusals that leave nothing
behind, a run that failed and its rerun, and the Allen-Cahn example solver(s).

Runs use 4 simulations of a 32-point grid, a 4-trajectory score set in a temporary cache, and
no figures unless a test is about them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from qsal_jax.experiments import async_run, test_sets
from qsal_jax.experiments.config_args import load_config
from qsal_jax.online.async_records import AsyncFailed

ROOT = Path(__file__).resolve().parents[1]


def tiny(name="async_burgers.py", arg="uniform,tiny", **eval_overrides):
    c = load_config(str(ROOT / "configs" / name) + ":" + arg)
    c.run.update(simulation_budget=4, checkpoint_every=2)
    c.eval.update(score_size=4, every=2, **eval_overrides)
    c.plots = False
    return c


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("QSAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_a_run_leaves_a_fused_runs_workdir(tmp_path):
    workdir = str(tmp_path / "run")
    lines = []
    s = async_run.train_and_evaluate(tiny(), workdir, log=lines.append)
    assert lines[0] == "no checkpoint in the workdir: started fresh"
    assert any("sims/s" in line and "eta" in line for line in lines)  # the progress line
    # summary.json: strict JSON, the score set's numbers, every fault kind, the pacing it achieved
    text = open(os.path.join(workdir, "summary.json")).read()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["simulations"] == s["simulations"] == 4
    assert s["num_train_steps"] == 7 and s["updates_per_simulation"] == 7 / 4  # floor(1.8 × 4) steps
    assert {f"faults/{k}" for k in ("error", "crash", "timeout", "garbage", "nonfinite")} <= set(s)
    assert s["score_set"]["size"] == 4 and np.isfinite(s["one_step_nrmse"]["mean"])
    # metrics.jsonl: one record per step, the score set's numbers every eval.every steps
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in records] == list(range(1, 8))
    assert [r["step"] for r in records if "test_mean" in r] == [2, 4, 6]
    # every λ launched, by name, with its strategy and signal
    launches = [json.loads(line) for line in open(os.path.join(workdir, "samples", "launches.jsonl"))]
    assert [x["id"] for x in launches] == list(range(int(s["num_launched"])))
    assert set(launches[0]["lam"]) == {"A0", "A1", "phi0", "phi1"}
    assert {(x["strategy"], x["signal"]) for x in launches} == {("uniform", "mse")}
    from qsal_jax.reporting.plots import launched_lam

    assert launched_lam(workdir).shape == (int(s["num_launched"]), 4)
    # load_run: the final surrogate, scored again, gives the summary's numbers
    from qsal_jax.experiments import load_run

    run = load_run(workdir)
    assert run.step == 7 and run.summary["simulations"] == 4
    with np.load(os.path.join(workdir, "test_errors.npz")) as f:
        lam, one_step = f["lam"], f["one_step"]
    c = tiny()
    from qsal_jax.experiments.async_scores import external_score_set
    from qsal_jax.experiments.async_setup import build

    scores = external_score_set(c, build(c, workdir), log=lambda *a: None)
    np.testing.assert_array_equal(scores.lam, lam)
    again = test_sets.score(run.apply_fn, run.params, scores.u, scores.cond, rollout=False)["one_step"]
    np.testing.assert_allclose(again, one_step, rtol=1e-5)
    # The export: The Well's layout, every λ launched, the program's trajectories for them
    h5py = pytest.importorskip("h5py")
    from qsal_jax.experiments.async_export import export_async_run

    written = export_async_run(workdir, str(tmp_path / "run.h5"), log=lambda *a: None)
    parts = build(c, workdir)
    with h5py.File(tmp_path / "run.h5") as f:
        assert written["trajectories"] == f.attrs["n_trajectories"] == int(s["num_launched"])
        assert list(f.attrs["simulation_parameters"]) == ["A0", "A1", "phi0", "phi1"]
        assert f["boundary_conditions/x_periodic"].attrs["bc_type"] == "PERIODIC"
        assert f["t0_fields/u"].shape == (written["trajectories"], 6, 32)
        np.testing.assert_allclose(f["dimensions/time"][:], np.arange(6) * 0.05, rtol=1e-6)
        lam0 = np.asarray([f["scalars"][n][0] for n in ("A0", "A1", "phi0", "phi1")])
        np.testing.assert_allclose(lam0, [launches[0]["lam"][n] for n in ("A0", "A1", "phi0", "phi1")], rtol=1e-6)
        np.testing.assert_allclose(f["t0_fields/u"][0], parts.solver(np.asarray(list(launches[0]["lam"].values())))[:, 0],
                                   rtol=1e-6, atol=1e-6)
    # The same command again leaves a finished run as it is.
    lines = []
    from qsal_jax.experiments.workdir import to_strict_json

    assert to_strict_json(async_run.train_and_evaluate(tiny(), workdir, log=lines.append)) == to_strict_json(s)
    assert "has finished" in lines[0]


@pytest.mark.parametrize("field, value, message", [
    ("solver.command", ["{python}", "x.py", "--out", "{out}", "--nu", "{viscosity}"],
     "solver.command: unknown placeholder {viscosity}"),
    ("solver.command", "python x.py --out {out}", "solver.command: must be a list of argument strings"),
    ("solver.command", ["{python}", "x.py", "{lam}"], "solver.command: must contain the {out} placeholder"),
    ("train.updates_per_simulation", 0.0, "train.updates_per_simulation: updates_per_simulation must be > 0"),
    ("solver.num_frames", 1, "solver.num_frames = 1: a trajectory needs at least 2 frames"),
])
def test_a_refused_config_leaves_nothing_behind(tmp_path, field, value, message):
    c = tiny()
    group, name = field.split(".")
    c[group] = ml_collections.ConfigDict({**c[group].to_dict(), name: value})  # any type, as a config file may give
    with pytest.raises(ValueError) as e:
        async_run.train_and_evaluate(c, str(tmp_path / "run"))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_an_outage_fails_and_the_rerun_resumes_or_starts_fresh(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    c = tiny()
    c.run.max_faults = 2
    c.solver.crashes_before_redraw = 0
    monkeypatch.setenv("QSAL_SOLVER_FAULT", "crash")  # every solver program exits with status 3
    with pytest.raises(AsyncFailed, match=r"the run did not finish: more than 2 faults \(error 3\); 0 of 4"):
        async_run.train_and_evaluate(c, workdir, log=lambda *a: None)
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    monkeypatch.delenv("QSAL_SOLVER_FAULT")
    lines = []
    s = async_run.train_and_evaluate(c, workdir, log=lines.append)
    assert lines[0] == "no checkpoint in the workdir: started fresh"  # no simulation had arrived: nothing to resume
    assert s["simulations"] == 4


def test_the_allen_cahn_script_decreases_its_energy():
    """The NumPy Allen-Cahn solver: bounded by max(1, |u0|) and its Ginzburg-Landau energy falls."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import allen_cahn_solver
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    eps = 0.3
    u = allen_cahn_solver.allen_cahn([eps, 0.8, 0.4], num_points=64, num_frames=11)[:, 0].astype(np.float64)
    assert u.shape == (11, 64) and np.abs(u).max() <= max(1.0, np.abs(u[0]).max()) + 1e-6
    k = np.fft.rfftfreq(64, d=1 / 64)
    grad2 = [np.sum(np.abs(1j * k * np.fft.rfft(v)) ** 2) / 64**2 * 2 for v in u]  # ≈ mean of u_x² (both halves)
    energy = [eps**2 / 2 * g + np.mean((v**2 - 1) ** 2) / 4 for g, v in zip(grad2, u)]
    assert np.all(np.diff(energy) < 0)


def test_the_pypde_script_matches_the_numpy_one(tmp_path):
    """examples/allen_cahn_pypde.py (where py-pde is installed) against the NumPy script."""
    pytest.importorskip("pde")
    lam = "[0.3, 0.8, 0.4]"
    outs = []
    for script in ("examples/allen_cahn_pypde.py", "scripts/allen_cahn_solver.py"):
        out = tmp_path / (Path(script).stem + ".npy")
        subprocess.run([sys.executable, str(ROOT / script), "--lam", lam, "--out", str(out), "--num-points", "32",
                        "--num-frames", "6"], check=True, timeout=300)
        outs.append(np.load(out))
    assert outs[0].shape == outs[1].shape == (6, 1, 32)
    np.testing.assert_allclose(outs[0], outs[1], atol=0.05)  # two first-order schemes, same step


@pytest.mark.slow
def test_allen_cahn_run_with_figures_and_report(tmp_path):
    workdir = tmp_path / "run"
    c = tiny("async_allen_cahn.py")
    c.plots = True
    s = async_run.train_and_evaluate(c, str(workdir), log=lambda *a: None)
    assert s["simulations"] == 4 and np.isfinite(s["rollout_nrmse"]["mean"])
    assert {"report.md", "training_curve.png", "rollouts.png"} <= set(os.listdir(workdir))
    assert "updates_per_simulation" in (workdir / "report.md").read_text()


def test_the_fused_twin_solver_command_reproduces_burgers_1d():
    """`:fused_twin`'s program gives the fused burgers_1d trajectories, so the two compare on one score set."""
    import jax.numpy as jnp

    from qsal_jax.experiments.async_setup import build
    from qsal_jax.simulation import get_problem

    c = tiny(arg="uniform,tiny,fused_twin")
    parts = build(c, "/nonexistent")
    sim = get_problem("burgers_1d", **c.eval.problem_kwargs)
    assert tuple(parts.space.names) == tuple(sim.space.names)
    lam = np.array([[0.9, 0.7, 1.0, 2.0, 0.01], [0.3, 0.5, 3.0, 1.0, 0.08]], np.float32)
    fused = np.asarray(sim.simulate(jnp.asarray(lam)).u)
    for i in range(2):
        np.testing.assert_allclose(parts.solver(lam[i]), fused[i], atol=1e-5 * np.abs(fused[i]).max())
    np.testing.assert_allclose(parts.conditioning(lam[0].astype(np.float64)), np.asarray(sim.conditioning(jnp.asarray(lam)))[0],
                               atol=1e-6)


def test_a_twin_run_is_scored_on_the_fused_problems_score_set(tmp_path):
    from qsal_jax.simulation import get_problem

    c = tiny(arg="uniform,tiny,fused_twin")
    s = async_run.train_and_evaluate(c, str(tmp_path / "run"), log=lambda *a: None)
    kw = dict(c.eval.problem_kwargs)
    fused = test_sets.make_score_set(get_problem("burgers_1d", **kw), kw, size=4, seed=int(c.eval.seed))
    assert s["score_set"] == fused.info and np.isfinite(s["one_step_nrmse"]["mean"])


def test_a_space_given_as_a_mapping_is_refused(tmp_path):
    c = ml_collections.ConfigDict({**tiny().to_dict(), "space": {"A0": (0.2, 1.0), "A1": (0.2, 1.0)}})
    with pytest.raises(ValueError, match=r"^space: give a list of \(name, low, high\) in λ's order"):
        async_run.train_and_evaluate(c, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
