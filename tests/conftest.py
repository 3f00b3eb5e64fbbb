"""Suite-wide numerics: float64 is available for reference checks.

Library code defaults to float32 explicitly (dtype arguments), so enabling x64 here does
not silently change what the float32 paths compute; tests that need float64 ask for it.
"""

import os
import signal

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# Tests build the same programs again and again (and subprocess runs of scripts/train.py use the
# same cache by default): a persistent compilation cache spares the recompiles.
from qsal_jax.experiments.cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache()


@pytest.fixture
def sigint_reaches_children():
    """SIGINT handled, not ignored, in this process while the test runs. A suite started in the
    background (``make test &``: a shell has its background jobs ignore SIGINT) ignores it, and an
    ignored signal stays ignored in the programs it starts, so the run of a Ctrl-C test would never
    see one; a handled signal is reset to its default by exec."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
