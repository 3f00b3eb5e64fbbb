"""Toy experiment: offline rounds of Breed against Uniform on the rolling-ball oracle.

The set-up of Dymchenko & Raffin (2023). The oracle ``O(x)`` rolls a ball from ``x`` in the box
``[low, high]^D`` down the double well (`qsal_jax.solvers.rolling_ball`) and returns where it
comes to rest; an MLP ``f_θ(x) ≈ O(x)`` is trained on MSE. Round ``r`` of ``num_rounds``:

1. train ``iterations`` Adam steps on the dataset S;
2. per-sample losses ``l_i`` on S → ``strategy.update(make_feedback(S, l, step=r))``;
3. draw ``per_round`` new points with ``strategy.sample``, call the oracle on them (the
   simulation budget is ``initial + num_rounds · per_round`` calls, equal for every strategy);
4. update S by ``data_update.rule``:

   * ``replace``    S ← the new points (the slides' rule: S = S_c ∪ S_u);
   * ``accumulate`` S ← S ∪ new points (every simulation is kept);
   * ``window``     S ← the most recent ``data_update.window`` points of S ∪ new points.

A last training phase runs on the final S, so every run trains ``(num_rounds + 1) · iterations``
steps. Scores, on two validation sets simulated once per problem (not part of any budget):

* ``uniform``: i.i.d. uniform points over the box;
* ``hard``: points within ``epsilon`` of the basin boundary, found by bisection along segments
  between uniform points of different basins (`toy_data.boundary_points`), then jittered uniformly in the
  ε-ball. Within ε of each such point the answer of the oracle flips (`toy_data`).

Per-sample error ``e_i = mean_d (f_θ(x_i) − O(x_i))_d²`` (so the set's MSE is ``mean e_i``);
``summary.json`` carries the five numbers of ``e`` on each set as ``uniform_mse`` and
``hard_mse``. The strategy is named ``"<strategy>/<rule>"`` (``"breed/accumulate"``).
`run_toy_comparison` runs a list of such variants over seeds (`compare.run_grid`) and writes
``report.md`` with the project's one report writer.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax import models, proposals
from qsal_jax.reporting import report
from qsal_jax.experiments import test_sets
from qsal_jax.experiments.compare import run_grid
from qsal_jax.experiments.validation import ConfigError
from qsal_jax.simulation.rolling_ball_problem import (
    DATA_UPDATES,
    dataset_capacity,
    make_oracle,
    make_space,
    make_validation_sets,
    pad_to,
    update_dataset,
)
from qsal_jax.experiments.workdir import MetricLog, start_or_reuse, write_json
from qsal_jax.reporting.run_files import save_arrays
from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.training.losses import mse
from qsal_jax.training.state import TrainState, make_optimizer
from qsal_jax.training.step import Batch, train_step


# --------------------------------------------------------------------------- config
def check_config(config) -> None:
    """Raise `ConfigError` naming the first bad field, before anything compiles."""
    if config.data_update.rule not in DATA_UPDATES:
        raise ConfigError(f"data_update.rule: must be one of {DATA_UPDATES}, got {config.data_update.rule!r}")
    if config.data_update.rule == "window" and int(config.data_update.get("window", 0) or 0) < 1:
        raise ConfigError(f"data_update.window: the window rule needs window >= 1, got {config.data_update.get('window')}")
    if config.strategy.name not in proposals.names():
        raise ConfigError(f"strategy.name: unknown strategy {config.strategy.name!r}; known: {proposals.names()}")
    r = config.rounds
    for field in ("initial", "per_round", "iterations"):
        if int(r[field]) < 1:
            raise ConfigError(f"rounds.{field}: must be >= 1, got {r[field]}")
    if int(r.num_rounds) < 0:
        raise ConfigError(f"rounds.num_rounds: must be >= 0, got {r.num_rounds}")
    if float(config.problem.low) >= float(config.problem.high):
        raise ConfigError(f"problem: need low < high, got [{config.problem.low}, {config.problem.high}]")


_RUNS_HERE = "the toy runs strategies without a surrogate model or a candidate pool (uniform, quasirandom, breed)"


def build_strategy(config, space: ParamSpace, capacity: int):
    """The strategy of ``config.strategy``; a ``population`` setting defaults to the dataset capacity.
    Its `proposals.DriverContext`: ``rounds.per_round`` draws per call, the padded dataset
    (``capacity`` rows) as feedback, and no surrogate in it."""
    settings = dict(config.strategy.get("settings", {}))
    if "population" in proposals.settings_of(config.strategy.name):
        settings.setdefault("population", capacity)
    context = proposals.DriverContext(draws_per_call=int(config.rounds.per_round), feedback_rows=capacity)
    try:
        strategy = proposals.build(config.strategy.name, space, context=context, **settings)
    except ValueError as e:
        if getattr(e, "context", False):  # the strategy needs what this driver does not have
            raise ConfigError(f"strategy.name: {config.strategy.name!r} cannot run in the toy ({e}); {_RUNS_HERE}") from None
        raise ConfigError(f"strategy.settings: {e}") from None
    if isinstance(strategy, proposals.ScoredProposal):
        raise ConfigError(f"strategy.name: {config.strategy.name!r} scores a candidate pool, which here would cost "
                          f"oracle calls outside the budget; {_RUNS_HERE}")
    return strategy


def variant_name(config) -> str:
    return f"{config.strategy.name}/{config.data_update.rule}"


# --------------------------------------------------------------------------- training
def make_round_fn(model, space: ParamSpace, optimizer, iterations: int, batch_size: int):
    """Jitted ``(state, x, y, valid, key) → (state, per_sample_loss [cap], mean_loss)``.

    ``iterations`` Adam steps on the valid rows (first ``sum(valid)`` rows of the padded arrays):
    full-batch with a 0/1 weight when ``batch_size == 0``, else minibatches drawn with replacement.
    """

    def apply_fn(params, x, cond):
        del cond
        return model.apply(params, 2.0 * space.to_unit(x) - 1.0)  # inputs scaled to [-1, 1]^D

    def round_fn(state, x, y, valid, key):
        size = jnp.sum(valid)

        def body(i, state):
            if batch_size:
                idx = jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, size)
                batch = Batch(x[idx], y[idx], jnp.zeros((batch_size, 0)), idx.astype(jnp.int32),
                              jnp.zeros(batch_size, jnp.int32), jnp.ones(batch_size, jnp.float32))
            else:
                cap = x.shape[0]
                batch = Batch(x, y, jnp.zeros((cap, 0)), jnp.arange(cap, dtype=jnp.int32),
                              jnp.zeros(cap, jnp.int32), valid.astype(jnp.float32))
            state, _, _ = train_step(state, batch, apply_fn=apply_fn, optimizer=optimizer, loss_name="mse")
            return state

        state = jax.lax.fori_loop(0, iterations, body, state)
        per_sample = jnp.where(valid, mse(apply_fn(state.params, x, None), y), 0.0)
        return state, per_sample, jnp.sum(per_sample) / jnp.maximum(size, 1)

    predict = jax.jit(lambda params, x: apply_fn(params, x, None))
    return jax.jit(round_fn), predict


class Programs(NamedTuple):
    """The jitted pieces of a run; shared by runs of equal settings (`build_programs` caches them)."""

    init_state: Callable  # key -> TrainState
    round_fn: Callable  # see `make_round_fn`
    predict: Callable  # (params, x [M, D]) -> [M, D]
    strategy: proposals.Proposal
    init_strategy: Callable  # jitted strategy.init
    update: Callable  # jitted strategy.update
    sample: Callable  # jitted strategy.sample, n static: (state, key, n) -> (λ, state)


_PROGRAMS: dict[str, Programs] = {}


def build_programs(config, capacity: int) -> Programs:
    """Model, optimizer, strategy and their jitted functions for ``config`` (cached per settings).

    A comparison runs many seeds of few settings in one process; reusing the jitted functions
    saves a compilation of each per run.
    """
    r = config.rounds
    parts = (config.problem, config.model, config.train, config.strategy, r.iterations, r.num_rounds, capacity)
    cache_key = json.dumps([p.to_dict() if hasattr(p, "to_dict") else p for p in parts], sort_keys=True, default=str)
    if cache_key in _PROGRAMS:
        return _PROGRAMS[cache_key]
    space = make_space(config.problem)
    strategy = build_strategy(config, space, capacity)
    model_cfg = dict(config.model)
    model_cfg.setdefault("out_features", space.dim)
    model = models.get_model(model_cfg)
    optimizer = make_optimizer(dict(config.train.optimizer), total_steps=(r.num_rounds + 1) * r.iterations)
    round_fn, predict = make_round_fn(model, space, optimizer, int(r.iterations), int(config.train.get("batch_size", 0)))

    @jax.jit
    def init_state(key):
        params = model.init(key, jnp.zeros((1, space.dim), jnp.float32))
        return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params), None)

    prog = Programs(init_state, round_fn, predict, strategy, jax.jit(strategy.init), jax.jit(strategy.update),
                    jax.jit(strategy.sample, static_argnums=2))
    _PROGRAMS[cache_key] = prog
    return prog


def _errors(predict, params, sets) -> dict:
    """Per-sample squared error ``[M]`` on each validation set."""
    return {name: np.mean((np.asarray(predict(params, x)) - y) ** 2, axis=1) for name, (x, y) in sets.items()}


def train_and_evaluate(config, workdir: str, *, overwrite: bool = False, log=print) -> dict:
    """Run one toy experiment (or, with ``config.compare``, the whole comparison); returns the summary.

    A workdir that already holds a finished run of the same config is not rerun.
    """
    if config.get("compare", False):
        return run_toy_comparison(config, workdir, overwrite=overwrite, log=log)
    check_config(config)
    finished = start_or_reuse(workdir, config, overwrite=overwrite, log=log)
    if finished is not None:
        return finished

    t_start = time.perf_counter()
    space = make_space(config.problem)
    oracle, _ = make_oracle(config.problem)
    sets = make_validation_sets(config.problem, config.eval)
    r, rule, window = config.rounds, config.data_update.rule, config.data_update.get("window")
    capacity = dataset_capacity(r.initial, r.per_round, r.num_rounds, rule, window)
    prog = build_programs(config, capacity)

    key = jax.random.PRNGKey(int(config.seed))
    k_model, k_init, k_strategy, k_train, k_sample = jax.random.split(key, 5)
    state = prog.init_state(k_model)
    s_state = prog.init_strategy(k_strategy)
    round_fn, predict, update, sample = prog.round_fn, prog.predict, prog.update, prog.sample
    total_steps = (r.num_rounds + 1) * r.iterations
    x = np.asarray(space.sample_uniform(k_init, int(r.initial)))
    y = oracle(x)
    simulations = x.shape[0]
    metric_log = MetricLog(os.path.join(workdir, "metrics.jsonl"))
    drawn = [np.concatenate([x, np.zeros((x.shape[0], 1), np.float32)], axis=1)]  # rows: x, round

    for rnd in range(int(r.num_rounds) + 1):
        valid = np.arange(capacity) < x.shape[0]
        state, per_sample, train_loss = round_fn(state, pad_to(x, capacity), pad_to(y, capacity), valid,
                                                 jax.random.fold_in(k_train, rnd))
        errs = _errors(predict, state.params, sets)
        record = {"step": rnd, "simulations": simulations, "dataset_size": int(x.shape[0]),
                  "train_loss": float(train_loss), **{f"mse_{k}": float(v.mean()) for k, v in errs.items()}}
        metric_log.write([record])
        if rnd == r.num_rounds:
            break
        feedback = proposals.make_feedback(pad_to(x, capacity), per_sample, step=rnd, valid=valid)
        s_state = update(s_state, feedback)
        x_new, s_state = sample(s_state, jax.random.fold_in(k_sample, rnd), int(r.per_round))
        x_new = np.asarray(x_new)
        y_new = oracle(x_new)
        simulations += x_new.shape[0]
        drawn.append(np.concatenate([x_new, np.full((x_new.shape[0], 1), rnd + 1, np.float32)], axis=1))
        x, y = update_dataset(x, y, x_new, y_new, rule, window)

    errs = _errors(predict, state.params, sets)
    summary = {
        "experiment": config.get("name", "toy_rolling_ball"),
        "problem": f"rolling_ball_{space.dim}d",
        "strategy": variant_name(config),
        "seed": int(config.seed),
        "simulations": int(simulations),
        "final_dataset_size": int(x.shape[0]),
        "train_iterations": int(total_steps),
        "wall_seconds_this_process": time.perf_counter() - t_start,
        "metrics": ["uniform_mse", "hard_mse"],
        "uniform_mse": test_sets.five_numbers(errs["uniform"]),
        "hard_mse": test_sets.five_numbers(errs["hard"]),
        "unevenness": test_sets.unevenness(errs["uniform"]),
        "score_set": {"description": validation_description(config.eval)},
    }
    save_arrays(os.path.join(workdir, "samples.npz"), drawn=np.concatenate(drawn), final_x=x, final_y=y,
                **{f"errors_{k}": v for k, v in errs.items()})
    write_json(os.path.join(workdir, "summary.json"), summary, indent=1)  # strict JSON: a diverged error is "inf"
    log(f"{summary['strategy']} seed {summary['seed']}: {simulations} simulations, "
        f"MSE uniform {summary['uniform_mse']['mean']:.4g}, hard {summary['hard_mse']['mean']:.4g} "
        f"({summary['wall_seconds_this_process']:.1f}s)")
    return summary


# --------------------------------------------------------------------------- comparison
def validation_description(evaluation) -> str:
    return (f"{evaluation.num_uniform} uniform points and {evaluation.num_hard} points within "
            f"ε = {evaluation.epsilon} of the basin boundary (seed {evaluation.seed})")


def comparison_configs(config, variants=None) -> dict:
    """``"<strategy>/<rule>"`` → the config of that variant (default: ``config.comparison.variants``;
    a variant without ``/<rule>`` takes ``config.data_update.rule``)."""
    configs = {}
    for variant in variants or config.comparison.variants:
        name, _, rule = variant.partition("/")
        run_cfg = copy.deepcopy(config)
        with run_cfg.unlocked():
            run_cfg.compare = False
            run_cfg.strategy.name = name
            run_cfg.strategy.settings = dict(config.comparison.settings.get(name, {}))
            run_cfg.data_update.rule = rule or config.data_update.rule
        configs[f"{name}/{run_cfg.data_update.rule}"] = run_cfg
    return configs


def run_toy_comparison(config, workdir: str, *, variants=None, seeds=None, overwrite: bool = False, log=print) -> dict:
    """Every ``"<strategy>/<rule>"`` variant × seed through `compare.run_grid`, and ``report.md``
    (`report.write_report`: MSE on both validation sets, ratios to ``uniform/<rule>`` with intervals).

    Variants and seeds default to ``config.comparison``; runs live in
    ``workdir/<strategy>_<rule>_seed<s>``. Returns ``{"workdirs", "table", "markdown"}`` with the
    uniform set's `report.aggregate` table.
    """
    configs = comparison_configs(config, variants)
    seeds = tuple(seeds if seeds is not None else config.comparison.seeds)
    workdirs = run_grid(configs, seeds, workdir, overwrite=overwrite, log=log)
    md = report.write_report(workdirs, workdir)
    log(md)
    return {"workdirs": workdirs, "table": report.aggregate(report.load_summaries(workdirs), "uniform_mse"), "markdown": md}

