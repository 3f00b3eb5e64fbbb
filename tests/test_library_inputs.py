"""Library calls with wrong types or shapes fail in one line that names the argument (issue #28).

Each case is cheap (no simulation, nothing compiled beyond a strategy's tiny update): a wrong
setting at `proposals.build`, a negative row count, feedback rows that disagree, a NaN batch
size, a buffer item of the wrong rank, a plain dict for `run_experiment`, and a strategy
population that does not fit in memory.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import proposals
from qsal_jax.proposals.checks import SettingError
from qsal_jax.simulation.param_space import ParamSpace

SPACE = ParamSpace.box({"a": (0.0, 1.0), "b": (-2.0, 3.0)})


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


# (strategy, setting, bad value, error type)
BAD_SETTINGS = [
    ("breed_online", "population", "abc", TypeError),
    ("breed_online", "population", 0, ValueError),
    ("breed_online", "population", 10.5, TypeError),
    ("breed_online", "sigma", -0.1, ValueError),
    ("breed_online", "alpha0", math.nan, ValueError),
    ("breed_online", "alpha0", 0.95, ValueError),  # above alpha_max
    ("breed", "population", "many", TypeError),
    ("breed_generations", "shrink", 0.0, ValueError),
    ("sbal", "pool_size", 2.5, TypeError),
    ("sbal", "selection", "best", ValueError),
    ("ogas", "batch_size", math.nan, TypeError),
    ("ogas", "hidden", "wide", TypeError),
    ("ogas", "lr", -1.0, ValueError),
    ("quasirandom", "sequence", "grid", ValueError),
    ("quasirandom", "scramble", "yes", TypeError),
    ("adversarial", "particles", 1, ValueError),
    ("residual", "window", 0, ValueError),
    ("rad", "k", -1.0, ValueError),
    ("r3", "population", None, TypeError),
]


@pytest.mark.parametrize("name,setting,value,kind", BAD_SETTINGS,
                         ids=[f"{n}.{s}={v!r}" for n, s, v, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_it(name, setting, value, kind):
    with pytest.raises(kind) as err:
        proposals.build(name, SPACE, **{setting: value})
    message = one_line(err)
    assert message.startswith(f"{name}: ") and setting in message, message
    assert isinstance(err.value, SettingError) and err.value.setting == setting


def test_an_unknown_setting_names_the_known_ones():
    with pytest.raises(ValueError, match=r"uniform: unknown setting 'alpha0'; known: dtype"):
        proposals.build("uniform", SPACE, alpha0=0.5)


@pytest.mark.parametrize("n", [-1, 2.5, "4", True])
def test_sample_refuses_a_row_count_that_is_not_a_non_negative_integer(n):
    p = proposals.build("uniform", SPACE)
    with pytest.raises(ValueError) as err:
        p.sample(p.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), n)
    assert "uniform.sample: n must be a non-negative integer" in one_line(err)


def _feedback(b=4, **change):
    fields = dict(lam=jnp.full((b, SPACE.dim), 0.5), lam_id=jnp.arange(b, dtype=jnp.int32),
                  time_index=jnp.zeros(b, jnp.int32), loss=jnp.ones(b), valid=jnp.ones(b, bool),
                  step=jnp.asarray(1, jnp.int32))
    return proposals.Feedback(**{**fields, **change})


MISMATCHED = [
    ("loss", dict(loss=jnp.ones(5))),
    ("valid", dict(valid=jnp.ones(3, bool))),
    ("lam_id", dict(lam_id=jnp.arange(2, dtype=jnp.int32))),
    ("time_index", dict(time_index=jnp.zeros((4, 1), jnp.int32))),
    ("lam", dict(lam=jnp.zeros((4, 3)))),
    ("step", dict(step=jnp.zeros(4, jnp.int32))),
]


@pytest.mark.parametrize("field,change", MISMATCHED, ids=[f for f, _ in MISMATCHED])
@pytest.mark.parametrize("name", ["breed_online", "uniform"])
def test_update_with_mismatched_shapes_is_one_line_naming_the_field(name, field, change):
    p = proposals.build(name, SPACE, **({"population": 8} if name == "breed_online" else {}))
    with pytest.raises(ValueError) as err:
        jax.jit(p.update)(p.init(jax.random.PRNGKey(0)), _feedback(**change))
    message = one_line(err)
    assert message.startswith(f"{name}.update: ") and f"Feedback.{field}" in message, message


def test_make_feedback_refuses_lam_and_loss_of_different_lengths():
    with pytest.raises(ValueError, match=r"make_feedback: lam must be \[B, D\] and loss \[B\]"):
        proposals.make_feedback(jnp.zeros((4, 2)), jnp.zeros(3))


# ------------------------------------------------------------------ the strict contract
def test_a_missing_feedback_field_fails_naming_the_strategy():
    """make_feedback invents no ids or steps: online Breed without them is refused, not run as Uniform."""
    lam, loss = SPACE.sample_uniform(jax.random.PRNGKey(0), 8), jnp.linspace(0.0, 1.0, 8)
    p = proposals.build("breed_online", SPACE, population=8)
    s = p.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError) as err:
        p.update(s, proposals.make_feedback(lam, loss, step=3))
    assert one_line(err).startswith("breed_online.update needs Feedback.lam_id")
    with pytest.raises(ValueError, match=r"breed_online.update needs Feedback.step"):
        p.update(s, proposals.make_feedback(lam, loss, lam_id=jnp.arange(8)))
    p.update(s, proposals.make_feedback(lam, loss, lam_id=jnp.arange(8), step=3))  # both given: fine
    # A constant share does not move with the step: the step is not needed.
    still = proposals.build("breed_online", SPACE, population=8, alpha0=0.5, alpha1=0.0)
    still.update(still.init(jax.random.PRNGKey(0)), proposals.make_feedback(lam, loss, lam_id=jnp.arange(8)))
    # Strategies that read neither take the bare feedback.
    for name in ("uniform", "breed", "quasirandom"):
        q = proposals.build(name, SPACE, **({"population": 8} if name == "breed" else {}))
        q.update(q.init(jax.random.PRNGKey(0)), proposals.make_feedback(lam, loss))
    g = proposals.build("breed_generations", SPACE, population=8)
    with pytest.raises(ValueError, match=r"breed_generations.update needs Feedback.lam_id"):
        g.update(g.init(jax.random.PRNGKey(0)), proposals.make_feedback(lam, loss, step=1))


def test_the_driver_context_is_checked_by_the_factories_that_need_it():
    ctx = proposals.DriverContext(ensemble_size=1, frames_per_trajectory=6, draws_per_call=4, feedback_rows=16,
                                  surrogate="rollout")
    with pytest.raises(SettingError) as err:
        proposals.build("sbal", SPACE, context=ctx)
    assert err.value.context and err.value.setting == "ensemble_size"
    proposals.build("sbal", SPACE, context=ctx._replace(ensemble_size=2))
    with pytest.raises(SettingError, match="rad is not an online strategy"):
        proposals.build("rad", SPACE, context=ctx)
    with pytest.raises(SettingError, match=r"breed: population \(8\) must hold a whole feedback"):
        proposals.build("breed", SPACE, population=8, context=ctx)
    with pytest.raises(SettingError, match=r"residual: window \(6\) must be below the 6 frames"):
        proposals.build("residual", SPACE, window=6, context=ctx)
    # Factories without a context keyword never see it.
    proposals.build("uniform", SPACE, context=ctx)


def test_ogas_sizes_its_schedule_from_the_context():
    """train_every="auto": the flops come from the driver's context, called only by the strategy that asks."""
    from qsal_jax.proposals.ogas import make_ogas

    tiny = dict(hidden=16, depth=1, steps=6, capacity=64, batch_size=16, train_steps=1, min_fill=8, ratio_hidden=8,
                ratio_depth=1)
    calls = []
    ctx = proposals.DriverContext(surrogate="rollout", surrogate_step_flops=lambda: calls.append(1) or 1e5)
    proposals.build("ogas", SPACE, context=ctx, train_every="auto", **tiny)
    assert calls == [1]
    proposals.build("uniform", SPACE, context=ctx)
    assert calls == [1]
    k = make_ogas(SPACE, train_every="auto", surrogate_step_flops=1e5, **tiny).settings["train_every"]
    assert k >= 1
    with pytest.raises(SettingError, match="surrogate_step_flops"):
        proposals.build("ogas", SPACE, train_every="auto", **tiny)  # no context, no flops


