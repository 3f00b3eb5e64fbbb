"""PINN experiment: Allen–Cahn with collocation points chosen by Uniform, Breed, R3 or RAD.

The PDE, the ansatz u_θ and the spectral reference solution are in `pinn_problem`; this module
checks configs, builds the jitted training round, runs one experiment and the comparison.

**Loss and residual.** ``mean_i r(x_i, t_i)²`` over the collocation points; ``r = F[u_θ]`` with
``u_t``, ``u_xx`` by forward-mode differentiation (`jax.jvp`, what `jax.jacfwd` is built on) of the
scalar ``u_θ(x, t)``, vmapped over points (`residual`). The residual operator takes any scalar
``u(x, t)``, which is how the tests check it on closed-form solutions.

**Collocation.** ``num_points`` points in the box ``[−1, 1] × [0, 1]``, drawn by the strategy at
the start and redrawn every ``resample_every`` Adam steps. Every strategy goes through the one
contract: ``update(make_feedback(points, signal, step=round, surrogate=score))`` then
``points, state = sample(state, key, n)``. The signal is ``|r|`` or ``r²`` (``strategy.signal``);
``score`` is the same signal as a function of the points (a `jax.tree_util.Partial` over the
current parameters), with which a pool strategy (RAD) scores its own uniform candidate pool; the
others ignore it. A strategy that declares a ``population`` setting (Breed, R3, RAD) gets
``num_points``.

**Score.** Relative L2 error of ``u_θ`` against `pinn_problem.reference_solution` over the whole
(x, t) grid (``relative_l2``); ``summary.json`` also carries the five numbers of the
per-time-slice relative L2 errors (``relative_l2_per_time``), the metric `report` tabulates with
intervals.
"""

from __future__ import annotations

import copy
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsal_jax import models, proposals
from qsal_jax.reporting import report
from qsal_jax.experiments import test_sets
from qsal_jax.experiments.compare import run_grid
from qsal_jax.experiments.validation import ConfigError
from qsal_jax.experiments.workdir import MetricLog, Progress, start_or_reuse, write_json
from qsal_jax.reporting.run_files import save_arrays
from qsal_jax.simulation.pinn_problem import domain, make_solution, reference_solution, relative_l2_errors, residual
from qsal_jax.training.state import make_optimizer

SIGNALS = ("abs", "square")


# --------------------------------------------------------------------------- config
def check_config(config) -> None:
    """Raise `ConfigError` naming the first bad field, before anything compiles."""
    if config.strategy.name not in proposals.names():
        raise ConfigError(f"strategy.name: unknown strategy {config.strategy.name!r}; known: {proposals.names()}")
    if config.strategy.get("signal", "abs") not in SIGNALS:
        raise ConfigError(f"strategy.signal: must be one of {SIGNALS}, got {config.strategy.signal!r}")
    c = config.collocation
    if int(c.num_points) < 1 or int(c.resample_every) < 1:
        raise ConfigError(f"collocation: num_points and resample_every must be >= 1, got {c.num_points}, {c.resample_every}")
    if int(config.train.iterations) % int(c.resample_every):
        raise ConfigError(
            f"train.iterations ({config.train.iterations}) must be a multiple of "
            f"collocation.resample_every ({c.resample_every})"
        )
    r = config.reference
    if r.num_points % r.subsample:
        raise ConfigError(f"reference.subsample ({r.subsample}) must divide reference.num_points ({r.num_points})")


# --------------------------------------------------------------------------- programs
class RoundState(NamedTuple):
    step: jax.Array  # [] int32: Adam steps taken
    params: object  # model variables
    opt_state: object  # optax state
    strategy: object  # strategy state
    points: jax.Array  # [N, 2] float32: current collocation points (x, t)


