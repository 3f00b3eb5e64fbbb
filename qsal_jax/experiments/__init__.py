"""Experiments: what scripts and notebooks run.

Each experiment kind is a module with ``check_config(config)`` (raises a one-line `ConfigError`)
and ``train_and_evaluate(config, workdir, *, overwrite, log) -> summary``; `KINDS` registers them
and ``run_experiment(config, workdir)`` dispatches on ``config.kind`` (default ``"online"``).
``load_run(workdir)`` gives a finished online run back: config, apply function, parameters and
summary.
"""

import importlib

from qsal_jax.experiments.runs import LoadedRun, load_run  # noqa: F401  (a run back in a notebook)

KINDS = {
    "online": "qsal_jax.experiments.online",  # the fused simulate → buffer → train → propose loop
    "toy": "qsal_jax.experiments.toy",  # rolling-ball oracle, offline strategies
    "pinn": "qsal_jax.experiments.pinn",  # collocation-point sampling for a PINN
    "async": "qsal_jax.experiments.async_run",  # external solver programs in a worker pool (solver.command)
}


def as_config(config):
    """``config`` as an ``ml_collections.ConfigDict`` (a plain dict is converted); a one-line
    ``TypeError`` naming the argument for anything else."""
    import ml_collections

    if isinstance(config, ml_collections.ConfigDict):
        return config
    if isinstance(config, dict):
        return ml_collections.ConfigDict(config)
    raise TypeError(f"config must be an ml_collections.ConfigDict or a dict, got {type(config).__name__}")


def experiment_module(config):
    """The module of ``config.kind``; a one-line `ConfigError` for an unknown kind."""
    from qsal_jax.experiments.validation import ConfigError

    kind = config.get("kind", "online")
    if kind not in KINDS:
        raise ConfigError(f"kind = {kind!r}: must be one of {list(KINDS)}")
    return importlib.import_module(KINDS[kind])


def check_config(config) -> None:
    """Validate ``config`` for its kind (nothing is built)."""
    config = as_config(config)
    experiment_module(config).check_config(config)


def run_experiment(config, workdir: str, *, overwrite: bool = False, log=print, **options) -> dict:
    """Validate ``config``, then run it; returns the run's summary. ``options`` go to the kind's
    ``train_and_evaluate`` (the online kind's ``plots_in_child``). A plain dict is converted."""
    config = as_config(config)
    module = experiment_module(config)
    module.check_config(config)
    return module.train_and_evaluate(config, workdir, overwrite=overwrite, log=log, **options)
