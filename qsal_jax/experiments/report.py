"""Gather runs (strategies × seeds) into a table: mean ± std over seeds of the five numbers.

Ratio-to-Uniform columns divide each strategy's seed-mean by Uniform's (below 1 is better).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict

import numpy as np

NUMBERS = ("mean", "std", "max", "p95", "p99")


def load_summaries(workdirs) -> list[dict]:
    out = []
    for w in workdirs:
        path = os.path.join(w, "summary.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{w}: no summary.json (has the run finished?)")
        with open(path) as f:
            out.append(json.load(f))
    return out


def aggregate(summaries: list[dict], metric: str = "one_step") -> dict:
    """strategy → {number: (mean over seeds, std over seeds)}, plus seeds, budget and unevenness."""
    groups = defaultdict(list)
    for s in summaries:
        groups[s["strategy"]].append(s)
    table = {}
    for strategy, runs in groups.items():
        row = {n: (float(np.mean([r[metric][n] for r in runs])), float(np.std([r[metric][n] for r in runs]))) for n in NUMBERS}
        row["seeds"] = len(runs)
        row["simulations"] = int(np.mean([r["simulations"] for r in runs]))
        row["unevenness"] = float(np.mean([r.get("unevenness_one_step", float("nan")) for r in runs]))
        table[strategy] = row
    return table


def to_markdown(table: dict, metric: str = "one_step") -> str:
    base = table.get("uniform")
    head = ["strategy", "seeds", "sims"] + [f"{n}" for n in NUMBERS] + (
        [f"{n}/uniform" for n in NUMBERS] if base else []) + ["hardest decile/median"]
    lines = [f"Test {metric} nRMSE, mean ± std over seeds", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy, row in table.items():
        cells = [strategy, str(row["seeds"]), str(row["simulations"])]
        cells += [f"{row[n][0]:.3e} ± {row[n][1]:.1e}" for n in NUMBERS]
        if base:
            cells += [f"{row[n][0] / base[n][0]:.3f}" for n in NUMBERS]
        cells.append(f"{row['unevenness']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(workdirs, out_dir: str, metric: str = "one_step") -> str:
    table = aggregate(load_summaries(workdirs), metric)
    md = to_markdown(table, metric)
    os.makedirs(out_dir, exist_ok=True)
    from qsal_jax.experiments.plots import plot_seed_bands

    if plot_seed_bands(workdirs, os.path.join(out_dir, "test_error_over_training.png")):
        md += "\n\n![test error over training](test_error_over_training.png)"
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out_dir, "report.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seeds", "simulations", *[f"{n}_{s}" for n in NUMBERS for s in ("mean", "std")], "unevenness"])
        for strategy, row in table.items():
            w.writerow([strategy, row["seeds"], row["simulations"], *[v for n in NUMBERS for v in row[n]], row["unevenness"]])
    return md
