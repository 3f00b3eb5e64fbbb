"""Gather runs (strategies × seeds) into tables a reader can trust.

For every strategy and each of the five numbers: the mean ± std over seeds, and the paired
ratio to the baseline ``Uniform / strategy`` (> 1: the strategy is better) with a 95 % interval.
Runs are paired by seed (same model initialisation, same score set). Two intervals are computed:

* ``t``: a Student-t interval on the per-seed log ratios, ``exp(mean ± t_{0.975, n-1} · sd / √n)``
  (the one the markdown shows: with 5 seeds it is the wider, more conservative one);
* ``boot``: a paired bootstrap of the ratio of seed means (10 000 resamples of the seeds).

A ratio whose interval excludes 1 is marked ``*``; anything else is not a difference. The number
shown is the ratio of seed means; where one seed dominates the means it can fall outside the
t-interval (which is centred on the per-seed ratios), and it is then marked ``†``.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict

import numpy as np

from qsal_jax.reporting.run_files import read_json

NUMBERS = ("mean", "std", "max", "p95", "p99")
# One name per quantity, as summaries store it, and what a table calls it.
METRIC_LABELS = {
    "one_step_nrmse": "score-set one-step nRMSE",
    "one_step_nrmse_per_transition": "score-set one-step nRMSE, per transition",
    "rollout_nrmse": "score-set rollout nRMSE",
    "rollout_nrmse_per_transition": "score-set rollout nRMSE, per transition",
    "uniform_mse": "squared error on the uniform validation set",
    "hard_mse": "squared error on the basin-boundary validation set",
    "relative_l2_per_time": "relative L2 error per time slice of the reference solution",
}
# Summaries written before the metrics had one name each.
_LEGACY_NAMES = {"one_step": "one_step_nrmse", "one_step_per_transition": "one_step_nrmse_per_transition",
                 "rollout": "rollout_nrmse", "rollout_per_transition": "rollout_nrmse_per_transition",
                 "unevenness_one_step": "unevenness"}


def load_summaries(workdirs) -> list[dict]:
    out = []
    for w in workdirs:
        path = os.path.join(w, "summary.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{w}: no summary.json (has the run finished?)")
        try:
            s = read_json(path)  # "inf"/"nan" back to floats
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"{path} is damaged (not JSON: {getattr(e, 'msg', type(e).__name__)}); "
                             "run that run's command again to write it") from None
        if not isinstance(s, dict):
            raise ValueError(f"{path} is damaged (holds a {type(s).__name__}, not a run's summary); "
                             "run that run's command again to write it")
        if "metrics" not in s:
            s = {_LEGACY_NAMES.get(k, k): v for k, v in s.items()}
            s["metrics"] = [m for m in METRIC_LABELS if m in s]
            s["non_finite_predictions"] = {_LEGACY_NAMES.get(k, k): v for k, v in s.get("non_finite_predictions", {}).items()}
        out.append(s)
    return out


def by_strategy_and_seed(summaries: list[dict]) -> dict[str, dict[int, dict]]:
    """label (or strategy) → seed → summary: the pairing every ratio uses."""
    groups = defaultdict(dict)
    for s in summaries:
        groups[s.get("label") or s["strategy"]][s["seed"]] = s
    return groups


def baseline_name(names) -> str | None:
    """The Uniform arm of a comparison: ``uniform``, else the first name that starts with it
    (``uniform/accumulate`` in the toy)."""
    names = list(names)
    if "uniform" in names:
        return "uniform"
    return next((n for n in names if n.startswith("uniform")), None)


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


def aggregate(summaries: list[dict], metric: str = "one_step_nrmse", baseline: str | None = None) -> dict:
    """strategy → {number: (mean, std over seeds), ratio_<number>: `paired_ratio`, seeds, ...}.

    ``baseline`` defaults to `baseline_name` of the groups; the ratios are baseline / strategy.
    """
    groups = by_strategy_and_seed(summaries)
    base = groups.get(baseline or baseline_name(groups))
    table = {}
    for strategy, by_seed in groups.items():
        runs = [by_seed[k] for k in sorted(by_seed)]
        row = {n: (float(np.mean([r[metric][n] for r in runs])), float(np.std([r[metric][n] for r in runs])))
               for n in NUMBERS}
        row["seeds"] = len(runs)
        row["simulations"] = int(np.mean([r["simulations"] for r in runs]))
        row["unevenness"] = float(np.mean([r.get("unevenness", float("nan")) for r in runs]))
        row["non_finite"] = int(sum(r.get("non_finite_predictions", {}).get(metric.split("_per_")[0], 0) for r in runs))
        if base is not None:
            common = sorted(set(by_seed) & set(base))
            for n in NUMBERS:
                row[f"ratio_{n}"] = paired_ratio([base[k][metric][n] for k in common], [by_seed[k][metric][n] for k in common])
        table[strategy] = row
    return table


OUTSIDE = "†"  # the ratio of seed means lies outside the t-interval of the per-seed ratios
OUTSIDE_LEGEND = (f"; {OUTSIDE} where the ratio of seed means lies outside that interval (one seed dominates the "
                  "means; the per-seed ratios are in report.csv)")


def ratio_cell(r: dict) -> str:
    lo, hi = r["t"]
    if not np.isfinite(lo):
        return f"{r['ratio']:.2f}"
    mark = ("*" if lo > 1 or hi < 1 else "") + (OUTSIDE if not lo <= r["ratio"] <= hi else "")
    return f"{r['ratio']:.2f}{mark} [{lo:.2f}, {hi:.2f}]"


def score_set_line(summaries: list[dict]) -> str:
    sets = [dict(s.get("score_set", {})) for s in summaries]
    fingerprints = {info["simulator"] for info in sets if "simulator" in info}
    if len(fingerprints) > 1:
        raise ValueError(f"these runs were scored on trajectories of different simulators ({sorted(fingerprints)}); "
                         "they cannot be compared")
    # Records from before the simulator's fingerprint are compared on everything else.
    infos = {json.dumps({k: v for k, v in info.items() if k != "simulator"}, sort_keys=True) for info in sets}
    if len(infos) != 1:
        raise ValueError("these runs were scored on different score sets; they cannot be compared")
    info = json.loads(infos.pop())
    if not info:
        return "score set: not recorded (runs from before the score set)"
    if "description" in info:  # the toy's and the PINN's own validation data
        return f"scored on {info['description']}"
    return (f"score set: {info['size']} trajectories, {info['draw']}, over the whole box "
            f"({info['dropped_blowups']} solver blow-ups dropped; cache key {info['key']})")


def to_markdown(table: dict, metric: str = "one_step_nrmse", header: str = "") -> str:
    base = baseline_name(table)
    head = ["strategy", "seeds", "sims"] + list(NUMBERS) + ([f"U/S {n}" for n in NUMBERS] if base else [])
    head.append("hardest decile/median")
    what = METRIC_LABELS.get(metric, metric)
    legend = (f"; U/S = {base} / strategy (> 1: strategy better), paired by seed, 95 % t-interval on log "
              "ratios, * where it excludes 1" if base else "")
    lines = [f"{header}{what[0].upper()}{what[1:]}: mean ± std over seeds" + legend, "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    outside = False
    for strategy, row in table.items():
        cells = [strategy, str(row["seeds"]), str(row["simulations"])]
        cells += [f"{row[n][0]:.3e} ± {row[n][1]:.1e}" for n in NUMBERS]
        if base:
            is_base = strategy == base
            cells += ["—" if is_base else ratio_cell(row[f"ratio_{n}"]) if f"ratio_{n}" in row else "" for n in NUMBERS]
        cells.append(f"{row['unevenness']:.2f}")
        outside = outside or any(OUTSIDE in c for c in cells)
        lines.append("| " + " | ".join(cells) + " |")
    if outside:
        lines[0] += OUTSIDE_LEGEND
    return "\n".join(lines)


def scalars_markdown(summaries: list[dict], keys, ratios: bool = True) -> str:
    """One row per strategy: each scalar of the summaries (e.g. the PINN's global ``relative_l2``)
    as mean ± std over seeds, with baseline / strategy and its t-interval (``ratios``; off for
    diagnostics such as a wall time or a strategy's own shares, whose ratio to the baseline means nothing)."""
    groups = by_strategy_and_seed(summaries)
    base = baseline_name(groups) if ratios else None
    head = ["strategy", "seeds"] + [f"{k} (mean ± std)" for k in keys] + ([f"U/S {k}" for k in keys] if base else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy, by_seed in groups.items():
        runs = [by_seed[k] for k in sorted(by_seed)]
        cells = [strategy, str(len(runs))]
        has = {k: all(k in r for r in runs) for k in keys}  # a strategy's own diagnostics: others show —
        cells += [f"{np.mean([r[k] for r in runs]):.3e} ± {np.std([r[k] for r in runs]):.1e}" if has[k] else "—"
                  for k in keys]
        if base:
            common = sorted(set(by_seed) & set(groups[base]))
            cells += ["—" if strategy == base or not (has[k] and all(k in groups[base][i] for i in common))
                      else ratio_cell(paired_ratio([groups[base][i][k] for i in common], [by_seed[i][k] for i in common]))
                      for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(workdirs, out_dir: str, metrics=None, scalars=(), header: str = "", scalar_ratios: bool = True) -> str:
    """report.md (``header``, one table per metric, then one of ``scalars``), report.csv (every
    number and both intervals) and seed bands.

    ``metrics`` defaults to the first three the runs' summaries declare (an online run: one-step
    per trajectory and per transition, and rollout).
    """
    if not workdirs:
        raise ValueError("no runs to report")
    summaries = load_summaries(workdirs)
    metrics = metrics or summaries[0]["metrics"][:3]
    unknown = [m for m in metrics if not all(m in s for s in summaries)]
    if unknown:
        raise ValueError(f"metrics {', '.join(map(repr, unknown))} are not in every run's summary "
                         f"(the runs declare {', '.join(summaries[0]['metrics'])})")
    parts = [header + score_set_line(summaries), ""]
    tables = {}
    for metric in metrics:
        tables[metric] = aggregate(summaries, metric)
        parts += [to_markdown(tables[metric], metric), ""]
    if scalars:
        parts += [scalars_markdown(summaries, scalars, ratios=scalar_ratios), ""]
    md = "\n".join(parts).rstrip()
    os.makedirs(out_dir, exist_ok=True)
    from qsal_jax.reporting.plots import plot_comparison, plot_seed_bands

    if plot_comparison(workdirs, os.path.join(out_dir, "comparison.png")):
        md += "\n\n![one page: heat maps and drawn λ on shared scales, error tails, max over training](comparison.png)"

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
    base = baseline_name(table)
    for strategy, row in sorted(table.items(), key=lambda kv: kv[0] != base):
        cells = [strategy, str(row["seeds"]), f"{row['mean'][0]:.4f} ± {row['mean'][1]:.4f}",
                 f"{row['max'][0]:.4f} ± {row['max'][1]:.4f}"]
        cells += ["—" if strategy == base or f"ratio_{n}" not in row else ratio_cell(row[f"ratio_{n}"])
                  for n in numbers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
