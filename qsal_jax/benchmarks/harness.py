"""Harness suite: where a default online run's wall time goes, and what the caches save.

Runs ``scripts/train.py --config=<online_config>:uniform`` (the default online run, plots on)
twice, each in a fresh process, on an empty ``$QSAL_CACHE``: the first run compiles and
simulates the score set, the second finds both on disk. Each run's ``summary.json`` carries
``wall_split_s`` (`experiments.workdir.PhaseTimes`): setup (build, dry run), score set,
first sync (compilation + the first ``steps_per_sync`` steps), loop (the other syncs),
evaluation, checkpoints, plots and the rest (I/O, logging).

Evaluations, metric records and checkpoint writes run beside the loop on a worker thread
(`experiments.side_work`), and the figures are drawn by a child process after the run; so each
phase of the split is the time the run *waits* for that work. The worker's own seconds
(``side_work_s``) and the drawing process's (``figures_s``, waited for before the next run starts)
are reported beside it.

Record fields: the two splits; ``overhead_fraction`` = (evaluation + checkpoint + plots) /
total of the warm run (the target is ≤ 0.2); ``start_speedup`` = time to the end of the first
sync, cold / warm (the target is ≥ 2); ``process_speedup`` = the processes' whole wall times,
cold / warm (interpreter start-up and imports included).

cfg keys: ``online_config`` (required: the path of configs/online_1d.py), ``harness_strategy``
(default ``uniform``), ``harness_args`` (extra config arguments, e.g. ``tiny``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from qsal_jax.benchmarks.timing import backend_info

OVERHEAD = ("evaluation", "checkpoint", "plots")


def _start(split: dict) -> float:
    return sum(split.get(k, 0.0) for k in ("setup", "score_set", "first_sync"))


def run(cfg: dict) -> list[dict]:
    path = cfg.get("online_config")
    if not path:
        raise ValueError("cfg['online_config']: the path of configs/online_1d.py is required (scripts/benchmark.py passes it)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    arg = ",".join(filter(None, [cfg.get("harness_strategy", "uniform"), cfg.get("harness_args", "")]))
    from qsal_jax.reporting.plots import wait_for_figures

    splits, walls, side, figures = {}, {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="qsal_harness_") as tmp:
        env = dict(os.environ, QSAL_CACHE=os.path.join(tmp, "cache"),
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for which in ("cold", "warm"):
            workdir = os.path.join(tmp, which)
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, os.path.join(root, "scripts", "train.py"), f"--config={path}:{arg}",
                                  f"--workdir={workdir}", "--config.plots=True"], env=env, cwd=root,
                                 capture_output=True, text=True)
            walls[which] = time.perf_counter() - t0
            if out.returncode:
                raise RuntimeError(f"harness: the {which} run failed: {out.stderr.strip().splitlines()[-1:]}")
            with open(os.path.join(workdir, "summary.json")) as f:
                summary = json.load(f)
            splits[which], side[which] = summary["wall_split_s"], summary.get("side_work_s", {})
            figures[which] = wait_for_figures(workdir)["seconds"]
    warm = splits["warm"]
    return [{
        "suite": "harness", "name": f"online_1d:{arg}", "split_cold_s": splits["cold"], "split_warm_s": warm,
        "overhead_fraction": sum(warm.get(k, 0.0) for k in OVERHEAD) / warm["total"],
        "start_speedup": _start(splits["cold"]) / _start(warm),
        "process_wall_s": walls, "process_speedup": walls["cold"] / walls["warm"],
        "side_work_s": side, "figures_s": figures, **backend_info(),
    }]
