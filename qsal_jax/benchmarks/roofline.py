"""Roofline: how far each measured time is from what the device could do at best.

`device_rates` measures the device's copy bandwidth (``y = 2·x`` over a large f32 array: read +
write) and matmul rate (large square ``x @ x`` in float32 at default precision — TF32 where a GPU
allows it — and in bfloat16). `annotate(records, rates)` adds to every solver, training and online
record the work of its timed unit and a floor::

    bytes, flops   per timed unit (solvers: one call = batch × num_steps solver steps;
                   training: one train step; online: one online step)
    floor_s        = max(bytes / copy bandwidth, flops / matmul rate of the record's dtype)
    over_floor     = measured seconds / floor_s (1 would be perfect; the larger, the more headroom)
    bound          "memory" or "compute": which term sets the floor
    cost_source    "xla": `jit(fn).lower(...).compile().cost_analysis()` of loop-free pieces
                   (XLA counts a loop body once, so loops are multiplied out here by hand), with
                   FFTs repriced at the usual 5·n·log2 n (XLA multiplies the logs of the axes:
                   5.6 × too much at 128²) and flops never below the jaxpr's matmuls, convolutions
                   and FFTs; "jaxpr": an analytic count over the jaxpr where XLA gives no analysis

Device rates are from the fastest timed call (a ceiling). Both costs are estimates: XLA's "bytes
accessed" is summed over the fused kernels it emits, and the matmul rate overstates what FFTs and
elementwise work can reach, so the floor is optimistic for spectral solvers. An online step's work is ``solver_steps`` batched solver steps for K clients plus
n train steps (buffer pushes and strategy updates are left out: small next to both).

``run(cfg)`` returns the rates as one record, so ``--suites=...,roofline`` puts them in the JSON.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from qsal_jax.benchmarks.timing import backend_info, time_chain, time_fn
from qsal_jax.training.cost import fft_terms as _fft_terms
from qsal_jax.training.cost import jaxpr_cost, jaxpr_flops as _count, sub_jaxprs as _sub_jaxprs  # noqa: F401

CPU_RATE_SIZES = {"copy_mib": 256, "matmul_n": 2048}
GPU_RATE_SIZES = {"copy_mib": 2048, "matmul_n": 8192}


# ------------------------------------------------------------------ device rates
def device_rates(cfg: dict | None = None) -> dict:
    """``{"copy_gbps", "matmul_f32_tflops", "matmul_bf16_tflops", ...}`` measured on device 0.

    Rates are from the fastest of the timed calls: a ceiling, as a roofline needs. cfg keys:
    ``gpu`` (2 GiB copy, 8192² matmuls; else 256 MiB, 2048²), ``rate_sizes`` (overrides
    ``copy_mib``, ``matmul_n``), ``repeats``.
    """
    cfg = dict(cfg or {})
    sizes = dict(GPU_RATE_SIZES if cfg.get("gpu") else CPU_RATE_SIZES, **cfg.get("rate_sizes", {}))
    repeats = int(cfg.get("repeats", 3))
    n_copy = int(sizes["copy_mib"]) * 2**20 // 4
    # Donated and chained, so the output reuses the input's memory: a fresh buffer per call would
    # time the allocator's page faults on a CPU, not the memory system.
    scale = jax.jit(lambda x: 2.0 * x, donate_argnums=0)
    x = jax.block_until_ready(scale(jnp.ones((n_copy,), jnp.float32)))
    t_copy = time_chain(scale, x, repeats=max(repeats, 3), warmup=0, reduce="min")  # a ceiling, not the typical call
    del x
    out = {"suite": "roofline", "name": "device_rates", "copy_bytes": 8 * n_copy, "copy_gbps": 8 * n_copy / t_copy / 1e9}
    n = int(sizes["matmul_n"])
    for dtype in (jnp.float32, jnp.bfloat16):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
        t = time_fn(jax.jit(lambda a: a @ a), a, repeats=max(repeats, 3), reduce="min")
        out[f"matmul_{jnp.dtype(dtype).name.replace('float', 'f')}_tflops"] = 2 * n**3 / t / 1e12  # f32, bf16
    out["matmul_n"] = n
    out.update(backend_info())
    return out


def run(cfg: dict) -> list[dict]:
    return [device_rates(cfg)]


# ------------------------------------------------------------------ cost of a function
def cost(fn, *args) -> tuple[float, float, str]:
    """``(flops, bytes, source)`` of one call of ``fn(*args)``; args may be `jax.ShapeDtypeStruct`s."""
    xla = None
    try:
        xla = _xla_cost(jax.jit(fn).lower(*args).compile())
    except Exception:  # a backend without cost analysis, or one that raises for it
        xla = None
    if xla is not None and xla[0] > 0 and xla[1] > 0:
        # XLA prices an FFT at 8·Π log2(n_i) flops per complex element (a product of logs: 49 per
        # element for 128², 5.6 × the usual 5·log2 N² per element); put the usual count in its place.
        jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
        xla_fft, usual_fft = _fft_flops(jaxpr)
        flops = xla[0] - xla_fft + usual_fft
        # Matmuls, convolutions and FFTs cannot be optimised away; a backend whose analysis misses
        # library calls (cuBLAS, cuDNN custom calls) would otherwise report too little work.
        return max(flops, _count(jaxpr, elementwise=False)), xla[1], "xla"
    flops, nbytes = jaxpr_cost(fn, *args)
    return flops, nbytes, "jaxpr"


def _fft_flops(jaxpr) -> tuple[float, float]:
    """Both FFT counts over a jaxpr, with loop bodies counted once as XLA does."""
    xla = usual = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "fft":
            a, b = _fft_terms(eqn)
            xla, usual = xla + a, usual + b
        for v in eqn.params.values():
            for sub in _sub_jaxprs(v):
                a, b = _fft_flops(sub)
                xla, usual = xla + a, usual + b
    return xla, usual


def _xla_cost(compiled) -> tuple[float, float] | None:
    """XLA's analysis across jax versions: a dict, a one-element list of dicts, or None."""
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else None
    if not ca:
        return None
    return float(ca.get("flops", 0.0)), float(ca.get("bytes accessed", 0.0))


