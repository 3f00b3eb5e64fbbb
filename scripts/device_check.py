"""One-shot device check: tests that exercise device code, the benchmark suites, roofline, a table.

  bash scripts/device_check.sh            # on a GPU machine: GPU sizes, under 8 minutes
  bash scripts/device_check.sh --cpu      # anywhere: small CPU sizes, a few minutes

Stages, each in its own process under a time limit cut to what is left of the whole budget (a
stage that fails or runs out of time is recorded as such and the next one runs):

  1. pytest -q -m "not slow" on the tests that run solvers, models, training steps and the engine
     (tests/test_sharding.py is left out: it needs 8 devices, and a GPU machine has one);
  2. the benchmark suites, one per process, exactly as ``scripts/benchmark.py --gpu --suites=S``
     runs them (same cfg, same JSON), online first since it holds the issue's targets, the
     neuraloperator comparison as a stage of its own; each writes ``$OUT/bench_<stage>.json``;
  3. roofline: `qsal_jax.benchmarks.roofline.annotate` over every record with the measured rates;
     ``$OUT/device_check.json`` gets everything and a short table is printed last.

Thin on purpose: what it measures lives in `qsal_jax.benchmarks`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ["tests/test_solvers.py", "tests/test_models.py", "tests/test_training.py", "tests/test_buffers.py",
         "tests/test_engine.py", "tests/test_benchmarks.py"]
CPU_TESTS = ["tests/test_buffers.py", "tests/test_benchmarks.py"]
# What a GPU machine with JAX (CUDA), flax, optax, diffrax and orbax lacks for these stages. Not
# "tensorflow-probability": distrax brings tfp-nightly, and the release (same module name) does not
# import under current JAX.
WHEEL_PACKAGES = ["ml_collections", "distrax", "exponax", "equinox", "hypothesis",
                  "absl-py", "pytest", "matplotlib", "tensorboardX"]
# (stage, suite, cfg overrides, seconds allowed on a GPU, on a CPU); order = priority.
STAGES = [
    ("online", "online", {"neuralop": False}, 150, 300),
    ("neuralop", "online", {"only_neuralop": True}, 70, 120),
    ("training", "training", {}, 60, 120),
    ("solvers", "solvers", {}, 45, 120),
    ("harness", "harness", {}, 50, 150),
    ("roofline", "roofline", {}, 20, 60),
    ("proposals", "proposals", {"proposal_populations": (1_000, 100_000)}, 30, 0),
    # Gradient query synthesis at the default K and window, and OGAS :paper's calls (their GPU figures).
    ("query_synthesis", "query_synthesis", {"qs_entries": ["adversarial:ascent_steps=4,window=1", "residual:window=4"],
                                            "online_min_rounds": 3}, 60, 0),
    ("authors", "authors", {}, 40, 0),
]
# --cpu: small sizes, so the whole check takes minutes on 2 cores.
CPU_OVERRIDES = {
    "online": {"online_strategies": ["uniform", "breed_online"], "online_min_rounds": 3},
    "training": {"cases": [{"model": "fno1d_small", "grid": (256,), "batch_size": 16},
                           {"model": "fno2d_small", "grid": (64, 64), "batch_size": 8}], "steps": 3},
    "solvers": {"solver_problems": ["ks_1d", "ns_2d"], "exponax": False},
    "neuralop": {"neuralop_case": {"model": "fno2d_small", "grid": (64, 64), "batch_size": 4, "hidden": 32,
                                   "modes": (12, 12), "steps": 2, "warmup": 1}},
}
BUDGET_S = {"gpu": 450, "cpu": 900}
ANNOTATE_RESERVE_S = 40


def _stage(name: str, cmd: list[str], limit: float, log_path: str, env: dict) -> dict:
    """Run ``cmd`` under ``limit`` seconds, output to ``log_path``; a summary of how it went."""
    t0 = time.perf_counter()
    if limit < 5:
        status = "skipped (no time left)"
    else:
        with open(log_path, "w") as log:
            try:
                rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=limit).returncode
                status = "ok" if rc == 0 else f"failed (exit {rc})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {limit:.0f} s"
    seconds = time.perf_counter() - t0
    print(f"[{name}] {status} in {seconds:.0f} s (log: {log_path})", flush=True)
    return {"stage": name, "status": status, "seconds": round(seconds, 1), "log": log_path}


def _last_line(path: str, contains: str) -> str:
    try:
        with open(path) as f:
            lines = [l.strip() for l in f if contains in l]
    except OSError:
        return ""
    return lines[-1] if lines else ""


# ------------------------------------------------------------------ child processes
def run_suite(suite: str, cfg: dict, out_path: str) -> None:
    """What ``scripts/benchmark.py --suites=<suite>`` does, with ``cfg`` overrides; same JSON layout."""
    module = importlib.import_module(f"qsal_jax.benchmarks.{suite}")
    if cfg.pop("only_neuralop", False):
        records = [module.compare_neuralop(dict(module.NEURALOP_CASE, **cfg.get("neuralop_case", {})))]
    else:
        records = []
        for rec in module.run(cfg):
            records.append(rec)
            print(json.dumps(rec), flush=True)
    from qsal_jax.benchmarks.timing import run_metadata

    meta = run_metadata(gpu_sizes=cfg.get("gpu"), cfg=cfg)
    with open(out_path, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1, default=str)


def annotate_file(in_path: str, out_path: str) -> None:
    """Roofline keys on the records of ``in_path`` (a list of records, or benchmark.py's
    ``{"meta", "records"}``), with the rates of its roofline record (measured now if it has none)."""
    from qsal_jax.benchmarks import roofline

    with open(in_path) as f:
        data = json.load(f)
    records = data["records"] if isinstance(data, dict) else data
    rates = next((r for r in records if r.get("suite") == "roofline"), None)
    annotated = roofline.annotate(records, rates)
    with open(out_path, "w") as f:
        json.dump(dict(data, records=annotated) if isinstance(data, dict) else annotated, f, indent=1)


# ------------------------------------------------------------------ the check
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="small CPU sizes (default: GPU sizes when JAX sees a GPU)")
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/device_check"))
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--stages", default=None, help="comma-separated subset of " + ",".join(s[0] for s in STAGES))
    parser.add_argument("--budget", type=float, default=None, help="seconds for everything (default 450 GPU, 900 CPU)")
    parser.add_argument("--packages", action="store_true", help="print the wheels the check needs and exit")
    parser.add_argument("--run-suite", nargs=3, metavar=("SUITE", "CFG_JSON", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--annotate", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.packages:
        print(" ".join(WHEEL_PACKAGES))
        return 0
    if args.run_suite:
        run_suite(args.run_suite[0], json.loads(args.run_suite[1]), args.run_suite[2])
        return 0
    if args.annotate:
        annotate_file(*args.annotate)
        return 0

    t_start = time.perf_counter()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    # The neuraloperator comparison puts PyTorch on the same GPU: JAX must not take 75% of it up front.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.cpu:
        env["JAX_PLATFORMS"] = "cpu"
        gpu = False
    else:
        env.setdefault("JAX_PLATFORMS", "")  # tests/conftest.py would pick the CPU otherwise
        # Asked in a child: JAX in this process would hold the GPU (and 75 % of its memory) throughout.
        probe = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"], env=env,
                               capture_output=True, text=True, timeout=120)
        gpu = probe.stdout.strip().splitlines()[-1:] in (["gpu"], ["cuda"], ["rocm"])
    budget = args.budget or BUDGET_S["gpu" if gpu else "cpu"]
    left = lambda: budget - ANNOTATE_RESERVE_S - (time.perf_counter() - t_start)  # noqa: E731
    py, me = sys.executable, os.path.abspath(__file__)
    stages = []
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(f"device check: {'GPU' if gpu else 'small CPU'} sizes, budget {budget:.0f} s, output in {out}", flush=True)

    if not args.skip_tests:
        tests = [t for t in (TESTS if gpu else CPU_TESTS) if os.path.exists(os.path.join(ROOT, t))]
        stages.append(_stage("tests", [py, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", *tests],
                             min(150 if gpu else 240, left()), os.path.join(out, "tests.log"), env))
        stages[-1]["summary"] = _last_line(stages[-1]["log"], " in ")

    wanted = set(args.stages.split(",")) if args.stages else None
    records, metas = [], {}
    for name, suite, overrides, gpu_limit, cpu_limit in STAGES:
        limit = gpu_limit if gpu else cpu_limit
        if (wanted is not None and name not in wanted) or limit == 0:
            continue
        cfg = {"gpu": gpu, "exponax": True, "repeats": 3, "online_config": os.path.join(ROOT, "configs", "online_1d.py"),
               "authors_config": os.path.join(ROOT, "configs", "authors_1d.py"),
               **overrides, **({} if gpu else CPU_OVERRIDES.get(name, {}))}
        path = os.path.join(out, f"bench_{name}.json")
        cmd = [py, me, "--run-suite", suite, json.dumps(cfg), path]
        stages.append(_stage(name, cmd, min(limit, left()), os.path.join(out, f"bench_{name}.log"), env))
        if stages[-1]["status"] == "ok":
            with open(path) as f:
                data = json.load(f)
            records += data["records"]
            metas[name] = data["meta"]

    annotated = records
    if any(r.get("suite") == "roofline" for r in records):
        raw, done = os.path.join(out, "records_raw.json"), os.path.join(out, "records_annotated.json")
        with open(raw, "w") as f:
            json.dump(records, f)
        stages.append(_stage("annotate", [py, me, "--annotate", raw, done], left() + ANNOTATE_RESERVE_S - 5,
                             os.path.join(out, "annotate.log"), env))
        if stages[-1]["status"] == "ok":
            with open(done) as f:
                annotated = json.load(f)

    result = {"started": started, "gpu_sizes": gpu, "wall_s": round(time.perf_counter() - t_start, 1),
              "stages": stages, "meta": metas, "records": annotated}
    with open(os.path.join(out, "device_check.json"), "w") as f:
        json.dump(result, f, indent=1)
    print()
    print(format_table(result))
    print(f"\nfull records: {os.path.join(out, 'device_check.json')}")
    return 0 if all(s["status"] == "ok" for s in stages) else 1


# ------------------------------------------------------------------ the table
def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _roof(r: dict) -> str:
    if "over_floor" in r:
        return f"   ×{_fmt(r['over_floor'])} over floor ({r['bound']})"
    return f"   (no floor: {r['roofline_error'][:50]})" if "roofline_error" in r else ""


def format_table(result: dict) -> str:
    """The figures a person reads first: stages, online targets, AL overheads, roofline, neuralop."""
    lines = [f"{'stage':<10} {'status':<28} {'seconds':>7}"]
    for s in result["stages"]:
        lines.append(f"{s['stage']:<10} {s['status']:<28} {s['seconds']:>7}" + (f"   {s['summary']}" if s.get("summary") else ""))
    recs = result["records"]
    rates = next((r for r in recs if r.get("suite") == "roofline"), None)
    if rates:
        lines.append(f"\ndevice {rates.get('device')}: copy {_fmt(rates['copy_gbps'])} GB/s, matmul f32 "
                     f"{_fmt(rates['matmul_f32_tflops'])} TFLOP/s, bf16 {_fmt(rates['matmul_bf16_tflops'])} TFLOP/s")
    lines.append("")
    for r in recs:
        name = f"{r['suite']}/{r['name']}"
        if r["suite"] == "solvers":
            if r.get("speed_ratio_interval"):
                lo, hi = r["speed_ratio_interval"]
                paired = f"  exponax/ours time ×{_fmt(r['speed_ratio_paired'])} [{_fmt(lo)}, {_fmt(hi)}]"
            else:
                paired = f"  exponax/ours time ×{_fmt(r['speed_ratio'])}" if "speed_ratio" in r else ""
            lines.append(f"{name:<34} {_fmt(r['ours_steps_per_s'])} state-steps/s" + _roof(r) + paired)
        elif r["suite"] == "harness":
            lines.append(f"{name:<34} evaluation + checkpoints + plots {_fmt(r['overhead_fraction'])} of the warm run "
                         f"(target <= 0.2), start ×{_fmt(r['start_speedup'])} (target >= 2)")
        elif r["suite"] == "training":
            lines.append(f"{name:<34} {_fmt(r['step_ms'])} ms/step, {_fmt(r['samples_per_s'])} samples/s" + _roof(r))
        elif r["suite"] == "online" and r["name"].endswith("/throughput"):
            lines.append(f"{name:<34} {_fmt(r['trained_samples_per_s'])} trained samples/s" + _roof(r))
            lines.append(f"  online steps/s: loop {_fmt(r['loop_steps_per_s'])}, train alone {_fmt(r['train_alone_steps_per_s'])}, "
                         f"simulate alone {_fmt(r['simulate_alone_steps_per_s'])}")
            lines.append(f"  loop / slower part ({r['slower_part']}): {_fmt(r['fraction_of_slower'])} (target >= 0.9)")
        elif r["suite"] == "online" and "/overhead/" in r["name"] and r["strategy"] != "uniform":
            interval = r.get("overhead_pct_interval")
            lines.append(f"  AL overhead {r['name'].split('/overhead/')[1]:<14} {r['overhead_pct']:+7.1f} % vs {r['baseline']}"
                         + (f" (paired {r['overhead_pct_paired']:+.1f} % [{interval[0]:+.1f}, {interval[1]:+.1f}])" if interval else ""))
        elif r["suite"] == "online" and r["name"].startswith("neuralop/"):
            if "skipped" in r:
                lines.append(f"{name:<34} skipped: {r['skipped'][:90]}")
            else:
                lines.append(f"{name:<34} ours f32 {_fmt(r['ours_f32_step_ms'])} / bf16 {_fmt(r['ours_bf16_step_ms'])} ms; "
                             f"neuralop f32 {_fmt(r.get('theirs_f32_step_ms'))} / bf16 {_fmt(r.get('theirs_bf16_step_ms'))} ms; "
                             f"their best / our best {_fmt(r['speed_ratio'])} (target >= 1)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