# ------------------------------------------------------------------ engine, buffers, experiments
def test_buffer_and_engine_sizes_must_be_integers():
    from qsal_jax.online import buffers as B

    one = B.Items(jnp.zeros((1, 4)), jnp.zeros((1, 4)), jnp.zeros((0,)), jnp.zeros((2,)), jnp.zeros((), jnp.int32),
                  jnp.zeros((), jnp.int32))
    buf = B.init_buffer(4, one)
    with pytest.raises(ValueError) as err:
        B.sample(buf, jax.random.PRNGKey(0), math.nan, "fifo")
    assert "batch_size must be an integer >= 1, got nan" in one_line(err)
    with pytest.raises(ValueError, match="buffer capacity must be an integer >= 1"):
        B.init_buffer(4.0, one)


@pytest.mark.parametrize("shape", [(4,), ()])
def test_a_buffer_item_of_the_wrong_rank_is_refused(shape):
    """A trajectory of rank 2 ([T, N], no channel axis) gives items of rank 1: refused at the buffer."""
    from qsal_jax.online import buffers as B

    one = B.Items(jnp.zeros(shape), jnp.zeros(shape), jnp.zeros((0,)), jnp.zeros((2,)), jnp.zeros((), jnp.int32),
                  jnp.zeros((), jnp.int32))
    with pytest.raises(ValueError) as err:
        B.init_buffer(4, one)
    assert "must both be one frame [C, *grid] (rank >= 2)" in one_line(err)


