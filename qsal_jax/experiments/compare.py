"""A comparison of strategies × seeds at an equal simulation budget, importable from a notebook.

``compare(config_path, strategies, seeds, root)`` runs (or resumes, or reuses) one online run per
(strategy, seed) under ``root/<strategy>_seed<k>``, all scored on the same cached score set, and
writes ``root/report.md`` and ``report.csv`` (`qsal_jax.experiments.report`).
"""

from __future__ import annotations

import os

from qsal_jax.experiments import report
from qsal_jax.experiments.config_args import apply_overrides, load_config


def compare(config: str, strategies, seeds, root: str, *, config_args: str = "", overrides: dict | None = None,
            label: str = "", baseline_runs: str = "", log=print) -> str:
    """Run every (strategy, seed) of ``config`` (a ``path`` whose ``get_config`` takes a strategy
    name as an argument) and return the report's markdown.

    ``label`` names the variant in tables (default: the strategy); ``baseline_runs`` is a root
    whose ``uniform_seed<k>`` runs join the report (a variant compared with existing Uniform runs).
    """
    from qsal_jax.experiments import run_experiment

    path, _, base_args = config.partition(":")
    workdirs = []
    for strategy in strategies:
        for seed in seeds:
            cfg = load_config(f"{path}:{','.join(filter(None, [strategy, base_args, config_args]))}")
            cfg.seed = int(seed)
            if label:
                with cfg.unlocked():
                    cfg.label = f"{strategy} ({label})"
            apply_overrides(cfg, overrides or {})
            workdir = os.path.join(root, f"{strategy}_seed{seed}")
            log(f"\n=== {strategy}, seed {seed} -> {workdir}")
            if not _finished(workdir, cfg):
                run_experiment(cfg, workdir, log=log)
            workdirs.append(workdir)
    if baseline_runs:
        workdirs = [os.path.join(baseline_runs, f"uniform_seed{seed}") for seed in seeds] + workdirs
    return report.write_report(workdirs, root)


def _finished(workdir: str, cfg) -> bool:
    """A finished run of the same config (its summary exists and config.json matches)."""
    import json

    from qsal_jax.experiments.workdir import config_to_dict

    try:
        with open(os.path.join(workdir, "config.json")) as f:
            same = json.load(f) == json.loads(json.dumps(config_to_dict(cfg), sort_keys=True, default=str))
        return same and os.path.exists(os.path.join(workdir, "summary.json"))
    except (OSError, ValueError):
        return False
