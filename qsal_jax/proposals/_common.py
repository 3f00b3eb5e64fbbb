"""Helpers shared by the strategies: box mapping, safe weights, in-box Gaussian-mixture draws.

Every strategy works in the unit cube ``[0, 1]^D`` and maps to the box at the very end with
`to_box`, which clips to guard the last rounding of ``low + z * (high - low)``.

Rules fixed here, once for all strategies:

* **Weights** (`safe_weights`): a loss that is non-finite, negative, zero or masked out gets
  weight 0 (so does a subnormal one: XLA on CPU flushes denormals to zero). Positive finite losses are divided by their maximum *before* any sum, so losses as
  large as 1e30 (or 1e300 in float64) neither overflow nor lose the relative scale; the result
  lies in ``[0, 1]`` and has ``has_mass == False`` when nothing is positive. What a strategy does
  without mass is its own documented fallback (usually: uniform draws).
* **Out-of-box Gaussian draws** (`reflect_unit`): a kernel draw ``c + σ ε`` is folded back into
  ``[0, 1]`` by reflection at the faces, coordinate by coordinate (a triangle wave of period 2),
  then clipped to guard rounding. Reflection keeps the kernel's mass near its centre (a draw
  that overshoots a face by δ lands δ inside it), never rejects, never returns an outside
  point, and has a closed-form density (the sum over mirror images) that the tests check.
* **Mixture draws** (`gm_sample`) are ancestral: a component index from the inverse CDF of the
  weights, then one `distrax.MultivariateNormalDiag` draw per row. `distrax.MixtureSameFamily`
  describes the same distribution (`gaussian_mixture`, used for densities), but its sampler
  draws every component for every row, O(n·M·D) memory, which is 10^10 floats at n = M = 10^4,
  D = 308; the ancestral path is O(n·D + M). `jax.random.categorical` would likewise build an
  [n, M] Gumbel array, hence the inverse-CDF table (`categorical_cdf`, computed once per update).
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

from qsal_jax.simulation.param_space import ParamSpace

DEFAULT_DTYPE = jnp.float32


# --------------------------------------------------------------------------- box mapping
def to_box(space: ParamSpace, z: jax.Array) -> jax.Array:
    """Unit cube → box, clipped so that rounding can never leave the box. ``[..., D]``."""
    return space.clip(space.from_unit(z))


def lam_to_unit(space: ParamSpace, lam: jax.Array, dtype) -> tuple[jax.Array, jax.Array]:
    """Box λ ``[B, D]`` → unit cube, clipped; rows with a non-finite entry become the centre 0.5.

    Returns ``(z [B, D] dtype, finite [B] bool)``.
    """
    lam = jnp.asarray(lam)
    if lam.ndim != 2 or lam.shape[-1] != space.dim:
        raise ValueError(f"feedback λ: expected shape [B, {space.dim}], got {lam.shape}")
    finite = jnp.all(jnp.isfinite(lam), axis=-1)
    z = space.to_unit(lam.astype(dtype))
    z = jnp.where(finite[:, None], jnp.clip(z, 0.0, 1.0), jnp.asarray(0.5, dtype))
    return z, finite


def uniform_unit(key: jax.Array, n: int, dim: int, dtype=DEFAULT_DTYPE) -> jax.Array:
    """``n`` i.i.d. draws of ``distrax.Uniform`` on ``[0, 1)^dim``, shape ``[n, dim]``."""
    dist = distrax.Uniform(low=jnp.zeros((dim,), dtype), high=jnp.ones((dim,), dtype))
    return dist.sample(seed=key, sample_shape=(n,)).astype(dtype)


def reflect_unit(x: jax.Array) -> jax.Array:
    """Fold ``x`` into ``[0, 1]`` by mirror reflection at 0 and 1 (triangle wave of period 2).

    ``T(x) = m if m <= 1 else 2 - m`` with ``m = x mod 2``; clipped to guard rounding.
    A non-finite entry (cannot happen from finite centres and σ) maps to 0.5.
    """
    m = jnp.mod(x, 2.0)
    y = jnp.where(m > 1.0, 2.0 - m, m)
    y = jnp.where(jnp.isfinite(y), y, jnp.asarray(0.5, x.dtype))
    return jnp.clip(y, 0.0, 1.0)


# --------------------------------------------------------------------------- weights
def safe_weights(loss: jax.Array, valid: jax.Array | None = None, dtype=DEFAULT_DTYPE):
    """Losses → non-negative weights in ``[0, 1]`` (divided by their max), with the fallback flag.

    Non-finite, negative, zero and masked-out losses get weight 0. The division by the max is
    done in the loss's own precision before casting, so float64 losses of 1e300 are not lost.

    Returns ``(w [B] dtype, has_mass [] bool)``; ``has_mass`` is False when no weight is positive.
    """
    x = jnp.asarray(loss)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(dtype)
    ok = jnp.isfinite(x) & (x > 0)
    if valid is not None:
        ok = ok & jnp.asarray(valid, bool)
    x = jnp.where(ok, x, jnp.zeros((), x.dtype))
    top = jnp.max(x, initial=jnp.zeros((), x.dtype))
    has_mass = top > 0
    w = jnp.where(has_mass, divide_by_max(x, jnp.where(has_mass, top, jnp.ones((), x.dtype))), jnp.zeros((), x.dtype))
    return w.astype(dtype), has_mass


def divide_by_max(x: jax.Array, top: jax.Array) -> jax.Array:
    """``x / top`` for a normal ``top > 0``, safe even when ``1/top`` is subnormal.

    XLA may compute a division as ``x * (1/top)``, and flushes a subnormal ``1/top`` (top above
    ~4.5e307 in float64, ~8.5e37 in float32) to zero. Both are first scaled by ``2^-e``
    (``top = m 2^e``), in two halves so that neither factor leaves the normal range.
    """
    _, e = jnp.frexp(top)
    h1 = e // 2
    f1 = jnp.exp2(-h1.astype(x.dtype))
    f2 = jnp.exp2(-(e - h1).astype(x.dtype))
    return (x * f1 * f2) / (top * f1 * f2)


def categorical_cdf(w: jax.Array) -> jax.Array:
    """Normalised CDF table ``[M]`` of non-negative weights for inverse-CDF sampling.

    Entries from the last positive weight on are exactly 1, so a draw ``u < 1`` never selects a
    zero-weight trailing entry through rounding; zero-weight entries elsewhere have an empty
    interval. All-zero weights give the uniform CDF (callers check ``has_mass`` themselves).
    """
    m = w.shape[0]
    positive = w > 0
    w = jnp.where(jnp.any(positive), w, jnp.ones_like(w))
    positive = w > 0
    c = jnp.cumsum(w)
    c = c / c[-1]
    last = m - 1 - jnp.argmax(positive[::-1])
    return jnp.where(jnp.arange(m) >= last, jnp.ones((), c.dtype), c)


def categorical_sample(key: jax.Array, cdf: jax.Array, n: int) -> jax.Array:
    """``n`` i.i.d. indices ``[n] int32`` from a `categorical_cdf` table, O(n log M)."""
    u = jax.random.uniform(key, (n,), dtype=cdf.dtype)
    idx = jnp.searchsorted(cdf, u, side="right")
    return jnp.clip(idx, 0, cdf.shape[0] - 1).astype(jnp.int32)


# --------------------------------------------------------------------------- Gaussian mixtures
def gaussian_mixture(centres: jax.Array, w: jax.Array, sigma) -> distrax.MixtureSameFamily:
    """The (unreflected) mixture ``Σ_j p_j N(c_j, σ² I)`` as a distrax distribution (densities).

    ``centres [M, D]``, ``w [M]`` non-negative (normalised here), ``sigma`` scalar or ``[D]``.
    """
    scale = jnp.broadcast_to(jnp.asarray(sigma, centres.dtype), centres.shape)
    return distrax.MixtureSameFamily(
        mixture_distribution=distrax.Categorical(probs=w / jnp.sum(w)),
        components_distribution=distrax.MultivariateNormalDiag(loc=centres, scale_diag=scale),
    )


def gm_sample(key: jax.Array, centres: jax.Array, cdf: jax.Array, sigma, n: int, *, reflect: bool = True):
    """``n`` draws ``[n, D]`` from ``Σ_j p_j N(c_j, σ² I)`` (component CDF ``cdf``), reflected into the cube."""
    k_comp, k_noise = jax.random.split(key)
    comp = categorical_sample(k_comp, cdf, n)
    loc = centres[comp]
    scale = jnp.broadcast_to(jnp.asarray(sigma, centres.dtype), loc.shape)
    x = distrax.MultivariateNormalDiag(loc=loc, scale_diag=scale).sample(seed=k_noise).astype(centres.dtype)
    return reflect_unit(x) if reflect else x


# --------------------------------------------------------------------------- schedules, pools
def alpha_schedule(i: jax.Array, alpha0: float, alpha1: float, alpha_max: float, dtype=DEFAULT_DTYPE) -> jax.Array:
    """Breed's mixing weight ``α_i = min(α1·i + α0, α_max)``, also kept inside ``[0, 1]``.

    The slides write ``max``; the method means a cap (α rises linearly, then saturates).
    """
    a = jnp.asarray(alpha1, dtype) * jnp.asarray(i, dtype) + jnp.asarray(alpha0, dtype)
    return jnp.clip(jnp.minimum(a, jnp.asarray(alpha_max, dtype)), 0.0, 1.0)


def with_handback(alpha: jax.Array, step: jax.Array, handback_step: int, handback_alpha: float) -> jax.Array:
    """``alpha``, or ``handback_alpha`` from training step ``handback_step`` on (0: never)."""
    if not handback_step:
        return alpha
    return jnp.where(step >= handback_step, jnp.asarray(handback_alpha, alpha.dtype), alpha)


def pool_select(key: jax.Array, logw: jax.Array, n: int, *, replace: bool, greedy: bool = False) -> jax.Array:
    """Indices ``[n] int32`` of pool members picked with probabilities ∝ ``exp(logw [P])``.

    Without replacement this is the Gumbel-top-k trick (Kool et al., 2019): the order of the
    picks is successive sampling ∝ ``exp(logw)`` among the rest. ``greedy`` takes the top-n
    ``logw`` (ties: lower index). ``-inf`` entries are picked only once everything else is;
    nothing finite → all equally likely. If ``n > P`` without replacement, the last ``n - P``
    indices are ``-1`` (the caller fills them with uniform draws).
    """
    p = logw.shape[0]
    logw = jnp.where(jnp.isnan(logw) | (logw == jnp.inf), -jnp.inf, logw)
    logw = jnp.where(jnp.any(jnp.isfinite(logw)), logw, jnp.zeros_like(logw))
    if replace:
        w = jnp.exp(logw - jnp.max(logw))
        return categorical_sample(key, categorical_cdf(w), n)
    k = min(n, p)
    score = logw if greedy else logw + jax.random.gumbel(key, (p,), dtype=logw.dtype)
    idx = jax.lax.top_k(score, k)[1].astype(jnp.int32)
    return jnp.concatenate([idx, jnp.full((n - k,), -1, jnp.int32)]) if k < n else idx


def check_pool(space: ParamSpace, fb, pool_size: int, dtype):
    """Validate ``fb.pool``/``fb.pool_score``; returns ``(pool [P, D] box units, score [P])``.

    The pool stays in box units so that a selected member is returned bit for bit as it was
    scored; a row with a non-finite entry gets score NaN (never preferred) and the box centre.
    """
    if fb.pool is None or fb.pool_score is None:
        raise ValueError("this strategy needs Feedback.pool and Feedback.pool_score (the scored candidate pool)")
    if fb.pool.shape != (pool_size, space.dim) or fb.pool_score.shape != (pool_size,):
        raise ValueError(
            f"Feedback.pool must have shape [{pool_size}, {space.dim}] (pool_size, D) and pool_score "
            f"[{pool_size}], got {fb.pool.shape} and {fb.pool_score.shape}"
        )
    lam = jnp.asarray(fb.pool)
    finite = jnp.all(jnp.isfinite(lam), axis=-1)
    centre = space.from_unit(jnp.full((space.dim,), 0.5, dtype))
    lam = jnp.where(finite[:, None], space.clip(lam.astype(dtype)), centre)
    score = jnp.where(finite, jnp.asarray(fb.pool_score), jnp.nan)
    return lam, score


# --------------------------------------------------------------------------- settings
def check_known_settings(strategy: str, given, known) -> None:
    """``ValueError`` naming every setting in ``given`` that ``known`` does not declare."""
    unknown = [k for k in given if k not in known]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"{strategy}: unknown setting{'s' if len(unknown) > 1 else ''} {names}; "
                         f"known: {', '.join(known)}")
