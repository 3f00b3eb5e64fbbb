"""Where qsal_jax keeps what it can reuse between runs: score sets and compiled programs.

``$QSAL_CACHE`` (default ``~/.cache/qsal_jax``) holds ``score_sets/`` (`test_sets`) and ``xla/``,
JAX's persistent compilation cache. Seeds of one config compile to the same program (the seed
is data, not a constant), so with the cache every run after the first skips XLA compilation:
a 5-seed comparison compiles once per strategy.
"""

from __future__ import annotations

import os

CACHE_ENV = "QSAL_CACHE"


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "qsal_jax")


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache at ``path`` (default ``<cache>/xla``); returns it.

    Every program is cached, however quick to compile: on a CPU the simulate → train → propose
    program takes tens of seconds to compile and the cache entry is small.
    """
    import jax

    path = path or os.path.join(default_cache_dir(), "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
