"""Where qsal_jax keeps what it can reuse between runs: score sets and compiled programs.

``$QSAL_CACHE`` (default ``~/.cache/qsal_jax``) holds ``score_sets/`` (`test_sets`) and ``xla/``,
JAX's persistent compilation cache. Seeds of one config compile to the same program (the seed
is data, not a constant), so with the cache every run after the first skips XLA compilation:
a 5-seed comparison compiles once per strategy.
"""

from __future__ import annotations

import os
import sys
import tempfile

CACHE_ENV = "QSAL_CACHE"


class CacheDirError(OSError):
    """``$QSAL_CACHE`` (or its default) cannot hold the score sets; the message is one line."""


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "qsal_jax")


def unusable(path: str) -> str | None:
    """Why ``path`` cannot serve as a cache directory (made if missing, then written to), or None."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError:
        return "is a file, not a directory"
    except NotADirectoryError:
        return "lies under a file"
    except PermissionError:
        return "is not writable"
    except OSError as e:
        return f"cannot be used ({e.strerror or type(e).__name__})"
    return None


def check_cache_dir() -> str:
    """The score-set cache directory (`default_cache_dir`), or a one-line `CacheDirError` saying
    why it cannot be used and what to do."""
    path = default_cache_dir()
    why = unusable(path)
    if why:
        name = f"{CACHE_ENV}={path}" if os.environ.get(CACHE_ENV) else f"the cache directory {path}"
        raise CacheDirError(f"{name} {why}; set {CACHE_ENV} to a writable directory")
    return path


def enable_compilation_cache(path: str | None = None, log=None) -> str | None:
    """Turn on JAX's persistent compilation cache at ``path`` (default ``<cache>/xla``); returns it.

    Every program is cached, however quick to compile: on a CPU the simulate → train → propose
    program takes tens of seconds to compile and the cache entry is small. A directory that
    cannot be made or written (a file, read-only, under a file) only costs the cache: one
    warning line through ``log`` (default: stderr), the run goes on without it, returns None.
    """
    import jax

    path = path or os.path.join(default_cache_dir(), "xla")
    why = unusable(path)
    if why:
        (log or (lambda m: print(m, file=sys.stderr)))(
            f"warning: compilation cache {path} {why}; running without it")
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
