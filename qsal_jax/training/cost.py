"""Analytic work of a function from its jaxpr: flops and the least bytes it must move.

Backend-independent (no compilation), and loops are multiplied out, where XLA's cost analysis
counts a loop body once. Used to keep one part of a compiled program a bounded share of another
(OGAS's ``train_every="auto"``) and by the benchmarks' roofline.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def fft_terms(eqn) -> tuple[float, float]:
    """(XLA's flops, the usual 5·n·log2 n flops, half for real transforms) of one ``fft`` equation."""
    lengths = tuple(int(n) for n in eqn.params["fft_lengths"])
    real = "RFFT" in str(eqn.params["fft_type"]).upper()  # RFFT and IRFFT
    # XLA (HloCostAnalysis::HandleFft): 2 flops/FMA × 4 FMAs × Π floor(log2 n_i) per operand element.
    xla = 8.0 * math.prod(max(n.bit_length() - 1, 1) for n in lengths) * math.prod(eqn.invars[0].aval.shape)
    n = math.prod(lengths)
    batch = math.prod(eqn.invars[0].aval.shape) / max(math.prod(eqn.invars[0].aval.shape[-len(lengths):]), 1)
    usual = (2.5 if real else 5.0) * batch * n * math.log2(max(n, 2))
    return xla, usual


def jaxpr_cost(fn, *args) -> tuple[float, float]:
    """Analytic ``(flops, bytes)``: matmuls 2·M·N·K, convolutions 2·out·kernel, FFTs 5·n·log2 n per
    complex transform (half for real ones), one flop per element of anything else; scans count
    ``length`` times, a cond its dearest branch. Bytes: arguments plus results, the least traffic
    any implementation must make."""
    closed = jax.make_jaxpr(fn)(*args)
    leaves = jax.tree_util.tree_leaves((args, jax.eval_shape(fn, *args)))
    nbytes = sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in leaves)
    return float(jaxpr_flops(closed.jaxpr)), float(nbytes)


def sub_jaxprs(value):
    """The jaxprs inside an equation parameter (pjit, custom_jvp, remat bodies, …)."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    for v in values:
        if hasattr(v, "eqns"):
            yield v
        elif hasattr(getattr(v, "jaxpr", None), "eqns"):
            yield v.jaxpr


def jaxpr_flops(jaxpr, elementwise: bool = True) -> float:
    """Flops of a jaxpr as `jaxpr_cost` counts them; ``elementwise=False`` counts matmuls,
    convolutions and FFTs only."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name, params = eqn.primitive.name, eqn.params
        out = eqn.outvars[0].aval if eqn.outvars else None
        out_size = math.prod(getattr(out, "shape", ())) if out is not None else 0
        if name == "scan":
            total += params["length"] * jaxpr_flops(params["jaxpr"].jaxpr, elementwise)
        elif name == "cond":
            total += max(jaxpr_flops(b.jaxpr, elementwise) for b in params["branches"])
        elif any(True for v in params.values() for _ in sub_jaxprs(v)):
            total += sum(jaxpr_flops(j, elementwise) for v in params.values() for j in sub_jaxprs(v))
        elif name == "dot_general":
            (lhs_contract, _), _ = params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            total += 2.0 * out_size * math.prod(lhs_shape[d] for d in lhs_contract)
        elif name == "conv_general_dilated":
            rhs_shape = eqn.invars[1].aval.shape
            total += 2.0 * out_size * math.prod(rhs_shape) / max(rhs_shape[params["dimension_numbers"].rhs_spec[0]], 1)
        elif name == "fft":
            total += fft_terms(eqn)[1]
        elif elementwise:
            total += out_size
    return total
