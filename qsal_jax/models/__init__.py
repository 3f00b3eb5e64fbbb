"""Plain Flax surrogates: FNO, U-Net, a ViT/scOT-style transformer operator and MLP, chosen by name.

Every field model maps a channels-first batch ``x: [B, C, *grid]`` and an optional vector of
scalar PDE parameters ``cond: [B, P]`` (P = 0 or None: unconditioned) to ``[B, C_out, *grid]``::

    model = models.build("fno2d_small", out_channels=1)
    params = model.init(key, x, cond)            # a plain nested dict {"params": {...}}
    y = model.apply(params, x, cond)

Defaults are float32 for both ``param_dtype`` and ``dtype`` whatever ``jax_enable_x64`` says;
``dtype=jnp.bfloat16`` gives mixed precision with float32 master weights.

Why Linen. A Linen module is a description, not a container: ``model.init`` returns the
parameters as a plain nested dict and ``model.apply(params, x)`` is a pure function of them.
That is exactly the shape the rest of the project needs. The train step closes over
``model.apply`` and threads ``params`` through ``jax.jit``, ``lax.scan`` rollouts and
``grad`` with no state-splitting ceremony; an ensemble is ``jax.vmap(model.init)`` over keys
and ``jax.vmap(model.apply, in_axes=(0, None))`` over its stacked parameters; orbax saves and
restores the parameters as the ordinary pytree they are, inside the larger pytree of the online
engine (buffers, RNG keys, optimizer state), and NamedSharding places them with one
``device_put``. NNX's mutable objects would have to be split into graph and state at each of
those boundaries (``nnx.split``/``nnx.merge``) for no gain here: the surrogates have no
mutable state (no batch statistics, no caches).
"""

from qsal_jax.models.conditioning import FiLM, CondEmbedding
from qsal_jax.models.fno import FNO, SpectralConv
from qsal_jax.models.mlp import MLP
from qsal_jax.models.registry import PRESETS, available, build, count_params, get_model
from qsal_jax.models.transformer import TransformerOperator
from qsal_jax.models.unet import UNet

__all__ = [
    "FNO",
    "SpectralConv",
    "UNet",
    "TransformerOperator",
    "MLP",
    "FiLM",
    "CondEmbedding",
    "PRESETS",
    "available",
    "build",
    "get_model",
    "count_params",
]
