"""The score set of an asynchronous experiment, simulated by its own external solver.

The same rules as the fused runs' score sets (`test_sets`): ``eval.score_size`` λ over the whole
box by a scrambled Halton sequence (`test_sets.draw_lams`), simulated once and cached on disk
under a key that hashes the solver command and settings, the box, the size, the draw and the
seed, with a digest of its arrays checked on load. The external program runs in
``num_workers`` threads (each waits on its subprocess); a λ whose simulation faults is dropped
and counted with the blow-ups (``dropped_blowups``), as the fused score set drops them. With ``eval.problem``
the run is scored on that registered problem's score set instead (`test_sets.make_score_set`),
the same file a fused run of that problem reads: the two are then compared on one set.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import zipfile

import numpy as np

from qsal_jax.experiments import test_sets
from qsal_jax.experiments.cache import default_cache_dir
from qsal_jax.online.external import check_trajectory


def score_key(c, size: int, draw: str, seed: int) -> str:
    """The cache key of an external solver's score set: command, solver settings, box, size, draw, seed."""
    settings = {k: v for k, v in c.solver.items() if k not in ("timeout_s", "crashes_before_redraw")}
    settings["command"] = list(c.solver.command)
    return test_sets.score_set_key("async", {"solver": settings, "space": [list(x) for x in c.space]},
                                   size, draw, seed)


def _load(path: str, lam: np.ndarray, shape: tuple):
    try:
        with np.load(path) as f:
            arrays = {name: f[name] for name in ("lam", "u", "valid")}
            digest = str(f["digest"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    ok = (np.array_equal(arrays["lam"], lam) and arrays["u"].shape == (len(lam),) + tuple(shape)
          and digest == test_sets.arrays_digest(arrays))
    return (arrays["u"], arrays["valid"]) if ok else None


def simulate(solver, lam: np.ndarray, shape: tuple, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """``(u [M, *shape] float32, valid [M])``: ``solver`` on each λ, faults zeroed and flagged."""
    u = np.zeros((len(lam),) + tuple(shape), np.float32)
    valid = np.zeros(len(lam), bool)

    def one(i):
        try:
            out = solver(np.asarray(lam[i], np.float64))
        except Exception:  # a fault: dropped and counted, as a blow-up is
            return i, None
        return i, None if check_trajectory(out, shape, np.float32) else out

    with cf.ThreadPoolExecutor(max(1, num_workers)) as pool:
        for i, out in pool.map(one, range(len(lam))):
            if out is not None:
                u[i], valid[i] = out, True
    return u, valid


def external_score_set(c, parts, *, log=print, cache_dir: str | None = None) -> test_sets.ScoreSet:
    """The score set of config ``c`` (`parts`: its `async_setup.Parts`), simulated on first use and cached."""
    e = c.eval
    size, draw, seed = int(e.score_size), e.get("draw", "halton"), int(e.seed)
    if e.get("problem", None):
        from qsal_jax.simulation import get_problem

        kwargs = dict(e.get("problem_kwargs", None) or {})
        return test_sets.make_score_set(get_problem(e.problem, **kwargs), kwargs, size=size, draw=draw, seed=seed,
                                        log=log)
    key = score_key(c, size, draw, seed)
    path = os.path.join(cache_dir or default_cache_dir(), "score_sets", f"async_{key}.npz")
    lam = test_sets.draw_lams(parts.space, size, draw, seed)
    cached = _load(path, lam, parts.trajectory_shape) if os.path.exists(path) else None
    if cached is None:
        log(f"simulating the score set ({size} λ, {draw}, seed {seed}) with the solver command -> {path}")
        u, valid = simulate(parts.solver, lam, parts.trajectory_shape, int(c.run.num_workers))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        arrays = {"lam": lam, "u": u, "valid": valid}
        tmp = path + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, digest=np.asarray(test_sets.arrays_digest(arrays)), **arrays)
        os.replace(tmp, path)
    else:
        u, valid = cached
    if not valid.any():
        raise ValueError(f"eval.score_size: the solver command failed for every one of the {size} score-set λ")
    cond = np.stack([parts.conditioning(x) for x in lam[valid]])
    info = {"size": int(valid.sum()), "drawn": size, "draw": f"scrambled Halton (seed {seed})" if draw == "halton"
            else f"i.i.d. uniform (seed {seed})", "dropped_blowups": int((~valid).sum()), "key": key}
    return test_sets.ScoreSet(lam[valid], u[valid], cond.reshape(int(valid.sum()), parts.cond_dim), info)
