"""The simulated data out of a run: its trajectories as HDF5 in The Well's layout.

A fused run keeps the λ it launched (``samples/lam_*.npy``), not the trajectories (Melissa's
point: the data live in the buffer and are gone). The solver is deterministic, so
``export_run`` simulates them again from the run's config and writes one HDF5 file laid out as
The Well specifies (PolymathicAI/the_well, ``docs/data_format.md``):

  root          @dataset_name @grid_type='cartesian' @n_spatial_dims @n_trajectories
                @simulation_parameters (the λ names), @qsal_config (the run's config, JSON)
  dimensions    @spatial_dims; ``time`` [T] (frame times), ``x`` (and ``y``) [N] grid coordinates
  boundary_conditions/<axis>_periodic   @bc_type='PERIODIC', ``mask`` [N] (both ends)
  scalars       each λ component [B] (sample-varying, constant in time), and ``launch_id`` [B]
  t0_fields     each state channel [B, T, *grid] float32; t1_fields, t2_fields empty

``what="launched"``: every λ the run launched, in launch order (blow-ups, which the run never
trained on, are left out and counted in ``@n_blowups_dropped``); ``what="score_set"``: the
run's score set. h5py is needed only here (``pip install h5py``).
"""

from __future__ import annotations

import json
import os

import numpy as np

CHUNK = 64  # trajectories simulated per call


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("exporting to HDF5 needs h5py: pip install h5py") from None
    return h5py


def _simulate(sim, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(u [B, T, C, *grid] float32, finite [B])`` in chunks of `CHUNK` (one compiled shape)."""
    import jax
    import jax.numpy as jnp

    run = jax.jit(sim.simulate)
    us, finite = [], []
    for start in range(0, len(lam), CHUNK):
        part = lam[start:start + CHUNK]
        pad = np.concatenate([part, np.repeat(part[-1:], CHUNK - len(part), axis=0)])
        traj = run(jnp.asarray(pad, sim.dtype))
        us.append(np.asarray(traj.u[:len(part)], np.float32))
        finite.append(np.asarray(traj.finite[:len(part)]))
    return np.concatenate(us), np.concatenate(finite)


def export_run(workdir: str, out_path: str, *, what: str = "launched", log=print) -> dict:
    """Write the run's trajectories to ``out_path`` (module docstring); returns what was written."""
    from qsal_jax.experiments import test_sets
    from qsal_jax.reporting.plots import launched_lam
    from qsal_jax.simulation import get_problem

    if what not in ("launched", "score_set"):
        raise ValueError(f"what must be 'launched' or 'score_set', got {what!r}")
    _h5py()  # before any simulation: no h5py is one line
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    kwargs = config["problem"].get("kwargs", {})
    sim = get_problem(config["problem"]["name"], **kwargs)
    if what == "launched":
        lam = launched_lam(workdir)
        if lam is None:
            raise FileNotFoundError(f"{workdir}: no samples/lam_*.npy (not a fused run's workdir, or it never synced)")
        ids = np.arange(len(lam), dtype=np.int64)
    else:
        e = config["eval"]
        scores = test_sets.make_score_set(sim, kwargs, size=e["score_size"], draw=e.get("score_draw", "halton"),
                                          seed=e["seed"], log=log)
        lam, ids = np.asarray(scores.lam), np.arange(len(scores.lam), dtype=np.int64)
    log(f"simulating {len(lam)} trajectories of {sim.name} again for the export")
    u, finite = _simulate(sim, np.asarray(lam, np.float32))
    u, lam, ids = u[finite], lam[finite], ids[finite]
    n_dims, extent, dt = sim.grid_facts()
    write_well(out_path, u, lam, ids, dataset_name=sim.name, names=sim.space.names, n_dims=n_dims, extent=extent,
               dt=dt, attrs=dict(qsal_config=json.dumps(config), qsal_what=what,
                                 n_blowups_dropped=int(np.sum(~finite))))
    written = {"path": out_path, "trajectories": int(len(u)), "frames": int(u.shape[1]),
               "blowups_dropped": int(np.sum(~finite))}
    log(f"wrote {written['trajectories']} trajectories × {written['frames']} frames to {out_path}")
    return written


def write_well(out_path: str, u: np.ndarray, lam: np.ndarray, ids: np.ndarray, *, dataset_name: str, names,
               n_dims: int, extent: float, dt: float, attrs: dict) -> None:
    """Write ``u [B, T, C, *grid]`` with ``lam [B, D]`` (named ``names``) and ``ids [B]`` in The Well's
    layout (module docstring) on a periodic grid of length ``extent``, frames ``dt`` apart; ``attrs``
    are added to the root's."""
    h5py = _h5py()
    n = u.shape[-1]
    axes = ("x", "y", "z")[:n_dims]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with h5py.File(out_path, "w") as f:
        f.attrs.update(dataset_name=dataset_name, grid_type="cartesian", n_spatial_dims=n_dims, n_trajectories=len(u),
                       simulation_parameters=list(names), **attrs)
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = list(axes)
        time = dims.create_dataset("time", data=np.arange(u.shape[1], dtype=np.float32) * dt)
        time.attrs["sample_varying"] = False
        for a in axes:
            coord = dims.create_dataset(a, data=np.arange(n, dtype=np.float32) * extent / n)
            coord.attrs.update(sample_varying=False, time_varying=False)
        bcs = f.create_group("boundary_conditions")
        for a in axes:
            bc = bcs.create_group(f"{a}_periodic")
            bc.attrs.update(associated_dims=[a], associated_fields=np.array([], dtype=h5py.string_dtype()),
                            bc_type="PERIODIC", sample_varying=False, time_varying=False)
            mask = np.zeros(n, bool)
            mask[[0, -1]] = True
            bc.create_dataset("mask", data=mask)
        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = [*names, "launch_id"]
        for i, name in enumerate(names):
            d = scalars.create_dataset(name, data=np.asarray(lam[:, i], np.float32))
            d.attrs.update(sample_varying=True, time_varying=False)
        d = scalars.create_dataset("launch_id", data=ids)
        d.attrs.update(sample_varying=True, time_varying=False)
        fields = f.create_group("t0_fields")
        names = ["u"] if u.shape[2] == 1 else [f"u{c}" for c in range(u.shape[2])]
        fields.attrs["field_names"] = names
        for c, name in enumerate(names):
            d = fields.create_dataset(name, data=u[:, :, c], compression="gzip")
            d.attrs.update(dim_varying=[True] * n_dims, sample_varying=True, time_varying=True)
        for group in ("t1_fields", "t2_fields"):
            f.create_group(group).attrs["field_names"] = np.array([], dtype=h5py.string_dtype())