# ------------------------------------------------------------------ per-suite costs
def _solver_cost(rec: dict) -> tuple[float, float, str, float]:
    from qsal_jax import solvers as S
    from qsal_jax.benchmarks.solvers import _problems

    pde = _problems(rec["num_points"])[rec["name"]][0]
    step = jax.vmap(S.make_stepper(pde, 2))
    flops, nbytes, source = cost(step, jax.ShapeDtypeStruct((rec["batch"],) + pde.state_shape, jnp.float32))
    return rec["num_steps"] * flops, rec["num_steps"] * nbytes, source, rec["ours_s"]


def _training_cost(rec: dict) -> tuple[float, float, str, float]:
    from qsal_jax import models, training

    dtype = None if rec.get("dtype", "float32") == "float32" else jnp.dtype(rec["dtype"])
    model = models.build(rec["model"], **({"dtype": dtype} if dtype is not None else {}))
    x = jax.ShapeDtypeStruct((rec["batch_size"], 1) + tuple(rec["grid"]), jnp.float32)
    optimizer = training.make_optimizer(learning_rate=1e-3, warmup_steps=10)
    state = jax.eval_shape(
        lambda k: training.create_train_state(k, model, jnp.zeros((1,) + x.shape[1:], jnp.float32), optimizer),
        jax.random.PRNGKey(0),
    )
    batch = jax.eval_shape(lambda x: training.make_batch(x, x), x)
    step = training.make_train_step(model.apply, optimizer, compute_dtype=dtype, donate=False)
    flops, nbytes, source = cost(step, state, batch)
    return flops, nbytes, source, rec["step_ms"] / 1e3


