"""Online suite: the fused loop against its parts, and what each strategy costs on top of Uniform.

All on 1D Kuramoto–Sivashinsky with an FNO surrogate (``configs/online_1d.py:ks``, ``:ks,gpu``
with ``cfg["gpu"]``). One *online step* launches K simulations and takes n train steps of batch
B, so every part is measured in online steps per second:

- **loop**: ``jit(engine.run_steps)`` (state donated) over ``steps`` online steps, after a warm-up
  call that compiles and fills the buffer past its watermark, so every timed step trains.
- **train alone**: the engine's own train step (`OnlineEngine.train_on`) on batches drawn by
  the engine's buffer policy from the buffer the warm-up filled: ``steps × n`` train steps in one
  `lax.scan`, no simulation, no strategy.
- **simulate alone**: ``simulator.simulate`` of K uniform λ, ``steps`` times in one `lax.scan`.

``fraction_of_slower`` = loop rate / rate of the slower part (1 means the loop costs no more than
its bottleneck; the target is ≥ 0.9). ``fraction_of_serial`` = loop rate / (1 / (t_sim + t_train)),
the rate of doing the two parts one after the other: above 1 only if they overlap.

AL overhead of a strategy = wall(strategy) / wall(uniform) − 1 for the same fused loop (same
sizes, seed and number of steps), from the medians (``overhead_pct``) and from the per-round ratios
with a 95 % interval (``overhead_pct_paired``, ``overhead_pct_interval``); SBAL needs an ensemble, so it is compared with Uniform at the
same ``ensemble_size`` (3). Timed calls of all strategies are interleaved round by round, so slow
drift of a shared machine hits every strategy alike.

Optionally (``cfg["neuralop"]``, default on with ``gpu``) the 28M-parameter FNO-2D train step at
128² is timed against neuraloperator's PyTorch FNO (hidden 90, modes 40×40, 4 layers) in the same
process on the same device; the record says ``skipped`` when torch or neuralop do not import.

cfg keys (all optional): ``gpu``, ``repeats``; ``online_sizes`` (overrides of `CPU_SIZES` /
`GPU_SIZES`); ``online_strategies`` (default `STRATEGIES`; ``"sbal"`` adds the ensemble pair);
``online_min_rounds`` (timed rounds, at least ``repeats``; default 5);
``neuralop`` (bool) and ``neuralop_case`` (overrides of `NEURALOP_CASE`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.benchmarks.timing import backend_info, paired_ratio

# "name:key=value,key=value" entries time a strategy with settings changed.
STRATEGIES = ("uniform", "quasirandom", "breed_online", "ogas", "ogas:train_every=auto", "sbal")
SBAL_ENSEMBLE = 3

# Sizes of one online step; `steps` online steps per timed call.
CPU_SIZES = dict(num_points=160, output_points=None, num_steps=20, model="fno1d_tiny", clients_per_step=8,
                 train_steps_per_step=8, batch_size=64, capacity=2048, watermark=256, steps=5, sbal_pool=256)
GPU_SIZES = dict(num_points=800, output_points=160, num_steps=50, model="fno1d_small", clients_per_step=16,
                 train_steps_per_step=16, batch_size=256, capacity=32768, watermark=2048, steps=16, sbal_pool=256)

NEURALOP_CASE = dict(model="fno2d_28m", grid=(128, 128), batch_size=32, hidden=90, modes=(40, 40), layers=4,
                     steps=10, warmup=3, ours_overrides={})
# The same architecture on both sides: neuralop's n_modes=(40, 40) keeps 40 × 21 complex modes of
# the rfft (20 positive and 20 negative along x); ours keeps modes[0] of each sign along x, so
# (20, 21); width 90 and 4 layers as theirs.
LIKE_FOR_LIKE = dict(model="fno2d", ours_overrides=dict(modes=(20, 21), width=90, depth=4))


def config_path(cfg: dict) -> str:
    """The config file the suite measures: ``cfg["online_config"]``, the path of
    ``configs/online_1d.py`` (the caller's, so the library reads no file of its own choosing)."""
    path = cfg.get("online_config")
    if not path:
        raise ValueError("cfg['online_config']: the path of configs/online_1d.py is required (scripts/benchmark.py passes it)")
    return path


def _setting_value(text: str):
    """``"8"`` → 8, ``"0.05"`` → 0.05, anything else (``"auto"``) stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_config(strategy: str, sizes: dict, path: str, *, gpu: bool = False, ensemble_size: int = 1):
    """The ``<path>:ks`` config of ``strategy`` (``name`` or ``name:key=value,key=value``) with the benchmark's sizes."""
    from qsal_jax.experiments.config_args import load_config

    strategy, _, setting = strategy.partition(":")
    c = load_config(f"{path}:" + ",".join(["ks", strategy] + (["gpu"] if gpu else [])))
    for item in filter(None, setting.split(",")):
        key, value = item.split("=")
        c.strategy.settings = dict(c.strategy.settings, **{key: _setting_value(value)})
    c.problem.kwargs = {k: sizes[k] for k in ("num_points", "output_points", "num_steps") if sizes.get(k)}
    c.model.name = sizes["model"]
    c.model.ensemble_size = ensemble_size
    c.online.clients_per_step = sizes["clients_per_step"]
    c.online.train_steps_per_step = sizes["train_steps_per_step"]
    c.online.shard = False  # one device: the suite compares parts of one program, not a mesh
    c.train.batch_size = sizes["batch_size"]
    c.buffer.capacity = sizes["capacity"]
    c.buffer.watermark = sizes["watermark"]
    if strategy == "sbal":
        c.strategy.settings = dict(c.strategy.settings, pool_size=sizes["sbal_pool"])
    return c


class _Run:
    """One strategy's fused loop: compiled, warmed up, its state chained through donated calls."""

    def __init__(self, config, steps: int):
        from qsal_jax.experiments.online import build_engine, init_state

        self.engine, model, _, optimizer = build_engine(config)
        self.steps = steps
        self.run = jax.jit(self.engine.run_steps, static_argnums=1, donate_argnums=0)
        self.state = init_state(self.engine, model, optimizer, config.seed)
        t0 = time.perf_counter()
        self.state, metrics = jax.block_until_ready(self.run(self.state, steps))  # compile + fill the buffer
        self.warmup_s = time.perf_counter() - t0
        self.times, self.trained = [], []
        if not bool(self.state.training_started):
            raise ValueError(f"buffer.watermark ({config.buffer.watermark}) not reached in the {steps} warm-up steps")

    def timed_call(self) -> None:
        t0 = time.perf_counter()
        self.state, metrics = jax.block_until_ready(self.run(self.state, self.steps))
        self.times.append(time.perf_counter() - t0)
        self.trained.append(int(np.sum(metrics["trained_samples"])))

    @property
    def wall(self) -> float:
        return float(np.median(self.times))


class _Part:
    """A compiled, warmed-up call timed the same way as `_Run.timed_call`."""

    def __init__(self, fn, *args):
        self.fn, self.args, self.times = fn, args, []
        jax.block_until_ready(fn(*args))

    def timed_call(self) -> None:
        t0 = time.perf_counter()
        jax.block_until_ready(self.fn(*self.args))
        self.times.append(time.perf_counter() - t0)

    @property
    def wall(self) -> float:
        return float(np.median(self.times))


def _parts(run: _Run) -> dict[str, _Part]:
    """Training alone and simulation alone, each the work of ``run.steps`` online steps."""
    from qsal_jax.online import buffers as B
    from qsal_jax.training.step import Batch

    engine, steps = run.engine, run.steps
    sim, n_train = engine.simulator, steps * engine.train_steps_per_step

    @jax.jit
    def train_only(train_state, buffer, key):
        def body(carry, k):
            train_state, buffer = carry
            buffer, drawn, valid = B.sample(buffer, k, engine.batch_size, engine.buffer_policy)
            batch = Batch(drawn.inputs, drawn.targets, drawn.cond, drawn.lam_id, drawn.time_index, valid.astype(sim.dtype))
            train_state, losses, _ = engine.train_on(train_state, batch)
            return (train_state, buffer), jnp.mean(losses)

        (train_state, buffer), losses = jax.lax.scan(body, (train_state, buffer), jax.random.split(key, n_train))
        return train_state, losses

    @jax.jit
    def simulate_only(key):
        def body(acc, k):
            traj = sim.simulate(sim.space.sample_uniform(k, engine.clients_per_step, sim.dtype))
            return acc + jnp.sum(traj.u) + jnp.sum(traj.finite), None  # consume every frame

        return jax.lax.scan(body, jnp.zeros((), sim.dtype), jax.random.split(key, steps))[0]

    # Copies: the loop's state was donated to it and stays the loop's.
    train_state, buffer = jax.tree_util.tree_map(jnp.copy, (run.state.train, run.state.buffer))
    key = jax.random.PRNGKey(1)
    return {"train": _Part(train_only, train_state, buffer, key), "simulate": _Part(simulate_only, key)}


def _sizes_record(sizes: dict, engine) -> dict:
    return {
        "num_points": sizes["num_points"],
        "output_points": sizes.get("output_points") or sizes["num_points"],
        "solver_steps": engine.simulator.num_steps,
        "model": sizes["model"],
        "clients_per_step": engine.clients_per_step,
        "train_steps_per_step": engine.train_steps_per_step,
        "batch_size": engine.batch_size,
        "steps": sizes["steps"],
    }


def paired_overhead(times, baseline_times) -> dict:
    """Overhead from the per-round ratios (round i of both was timed back to back): their
    geometric mean and its 95 % t-interval, in percent (None with fewer than 2 rounds)."""
    ratio, interval = paired_ratio(times, baseline_times)
    pct = lambda x: 100.0 * (x - 1.0)
    return {"overhead_pct_paired": pct(ratio), "overhead_pct_interval": None if interval is None else [pct(x) for x in interval]}


def overhead_plan(strategies) -> list[tuple[str, str, int, str]]:
    """``(label, strategy, ensemble size, label of its Uniform baseline)`` for each fused loop to
    time: Uniform always (the throughput figures are its), SBAL beside a Uniform of its ensemble size."""
    plan = [("uniform", "uniform", 1, "uniform")]
    ensembled = [s for s in strategies if s.partition(":")[0] == "sbal"]
    plan += [(s, s, 1, "uniform") for s in strategies if s != "uniform" and s not in ensembled]
    if ensembled:
        e = SBAL_ENSEMBLE
        plan += [(f"uniform/e{e}", "uniform", e, f"uniform/e{e}")]
        plan += [(f"{s}/e{e}", s, e, f"uniform/e{e}") for s in ensembled]
    return plan


def run(cfg: dict) -> list[dict]:
    gpu = bool(cfg.get("gpu"))
    sizes = dict(GPU_SIZES if gpu else CPU_SIZES, **cfg.get("online_sizes", {}))
    strategies = list(cfg.get("online_strategies", STRATEGIES))
    repeats = max(int(cfg.get("repeats", 3)), int(cfg.get("online_min_rounds", 5)))
    info = backend_info()

    plan = overhead_plan(strategies)
    path = config_path(cfg)
    runs = {label: _Run(make_config(s, sizes, path, gpu=gpu, ensemble_size=e), sizes["steps"]) for label, s, e, _ in plan}
    base = runs["uniform"]
    parts = _parts(base)
    for _ in range(repeats):  # interleaved rounds: drift of a shared machine hits every figure alike
        for timer in (*runs.values(), *parts.values()):
            timer.timed_call()
    parts = {name: part.wall for name, part in parts.items()}
    steps = sizes["steps"]
    loop_rate, train_rate, sim_rate = steps / base.wall, steps / parts["train"], steps / parts["simulate"]
    slower = "train" if train_rate < sim_rate else "simulate"
    common = {"suite": "online", "problem": "ks_1d", "config": path, **_sizes_record(sizes, base.engine), **info}
    records = [{
        **common,
        "name": "ks_1d/throughput",
        "loop_s": base.wall,
        "loop_s_per_step": base.wall / steps,
        "loop_steps_per_s": loop_rate,
        "trained_samples_per_s": float(np.median(base.trained)) / base.wall,
        "simulations_per_s": loop_rate * base.engine.clients_per_step,
        "train_alone_s": parts["train"],
        "train_alone_steps_per_s": train_rate,
        "simulate_alone_s": parts["simulate"],
        "simulate_alone_steps_per_s": sim_rate,
        "slower_part": slower,
        "fraction_of_slower": loop_rate / min(train_rate, sim_rate),
        "fraction_of_serial": loop_rate * (parts["train"] + parts["simulate"]) / steps,
        "compile_and_warmup_s": base.warmup_s,
    }]
    for label, strategy, e, baseline in plan:
        r, b = runs[label], runs[baseline]
        records.append({
            **common,
            "name": f"ks_1d/overhead/{label}",
            "strategy": strategy,
            "ensemble_size": e,
            "baseline": baseline,
            "wall_s": r.wall,
            "baseline_wall_s": b.wall,
            "overhead_pct": 100.0 * (r.wall / b.wall - 1.0),
            **paired_overhead(r.times, b.times),
            "wall_s_all": r.times,
        })
    if cfg.get("neuralop", gpu):
        records.append(compare_neuralop(dict(NEURALOP_CASE, **cfg.get("neuralop_case", {}))))
    return records


# ------------------------------------------------------------------ neuraloperator
def compare_neuralop(case: dict) -> dict:
    """Our FNO-2D train step against neuraloperator's PyTorch FNO, same batch, same device, one process.

    Ours: `benchmarks.training.time_train_step` of ``case["model"]`` in float32 and bfloat16.
    Theirs: ``neuralop.models.FNO(n_modes, hidden_channels, n_layers)`` with AdamW and MSE, eager,
    float32 and under ``torch.autocast(bfloat16)``. ``speed_ratio`` = their best ms / our best ms
    (≥ 1: ours at least as fast). Returns a ``skipped`` record when torch or neuralop do not import.
    """
    from qsal_jax.benchmarks.training import time_train_step

    grid, b = tuple(case["grid"]), int(case["batch_size"])
    rec = {"suite": "online", "name": f"neuralop/{case['model']}/{'x'.join(map(str, grid))}/b{b}",
           "grid": list(grid), "batch_size": b, **backend_info()}
    try:
        import torch
        from neuralop.models import FNO as TorchFNO
    except Exception as e:  # ImportError, or a broken install raising anything at import
        return {**rec, "skipped": f"torch/neuralop not importable: {type(e).__name__}: {e}"}

    kw = dict(steps=int(case["steps"]), warmup=int(case["warmup"]))
    ours = {dt: time_train_step(case["model"], grid, b, compute_dtype=None if dt == "float32" else jnp.bfloat16, **kw,
                                **dict(case.get("ours_overrides", {})))
            for dt in ("float32", "bfloat16")}
    theirs = _time_torch_fno(torch, TorchFNO, case, grid, b)
    best_ours = min(r["step_ms"] for r in ours.values())
    best_theirs = min(v for k, v in theirs.items() if k.endswith("_ms") and v is not None)
    return {
        **rec,
        "ours_params": ours["float32"]["params"],
        "ours_f32_step_ms": ours["float32"]["step_ms"],
        "ours_bf16_step_ms": ours["bfloat16"]["step_ms"],
        **theirs,
        "speed_ratio": best_theirs / best_ours,
        "torch_version": torch.__version__,
    }


def _time_torch_fno(torch, TorchFNO, case: dict, grid, b: int) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = TorchFNO(n_modes=tuple(case["modes"]), hidden_channels=int(case["hidden"]), in_channels=1,
                     out_channels=1, n_layers=int(case["layers"])).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn((b, 1) + grid, device=device)
    y = torch.roll(x, 1, dims=-1)

    def step(amp: bool):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(x)
        loss = torch.mean((pred.float() - y) ** 2)
        loss.backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    out = {"theirs_params": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())}
    for amp in (False, True):
        label = "theirs_bf16_step_ms" if amp else "theirs_f32_step_ms"
        try:
            for _ in range(int(case["warmup"])):
                step(amp)
            sync()
            t0 = time.perf_counter()
            for _ in range(int(case["steps"])):
                step(amp)
            sync()
            out[label] = 1e3 * (time.perf_counter() - t0) / int(case["steps"])
        except Exception as e:  # e.g. an FFT size cuFFT refuses in bf16
            out[label] = None
            out[label.replace("_ms", "_error")] = f"{type(e).__name__}: {e}"[:300]
    return out