def _tiny_config():
    import os

    from qsal_jax.experiments.config_args import load_config

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return load_config(os.path.join(root, "configs", "online_1d.py") + ":breed,tiny")


@pytest.mark.parametrize("field,value", [("batch_size", math.nan), ("clients_per_step", 2.5), ("buffer_capacity", "8")])
def test_the_engine_refuses_sizes_that_are_not_integers(field, value):
    import dataclasses

    from qsal_jax.experiments.online import build_engine

    engine = build_engine(_tiny_config())[0]
    with pytest.raises(ValueError) as err:
        dataclasses.replace(engine, **{field: value})
    assert f"OnlineEngine: {field} must be an integer" in one_line(err)


def test_run_experiment_takes_a_dict_and_refuses_other_types(tmp_path):
    from qsal_jax.experiments import check_config, run_experiment

    check_config(_tiny_config().to_dict())  # a plain dict is converted
    with pytest.raises(TypeError) as err:
        run_experiment([("seed", 0)], str(tmp_path / "run"))
    assert one_line(err) == "config must be an ml_collections.ConfigDict or a dict, got list"
    assert not (tmp_path / "run").exists()


def test_a_population_too_big_for_memory_is_refused_before_compiling():
    """The memory preflight counts the strategy's state: 10^10 slots of online Breed are one line."""
    from qsal_jax.experiments import preflight
    from qsal_jax.experiments.online import build_engine, init_state
    from qsal_jax.experiments.validation import ConfigError

    config = _tiny_config()
    with config.unlocked():
        config.strategy.settings.population = 10**10
    built = build_engine(config)
    engine, model, _, optimizer = built
    with pytest.raises(ConfigError) as err:
        preflight.dry_run(config, built, lambda: init_state(engine, model, optimizer, 0), log=lambda *a: None)
    message = one_line(err)
    assert message.startswith("strategy.settings = ") and "population" in message and "GiB" in message, message


def test_feedback_arrays_are_checked_by_shape_only():
    """The checks read shapes (trace time), never values: a jitted update of good feedback runs."""
    p = proposals.build("breed_online", SPACE, population=8)
    s0 = p.init(jax.random.PRNGKey(0))
    s = jax.jit(p.update)(s0, _feedback())
    assert jax.tree.map(jnp.shape, s) == jax.tree.map(jnp.shape, s0)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(s) if jnp.issubdtype(x.dtype, jnp.floating))
