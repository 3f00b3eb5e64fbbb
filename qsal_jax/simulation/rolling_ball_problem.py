"""The toy experiment's data: the rolling-ball oracle, its validation sets and the rules that
update the training set between rounds (`qsal_jax.experiments.toy` runs the rounds)."""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.solvers import rolling_ball

DATA_UPDATES = ("replace", "accumulate", "window")
_ORACLE_CHUNK = 512  # the oracle is compiled for this batch size only; calls are padded to it


# --------------------------------------------------------------------------- problem
def make_space(problem) -> ParamSpace:
    """The box ``[low, high]^dim`` with axes ``x_0 … x_{dim-1}``."""
    return ParamSpace.vector("x", int(problem.dim), float(problem.low), float(problem.high))


@functools.lru_cache(maxsize=8)
def _compiled_oracle(dim: int, method: str):
    well = rolling_ball.default_double_well(dim, jnp.float32)
    rest = jax.jit(lambda xs: rolling_ball.oracle(well, xs, method=method))
    label = jax.jit(lambda x_min: rolling_ball.basin(well, x_min))
    return rest, label


def make_oracle(problem):
    """``(oracle, label)``: host functions ``x [B, D] → rest position [B, D]`` and ``rest → basin [B]``.

    The jitted oracle is shared by every run in the process (one compilation per dim/method);
    batches are padded to a fixed chunk so no batch size triggers a recompilation.
    """
    rest, label = _compiled_oracle(int(problem.dim), str(problem.get("method", "flow")))

    def oracle(xs) -> np.ndarray:
        xs = np.asarray(xs, np.float32)
        out = []
        for i in range(0, xs.shape[0], _ORACLE_CHUNK):
            chunk = xs[i : i + _ORACLE_CHUNK]
            padded = np.zeros((_ORACLE_CHUNK, xs.shape[1]), np.float32)
            padded[: chunk.shape[0]] = chunk
            out.append(np.asarray(rest(padded))[: chunk.shape[0]])
        return np.concatenate(out) if out else np.zeros_like(xs)

    return oracle, lambda y: np.asarray(label(np.asarray(y, np.float32)))


# --------------------------------------------------------------------------- validation sets
def boundary_points(oracle, label, space: ParamSpace, key, n: int, *, steps: int = 20):
    """``n`` points on the basin boundary by bisection; returns ``(p, a, b)``, each ``[n, D]``.

    Uniform points are split by basin and paired A-with-B (drawing more until ``n`` pairs exist);
    each segment [a, b] is halved ``steps`` times keeping one end in each basin, so ``a`` and
    ``b`` straddle the boundary at distance ``|b − a| = |b₀ − a₀| / 2^steps`` and ``p`` is their
    midpoint. A segment may cross the boundary more than once; bisection finds one crossing.
    """
    a_list, b_list, drawn = [], [], 0
    while sum(len(a) for a in a_list) < n or sum(len(b) for b in b_list) < n:
        xs = np.asarray(space.sample_uniform(jax.random.fold_in(key, drawn), 4 * n))
        lab = label(oracle(xs))
        a_list.append(xs[lab == 0])
        b_list.append(xs[lab == 1])
        drawn += 1
        if drawn > 50:
            raise RuntimeError("boundary_points: one basin is (almost) empty in this box")
    a = np.concatenate(a_list)[:n]
    b = np.concatenate(b_list)[:n]
    for _ in range(steps):
        mid = 0.5 * (a + b)
        in_b = label(oracle(mid)) == 1
        b = np.where(in_b[:, None], mid, b)
        a = np.where(in_b[:, None], a, mid)
    return 0.5 * (a + b), a, b


def jitter_in_ball(key, p, epsilon: float, space: ParamSpace) -> np.ndarray:
    """Each row of ``p [n, D]`` moved to a uniform point of its ε-ball (clipped to the box)."""
    n, d = p.shape
    k_dir, k_rad = jax.random.split(key)
    direction = np.array(jax.random.normal(k_dir, (n, d)), np.float64)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = epsilon * np.asarray(jax.random.uniform(k_rad, (n, 1)), np.float64) ** (1.0 / d)
    return np.clip(p + radius * direction, space.low_array, space.high_array).astype(np.float32)


def _validation_key(problem, evaluation) -> tuple:
    fields = ("dim", "low", "high", "method")
    return tuple(problem.get(f) for f in fields) + tuple(
        evaluation.get(f) for f in ("num_uniform", "num_hard", "epsilon", "bisection_steps", "seed")
    )


_VALIDATION_CACHE: dict[tuple, dict] = {}


def make_validation_sets(problem, evaluation) -> dict:
    """``{"uniform": (x, y), "hard": (x, y)}`` with ``x, y [M, D]`` float32; cached per settings."""
    cache_key = _validation_key(problem, evaluation)
    if cache_key in _VALIDATION_CACHE:
        return _VALIDATION_CACHE[cache_key]
    space = make_space(problem)
    oracle, label = make_oracle(problem)
    key = jax.random.PRNGKey(int(evaluation.seed))
    k_uni, k_bnd, k_jit = jax.random.split(key, 3)
    x_uni = np.asarray(space.sample_uniform(k_uni, int(evaluation.num_uniform)))
    p, _, _ = boundary_points(oracle, label, space, k_bnd, int(evaluation.num_hard), steps=int(evaluation.bisection_steps))
    x_hard = jitter_in_ball(k_jit, p, float(evaluation.epsilon), space)
    sets = {"uniform": (x_uni, oracle(x_uni)), "hard": (x_hard, oracle(x_hard))}
    _VALIDATION_CACHE[cache_key] = sets
    return sets


# --------------------------------------------------------------------------- dataset
def update_dataset(x, y, x_new, y_new, rule: str, window: int | None = None):
    """The dataset after a round: ``replace``, ``accumulate`` or ``window`` (module docstring)."""
    if rule == "replace":
        return np.asarray(x_new), np.asarray(y_new)
    x_all, y_all = np.concatenate([x, x_new]), np.concatenate([y, y_new])
    if rule == "accumulate":
        return x_all, y_all
    if rule == "window":
        if not window or window < 1:
            raise ValueError(f"update_dataset: window rule needs window >= 1, got {window}")
        return x_all[-window:], y_all[-window:]
    raise ValueError(f"update_dataset: rule must be one of {DATA_UPDATES}, got {rule!r}")


def dataset_capacity(initial: int, per_round: int, num_rounds: int, rule: str, window: int | None = None) -> int:
    """The largest dataset a run can hold: the fixed (padded) shape everything is compiled for."""
    if rule == "replace":
        return max(initial, per_round)
    total = initial + num_rounds * per_round
    return total if rule == "accumulate" else min(total, max(initial, int(window)))


def pad_to(a: np.ndarray, capacity: int) -> np.ndarray:
    out = np.zeros((capacity,) + a.shape[1:], np.float32)
    out[: a.shape[0]] = a
    return out