def _online_cost(rec: dict) -> tuple[float, float, str, float, dict]:
    from qsal_jax.benchmarks import online
    from qsal_jax.experiments.online import build_engine, init_state
    from qsal_jax.solvers import make_stepper
    from qsal_jax.training.step import Batch

    sizes = dict(online.CPU_SIZES)  # buffer sizes do not enter the cost of a step
    sizes.update({k: rec[k] for k in ("num_points", "model", "clients_per_step", "train_steps_per_step", "batch_size")})
    sizes["output_points"] = rec["output_points"] if rec["output_points"] != rec["num_points"] else None
    sizes["num_steps"] = rec["solver_steps"]
    sizes["capacity"] = max(sizes["capacity"], sizes["clients_per_step"] * sizes["num_steps"], sizes["batch_size"])
    engine, model, sim, optimizer = build_engine(online.make_config("uniform", sizes, rec["config"]))
    pde = sim.reference_pde()
    step = jax.vmap(make_stepper(pde, sim.order, dtype=sim.dtype))
    s_flops, s_bytes, s_src = cost(step, jax.ShapeDtypeStruct((engine.clients_per_step,) + pde.state_shape, sim.dtype))
    state = jax.eval_shape(lambda: init_state(engine, model, optimizer, 0))
    items = state.buffer.items
    b = engine.batch_size
    batch = Batch(*(jax.ShapeDtypeStruct((b,) + x.shape[1:], x.dtype) for x in
                    (items.inputs, items.targets, items.cond, items.lam_id, items.time_index)),
                  jax.ShapeDtypeStruct((b,), sim.dtype))
    t_flops, t_bytes, t_src = cost(engine.train_on, state.train, batch)
    n_sim, n_train = sim.num_steps + sim.warmup_steps, engine.train_steps_per_step
    parts = {"simulate_flops": n_sim * s_flops, "simulate_bytes": n_sim * s_bytes,
             "train_flops": n_train * t_flops, "train_bytes": n_train * t_bytes}
    source = s_src if s_src == t_src else f"{s_src}+{t_src}"
    return (parts["simulate_flops"] + parts["train_flops"], parts["simulate_bytes"] + parts["train_bytes"],
            source, rec["loop_s_per_step"], parts)


def _floor(flops: float, nbytes: float, rates: dict, dtype: str) -> tuple[float, str]:
    rate = rates["matmul_bf16_tflops"] if dtype == "bfloat16" else rates["matmul_f32_tflops"]
    t_mem, t_flop = nbytes / (rates["copy_gbps"] * 1e9), flops / (rate * 1e12)
    return max(t_mem, t_flop), "memory" if t_mem >= t_flop else "compute"


def annotate(records: list[dict], rates: dict | None = None, cfg: dict | None = None) -> list[dict]:
    """Copies of ``records`` with roofline keys (module docstring) on solver, training and the
    online throughput records; ``rates`` from `device_rates` (measured now when None). A record
    whose cost cannot be rebuilt gets ``roofline_error`` instead."""
    rates = rates or device_rates(cfg)
    out = []
    for rec in records:
        rec = dict(rec)
        fn = {"solvers": _solver_cost, "training": _training_cost}.get(rec.get("suite"))
        is_online = rec.get("suite") == "online" and rec.get("name", "").endswith("/throughput")
        if fn is None and not is_online:
            out.append(rec)
            continue
        try:
            if is_online:
                flops, nbytes, source, measured, parts = _online_cost(rec)
                t_floor, _ = _floor(parts["train_flops"], parts["train_bytes"], rates, "float32")
                s_floor, _ = _floor(parts["simulate_flops"], parts["simulate_bytes"], rates, "float32")
                steps = rec["steps"]
                rec.update(train_floor_s=t_floor, train_over_floor=rec["train_alone_s"] / steps / t_floor,
                           simulate_floor_s=s_floor, simulate_over_floor=rec["simulate_alone_s"] / steps / s_floor)
            else:
                flops, nbytes, source, measured = fn(rec)
            floor, bound = _floor(flops, nbytes, rates, rec.get("dtype", "float32"))
            rec.update(flops=flops, bytes=nbytes, cost_source=source, floor_s=floor,
                       over_floor=measured / floor, bound=bound, measured_s=measured)
        except Exception as e:  # keep the measurement; say why it has no floor
            rec["roofline_error"] = f"{type(e).__name__}: {e}"[:300]
        out.append(rec)
    return out
