"""Randomised quasi-Monte Carlo over the box: scrambled Halton or Sobol' sequences.

* **Halton** (radical inverse in the d-th prime base ``b_d``) with *random affine digit
  scrambling*: digit ``a`` at position ``k`` of dimension ``d`` becomes
  ``(g_{dk} a + h_{dk}) mod b_d`` with ``g_{dk} ∈ [1, b_d)`` and ``h_{dk} ∈ [0, b_d)`` drawn at
  ``init`` (a random permutation of the digits per position, as in Matoušek 1998; since ``b_d``
  is prime every such map is a bijection). Trailing zero digits are scrambled too, so the
  first point is not the origin and large bases lose the Halton correlation between dimensions.
  Digits are taken to the float resolution of ``dtype`` (24 in base 2 for float32, 3 in
  bases above 256).
* **Sobol'** with Joe & Kuo (2008) direction numbers (the table shipped with SciPy; read once at
  factory time, so this option needs SciPy installed), Gray-code order as in
  ``scipy.stats.qmc.Sobol``, scrambled by a random lower-triangular *linear matrix scramble*
  plus a *random digital shift* (Matoušek 1998; Owen 2003), both drawn at ``init``.

Position in the sequence. ``sample(state, key, n)`` returns points ``index … index + n − 1`` and
the state advanced by ``n`` (the key is not used: the randomisation is fixed at ``init``), so
consecutive online launches continue one scrambled sequence whatever the driver does between
them; ``update`` ignores the feedback. `advance` skips points.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.proposals import checks
from qsal_jax.proposals._common import DEFAULT_DTYPE, to_box
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.simulation.param_space import ParamSpace

SOBOL_BITS = 32


class HaltonState(NamedTuple):
    index: jax.Array  # [] int32: sequence index of the next point
    mul: jax.Array  # [D, K] int32: digit scramble multiplier g in [1, b_d)  (K digits)
    add: jax.Array  # [D, K] int32: digit scramble offset h in [0, b_d)


class SobolState(NamedTuple):
    index: jax.Array  # [] int32: sequence index of the next point
    v: jax.Array  # [D, 32] uint32: scrambled direction numbers, MSB = weight 1/2
    shift: jax.Array  # [D] uint32: random digital shift


@functools.lru_cache(maxsize=None)
def first_primes(n: int) -> np.ndarray:
    """The first ``n`` primes, ``[n] int64``."""
    limit = max(16, int(n * (np.log(n + 1) + np.log(np.log(n + 2))) * 1.3) + 10)
    sieve = np.ones(limit, bool)
    sieve[:2] = False
    for p in range(2, int(limit**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = False
    primes = np.nonzero(sieve)[0]
    assert primes.size >= n
    return primes[:n]


@functools.lru_cache(maxsize=None)
def sobol_direction_numbers(dim: int) -> np.ndarray:
    """Unscrambled direction numbers ``[dim, 32] uint32`` (Joe–Kuo table, Bratley–Fox recurrence)."""
    try:
        import scipy.stats
    except ImportError as e:  # pragma: no cover - scipy ships with the test extras
        raise ImportError("quasirandom(sequence='sobol') reads SciPy's Joe–Kuo table; install scipy") from e
    table = np.load(os.path.join(os.path.dirname(scipy.stats.__file__), "_sobol_direction_numbers.npz"))
    poly, vinit = table["poly"], table["vinit"]
    if dim > poly.shape[0]:
        raise ValueError(f"Sobol' direction numbers exist for up to {poly.shape[0]} dimensions, got {dim}")
    bits = SOBOL_BITS
    v = np.zeros((dim, bits), np.uint64)
    v[0, :] = 1
    for d in range(1, dim):
        p = int(poly[d])
        m = p.bit_length() - 1
        v[d, :m] = vinit[d, :m]
        for j in range(m, bits):
            new = int(v[d, j - m])
            pow2 = 1
            for k in range(m):
                pow2 <<= 1
                if (p >> (m - 1 - k)) & 1:
                    new ^= pow2 * int(v[d, j - k - 1])
            v[d, j] = new
    v = v << (bits - 1 - np.arange(bits, dtype=np.uint64))[None, :]
    return v.astype(np.uint32)


def advance(state, n) -> HaltonState | SobolState:
    """The same state, ``n`` points further along the sequence."""
    return state._replace(index=state.index + jnp.asarray(n, jnp.int32))


def quasirandom(space: ParamSpace, *, sequence: str = "halton", scramble: bool = True, dtype=DEFAULT_DTYPE) -> Proposal:
    """Scrambled Halton or Sobol' points mapped to the box (see the module docstring).

    ``sample(state, key, n) -> (λ [n, D], state)``: points ``state.index …`` of the randomised sequence
    and the state ``n`` points further; ``update`` is a no-op. ``scramble=False`` gives
    the plain sequences (equal to SciPy's unscrambled ``Halton``/``Sobol``).
    """
    checks.choice("quasirandom", "sequence", sequence, ("halton", "sobol"))
    checks.flag("quasirandom", "scramble", scramble)
    dim = space.dim
    dtype = jnp.dtype(dtype)

    def update(state, feedback: Feedback):
        del feedback  # the sequence advances where it is drawn, in `sample`
        return state

    if sequence == "halton":
        bases_np = first_primes(dim)
        n_digits = jnp.finfo(dtype).nmant + 1
        # Digits past b^-K < 2^-(mantissa) are invisible in `dtype`: base 2 needs 24 (float32), bases
        # above 256 only 3. Dimensions are grouped by digit count so large bases do not pay for 24.
        digits_np = np.minimum(np.ceil(n_digits / np.log2(bases_np)).astype(int), n_digits)
        groups = [np.nonzero(digits_np == k)[0] for k in np.unique(digits_np)]
        order_back = np.argsort(np.concatenate(groups))

        def init(key: jax.Array) -> HaltonState:
            shape = (dim, n_digits)
            if not scramble:
                return HaltonState(jnp.zeros((), jnp.int32), jnp.ones(shape, jnp.int32), jnp.zeros(shape, jnp.int32))
            k_mul, k_add = jax.random.split(key)
            b = jnp.asarray(bases_np, jnp.int32)[:, None]
            mul = jax.random.randint(k_mul, shape, 1, b, dtype=jnp.int32)
            add = jax.random.randint(k_add, shape, 0, b, dtype=jnp.int32)
            return HaltonState(jnp.zeros((), jnp.int32), mul, add)

        def radical_inverse(i, mul, add, bases, k_digits):
            """Scrambled radical inverse ``[n, G]`` of indices ``i [n]`` in ``bases [G]``, ``k_digits`` digits."""
            b = jnp.asarray(bases, jnp.int32)
            inv_b = (1.0 / jnp.asarray(bases, dtype)).astype(dtype)
            q0 = jnp.broadcast_to(i[:, None], (i.shape[0], b.shape[0]))

            bb = jnp.broadcast_to(b, q0.shape)

            def digit(k, carry):
                # Everything is non-negative: truncating lax.div/rem skip jnp's floor-sign fix-ups.
                q, acc, scale = carry
                q_next = jax.lax.div(q, bb)
                d = jax.lax.rem(mul[:, k] * (q - q_next * bb) + add[:, k], bb)
                return q_next, acc + d.astype(dtype) * scale, scale * inv_b

            init_carry = (q0, jnp.zeros(q0.shape, dtype), inv_b)
            return jax.lax.fori_loop(0, int(k_digits), digit, init_carry)[1]

        def sample(state: HaltonState, key: jax.Array, n: int):
            del key
            i = state.index + jnp.arange(n, dtype=jnp.int32)
            parts = [
                radical_inverse(i, state.mul[g], state.add[g], bases_np[g], digits_np[g[0]]) for g in groups
            ]
            z = jnp.concatenate(parts, axis=1)[:, order_back]
            return to_box(space, jnp.clip(z, 0.0, 1.0)), advance(state, n)

        return Proposal(init, sample, update)

    v_np = sobol_direction_numbers(dim)

    def init(key: jax.Array) -> SobolState:
        v = jnp.asarray(v_np, jnp.uint32)
        if not scramble:
            return SobolState(jnp.zeros((), jnp.int32), v, jnp.zeros((dim,), jnp.uint32))
        k_lms, k_shift = jax.random.split(key)
        nb = SOBOL_BITS
        rows = jnp.arange(nb, dtype=jnp.uint32)
        lower = jnp.tril(jax.random.bernoulli(k_lms, 0.5, (dim, nb, nb)).astype(jnp.int32), -1) + jnp.eye(nb, dtype=jnp.int32)
        bits = ((v[:, :, None] >> (nb - 1 - rows)) & 1).astype(jnp.int32)  # [D, j, r], r from the MSB
        new_bits = (jnp.einsum("drk,djk->djr", lower, bits) & 1).astype(jnp.uint32)
        v = jnp.sum(new_bits << (nb - 1 - rows), axis=-1, dtype=jnp.uint32)
        shift = jax.random.bits(k_shift, (dim,), jnp.uint32)
        return SobolState(jnp.zeros((), jnp.int32), v, shift)

    def sample(state: SobolState, key: jax.Array, n: int):
        del key
        i = (state.index + jnp.arange(n, dtype=jnp.int32)).astype(jnp.uint32)
        gray = i ^ (i >> 1)
        # Only as many direction numbers as the largest Gray code has bits.
        n_bits = SOBOL_BITS - jax.lax.clz(jnp.max(gray)).astype(jnp.int32)

        def bit(j, acc):
            on = ((gray >> j.astype(jnp.uint32)) & 1).astype(bool)[:, None]
            return acc ^ jnp.where(on, state.v[:, j][None, :], jnp.uint32(0))

        x = jax.lax.fori_loop(0, n_bits, bit, jnp.broadcast_to(state.shift, (n, dim)))
        if dtype == jnp.float64:
            z = x.astype(dtype) * (2.0**-SOBOL_BITS)
        else:
            z = (x >> (SOBOL_BITS - 24)).astype(dtype) * jnp.asarray(2.0**-24, dtype)
        return to_box(space, z.astype(dtype)), advance(state, n)

    return Proposal(init, sample, update)
