"""Config validation before anything compiles (grown into the full schema by the reliability work)."""


class ConfigError(ValueError):
    """A config field has a bad value; the message names the field, the value and what is allowed."""


def validate_config(config) -> None:
    return None
