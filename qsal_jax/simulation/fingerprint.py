"""A short name for what a simulator computes, for the keys of cached trajectories.

A cache keyed on a problem's name and settings misses a change made in code: a new initial
condition, a coefficient, a grid of 64 points instead of 128. The fingerprint hashes the λ box,
the trajectory's shape and dtype, and two probe trajectories at fixed interior λ, quantised to
five digits of their scale so that the last bits of a compiler's float ordering do not count.
Cost: one compiled call of the simulator on two λ, once per simulator and process.
"""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

# Two fixed interior points of the unit cube (irrational strides: no face, no centre symmetry).
_PROBE_STRIDES = (0.6180339887, 0.4142135624)


def probe_lams(space) -> jax.Array:
    """``[2, D]`` fixed λ inside the box, the same for every simulator of a space."""
    d = np.arange(space.dim)
    z = np.stack([(0.5 + s * (d + 1)) % 1.0 for s in _PROBE_STRIDES]) * 0.8 + 0.1
    return space.from_unit(jnp.asarray(z, jnp.float32))


def simulator_fingerprint(sim) -> str:
    """16 hex digits that change when what ``sim`` computes changes (computed once per hashable simulator)."""
    try:
        return _cached_fingerprint(sim)
    except TypeError:  # an unhashable simulator of the user's own: computed each time
        return _fingerprint(sim)


@functools.lru_cache(maxsize=32)
def _cached_fingerprint(sim) -> str:
    return _fingerprint(sim)


def _fingerprint(sim) -> str:
    traj = jax.jit(sim.simulate)(probe_lams(sim.space).astype(sim.dtype))
    u = np.asarray(traj.u, np.float64)
    scale = float(np.max(np.abs(u))) or 1.0
    h = hashlib.sha256()
    h.update(repr((tuple(sim.space.names), tuple(sim.space.low), tuple(sim.space.high), int(sim.num_frames),
                   tuple(sim.state_shape), np.dtype(sim.dtype).name, tuple(sim.cond_names))).encode())
    h.update(f"{scale:.5e}".encode())
    h.update(np.round(u / scale * 1e5).astype(np.int64).tobytes())
    h.update(np.asarray(traj.finite).tobytes())
    return h.hexdigest()[:16]
