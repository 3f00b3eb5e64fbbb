"""An asynchronous run's simulated data out, as HDF5 in The Well's layout (`export.write_well`).

The run keeps every λ it launched (``samples/launches.jsonl``) and, like a fused run, not the
trajectories; the program is run again on each λ through the config's ``solver.command`` (in
``run.num_workers`` threads), so the export holds what the solver gives for those λ. Faults are
left out and counted (``@n_blowups_dropped``), as a fused export leaves out blow-ups. The grid's
length and the time between frames come from the config's ``data`` group (``domain_length``,
``frame_dt``; 1.0 where absent): the program alone does not say them.
"""

from __future__ import annotations

import json
import os

import numpy as np

from qsal_jax.experiments.async_scores import external_score_set, simulate
from qsal_jax.experiments.async_setup import build
from qsal_jax.experiments.export import write_well


def launched(workdir: str) -> tuple[np.ndarray, np.ndarray]:
    """``(lam [B, D] box units, ids [B])`` of every launch recorded in the workdir, in launch order."""
    path = os.path.join(workdir, "samples", "launches.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no samples/launches.jsonl (not an async run's workdir, or it never "
                                "reached a checkpoint)")
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return (np.asarray([list(r["lam"].values()) for r in records], np.float64),
            np.asarray([r["id"] for r in records], np.int64))


def export_async_run(workdir: str, out_path: str, *, what: str = "launched", log=print) -> dict:
    """Write the async run's trajectories (every λ launched, or its score set) to ``out_path``."""
    import ml_collections

    if what not in ("launched", "score_set"):
        raise ValueError(f"what must be 'launched' or 'score_set', got {what!r}")
    with open(os.path.join(workdir, "config.json")) as f:
        raw = json.load(f)
    c = ml_collections.ConfigDict(raw)
    parts = build(c, workdir)
    if what == "launched":
        lam, ids = launched(workdir)
        log(f"running the solver command again on the {len(lam)} λ the run launched")
        u, valid = simulate(parts.solver, lam, parts.trajectory_shape, int(c.run.num_workers))
    else:
        scores = external_score_set(c, parts, log=log)
        lam, u = np.asarray(scores.lam, np.float64), np.asarray(scores.u)
        ids, valid = np.arange(len(lam), dtype=np.int64), np.ones(len(lam), bool)
    data = c.get("data", None) or {}
    write_well(out_path, u[valid], lam[valid], ids[valid], dataset_name=c.get("name", "async"),
               names=parts.space.names, n_dims=len(parts.trajectory_shape) - 2,
               extent=float(data.get("domain_length", 1.0)), dt=float(data.get("frame_dt", 1.0)),
               attrs=dict(qsal_config=json.dumps(raw), qsal_what=what, n_blowups_dropped=int(np.sum(~valid))))
    written = {"path": out_path, "trajectories": int(valid.sum()), "frames": int(u.shape[1]),
               "blowups_dropped": int(np.sum(~valid))}
    log(f"wrote {written['trajectories']} trajectories × {written['frames']} frames to {out_path}")
    return written
