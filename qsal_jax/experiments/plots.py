"""Plots of one run: error over a 2D heat-map grid of λ, where the strategy sampled, error over training."""

from __future__ import annotations

import glob
import os

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves; notebooks keep inline
import numpy as np

from qsal_jax.experiments.workdir import MetricLog


def heatmap(ax, values, x_axis, y_axis, title, xlabel, ylabel, vmax=None):
    n = len(x_axis)
    im = ax.imshow(np.asarray(values).reshape(n, n), origin="lower", aspect="auto",
                   extent=(x_axis[0], x_axis[-1], y_axis[0], y_axis[-1]), cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    plt.colorbar(im, ax=ax)


def plot_run(workdir: str, grid, space, title: str = "", vmax: float | None = None) -> list[str]:
    """Write the run's figures into ``workdir``; returns their paths.

    ``grid`` is the run's `HeatmapGrid` (or None): its errors, read from ``heatmap_errors.npz``,
    are drawn for orientation only (no reported number comes from the grid). ``vmax`` fixes the
    colour scale so that heat maps of a comparison can be read side by side.
    """
    written = []
    prefix = f"{title}: " if title else ""
    if grid is not None and os.path.exists(os.path.join(workdir, "heatmap_errors.npz")):
        errors = np.load(os.path.join(workdir, "heatmap_errors.npz"))
        xname, yname, ax_x, ax_y = grid.axes
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        heatmap(axes[0], errors["one_step"], ax_x, ax_y, f"{prefix}one-step nRMSE", xname, yname, vmax)
        heatmap(axes[1], errors["rollout"], ax_x, ax_y, f"{prefix}rollout nRMSE", xname, yname)
        fig.suptitle("heat-map grid (other parameters at mid-box); not the score set", fontsize=9)
        fig.tight_layout()
        path = os.path.join(workdir, "test_error_heatmap.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

        files = sorted(glob.glob(os.path.join(workdir, "samples", "lam_*.npy")))
        if files:
            lams = [np.load(f).reshape(-1, space.dim) for f in files]
            half = len(lams) // 2 or 1
            ix, iy = space.index(xname), space.index(yname)
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for a, chunk, sub in ((axes[0], lams[:half], "drawn λ, first half"), (axes[1], lams[half:] or lams, "drawn λ, second half")):
                pts = np.concatenate(chunk)
                *_, im = a.hist2d(pts[:, ix], pts[:, iy], bins=16,
                                  range=[[space.low[ix], space.high[ix]], [space.low[iy], space.high[iy]]])
                a.set(title=f"{prefix}{sub}", xlabel=xname, ylabel=yname)
                plt.colorbar(im, ax=a, label="simulations")
            fig.tight_layout()
            path = os.path.join(workdir, "sampling_density.png")
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)

    records = MetricLog(os.path.join(workdir, "metrics.jsonl")).read()
    steps = [r["step"] for r in records]
    if steps:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogy(steps, [r["train_loss"] for r in records], label="train loss", alpha=0.7)
        evals = [(r["step"], r["test_mean"]) for r in records if "test_mean" in r]
        if evals:
            ax.semilogy(*zip(*evals), "o-", label="score-set one-step nRMSE (mean)")
        ax.set(xlabel="online step", title=f"{prefix}training")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(workdir, "training_curve.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def plot_seed_bands(workdirs, out_path: str, key: str = "test_mean") -> str | None:
    """Test error over training, one line per strategy with a ±1 std band over seeds."""
    import json

    curves: dict[str, list[dict[int, float]]] = {}
    for w in workdirs:
        with open(os.path.join(w, "summary.json")) as f:
            s = json.load(f)
            strategy = s.get("label") or s["strategy"]
        points = {r["step"]: r[key] for r in MetricLog(os.path.join(w, "metrics.jsonl")).read() if key in r}
        if points:
            curves.setdefault(strategy, []).append(points)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, runs in curves.items():
        steps = sorted(set.intersection(*(set(r) for r in runs)))
        values = np.array([[r[s] for s in steps] for r in runs])
        mean, std = values.mean(axis=0), values.std(axis=0)
        ax.plot(steps, mean, "o-", label=f"{strategy} ({len(runs)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set(xlabel="online step", ylabel=f"score-set one-step nRMSE, {key[5:] if key.startswith('test_') else key}",
           yscale="log", title="error over training (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