def build(config):
    """``(init, round_fn, predict, strategy)`` for ``config``; ``round_fn`` is jitted.

    ``round_fn(state, key) -> (state, metrics)``: ``resample_every`` Adam steps on the current
    points, then one strategy update and a fresh draw of points.
    """
    space = domain(config.pde)
    n = int(config.collocation.num_points)
    k_steps = int(config.collocation.resample_every)
    eps, react = float(config.pde.diffusivity), float(config.pde.reaction)
    signal = jnp.abs if config.strategy.get("signal", "abs") == "abs" else jnp.square

    settings = dict(config.strategy.get("settings", {}))
    if "population" in proposals.settings_of(config.strategy.name):
        settings.setdefault("population", n)
    # Its driver context: n points drawn and fed back per round, the PINN's residual as the surrogate.
    context = proposals.DriverContext(draws_per_call=n, feedback_rows=n, surrogate="score")
    try:
        strategy = proposals.build(config.strategy.name, space, context=context, **settings)
    except ValueError as e:
        field = "strategy.name" if getattr(e, "context", False) else "strategy.settings"
        raise ConfigError(f"{field}: {e}") from None
    corner = bool(config.model.get("corner_term", True))
    model_cfg = {k: v for k, v in dict(config.model).items() if k != "corner_term"}
    model_cfg["out_features"] = 2 if corner else 1
    model = models.get_model(model_cfg)
    u_fn = make_solution(model, corner_term=corner)
    t = config.train
    optimizer = make_optimizer(learning_rate=float(t.learning_rate), warmup_steps=int(t.warmup_steps),
                               total_steps=int(t.iterations), end_lr_factor=float(t.end_lr_factor),
                               weight_decay=0.0, grad_clip_norm=float(t.grad_clip_norm))  # Adam: no decay

    def res(params, xt):
        return residual(lambda x, t: u_fn(params, x, t), xt, eps, react)

    def scored(params, xt):
        """The strategy's signal at points ``xt [P, 2]`` → ``[P]``."""
        return signal(res(params, xt))

    def init(key):
        k_model, k_strategy, k_points = jax.random.split(key, 3)
        params = model.init(k_model, jnp.zeros((3,), jnp.float32))
        s_state = strategy.init(k_strategy)
        points, s_state = strategy.sample(s_state, k_points, n)  # every strategy starts uniform
        return RoundState(jnp.zeros((), jnp.int32), params, optimizer.init(params), s_state, points)

    def round_fn(state: RoundState, key):
        def loss_fn(params):
            return jnp.mean(res(params, state.points) ** 2)

        def body(carry, _):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (state.params, state.opt_state), None, length=k_steps)
        _, k_sample = jax.random.split(key)
        r = res(params, state.points)
        round_index = state.step // k_steps
        feedback = proposals.make_feedback(state.points, signal(r), step=round_index,
                                           surrogate=jax.tree_util.Partial(scored, params))
        s_state = strategy.update(state.strategy, feedback)
        points, s_state = strategy.sample(s_state, k_sample, n)
        points = points.astype(jnp.float32)
        new = RoundState(state.step + k_steps, params, opt_state, s_state, points)
        return new, {"train_loss": losses[-1], "residual_sq_after": jnp.mean(r**2)}

    predict = jax.jit(jax.vmap(u_fn, in_axes=(None, 0, 0)))
    mean_sq_residual = jax.jit(lambda params, xt: jnp.mean(res(params, xt) ** 2))
    return jax.jit(init), jax.jit(round_fn, donate_argnums=0), predict, mean_sq_residual, strategy, model


def evaluate(predict, params, ref) -> dict:
    x, t, u_ref = ref
    tt, xx = np.meshgrid(t, x, indexing="ij")
    pred = np.asarray(predict(params, jnp.asarray(xx.ravel()), jnp.asarray(tt.ravel()))).reshape(u_ref.shape)
    glob, per_t = relative_l2_errors(pred, u_ref)
    return {"relative_l2": glob, "per_time": per_t, "pred": pred, "max_abs": float(np.max(np.abs(pred - u_ref)))}


