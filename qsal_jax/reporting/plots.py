"""Plots of one run: error over a 2D heat-map grid of λ, where the strategy sampled, error over training.

Every figure is drawn from a run's files, so ``python -m qsal_jax.reporting.plots WORKDIR`` (what
`draw_in_child` starts) draws a finished run's figures again. matplotlib is imported where a
figure is drawn: headless machines fall back to Agg by themselves, and notebooks keep inline.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

from qsal_jax.reporting.run_files import MetricLog, save_figure, write_json


def heatmap(ax, values, x_axis, y_axis, title, xlabel, ylabel, vmax=None):
    import matplotlib.pyplot as plt

    n = len(x_axis)
    im = ax.imshow(np.asarray(values).reshape(n, n), origin="lower", aspect="auto",
                   extent=(x_axis[0], x_axis[-1], y_axis[0], y_axis[-1]), cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    plt.colorbar(im, ax=ax)


def plot_run(workdir: str, vmax: float | None = None) -> list[str]:
    """Draw a finished online run's figures from its files into ``workdir``; returns their paths.

    Reads ``plot_inputs.json`` (title, grid axes), ``heatmap_errors.npz`` (the heat-map grid's
    errors, drawn for orientation only: no reported number comes from the grid), ``samples/``,
    ``metrics.jsonl`` and ``rollouts.npz``; whichever is missing is skipped. No JAX is needed, so
    a child process can draw them (`draw_in_child`). ``vmax`` fixes the heat map's colour scale
    so that the heat maps of a comparison can be read side by side.
    """
    import matplotlib.pyplot as plt

    with open(os.path.join(workdir, "plot_inputs.json")) as f:
        info = json.load(f)
    written = []
    title = info.get("title", "")
    prefix = f"{title}: " if title else ""
    heatmap_file = os.path.join(workdir, "heatmap_errors.npz")
    if info.get("grid_axes") and os.path.exists(heatmap_file):
        errors = np.load(heatmap_file)
        (xname, yname), (ix, iy) = info["grid_axes"], info["axis_index"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        heatmap(axes[0], errors["one_step"], errors["x"], errors["y"], f"{prefix}one-step nRMSE", xname, yname, vmax)
        heatmap(axes[1], errors["rollout"], errors["x"], errors["y"], f"{prefix}rollout nRMSE", xname, yname)
        fig.suptitle("heat-map grid (other parameters at mid-box); not the score set", fontsize=9)
        written.append(_save(fig, os.path.join(workdir, "test_error_heatmap.png")))

        files = sorted(glob.glob(os.path.join(workdir, "samples", "lam_*.npy")))
        if files:
            lams = [np.load(f).reshape(-1, info["dim"]) for f in files]
            half = len(lams) // 2 or 1
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for a, chunk, sub in ((axes[0], lams[:half], "drawn λ, first half"), (axes[1], lams[half:] or lams, "drawn λ, second half")):
                pts = np.concatenate(chunk)
                *_, im = a.hist2d(pts[:, ix], pts[:, iy], bins=16, range=info["axis_range"])
                a.set(title=f"{prefix}{sub}", xlabel=xname, ylabel=yname)
                plt.colorbar(im, ax=a, label="simulations")
            written.append(_save(fig, os.path.join(workdir, "sampling_density.png")))

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
        written.append(_save(fig, os.path.join(workdir, "training_curve.png")))

    rollouts_file = os.path.join(workdir, "rollouts.npz")
    if os.path.exists(rollouts_file):
        r = np.load(rollouts_file)
        written.append(plot_rollouts(os.path.join(workdir, "rollouts.png"), r["u"], r["pred"], [str(x) for x in r["labels"]],
                                     title=f"{prefix}score-set λ"))
    return written


def _save(fig, path: str, dpi: int = 100) -> str:
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


FIGURES_DONE = "figures.json"  # written by the drawing process last: the figures, its seconds, or its error


def draw_in_child(workdir: str) -> subprocess.Popen:
    """Start a process that draws `plot_run`'s figures and then writes ``figures.json``; it
    outlives the caller. Its output goes to ``plots.log``."""
    done = os.path.join(workdir, FIGURES_DONE)
    if os.path.exists(done):
        os.remove(done)
    env = dict(os.environ, MPLBACKEND="Agg")
    with open(os.path.join(workdir, "plots.log"), "w") as out:
        return subprocess.Popen([sys.executable, "-m", "qsal_jax.reporting.plots", workdir], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def wait_for_figures(workdir: str, timeout: float = 300.0) -> dict:
    """Wait for the figures `draw_in_child` started; returns ``figures.json`` (``figures``,
    ``seconds``). Raises RuntimeError with the drawing process's error, TimeoutError after
    ``timeout`` seconds."""
    done = os.path.join(workdir, FIGURES_DONE)
    deadline = time.monotonic() + timeout
    while not os.path.exists(done):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {FIGURES_DONE} in {workdir} after {timeout:.0f} s (see plots.log there)")
        time.sleep(0.05)
    with open(done) as f:
        result = json.load(f)
    if result.get("error"):
        raise RuntimeError(f"drawing the figures of {workdir} failed: {result['error']} (plots.log there)")
    return result


def _main(workdir: str) -> None:
    t0 = time.perf_counter()
    result: dict = {"figures": [], "seconds": None, "error": None}
    try:
        result["figures"] = [os.path.basename(p) for p in plot_run(workdir)]
    except Exception as e:  # recorded for wait_for_figures, and printed to plots.log
        result["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        result["seconds"] = time.perf_counter() - t0
        write_json(os.path.join(workdir, FIGURES_DONE), result)


def plot_seed_bands(workdirs, out_path: str, key: str = "test_mean") -> str | None:
    """Test error over training, one line per strategy with a ±1 std band over seeds."""
    import matplotlib.pyplot as plt

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
    return _save(fig, out_path)


def plot_rollouts(path: str, u_true, u_pred, labels, title: str = "") -> str:
    """Solver trajectory against the surrogate's rollout from the same u₀, one row per case.

    ``u_true, u_pred: [n, T, C, *grid]`` (channel 0 is drawn). 1D fields as space–time images
    (x across, t up), 2D fields at the last frame; the error panel is |surrogate − solver|.
    Solver and surrogate of a row share one colour scale.
    """
    import matplotlib.pyplot as plt

    u_true, u_pred = np.asarray(u_true)[:, :, 0], np.asarray(u_pred)[:, :, 0]
    n = u_true.shape[0]
    fig, axes = plt.subplots(n, 3, figsize=(12, 3.2 * n), squeeze=False)
    for row in range(n):
        truth, pred = (u_true[row], u_pred[row]) if u_true.ndim == 3 else (u_true[row, -1], u_pred[row, -1])
        lo, hi = float(np.nanmin(truth)), float(np.nanmax(truth))
        where = "x →, t ↑" if u_true.ndim == 3 else "last frame"
        for col, (field, name, kw) in enumerate(((truth, "solver", {"vmin": lo, "vmax": hi, "cmap": "RdBu_r"}),
                                                 (pred, "surrogate rollout", {"vmin": lo, "vmax": hi, "cmap": "RdBu_r"}),
                                                 (np.abs(pred - truth), "|surrogate − solver|", {"vmin": 0.0, "cmap": "magma"}))):
            ax = axes[row, col]
            im = ax.imshow(field, origin="lower", aspect="auto", **kw)
            ax.set(xlabel=where, xticks=[], yticks=[])
            ax.set_title(name if row == 0 else "", fontsize=10)
            if col == 0:
                ax.set_ylabel(labels[row], fontsize=9)
            plt.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_comparison(workdirs, out_path: str) -> str | None:
    """One page per comparison: for each strategy (its first seed) the heat-map grid's one-step
    error and the drawn λ, each on one colour scale shared by all strategies; below, every
    seed's score-set error distribution and the max error over training with seed bands.
    Returns None for runs without heat maps (toy, PINN, plots off)."""
    import matplotlib.pyplot as plt

    import json

    from qsal_jax.simulation import get_problem

    runs = {}
    for w in workdirs:
        if not os.path.exists(os.path.join(w, "heatmap_errors.npz")):
            continue
        with open(os.path.join(w, "summary.json")) as f:
            s = json.load(f)
        runs.setdefault(s.get("label") or s["strategy"], []).append((s["seed"], w))
    if not runs:
        return None
    first = {name: min(found) for name, found in runs.items()}
    with open(os.path.join(next(iter(first.values()))[1], "config.json")) as f:
        config = json.load(f)
    space = get_problem(config["problem"]["name"], **config["problem"].get("kwargs", {})).space
    with open(os.path.join(next(iter(first.values()))[1], "plot_inputs.json")) as f:
        xname, yname = json.load(f)["grid_axes"]  # the axes the run's heat-map grid was simulated on
    ix, iy = space.index(xname), space.index(yname)
    rng = [[space.low[ix], space.high[ix]], [space.low[iy], space.high[iy]]]
    maps, drawn = {}, {}
    for name, (seed, w) in first.items():
        grid = np.load(os.path.join(w, "heatmap_errors.npz"))
        maps[name] = (grid["lam"], np.where(grid["valid"], grid["one_step"], np.nan))
        files = sorted(glob.glob(os.path.join(w, "samples", "lam_*.npy")))
        pts = np.concatenate([np.load(f).reshape(-1, space.dim) for f in files]) if files else np.zeros((0, space.dim))
        drawn[name] = np.histogram2d(pts[:, ix], pts[:, iy], bins=16, range=rng)[0]
    vmax_err = max(np.nanmax(v) for _, v in maps.values())
    vmax_count = max(h.max() for h in drawn.values()) or 1.0

    fig, axes = plt.subplots(len(first) + 1, 2, figsize=(11, 3.6 * (len(first) + 1)), squeeze=False)
    for row, (name, (seed, _)) in enumerate(first.items()):
        lam, values = maps[name]
        n = int(round(np.sqrt(len(values))))
        xs, ys = np.unique(lam[:, ix]), np.unique(lam[:, iy])
        im = axes[row, 0].imshow(values.reshape(n, n), origin="lower", aspect="auto", cmap="viridis", vmin=0.0,
                                 vmax=vmax_err, extent=(xs[0], xs[-1], ys[0], ys[-1]))
        axes[row, 0].set(xlabel=xname, ylabel=yname)
        axes[row, 0].set_title(f"{name}, seed {seed}: one-step nRMSE on the grid", fontsize=9)
        plt.colorbar(im, ax=axes[row, 0])
        im = axes[row, 1].imshow(drawn[name].T, origin="lower", aspect="auto", cmap="magma", vmin=0.0, vmax=vmax_count,
                                 extent=(rng[0][0], rng[0][1], rng[1][0], rng[1][1]))
        axes[row, 1].set(xlabel=xname, ylabel=yname)
        axes[row, 1].set_title(f"{name}, seed {seed}: drawn λ (all steps)", fontsize=9)
        plt.colorbar(im, ax=axes[row, 1], label="simulations")
    dist, curve = axes[-1]
    for i, (name, found) in enumerate(runs.items()):
        for k, (seed, w) in enumerate(sorted(found)):
            e = np.sort(np.load(os.path.join(w, "test_errors.npz"))["one_step"])
            dist.plot(e, 1.0 - np.arange(len(e)) / len(e), color=f"C{i}", alpha=0.6, label=name if k == 0 else None)
        maxima = [{r["step"]: r["test_max"] for r in MetricLog(os.path.join(w, "metrics.jsonl")).read() if "test_max" in r}
                  for _, w in found]
        steps = sorted(set.intersection(*(set(m) for m in maxima)))
        if steps:
            v = np.array([[m[s] for s in steps] for m in maxima])
            curve.plot(steps, v.mean(0), "o-", color=f"C{i}", label=f"{name} ({len(found)} seeds)")
            curve.fill_between(steps, v.min(0), v.max(0), color=f"C{i}", alpha=0.2)
    dist.set(xscale="log", yscale="log", xlabel="per-trajectory one-step nRMSE (score set)", ylabel="fraction of λ above",
             title="score-set error tail, every seed")
    curve.set(yscale="log", xlabel="online step", ylabel="score-set max one-step nRMSE",
              title="max error over training (mean, band = seed range)")
    from matplotlib.ticker import NullFormatter

    dist.xaxis.set_minor_formatter(NullFormatter())
    dist.legend(fontsize=8)
    curve.legend(fontsize=8)
    fig.suptitle("left: heat-map grid over two λ (the others at mid-box), drawn for orientation only; "
                 "colour scales shared by all strategies", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    return save_figure(fig, out_path, dpi=90)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m qsal_jax.reporting.plots WORKDIR")
    _main(sys.argv[1])


def launched_lam(workdir: str) -> np.ndarray | None:
    """Every λ a run launched ``[N, D']`` (box units): a workdir's ``samples/lam_*.npy``, or a study
    record's ``draws.npz`` (its first coordinates only); None if the run kept none."""
    record = os.path.join(workdir, "draws.npz")
    if os.path.exists(record):
        with np.load(record) as d:
            return np.asarray(d["lam"], np.float32)
    files = sorted(glob.glob(os.path.join(workdir, "samples", "lam_*.npy")))
    if not files:
        return None
    return np.concatenate([x.reshape(-1, x.shape[-1]) for x in map(np.load, files)]).astype(np.float32)


def plot_draws(workdirs, out_path: str, axes=(0, 1), bins: int = 24) -> str | None:
    """Where each strategy sampled: the 2D histogram of two coordinates of every launched λ, all
    seeds pooled, one panel per strategy on one shared colour scale (density relative to uniform)."""
    import matplotlib.pyplot as plt

    from qsal_jax.simulation import get_problem

    pooled, config = {}, None
    for w in workdirs:
        lam = launched_lam(w)
        if lam is None:
            continue
        with open(os.path.join(w, "summary.json")) as f:
            s = json.load(f)
        if config is None:
            with open(os.path.join(w, "config.json")) as f:
                config = json.load(f)
        pooled.setdefault(s.get("label") or s["strategy"], []).append(lam[:, list(axes)])
    if not pooled:
        return None
    space = get_problem(config["problem"]["name"], **config["problem"].get("kwargs", {})).space
    rng = [[space.low[i], space.high[i]] for i in axes]
    hists = {name: np.histogram2d(*np.concatenate(parts).T, bins=bins, range=rng, density=True)[0]
             for name, parts in pooled.items()}
    area = (rng[0][1] - rng[0][0]) * (rng[1][1] - rng[1][0])
    vmax = max(float(h.max()) for h in hists.values()) * area
    fig, axs = plt.subplots(1, len(hists), figsize=(3.2 * len(hists) + 0.8, 3.2), squeeze=False)
    fig.subplots_adjust(left=0.05, right=0.9, bottom=0.17, top=0.88, wspace=0.3)
    for ax, (name, h) in zip(axs[0], hists.items()):
        im = ax.imshow(h.T * area, origin="lower", extent=[*rng[0], *rng[1]], aspect="auto", vmin=0, vmax=vmax,
                       cmap="magma")
        ax.set_title(f"{name} ({sum(len(p) for p in pooled[name])} λ)", fontsize=9)
        ax.set_xlabel(space.names[axes[0]])
        ax.set_ylabel(space.names[axes[1]])
    fig.colorbar(im, cax=fig.add_axes([0.92, 0.17, 0.012, 0.71]), label="density / uniform")
    return save_figure(fig, out_path, dpi=100)
