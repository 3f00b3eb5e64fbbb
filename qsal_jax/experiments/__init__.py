"""Experiments: what scripts and notebooks run. ``run_experiment(config, workdir)`` dispatches on ``config.kind``."""


def run_experiment(config, workdir: str, *, overwrite: bool = False, log=print) -> dict:
    """Validate ``config``, then run it; returns the run's summary."""
    from qsal_jax.experiments.validation import validate_config

    validate_config(config)
    kind = config.get("kind", "online")
    if kind == "online":
        from qsal_jax.experiments.online import train_and_evaluate
    elif kind == "toy":
        from qsal_jax.experiments.toy import train_and_evaluate
    elif kind == "pinn":
        from qsal_jax.experiments.pinn import train_and_evaluate
    else:
        raise ValueError(f"kind: unknown experiment kind {kind!r}; choose online, toy or pinn")
    return train_and_evaluate(config, workdir, overwrite=overwrite, log=log)
