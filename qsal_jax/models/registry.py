"""Choose a surrogate by name: ``build(name, **overrides)`` and ``get_model(config)``.

A name is either an architecture (``fno1d``, ``fno2d``, ``unet1d``, ``unet2d``, ``vit1d``,
``vit2d``, ``mlp``) with its defaults, or a size preset of one (``fno2d_28m``). Keyword
arguments override any field of the preset, so ``build("fno2d_small", out_channels=2,
dtype=jnp.bfloat16)`` is a bf16 two-field FNO of the small size. Parameter counts below are for
one input and one output channel and no conditioning (MLPs: two inputs), from ``count_params``
on ``model.init``; they do not depend on the grid.

=============== ===================================================== ============
preset          configuration                                          parameters
=============== ===================================================== ============
fno1d_tiny      modes 8, width 16, depth 2, head 32                          9,345
fno1d_medium    modes 12, width 32, depth 3, head 64                        79,137
fno1d_small     modes 16, width 64, depth 4, head 128                      549,505
fno2d_tiny      modes 4×4, width 8, depth 2, head 16                         8,513
fno2d_small     modes 12×12, width 32, depth 4, head 128                 2,367,937
fno2d_medium    modes 16×16, width 48, depth 4, head 128                 9,453,089
fno2d_28m       modes 16×16, width 83, depth 4, head 128                28,256,279
unet1d_tiny     hidden 8, mults (1, 2), 1 block                             12,201
unet2d_tiny     hidden 8, mults (1, 2), 1 block                             33,417
unet2d_small    hidden 32, mults (1, 2, 2, 4), 1 block                   2,536,097
unet2d_medium   hidden 64, mults (1, 2, 2, 4), 2 blocks                 14,948,097
vit1d_tiny      patch 4, width 32, depth 2, 4 heads, MLP ×2                 17,444
vit1d_small     patch 4, width 96, depth 4, 4 heads, MLP ×4                448,420
vit1d_base      patch 4, width 256, depth 6, 8 heads, MLP ×4             4,741,380
vit2d_tiny      patch 4×4, width 32, depth 2, 4 heads, MLP ×2               18,224
vit2d_small     patch 8×8, width 128, depth 4, 4 heads, MLP ×4             809,920
vit2d_base      patch 8×8, width 256, depth 8, 8 heads, MLP ×4           6,351,680
mlp_tiny        hidden (32, 32), tanh                                        1,185
mlp_pinn        hidden 4×64, tanh, 64 Fourier features (scale 1)           20,801
=============== ===================================================== ============

``fno2d_28m`` is the large reference surrogate: 4 Fourier layers of ``4·16·16·83²`` real
spectral weights each (27.6M of the 28.3M) on a 128² grid; width 83 is the width that lands
nearest 28M at 16 modes and depth 4.

The ``vit`` presets use the fixed sinusoidal position embedding, so their counts too are
grid-free; ``pos_embedding="learned"`` adds ``tokens × width`` parameters and fixes the grid.
Their patches divide the 160-point KdV grid (40 tokens) and, in 2D, 32² and 128² (64 / 1024
tokens for ``vit2d_tiny``, 16 / 256 for the 8×8 presets); attention is global over the tokens.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax

from qsal_jax.models.fno import FNO
from qsal_jax.models.mlp import MLP
from qsal_jax.models.transformer import TransformerOperator
from qsal_jax.models.unet import UNet

# name -> (module class, default fields). Defaults always set out_channels so build(name) works.
_ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {
    "fno1d": (FNO, dict(out_channels=1, modes=(16,), width=64, depth=4, projection_features=128)),
    "fno2d": (FNO, dict(out_channels=1, modes=(12, 12), width=32, depth=4, projection_features=128)),
    "unet1d": (UNet, dict(out_channels=1, hidden=32, channel_mults=(1, 2, 2, 4), num_blocks=1, spatial_dims=1)),
    "unet2d": (UNet, dict(out_channels=1, hidden=32, channel_mults=(1, 2, 2, 4), num_blocks=1, spatial_dims=2)),
    "vit1d": (TransformerOperator, dict(out_channels=1, patch_size=(4,), width=96, depth=4, num_heads=4)),
    "vit2d": (TransformerOperator, dict(out_channels=1, patch_size=(8, 8), width=128, depth=4, num_heads=4)),
    "mlp": (MLP, dict(out_features=1, hidden=(64, 64, 64), activation="tanh")),
}

# preset -> (architecture, overrides of its defaults)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "fno1d_tiny": ("fno1d", dict(modes=(8,), width=16, depth=2, projection_features=32)),
    "fno1d_medium": ("fno1d", dict(modes=(12,), width=32, depth=3, projection_features=64)),
    "fno1d_small": ("fno1d", dict(modes=(16,), width=64, depth=4, projection_features=128)),
    "fno2d_tiny": ("fno2d", dict(modes=(4, 4), width=8, depth=2, projection_features=16)),
    "fno2d_small": ("fno2d", dict(modes=(12, 12), width=32, depth=4, projection_features=128)),
    "fno2d_medium": ("fno2d", dict(modes=(16, 16), width=48, depth=4, projection_features=128)),
    "fno2d_28m": ("fno2d", dict(modes=(16, 16), width=83, depth=4, projection_features=128)),
    "unet1d_tiny": ("unet1d", dict(hidden=8, channel_mults=(1, 2), num_blocks=1)),
    "unet2d_tiny": ("unet2d", dict(hidden=8, channel_mults=(1, 2), num_blocks=1)),
    "unet2d_small": ("unet2d", dict(hidden=32, channel_mults=(1, 2, 2, 4), num_blocks=1)),
    "unet2d_medium": ("unet2d", dict(hidden=64, channel_mults=(1, 2, 2, 4), num_blocks=2)),
    "vit1d_tiny": ("vit1d", dict(patch_size=(4,), width=32, depth=2, num_heads=4, mlp_ratio=2.0)),
    "vit1d_small": ("vit1d", dict(patch_size=(4,), width=96, depth=4, num_heads=4, mlp_ratio=4.0)),
    "vit1d_base": ("vit1d", dict(patch_size=(4,), width=256, depth=6, num_heads=8, mlp_ratio=4.0)),
    "vit2d_tiny": ("vit2d", dict(patch_size=(4, 4), width=32, depth=2, num_heads=4, mlp_ratio=2.0)),
    "vit2d_small": ("vit2d", dict(patch_size=(8, 8), width=128, depth=4, num_heads=4, mlp_ratio=4.0)),
    "vit2d_base": ("vit2d", dict(patch_size=(8, 8), width=256, depth=8, num_heads=8, mlp_ratio=4.0)),
    "mlp_tiny": ("mlp", dict(hidden=(32, 32), activation="tanh")),
    "mlp_pinn": ("mlp", dict(hidden=(64,) * 4, activation="tanh", fourier_features=64, fourier_scale=1.0)),
}


def available() -> list[str]:
    """All names `build` accepts."""
    return sorted(_ARCHITECTURES) + sorted(PRESETS)


def build(name: str, **overrides: Any) -> nn.Module:
    """Build the Flax module called ``name`` with its defaults updated by ``overrides``."""
    if name in PRESETS:
        arch, preset = PRESETS[name]
    elif name in _ARCHITECTURES:
        arch, preset = name, {}
    else:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    cls, defaults = _ARCHITECTURES[arch]
    fields = {**defaults, **preset, **overrides}
    # Lists (from JSON or ConfigDict) become tuples: modules must stay hashable, because
    # ``model.apply`` is a static argument of jitted functions (e.g. training.evaluate).
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    if cls is FNO and isinstance(fields["modes"], int):
        fields["modes"] = (fields["modes"],) * len(defaults["modes"])
    if cls is TransformerOperator and isinstance(fields["patch_size"], int):
        fields["patch_size"] = (fields["patch_size"],) * len(defaults["patch_size"])
    unknown = set(fields) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{name}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    return cls(**fields)


def get_model(config: Mapping[str, Any] | Any) -> nn.Module:
    """Build from a config with a ``name`` field; every other field is an override.

    Accepts a dict or an ``ml_collections.ConfigDict`` (e.g. ``config.model`` of an experiment).
    """
    fields = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    if "name" not in fields:
        raise ValueError(f"model config needs a `name` field; got keys {sorted(fields)}")
    return build(fields.pop("name"), **fields)


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree (arrays or ShapeDtypeStructs)."""
    return int(sum(int(x.size) for x in jax.tree_util.tree_leaves(params)))
