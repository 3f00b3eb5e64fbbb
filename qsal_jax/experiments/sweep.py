"""A comparison repeated along one axis (dim(λ), model size): ratio-to-Uniform curves with bands.

``sweep(config, strategies, seeds, root, points)`` runs `compare` once per point (a config
argument such as ``k32`` or ``fno1d_small``) under ``root/<point>``, each point scored on its own
cached score set, and returns ``{point: report.aggregate table}``. `plot_ratio_sweep` draws each
strategy's U/S ratio against the point's x value with its 95 % t-interval as the band and the
per-seed ratios as dots; `sweep_markdown` is the table RESULTS.md quotes.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from qsal_jax.reporting import report
from qsal_jax.experiments.compare import compare
from qsal_jax.experiments.workdir import Interrupted, write_json
from qsal_jax.reporting.run_files import save_figure


def sweep(config: str, strategies, seeds, root: str, points, *, config_args: str = "", log=print) -> dict:
    """``points``: config arguments, one per sweep point; → ``{point: aggregate table}``. A Ctrl-C
    raises `workdir.Interrupted` naming the point it landed in (finished runs are reused)."""
    tables = {}
    for point in points:
        out = os.path.join(root, point)
        try:
            compare(config, strategies, seeds, out, config_args=",".join(filter(None, [point, config_args])), log=log)
        except KeyboardInterrupt:  # the caller's line names the point and its run
            raise Interrupted(f"point {point}", out) from None
        workdirs = [os.path.join(out, f"{s}_seed{k}") for s in strategies for k in seeds]
        tables[point] = report.aggregate(report.load_summaries(workdirs))
    write_json(os.path.join(root, "sweep.json"), tables, indent=1, default=float)  # strict: an infinite ratio is "inf"
    return tables


def finished_text(root: str, total: int) -> str:
    """How far a sweep under ``root`` is: ``"5 of 40 runs finished under <root>"``."""
    return f"{len(glob.glob(os.path.join(root, '*', '*', 'summary.json')))} of {total} runs finished under {root}"


def sweep_markdown(tables: dict, x_values: dict, x_name: str, numbers=("mean", "max", "p99")) -> str:
    """One row per (point, strategy): the x value and the U/S ratios with their intervals."""
    head = [x_name, "strategy", "seeds", "Uniform mean"] + [f"U/S {n}" for n in numbers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for point, table in tables.items():
        uniform_mean = table["uniform"]["mean"][0] if "uniform" in table else float("nan")
        for strategy, row in table.items():
            if strategy == "uniform":
                continue
            cells = [str(x_values[point]), strategy, str(row["seeds"]), f"{uniform_mean:.4f}"]
            cells += [report.ratio_cell(row[f"ratio_{n}"]) for n in numbers]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_ratio_sweep(tables: dict, x_values: dict, out_path: str, *, x_label: str, log_x: bool = True,
                     numbers=("max", "p99", "mean"), title: str = "", families: dict | None = None) -> str:
    """One panel per number: U/S against x per strategy, band = 95 % t-interval, dots = seeds.

    ``families`` (point → name, e.g. ``{"fno1d_tiny": "FNO"}``) draws one line per strategy and
    family, so points of different model families are never joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(tables, key=lambda p: x_values[p])
    families = families or {p: "" for p in points}
    strategies = [(s, f) for s in sorted({s for t in tables.values() for s in t if s != "uniform"})
                  for f in dict.fromkeys(families[p] for p in points)]
    fig, axes = plt.subplots(1, len(numbers), figsize=(4.2 * len(numbers), 3.6), sharey=False)
    for ax, number in zip(np.atleast_1d(axes), numbers):
        for i, (strategy, family) in enumerate(strategies):
            have = [p for p in points if families[p] == family and strategy in tables[p]
                    and f"ratio_{number}" in tables[p][strategy]]
            if not have:
                continue
            x = np.array([x_values[p] for p in have], float)
            r = [tables[p][strategy][f"ratio_{number}"] for p in have]
            line, = ax.plot(x, [v["ratio"] for v in r], "o-", label=f"{strategy}, {family}" if family else strategy)
            ax.fill_between(x, [v["t"][0] for v in r], [v["t"][1] for v in r], color=line.get_color(), alpha=0.2)
            for xv, v in zip(x, r):
                jitter = xv * (1 + 0.03 * (i - len(strategies) / 2)) if log_x else xv
                ax.plot([jitter] * len(v["per_seed"]), v["per_seed"], ".", color=line.get_color(), alpha=0.5)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set(xlabel=x_label, ylabel=f"Uniform / strategy, {number}", xscale="log" if log_x else "linear", yscale="log",
               title=f"{number} (> 1: strategy better)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=100)
