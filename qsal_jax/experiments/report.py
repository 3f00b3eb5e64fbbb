"""Gather runs (strategies × seeds) into tables a reader can trust.

For every strategy and each of the five numbers: the mean ± std over seeds, and the paired
ratio to the baseline ``Uniform / strategy`` (> 1: the strategy is better) with a 95 % interval.
Runs are paired by seed (same model initialisation, same score set). Two intervals are computed:

* ``t``: a Student-t interval on the per-seed log ratios, ``exp(mean ± t_{0.975, n-1} · sd / √n)``
  (the one the markdown shows: with 5 seeds it is the wider, more conservative one);
* ``boot``: a paired bootstrap of the ratio of seed means (10 000 resamples of the seeds).

A ratio whose interval excludes 1 is marked ``*``; anything else is not a difference.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict

import numpy as np

NUMBERS = ("mean", "std", "max", "p95", "p99")
METRICS = ("one_step", "one_step_per_transition", "rollout", "rollout_per_transition")


def load_summaries(workdirs) -> list[dict]:
    out = []
    for w in workdirs:
        path = os.path.join(w, "summary.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{w}: no summary.json (has the run finished?)")
        with open(path) as f:
            out.append(json.load(f))
    return out


def paired_ratio(base: np.ndarray, other: np.ndarray, *, resamples: int = 10_000, seed: int = 0) -> dict:
    """``mean(base) / mean(other)`` over paired seeds with two 95 % intervals (module docstring).

    ``base``, ``other``: ``[n]`` per-seed values, entry i of both from seed i.
    """
    from scipy import stats

    base, other = np.asarray(base, np.float64), np.asarray(other, np.float64)
    n = base.size
    ratio = float(base.mean() / other.mean())
    per_seed = base / other
    out = {"ratio": ratio, "per_seed": per_seed.tolist(), "wins": int(np.sum(per_seed > 1)), "n": n}
    if n < 2 or not np.all(np.isfinite(per_seed)) or np.any(per_seed <= 0):
        out.update(t=(float("nan"), float("nan")), boot=(float("nan"), float("nan")))
        return out
    logs = np.log(per_seed)
    half = stats.t.ppf(0.975, n - 1) * logs.std(ddof=1) / np.sqrt(n)
    out["t"] = (float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half)))
    idx = np.random.default_rng(seed).integers(0, n, (resamples, n))
    boot = base[idx].mean(axis=1) / other[idx].mean(axis=1)
    out["boot"] = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    return out


def aggregate(summaries: list[dict], metric: str = "one_step", baseline: str = "uniform") -> dict:
    """strategy → {number: (mean, std over seeds), ratio_<number>: `paired_ratio`, seeds, ...}."""
    groups = defaultdict(dict)
    for s in summaries:
        groups[s.get("label") or s["strategy"]][s["seed"]] = s
    base = groups.get(baseline)
    table = {}
    for strategy, by_seed in groups.items():
        runs = [by_seed[k] for k in sorted(by_seed)]
        row = {n: (float(np.mean([r[metric][n] for r in runs])), float(np.std([r[metric][n] for r in runs])))
               for n in NUMBERS}
        row["seeds"] = len(runs)
        row["simulations"] = int(np.mean([r["simulations"] for r in runs]))
        row["unevenness"] = float(np.mean([r.get("unevenness_one_step", float("nan")) for r in runs]))
        row["non_finite"] = int(sum(r.get("non_finite_predictions", {}).get(metric.split("_per_")[0], 0) for r in runs))
        if base is not None:
            common = sorted(set(by_seed) & set(base))
            for n in NUMBERS:
                row[f"ratio_{n}"] = paired_ratio([base[k][metric][n] for k in common], [by_seed[k][metric][n] for k in common])
        table[strategy] = row
    return table


def ratio_cell(r: dict) -> str:
    lo, hi = r["t"]
    if not np.isfinite(lo):
        return f"{r['ratio']:.2f}"
    mark = "*" if lo > 1 or hi < 1 else ""
    return f"{r['ratio']:.2f}{mark} [{lo:.2f}, {hi:.2f}]"


def score_set_line(summaries: list[dict]) -> str:
    infos = {json.dumps(s.get("score_set", {}), sort_keys=True) for s in summaries}
    if len(infos) != 1:
        raise ValueError("these runs were scored on different score sets; they cannot be compared")
    info = json.loads(infos.pop())
    if not info:
        return "score set: not recorded (runs from before the score set)"
    return (f"score set: {info['size']} trajectories, {info['draw']}, over the whole box "
            f"({info['dropped_blowups']} solver blow-ups dropped; cache key {info['key']})")


def to_markdown(table: dict, metric: str = "one_step", header: str = "") -> str:
    base = "uniform" in table
    head = ["strategy", "seeds", "sims"] + list(NUMBERS) + ([f"U/S {n}" for n in NUMBERS] if base else [])
    head.append("hardest decile/median")
    what = metric.replace("_per_transition", ", per transition").replace("one_step", "one-step").replace("rollout", "rollout")
    lines = [f"{header}Score-set {what} nRMSE: mean ± std over seeds; U/S = Uniform / strategy (> 1: strategy "
             "better), paired by seed, 95 % t-interval on log ratios, * where it excludes 1", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy, row in table.items():
        cells = [strategy, str(row["seeds"]), str(row["simulations"])]
        cells += [f"{row[n][0]:.3e} ± {row[n][1]:.1e}" for n in NUMBERS]
        if base:
            is_base = strategy == "uniform"
            cells += ["—" if is_base else ratio_cell(row[f"ratio_{n}"]) if f"ratio_{n}" in row else "" for n in NUMBERS]
        cells.append(f"{row['unevenness']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(workdirs, out_dir: str, metrics=("one_step", "one_step_per_transition", "rollout")) -> str:
    """report.md (one table per metric), report.csv (every number and both intervals) and seed bands."""
    summaries = load_summaries(workdirs)
    parts = [score_set_line(summaries), ""]
    tables = {}
    for metric in metrics:
        tables[metric] = aggregate(summaries, metric)
        parts += [to_markdown(tables[metric], metric), ""]
    md = "\n".join(parts).rstrip()
    os.makedirs(out_dir, exist_ok=True)
    from qsal_jax.experiments.plots import plot_seed_bands

    for key in ("test_mean", "test_p99", "test_max"):
        name = f"test_error_over_training_{key[5:]}.png"
        if plot_seed_bands(workdirs, os.path.join(out_dir, name), key=key):
            md += f"\n\n![score-set {key[5:]} over training]({name})"
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out_dir, "report.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "strategy", "seeds", "simulations", *[f"{n}_{s}" for n in NUMBERS for s in ("mean", "std")],
                    *[f"u_over_s_{n}_{c}" for n in NUMBERS for c in ("ratio", "t_lo", "t_hi", "boot_lo", "boot_hi", "wins")],
                    "unevenness"])
        for metric, table in tables.items():
            for strategy, row in table.items():
                ratios = []
                for n in NUMBERS:
                    r = row.get(f"ratio_{n}")
                    ratios += [r["ratio"], *r["t"], *r["boot"], r["wins"]] if r else [""] * 6
                w.writerow([metric, strategy, row["seeds"], row["simulations"], *[v for n in NUMBERS for v in row[n]],
                            *ratios, row["unevenness"]])
    return md


def compact_markdown(table: dict, numbers=("mean", "max", "p99", "std")) -> str:
    """The short form RESULTS.md uses: mean and max (± std over seeds) and the U/S ratios with
    their t-intervals, one row per strategy."""
    head = ["strategy", "seeds", "mean", "max"] + [f"U/S {n}" for n in numbers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy, row in sorted(table.items(), key=lambda kv: kv[0] != "uniform"):
        cells = [strategy, str(row["seeds"]), f"{row['mean'][0]:.4f} ± {row['mean'][1]:.4f}",
                 f"{row['max'][0]:.4f} ± {row['max'][1]:.4f}"]
        cells += ["—" if strategy == "uniform" or f"ratio_{n}" not in row else ratio_cell(row[f"ratio_{n}"])
                  for n in numbers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
