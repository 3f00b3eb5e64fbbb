"""Strategies × seeds at an equal simulation budget, for every experiment kind.

``run_grid(configs, seeds, root)`` runs (or reuses) one run per (name, seed) under
``root/<name>_seed<k>`` through `run_experiment`, so online, toy and PINN comparisons share one
loop; ``report.write_report`` turns the workdirs into ``report.md`` and ``report.csv``.
``compare(config_path, strategies, seeds, root)`` is the online form the scripts and notebooks
call: one config per strategy name, all scored on the same cached score set.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Mapping

from qsal_jax.reporting import report
from qsal_jax.experiments.config_args import apply_overrides, load_config


def run_grid(configs: Mapping[str, object], seeds, root: str, *, overwrite: bool = False, log=print) -> list[str]:
    """Run every ``configs[name]`` at every seed; returns the workdirs, name-major.

    A finished run of the same config is reused (its summary is kept), an interrupted one resumes.
    ``name`` may hold ``/`` (``"breed/accumulate"``); the workdir uses ``_`` in its place.
    """
    from qsal_jax.experiments import run_experiment

    workdirs = []
    for name, config in configs.items():
        for seed in seeds:
            cfg = copy.deepcopy(config)
            cfg.seed = int(seed)
            workdir = os.path.join(root, f"{name.replace('/', '_')}_seed{seed}")
            log(f"\n=== {name}, seed {seed} -> {workdir}")
            if overwrite or not finished_run(workdir, cfg):
                run_experiment(cfg, workdir, overwrite=overwrite, log=log)
            workdirs.append(workdir)
    return workdirs


def compare(config: str, strategies, seeds, root: str, *, config_args: str = "", overrides: dict | None = None,
            label: str = "", baseline_runs: str = "", log=print) -> str:
    """Run every (strategy, seed) of ``config`` (a ``path`` whose ``get_config`` takes a strategy
    name as an argument) and return the report's markdown.

    ``label`` names the variant in tables (default: the strategy); ``baseline_runs`` is a root
    whose ``uniform_seed<k>`` runs join the report (a variant compared with existing Uniform runs).
    """
    path, _, base_args = config.partition(":")
    configs = {}
    for strategy in strategies:
        cfg = load_config(f"{path}:{','.join(filter(None, [strategy, base_args, config_args]))}")
        if label:
            with cfg.unlocked():
                cfg.label = f"{strategy} ({label})"
        apply_overrides(cfg, overrides or {})
        configs[strategy] = cfg
    workdirs = run_grid(configs, seeds, root, log=log)
    if baseline_runs:
        workdirs = [os.path.join(baseline_runs, f"uniform_seed{seed}") for seed in seeds] + workdirs
    return report.write_report(workdirs, root)


def finished_run(workdir: str, cfg) -> bool:
    """A finished run of the same config (its summary exists and config.json matches)."""
    from qsal_jax.experiments.workdir import config_to_dict

    try:
        with open(os.path.join(workdir, "config.json")) as f:
            same = json.load(f) == json.loads(json.dumps(config_to_dict(cfg), sort_keys=True, default=str))
        return same and os.path.exists(os.path.join(workdir, "summary.json"))
    except (OSError, ValueError):
        return False
