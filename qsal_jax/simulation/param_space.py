"""The box of simulation parameters λ: the single place where λ is interpreted.

Every strategy works in the unit cube [0, 1]^D and maps to the physical box with
`from_unit`; every simulator reads λ through `take`/`unpack`, so a λ vector never
has an implicit layout anywhere else in the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class ParamSpace:
    """A named axis-aligned box ``[low, high]`` in R^D.

    Hashable and static: close over it in jitted code. Vector-valued blocks
    (e.g. 150 Fourier amplitudes) are named ``block_0 … block_{n-1}`` and read
    back with `block`.
    """

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        if not (len(self.names) == len(self.low) == len(self.high)):
            raise ValueError(
                f"ParamSpace: names, low and high must have equal lengths, got "
                f"{len(self.names)}, {len(self.low)}, {len(self.high)}"
            )
        if len(self.names) == 0:
            raise ValueError("ParamSpace: needs at least one dimension")
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"ParamSpace: duplicate parameter names {dup}")
        for name, lo, hi in zip(self.names, self.low, self.high):
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"ParamSpace: bounds of '{name}' must be finite, got [{lo}, {hi}]")
            if not lo < hi:
                raise ValueError(f"ParamSpace: bounds of '{name}' need low < high, got [{lo}, {hi}]")

    # ----------------------------------------------------------------- builders
    @classmethod
    def box(cls, bounds: Mapping[str, tuple[float, float]]) -> ParamSpace:
        """``ParamSpace.box({"A0": (0.0, 1.0), "phi0": (0.0, 6.28)})``."""
        names = tuple(bounds)
        for n in names:
            b = bounds[n]
            if not (isinstance(b, Sequence) and len(b) == 2):
                raise ValueError(f"ParamSpace: bounds of '{n}' must be a (low, high) pair, got {b!r}")
        return cls(
            names,
            tuple(float(bounds[n][0]) for n in names),
            tuple(float(bounds[n][1]) for n in names),
        )

    @classmethod
    def vector(cls, name: str, size: int, low: float, high: float) -> ParamSpace:
        """A block of ``size`` parameters with common bounds, named ``name_i``."""
        if size < 1:
            raise ValueError(f"ParamSpace.vector: size of '{name}' must be >= 1, got {size}")
        return cls(tuple(f"{name}_{i}" for i in range(size)), (float(low),) * size, (float(high),) * size)

    def __add__(self, other: ParamSpace) -> ParamSpace:
        """Concatenate two spaces (names must stay unique)."""
        return ParamSpace(self.names + other.names, self.low + other.low, self.high + other.high)

    # ------------------------------------------------------------------- layout
    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def low_array(self) -> np.ndarray:
        return np.asarray(self.low, dtype=np.float64)

    @property
    def high_array(self) -> np.ndarray:
        return np.asarray(self.high, dtype=np.float64)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"ParamSpace has no parameter '{name}'; it has {list(self.names)}") from None

    def block_slice(self, name: str) -> slice:
        """Slice of the contiguous block ``name_0 … name_{n-1}``."""
        idx = [i for i, n in enumerate(self.names) if n.rsplit("_", 1)[0] == name and n.rsplit("_", 1)[-1].isdigit()]
        if not idx:
            raise KeyError(f"ParamSpace has no block '{name}'; it has {list(self.names)}")
        if idx != list(range(idx[0], idx[-1] + 1)):
            raise ValueError(f"ParamSpace: block '{name}' is not contiguous")
        return slice(idx[0], idx[-1] + 1)

    def has(self, name: str) -> bool:
        return name in self.names

    def take(self, lam: jax.Array, name: str) -> jax.Array:
        """``lam[..., i]`` for the parameter called ``name``."""
        return lam[..., self.index(name)]

    def block(self, lam: jax.Array, name: str) -> jax.Array:
        """``lam[..., block]`` for the vector block called ``name``."""
        return lam[..., self.block_slice(name)]

    def layout(self) -> tuple[tuple[str, int, int], ...]:
        """``(name, start, stop)`` per named entry: a scalar parameter, or a vector block
        ``name_0 … name_{n-1}`` under its block name. In λ order."""
        out, i = [], 0
        while i < self.dim:
            head, _, tail = self.names[i].rpartition("_")
            j = i + 1
            if head and tail == "0":
                while j < self.dim and self.names[j] == f"{head}_{j - i}":
                    j += 1
                if j - i > 1:
                    out.append((head, i, j))
                    i = j
                    continue
            out.append((self.names[i], i, i + 1))
            i += 1
        return tuple(out)

    def unpack(self, lam: jax.Array) -> dict[str, jax.Array]:
        """``{name: array}`` from ``lam [..., D]``: scalars ``[...]``, blocks ``[..., n]``.

        How every simulator reads λ, so no code depends on its layout::

            p = space.unpack(lam)            # {"amp": [K], "phase": [K], "L": []}
        """
        if lam.shape[-1] != self.dim:
            raise ValueError(f"unpack: expected λ with trailing dimension {self.dim}, got shape {lam.shape}")
        return {name: lam[..., a] if b == a + 1 else lam[..., a:b] for name, a, b in self.layout()}

    # ------------------------------------------------------------------ mapping
    def from_unit(self, z: jax.Array) -> jax.Array:
        """Unit cube [0, 1]^D → box, shape preserved ``[..., D]``."""
        lo = jnp.asarray(self.low, dtype=z.dtype)
        hi = jnp.asarray(self.high, dtype=z.dtype)
        return lo + z * (hi - lo)

    def to_unit(self, lam: jax.Array) -> jax.Array:
        """Box → unit cube, shape preserved ``[..., D]``."""
        lo = jnp.asarray(self.low, dtype=lam.dtype)
        hi = jnp.asarray(self.high, dtype=lam.dtype)
        return (lam - lo) / (hi - lo)

    def clip(self, lam: jax.Array) -> jax.Array:
        lo = jnp.asarray(self.low, dtype=lam.dtype)
        hi = jnp.asarray(self.high, dtype=lam.dtype)
        return jnp.clip(lam, lo, hi)

    def contains(self, lam: jax.Array) -> jax.Array:
        """Boolean ``[...]``: is each λ inside the closed box?"""
        lo = jnp.asarray(self.low, dtype=lam.dtype)
        hi = jnp.asarray(self.high, dtype=lam.dtype)
        return jnp.all((lam >= lo) & (lam <= hi), axis=-1)

    def sample_uniform(self, key: jax.Array, n: int, dtype=jnp.float32) -> jax.Array:
        """``n`` i.i.d. uniform draws, shape ``[n, D]``."""
        return self.from_unit(jax.random.uniform(key, (n, self.dim), dtype=dtype))

    def grid_2d(self, x: str, y: str, n: int, fixed: Mapping[str, float] | None = None, dtype=jnp.float32):
        """A regular ``n × n`` grid over the (x, y) slice; other parameters at ``fixed`` or mid-box.

        Returns λ of shape ``[n*n, D]`` (x varies fastest) and the two 1D axes.
        """
        fixed = dict(fixed or {})
        unknown = set(fixed) - set(self.names)
        if unknown:
            raise KeyError(f"grid_2d: unknown fixed parameters {sorted(unknown)}")
        base = np.array([fixed.get(nm, 0.5 * (lo + hi)) for nm, lo, hi in zip(self.names, self.low, self.high)])
        ix, iy = self.index(x), self.index(y)
        ax = np.linspace(self.low[ix], self.high[ix], n)
        ay = np.linspace(self.low[iy], self.high[iy], n)
        gx, gy = np.meshgrid(ax, ay, indexing="xy")
        lam = np.tile(base, (n * n, 1))
        lam[:, ix] = gx.ravel()
        lam[:, iy] = gy.ravel()
        return jnp.asarray(lam, dtype=dtype), ax, ay

    # --------------------------------------------------------------- validation
    def check(self, lam, what: str = "lambda") -> None:
        """Host-side validation with a clear message; raises ``ValueError``."""
        arr = np.asarray(lam)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(
                f"{what}: expected trailing dimension {self.dim} ({', '.join(self.names[:6])}"
                f"{', …' if self.dim > 6 else ''}), got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: contains non-finite values")
        lo, hi = self.low_array, self.high_array
        bad = np.nonzero(np.any((arr < lo) | (arr > hi), axis=tuple(range(arr.ndim - 1))))[0]
        if bad.size:
            i = int(bad[0])
            col = arr[..., i]
            raise ValueError(
                f"{what}: parameter '{self.names[i]}' out of bounds [{lo[i]}, {hi[i]}] "
                f"(range seen: [{col.min()}, {col.max()}])"
            )
