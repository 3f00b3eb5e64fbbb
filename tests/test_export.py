"""The HDF5 export: The Well's layout, and the trajectories the run launched, simulated again."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from qsal_jax.experiments import run_experiment
    from qsal_jax.experiments.config_args import load_config

    workdir = str(tmp_path_factory.mktemp("export") / "run")
    run_experiment(load_config(os.path.join(ROOT, "configs", "online_1d.py") + ":breed,tiny"), workdir,
                   log=lambda *a, **k: None)
    return workdir


def test_export_follows_the_well_layout_and_holds_the_launched_trajectories(tiny_run, tmp_path):
    import jax.numpy as jnp

    from qsal_jax.experiments.export import export_run
    from qsal_jax.reporting.plots import launched_lam
    from qsal_jax.simulation import get_problem

    out = str(tmp_path / "run.h5")
    written = export_run(tiny_run, out, log=lambda *a, **k: None)
    lam = launched_lam(tiny_run)
    with open(os.path.join(tiny_run, "config.json")) as f:
        config = json.load(f)
    sim = get_problem(config["problem"]["name"], **config["problem"]["kwargs"])
    with h5py.File(out) as f:
        assert f.attrs["grid_type"] == "cartesian" and f.attrs["n_spatial_dims"] == 1
        assert f.attrs["n_trajectories"] == written["trajectories"] == len(lam) == 24
        assert list(f.attrs["simulation_parameters"]) == list(sim.space.names)
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x"]
        assert f["dimensions/time"].shape == (sim.num_frames,) and f["dimensions/x"].shape == (sim.state_shape[-1],)
        assert f["boundary_conditions/x_periodic"].attrs["bc_type"] == "PERIODIC"
        assert list(f["t0_fields"].attrs["field_names"]) == ["u"]
        u = f["t0_fields/u"]
        assert u.shape == (24, sim.num_frames, sim.state_shape[-1]) and u.dtype == np.float32
        assert bool(u.attrs["sample_varying"]) and bool(u.attrs["time_varying"])
        for i, name in enumerate(sim.space.names):
            np.testing.assert_allclose(f["scalars"][name][:], lam[:, i], rtol=1e-6)
        assert len(f["t1_fields"].attrs["field_names"]) == 0 and len(f["t2_fields"].attrs["field_names"]) == 0
        direct = np.asarray(sim.simulate(jnp.asarray(lam[:3])).u)[:, :, 0]
        np.testing.assert_allclose(u[:3], direct, rtol=1e-5, atol=1e-6)
        assert json.loads(f.attrs["qsal_config"])["strategy"]["name"] == "breed_online"


def test_export_of_a_directory_that_is_not_a_run_is_one_clear_error(tmp_path):
    from qsal_jax.experiments.export import export_run

    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_run(str(tmp_path / "empty"), str(tmp_path / "x.h5"), log=lambda *a, **k: None)
