"""The score set every strategy is scored on, the heat-map grid, and honest summary numbers.

**Score set.** ``size`` λ drawn over the *whole* box by a scrambled Halton sequence (SciPy's
``qmc.Halton``, independent of every strategy's own code and state) with a fixed seed, simulated
once and cached on disk under a key that hashes the problem, its settings, the size, the draw
and the seed. Every strategy and seed of a comparison reads the same file. Solver blow-ups are
dropped (they are no surrogate's failure) and counted; a score set that loses every trajectory
is a config error.

**Heat-map grid.** A regular n × n grid over two named parameters, the others at mid-box, for
plots only: never part of any reported number (a grid over-weights its faces and corners, and a
slice sees one face of the box). It is cached beside the score sets.

**Cache files** are named by that key and by the simulator's fingerprint (`simulator_fingerprint`:
shapes, dtype and two probe trajectories), so a change of grid, initial condition or coefficient
made in code misses the cache instead of scoring on old trajectories. They hold their λ and a
digest of every array (name, dtype, shape and bytes). A file is used only when it loads, its λ are
the ones asked for, its trajectories have the simulator's shape and its digest matches; any other
file is rebuilt, with a line saying why.

**Errors** (`score`). Per transition: the one-step nRMSE of ``u[t] → u[t+1]`` and the nRMSE of the
autoregressive rollout from ``u[0]`` at step ``t + 1``, one number per (trajectory, frame), shape
``[M, T-1]``. Per trajectory: their mean over frames, ``[M]``. A non-finite prediction on a valid
trajectory is an infinite error: it is counted, kept in the numbers, and never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.experiments.cache import default_cache_dir
from qsal_jax.experiments.validation import ConfigError
from qsal_jax.simulation.fingerprint import simulator_fingerprint
from qsal_jax.simulation.simulator import Simulator
from qsal_jax.training.evaluate import one_step_errors, rollout_errors, summary_stats

DRAWS = ("halton", "uniform")

logger = logging.getLogger(__name__)


class ScoreSet(NamedTuple):
    lam: np.ndarray  # [M, D] box units, valid trajectories only
    u: np.ndarray  # [M, T, C, *grid] solver trajectories
    cond: np.ndarray  # [M, P] conditioning of each λ
    info: dict  # size, draw, seed, dropped blow-ups, cache key: what every table states


class HeatmapGrid(NamedTuple):
    lam: np.ndarray  # [n*n, D] grid over (x, y), row-major in y then x
    u: np.ndarray  # [n*n, T, C, *grid]
    cond: np.ndarray  # [n*n, P]
    valid: np.ndarray  # [n*n] bool: the solver trajectory is finite (NaN cell otherwise)
    axes: tuple  # (x name, y name, x values [n], y values [n])


def score_set_key(problem: str, kwargs: dict, size: int, draw: str, seed: int) -> str:
    """Short hex digest naming a score set: problem, its settings, size, draw and seed."""
    blob = json.dumps({"problem": problem, "kwargs": kwargs, "size": size, "draw": draw, "seed": seed, "v": 1},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def draw_lams(space, size: int, draw: str, seed: int) -> np.ndarray:
    """``size`` λ over the whole box, ``[size, D]`` float32: scrambled Halton or i.i.d. uniform."""
    if draw == "halton":
        from scipy.stats import qmc

        z = qmc.Halton(d=space.dim, scramble=True, seed=seed).random(size)
    elif draw == "uniform":
        z = np.random.default_rng(seed).random((size, space.dim))
    else:
        raise ValueError(f"eval.score_draw must be one of {list(DRAWS)}, got {draw!r}")
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    return (low + z * (high - low)).astype(np.float32)


def _simulate(sim: Simulator, lam: np.ndarray, chunk: int = 128):
    simulate = jax.jit(sim.simulate)
    us, finite = [], []
    for i in range(0, lam.shape[0], chunk):
        part = lam[i : i + chunk]
        pad = chunk - part.shape[0]  # one compiled shape for every chunk
        traj = simulate(jnp.asarray(np.concatenate([part, np.repeat(part[-1:], pad, 0)]) if pad else part))
        us.append(np.asarray(traj.u)[: part.shape[0]])
        finite.append(np.asarray(traj.finite)[: part.shape[0]])
    return np.concatenate(us), np.concatenate(finite)


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 (hex) of each array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        x = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{x.dtype.str}:{x.shape};".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _load_cached(path: str, lam: np.ndarray, u_shape: tuple) -> tuple[tuple | None, str]:
    """``((u, finite), "")`` from the npz at ``path`` if it can be trusted, else ``(None, why not)``."""
    try:
        with np.load(path) as f:
            arrays = {name: f[name] for name in ("lam", "u", "finite")}
            stored = str(f["digest"]) if "digest" in f.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        return None, f"cannot be read ({type(e).__name__})"
    if not np.array_equal(arrays["lam"], lam):
        return None, "holds other λ"
    if arrays["u"].shape != u_shape or arrays["finite"].shape != u_shape[:1]:
        return None, f"holds trajectories of shape {arrays['u'].shape}, not {u_shape}"
    if stored != arrays_digest(arrays):
        return None, "has no digest" if stored is None else "fails its digest"
    return (arrays["u"], arrays["finite"]), ""


def _cached_trajectories(path: str, sim: Simulator, lam: np.ndarray, log=None, what: str = "") -> tuple:
    """``(u, finite)`` of ``lam`` from the npz at ``path``, or simulated and written there
    atomically first. A file that does not load, holds other λ, trajectories of another shape than
    ``sim`` makes, or fails its digest is rebuilt, never trusted."""
    u_shape = (lam.shape[0], sim.num_frames) + tuple(sim.state_shape)
    if os.path.exists(path):
        cached, why = _load_cached(path, lam, u_shape)
        if cached is not None:
            return cached
        (log or logger.warning)(f"cached {what or 'trajectories'} {path} {why}; rebuilding it")
    if log:
        log(f"simulating {what} -> {path}")
    u, finite = _simulate(sim, lam)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + f".{os.getpid()}.tmp.npz"
    arrays = {"lam": lam, "u": u, "finite": finite}
    np.savez(tmp, digest=np.asarray(arrays_digest(arrays)), **arrays)
    os.replace(tmp, path)
    return u, finite


def make_score_set(sim: Simulator, problem_kwargs: dict, *, size: int, draw: str = "halton", seed: int = 12345,
                   cache_dir: str | None = None, log=None) -> ScoreSet:
    """The cached score set of ``sim`` (see the module docstring); simulated on the first call only."""
    if size < 1:
        raise ValueError(f"eval.score_size must be >= 1, got {size}")
    key = score_set_key(sim.name, dict(problem_kwargs), size, draw, seed)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    lam = draw_lams(sim.space, size, draw, seed)
    fingerprint = simulator_fingerprint(sim)
    u, finite = _cached_trajectories(os.path.join(cache_dir, "score_sets", f"{sim.name}_{key}_{fingerprint}.npz"), sim,
                                     lam, log, f"the score set ({size} λ, {draw}, seed {seed})")
    if not finite.any():
        raise ConfigError(f"eval.score_size: every one of the {size} score trajectories blew up in the solver; "
                         "lower the problem's amplitudes or raise problem.kwargs.substeps")
    info = {"size": int(finite.sum()), "drawn": int(size), "draw": f"scrambled Halton (seed {seed})"
            if draw == "halton" else f"i.i.d. uniform (seed {seed})", "dropped_blowups": int((~finite).sum()),
            "key": key, "simulator": fingerprint}
    lam, u = lam[finite], u[finite]
    return ScoreSet(lam, u, np.asarray(sim.conditioning(jnp.asarray(lam))), info)


def make_heatmap_grid(sim: Simulator, problem_kwargs: dict, axes: tuple, size: int,
                      cache_dir: str | None = None, log=None) -> HeatmapGrid:
    """A ``size × size`` grid over two parameters (others at mid-box), simulated once and cached
    beside the score sets; for plots only."""
    lam, ax, ay = sim.space.grid_2d(axes[0], axes[1], size, dtype=sim.dtype)
    lam = np.asarray(lam)
    key = score_set_key(sim.name, dict(problem_kwargs), size, f"grid:{axes[0]},{axes[1]}", 0)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    path = os.path.join(cache_dir, "heatmap_grids", f"{sim.name}_{key}_{simulator_fingerprint(sim)}.npz")
    u, finite = _cached_trajectories(path, sim, lam, log, f"heat-map grid ({size} x {size})")
    return HeatmapGrid(lam, u, np.asarray(sim.conditioning(jnp.asarray(lam))), finite,
                       (axes[0], axes[1], np.asarray(ax), np.asarray(ay)))


def score(apply_fn, params, u, cond, *, batch_size: int = 32, rollout: bool = True,
          one_step: bool = True) -> dict[str, np.ndarray]:
    """Errors of one surrogate on trajectories ``u [M, T, C, *grid]`` (see the module docstring).

    ``apply_fn`` must be the same object on every call of a run, so the evaluation compiles
    once. Returns ``one_step_by_time``/``rollout_by_time`` ``[M, T-1]`` (NaN → inf) and their
    per-trajectory means ``one_step``/``rollout`` ``[M]``. ``rollout=False`` or ``one_step=False``
    leaves that part out (each costs about as much as the other), so two threads can share them.
    """
    u, cond = jnp.asarray(u), jnp.asarray(cond)
    out = {}
    for name, wanted, errors in (("one_step", one_step, one_step_errors), ("rollout", rollout, rollout_errors)):
        if wanted:
            e = np.asarray(errors(apply_fn, params, u, cond, batch_size=batch_size), np.float64)
            e = np.where(np.isfinite(e), e, np.inf)
            out.update({f"{name}_by_time": e, name: e.mean(axis=1)})
    return out


# The metrics of an online run's summary, the headline first.
SUMMARY_METRICS = ("one_step_nrmse", "one_step_nrmse_per_transition", "rollout_nrmse", "rollout_nrmse_per_transition")


def five_numbers(errors: Any) -> dict:
    """`summary_stats` (mean, std, max, p95, p99) of a vector of errors of valid trajectories.

    Every entry counts: NaN is read as inf (a diverged prediction), so a partly diverged
    surrogate gets an infinite max and mean, never an optimistic summary. With an infinite entry
    the spread is infinite too, and a percentile is inf whenever its interpolation touches one
    (numpy's ``inf - inf`` would make it NaN, which reads as "no number" rather than "diverged").
    """
    e = np.asarray(errors, np.float64).reshape(-1)
    e = np.where(np.isnan(e), np.inf, e)
    if np.isfinite(e).all():
        return summary_stats(e)
    with np.errstate(invalid="ignore"):
        out = summary_stats(e)
    s = np.sort(e)
    return {**out, "std": float("inf"), "p95": _percentile_of_sorted(s, 95), "p99": _percentile_of_sorted(s, 99)}


def _percentile_of_sorted(s: np.ndarray, q: float) -> float:
    """numpy's default (linear) percentile of the sorted ``s``, inf where it reaches an inf entry."""
    rank = q / 100 * (s.size - 1)
    lo, frac = int(np.floor(rank)), rank - np.floor(rank)
    if frac == 0 or np.isinf(s[lo]):
        return float(s[lo])
    hi = s[lo + 1]
    return float("inf") if np.isinf(hi) else float(s[lo] + (hi - s[lo]) * frac)


def summarise(errors: dict[str, np.ndarray]) -> dict:
    """The numbers a summary reports, under the names `report.METRIC_LABELS` knows: per-trajectory
    and per-transition five numbers of the one-step and rollout nRMSE, the count of non-finite
    predictions, and the unevenness of the one-step error over λ."""
    out = {"metrics": list(SUMMARY_METRICS)}
    for kind in ("one_step", "rollout"):
        out[f"{kind}_nrmse"] = five_numbers(errors[kind])
        out[f"{kind}_nrmse_per_transition"] = five_numbers(errors[f"{kind}_by_time"])
    out["non_finite_predictions"] = {f"{k}_nrmse": int(np.sum(~np.isfinite(errors[f"{k}_by_time"])))
                                     for k in ("one_step", "rollout")}
    out["unevenness"] = unevenness(errors["one_step"])
    return out


def unevenness(errors) -> float:
    """How uneven the error is over λ: mean of the hardest decile / median (finite entries)."""
    e = np.asarray(errors, np.float64)
    e = np.sort(e[np.isfinite(e)])
    if e.size < 10:
        return float("nan")
    return float(e[-max(1, e.size // 10):].mean() / np.median(e))

