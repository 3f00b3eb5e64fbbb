"""Refuse a config the engine cannot build before anything is written (scripts call it first)."""

from __future__ import annotations

from qsal_jax.experiments.online import build_engine, check_config
from qsal_jax.experiments.validation import ConfigError, first_line


def check_buildable(config) -> None:
    """Validate an online ``config`` and build its engine (no arrays: cheap), so that a setting only
    the engine refuses (``online.clients_per_step`` beyond ``buffer.capacity``) is a one-line
    `ConfigError` naming the field, before the workdir or anything else is touched."""
    check_config(config)
    try:
        build_engine(config)
    except ConfigError:
        raise
    except ValueError as e:  # the engine's __post_init__ checks name the fields they compare
        why = first_line(e)
        if "clients" in why and "clients_per_step" not in why:
            why = f"online.clients_per_step = {config.online.clients_per_step}: {why}"
        raise ConfigError(why) from None