# --------------------------------------------------------------------------- entry point
def train_and_evaluate(config, workdir: str, *, overwrite: bool = False, log=print) -> dict:
    """Train one PINN with one collocation strategy; returns the summary written to ``summary.json``.

    With ``config.compare`` it runs `run_pinn_comparison` instead.

    Runs are minutes long and not checkpointed: a finished run of the same config is not rerun,
    an interrupted one starts again.
    """
    if config.get("compare", False):
        return run_pinn_comparison(config, workdir, overwrite=overwrite, log=log)
    check_config(config)
    finished = start_or_reuse(workdir, config, overwrite=overwrite, log=log)
    if finished is not None:
        return finished
    t_start = time.perf_counter()
    rc = config.reference
    ref = reference_solution(int(rc.num_points), float(rc.dt), int(rc.num_times), int(rc.subsample),
                             float(config.pde.t_end), float(config.pde.diffusivity), float(config.pde.reaction))
    init, round_fn, predict, mean_sq_residual, strategy, model = build(config)
    key = jax.random.PRNGKey(int(config.seed))
    k_init, k_rounds, k_test = jax.random.split(key, 3)
    state = init(k_init)
    test_points = domain(config.pde).sample_uniform(k_test, int(config.eval.num_residual_points))
    num_rounds = int(config.train.iterations) // int(config.collocation.resample_every)
    eval_every = int(config.eval.every_rounds)
    metric_log = MetricLog(os.path.join(workdir, "metrics.jsonl"))
    progress = Progress(int(config.train.iterations), 0, log)
    log(f"allen_cahn PINN: {models.count_params(state.params)} parameters, {config.collocation.num_points} "
        f"collocation points resampled every {config.collocation.resample_every} steps by {config.strategy.name}")
    drawn = []
    for rnd in range(num_rounds):
        state, metrics = round_fn(state, jax.random.fold_in(k_rounds, rnd))
        record = {"step": (rnd + 1) * int(config.collocation.resample_every), **{k: float(v) for k, v in metrics.items()}}
        last = rnd == num_rounds - 1
        if (eval_every and (rnd + 1) % eval_every == 0) or last:
            ev = evaluate(predict, state.params, ref)
            record.update(relative_l2=ev["relative_l2"], test_residual_sq=float(mean_sq_residual(state.params, test_points)))
            progress.update(record["step"], loss=record["train_loss"], relative_l2=ev["relative_l2"])
            drawn.append(np.asarray(state.points))
        metric_log.write([record])

    ev = evaluate(predict, state.params, ref)
    summary = {
        "experiment": config.get("name", "pinn_allen_cahn"),
        "problem": "allen_cahn_pinn",
        "strategy": config.strategy.name,
        "seed": int(config.seed),
        "simulations": 0,  # a PINN calls no simulator; the budget is the Adam steps below
        "collocation_points": int(config.collocation.num_points),
        "train_iterations": int(config.train.iterations),
        "resample_every": int(config.collocation.resample_every),
        "parameters": models.count_params(state.params),
        "wall_seconds_this_process": time.perf_counter() - t_start,
        "metrics": ["relative_l2_per_time"],
        "relative_l2": ev["relative_l2"],
        "max_abs_error": ev["max_abs"],
        "test_residual_sq": float(mean_sq_residual(state.params, test_points)),
        "final_train_loss": record["train_loss"],
        "relative_l2_per_time": test_sets.five_numbers(ev["per_time"]),
        "unevenness": test_sets.unevenness(ev["per_time"]),
        "score_set": {"description": f"the spectral reference solution on {len(ref[0])} points × {len(ref[1])} times"},
    }
    save_arrays(os.path.join(workdir, "solution.npz"), x=ref[0], t=ref[1], reference=ref[2], prediction=ev["pred"],
                per_time_rel_l2=ev["per_time"], collocation=np.stack(drawn) if drawn else np.zeros((0,)))
    write_json(os.path.join(workdir, "summary.json"), summary, indent=1)  # strict JSON: a diverged error is "inf"
    log(f"{config.strategy.name}: relative L2 {summary['relative_l2']:.4g}, max |error| {summary['max_abs_error']:.3g}, "
        f"test mean r² {summary['test_residual_sq']:.3g} ({summary['wall_seconds_this_process']:.0f}s)")
    return summary


def comparison_configs(config, strategies=None) -> dict:
    """strategy → the config of that arm (default: ``config.comparison.strategies``)."""
    configs = {}
    for name in strategies or config.comparison.strategies:
        run_cfg = copy.deepcopy(config)
        with run_cfg.unlocked():
            run_cfg.compare = False
            run_cfg.strategy.name = name
            run_cfg.strategy.signal = config.comparison.signals[name]
            run_cfg.strategy.settings = dict(config.comparison.settings[name])
        configs[name] = run_cfg
    return configs


def run_pinn_comparison(config, workdir: str, *, strategies=None, seeds=None, overwrite: bool = False, log=print) -> dict:
    """Every strategy × seed in ``workdir/<strategy>_seed<s>`` (`compare.run_grid`), and
    ``report.md``: the per-time relative L2 errors' five numbers and the global relative L2, max
    |error| and test residual, each with its ratio to Uniform. Returns ``{"workdirs", "markdown"}``."""
    seeds = tuple(seeds if seeds is not None else config.comparison.seeds)
    workdirs = run_grid(comparison_configs(config, strategies), seeds, workdir, overwrite=overwrite, log=log)
    header = (f"Allen–Cahn PINN: {config.train.iterations} Adam steps, {config.collocation.num_points} collocation "
              f"points resampled every {config.collocation.resample_every} steps.\n\n")
    md = report.write_report(workdirs, workdir, scalars=("relative_l2", "max_abs_error", "test_residual_sq"),
                             header=header)
    log(md)
    return {"workdirs": workdirs, "markdown": md}
