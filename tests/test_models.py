"""Models: shapes and dtypes of every preset, FNO discretisation invariance, exact shift
equivariance of the circular U-Net, FiLM identity at init, input derivatives of the MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax import models
from qsal_jax.models.registry import PRESETS

TINY = ["fno1d_tiny", "fno2d_tiny", "unet1d_tiny", "unet2d_tiny"]


def key(seed):
    # The "rbg" generator compiles far faster than threefry on CPU; model inits draw one
    # array per parameter, and with threefry compilation would dominate this file's runtime.
    return jax.random.key(seed, impl="rbg")


def _band_limited(key, shape, n_modes):
    """Random periodic field ``[*lead, N]`` (or 2D ``[*lead, N, N]``) with |k| <= n_modes, float64."""
    *lead, = shape[:-1]
    n = shape[-1]
    k1, k2 = jax.random.split(key)
    coef = jax.random.normal(k1, (*lead, n_modes + 1)) + 1j * jax.random.normal(k2, (*lead, n_modes + 1))
    spec = jnp.zeros((*lead, n // 2 + 1), jnp.complex128).at[..., : n_modes + 1].set(coef)
    return jnp.fft.irfft(spec, n=n) * n / n_modes


def _input(name, key, cond_dim=0, grid=16):
    arch = PRESETS[name][0]
    x = jax.random.normal(key, (2, 1) + (grid,) * (1 if arch.endswith("1d") else 2))
    cond = jnp.ones((2, cond_dim))
    return x, cond


@pytest.mark.parametrize("name", TINY)
def test_presets_shapes_and_float32(name):
    """x64 is on in the suite: float64 inputs must still give float32 params and outputs."""
    model = models.build(name, out_channels=3)
    x, cond = _input(name, key(0))
    assert x.dtype == jnp.float64
    params = jax.jit(model.init)(key(1), x, cond)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
    y = jax.jit(model.apply)(params, x, cond)
    assert y.shape == (2, 3) + x.shape[2:]
    assert y.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(y)))
    assert models.count_params(params) == sum(p.size for p in jax.tree_util.tree_leaves(params))


def test_all_presets_build_abstractly():
    """Every registered preset initialises (shape-only, no compute) and the 28M FNO is ~28M."""
    for name, (arch, _) in PRESETS.items():
        model = models.build(name)
        if arch == "mlp":
            x = jnp.ones((1, 2))
        else:
            x = jnp.ones((1, 1) + (64,) * (1 if arch.endswith("1d") else 2), jnp.float32)
        shapes = jax.eval_shape(model.init, key(0), x)
        assert models.count_params(shapes) > 0, name
    big = jax.eval_shape(models.build("fno2d_28m").init, key(0), jnp.ones((1, 1, 128, 128)))
    assert 27.5e6 < models.count_params(big) < 28.5e6


def test_registry_errors_and_get_model():
    with pytest.raises(ValueError, match="unknown model"):
        models.build("fno3d_huge")
    with pytest.raises(ValueError, match="unknown field"):
        models.build("fno1d_tiny", widht=3)
    m = models.get_model({"name": "fno1d_tiny", "out_channels": 2, "modes": 4})
    assert m.out_channels == 2 and m.modes == (4,)
    m = models.get_model({"name": "unet2d", "channel_mults": [1, 2], "hidden": 8})
    assert m.channel_mults == (1, 2) and isinstance(hash(m.apply), int)
    ml_collections = pytest.importorskip("ml_collections")
    assert models.get_model(ml_collections.ConfigDict({"name": "fno2d_tiny", "width": 4})).width == 4
    with pytest.raises(ValueError, match="name"):
        models.get_model({"out_channels": 2})


def test_fno_rejects_unresolved_modes_and_unbatched_input():
    model = models.build("fno1d_tiny", modes=10)
    with pytest.raises(ValueError, match="modes"):
        model.init(key(0), jnp.ones((1, 1, 16)))
    with pytest.raises(ValueError, match=r"x\[None\]"):
        model.init(key(0), jnp.ones((1, 16)))


@pytest.mark.parametrize("ndim", [1, 2])
def test_fno_discretisation_invariance(ndim):
    """Same params, band-limited input sampled at N and 2N: outputs agree at shared points.

    The spectral layers are exactly resolution-independent; the residual mismatch is the
    aliasing of the pointwise GELU on the coarse grid, small for smooth fields.
    """
    n, n_in_modes = 32, 3
    model = models.build(f"fno{ndim}d_tiny", modes=6, width=12, depth=3)
    k = key(3)
    if ndim == 1:
        fine = _band_limited(k, (2, 1, 2 * n), n_in_modes)
        coarse = fine[..., ::2]
        shared = lambda y: y[..., ::2]
    else:
        ka, kb = jax.random.split(k)
        a = _band_limited(ka, (2, 1, 2 * n), n_in_modes)
        b = _band_limited(kb, (2, 1, 2 * n), n_in_modes)
        fine = jnp.sin(a[..., :, None] + b[..., None, :])  # smooth, not a product form
        coarse = fine[..., ::2, ::2]
        shared = lambda y: y[..., ::2, ::2]
    params = jax.jit(model.init)(key(0), coarse)
    y_coarse = jax.jit(model.apply)(params, coarse)
    y_fine = jax.jit(model.apply)(params, fine)
    err = np.linalg.norm(shared(y_fine) - y_coarse) / np.linalg.norm(y_coarse)
    assert err < 1e-2, err  # measured: 2.9e-3 (1D), < 2e-3 (2D)


def test_fno_is_shift_equivariant_for_any_integer_shift():
    model = models.build("fno1d_tiny")
    x = jax.random.normal(key(0), (2, 1, 32))
    params = jax.jit(model.init)(key(1), x)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(params, jnp.roll(x, 5, axis=-1)), jnp.roll(apply(params, x), 5, axis=-1), atol=2e-5)


@pytest.mark.parametrize("ndim", [1, 2])
def test_unet_translation_equivariance(ndim):
    """Rolling by a multiple of 2**levels rolls the output; an odd roll in general does not."""
    model = models.build(f"unet{ndim}d_tiny", channel_mults=(1, 2, 2), out_channels=2)
    factor = 4
    grid = (16,) * ndim
    x = jax.random.normal(key(0), (2, 1) + grid)
    params = jax.jit(model.init)(key(1), x)
    apply = jax.jit(model.apply)
    y = apply(params, x)
    axes = tuple(range(2, 2 + ndim))
    for shift in [(factor,) * ndim, (3 * factor,) + (2 * factor,) * (ndim - 1)]:
        y_shift = apply(params, jnp.roll(x, shift, axis=axes))
        np.testing.assert_allclose(y_shift, jnp.roll(y, shift, axis=axes), atol=2e-5, rtol=1e-5)
    y_odd = apply(params, jnp.roll(x, 1, axis=axes[0]))
    assert np.abs(np.asarray(y_odd - jnp.roll(y, 1, axis=axes[0]))).max() > 1e-3


def test_unet_rejects_indivisible_grid():
    model = models.build("unet1d_tiny", channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match="divisible"):
        model.init(key(0), jnp.ones((1, 1, 18)))


@pytest.mark.parametrize("name", ["fno1d_tiny", "unet1d_tiny"])
def test_film_conditioning(name):
    """P=0 and None are the same unconditioned model; with P>0 FiLM starts as the identity
    and, once its weights move, the output depends on cond."""
    model = models.build(name)
    x = jax.random.normal(key(0), (2, 1, 16))
    p_none = jax.eval_shape(model.init, key(1), x)
    p_zero = jax.eval_shape(model.init, key(1), x, jnp.zeros((2, 0)))
    assert jax.tree_util.tree_structure(p_none) == jax.tree_util.tree_structure(p_zero)

    cond = jnp.array([[0.1, 2.0], [0.5, -1.0]])
    params = jax.jit(model.init)(key(1), x, cond)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(params, x, cond), apply(params, x, 3.0 * cond), atol=1e-6)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    perturbed = jax.tree_util.tree_unflatten(
        treedef, [v + 0.1 if "gamma_beta" in jax.tree_util.keystr(k) else v for k, v in leaves]
    )
    assert np.abs(np.asarray(apply(perturbed, x, cond) - apply(perturbed, x, 3.0 * cond))).max() > 1e-3
    with pytest.raises(ValueError, match=r"\[B, P\]"):
        model.apply(params, x, cond[0])


def test_bf16_compute_keeps_float32_params():
    model = models.build("fno1d_tiny", dtype=jnp.bfloat16)
    x = jax.random.normal(key(0), (2, 1, 32))
    params = model.init(key(1), x)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
    y16 = model.apply(params, x)
    assert y16.dtype == jnp.bfloat16
    y32 = models.build("fno1d_tiny").apply(params, x)
    err = np.linalg.norm(np.asarray(y16, np.float32) - y32) / np.linalg.norm(y32)
    assert err < 3e-2, err


def test_mlp_input_derivatives_for_pinns():
    """grad / jacfwd / hessian w.r.t. inputs, checked against central differences in float64."""
    model = models.build("mlp_pinn", hidden=(16, 16), fourier_features=8, param_dtype=jnp.float64, dtype=jnp.float64)
    xt = jnp.array([0.3, 0.7])
    params = model.init(key(0), xt)
    assert "fourier" not in str(jax.tree_util.tree_structure(params))  # B is a constant, not a parameter
    u = jax.jit(lambda z: model.apply(params, z)[0])
    g = jax.grad(u)(xt)
    h = 1e-6
    fd = (jax.vmap(u)(xt + h * jnp.eye(2)) - jax.vmap(u)(xt - h * jnp.eye(2))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jax.jacfwd(u)(xt), g, rtol=1e-12)
    assert jax.hessian(u)(xt).shape == (2, 2)
    # Batched residual-style evaluation: vmap of grad over collocation points.
    pts = jax.random.uniform(key(1), (5, 2))
    assert jax.vmap(jax.grad(u))(pts).shape == (5, 2)
    tiny = models.build("mlp_tiny")
    assert tiny.apply(tiny.init(key(0), pts), pts).dtype == jnp.float32
