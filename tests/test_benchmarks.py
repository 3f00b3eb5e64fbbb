"""Every benchmark suite runs at tiny sizes, returns its documented keys, and the roofline
annotation gives every solver, training and online record a positive floor."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qsal_jax.benchmarks import online, proposals, roofline, solvers, training

TINY_ONLINE = dict(num_points=32, output_points=None, num_steps=3, model="fno1d_tiny", clients_per_step=2,
                   train_steps_per_step=2, batch_size=4, capacity=64, watermark=4, steps=2, sbal_pool=8)
ONLINE_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "online_1d.py")
TINY_RATES = {"rate_sizes": {"copy_mib": 4, "matmul_n": 64}, "repeats": 1}


@pytest.fixture(scope="module")
def records():
    recs = solvers.run({"solver_sizes": {"ks_1d": (32, 2, 4)}, "solver_problems": ["ks_1d"], "exponax": False, "repeats": 1})
    recs += training.run({"cases": [{"model": "fno1d_tiny", "grid": (32,), "batch_size": 2}], "steps": 1, "warmup": 1})
    recs += proposals.run({"proposal_strategies": ["uniform"], "proposal_dims": (2,), "proposal_populations": (64,), "repeats": 1})
    recs += online.run({"repeats": 1, "online_sizes": TINY_ONLINE, "online_strategies": ["uniform"], "neuralop": False,
                        "online_config": ONLINE_CONFIG})
    return recs


def _by_suite(records, suite):
    found = [r for r in records if r["suite"] == suite]
    assert found, f"no {suite} records"
    return found


def test_every_suite_returns_its_documented_keys(records):
    (s,) = _by_suite(records, "solvers")
    assert {"name", "num_points", "batch", "num_steps", "ours_s", "ours_steps_per_s", "backend", "ours_physical_s",
            "pair_s", "pairs_per_step", "floor_pairs_per_step", "fraction_of_floor"} <= s.keys()
    assert s["pairs_per_step"] > 0 and s["fraction_of_floor"] == pytest.approx(s["floor_pairs_per_step"] / s["pairs_per_step"])
    (t,) = _by_suite(records, "training")
    assert {"name", "model", "grid", "batch_size", "dtype", "samples_per_s", "step_ms", "params"} <= t.keys()
    (p,) = _by_suite(records, "proposals")
    assert {"name", "dim", "population", "sample_us", "update_us"} <= p.keys()
    on = {r["name"]: r for r in _by_suite(records, "online")}
    assert set(on) == {"ks_1d/throughput", "ks_1d/overhead/uniform"}
    tp = on["ks_1d/throughput"]
    for key in ("loop_steps_per_s", "trained_samples_per_s", "train_alone_steps_per_s", "simulate_alone_steps_per_s",
                "fraction_of_slower", "fraction_of_serial"):
        assert np.isfinite(tp[key]) and tp[key] > 0, key
    assert tp["slower_part"] in ("train", "simulate")
    # Every timed step trains a full batch: the warm-up filled the buffer past its watermark.
    np.testing.assert_allclose(tp["trained_samples_per_s"] / tp["loop_steps_per_s"], 2 * 4)
    np.testing.assert_allclose(
        tp["fraction_of_slower"], tp["loop_steps_per_s"] / min(tp["train_alone_steps_per_s"], tp["simulate_alone_steps_per_s"])
    )
    assert on["ks_1d/overhead/uniform"]["overhead_pct"] == 0.0


def test_overhead_plan_pairs_sbal_with_an_ensemble_uniform():
    plan = online.overhead_plan(["quasirandom", "sbal"])
    assert [p[0] for p in plan] == ["uniform", "quasirandom", "uniform/e3", "sbal/e3"]
    assert dict((p[0], p[3]) for p in plan)["sbal/e3"] == "uniform/e3"
    assert dict((p[0], p[2]) for p in plan)["sbal/e3"] == 3
    assert online.overhead_plan(["uniform"]) == [("uniform", "uniform", 1, "uniform")]
    variant = online.overhead_plan(["sbal", "sbal:launches_per_round=48"])
    assert [(p[0], p[2], p[3]) for p in variant[2:]] == [("sbal/e3", 3, "uniform/e3"),
                                                          ("sbal:launches_per_round=48/e3", 3, "uniform/e3")]


def test_strategy_entries_change_several_settings():
    c = online.make_config("ogas:train_every=auto,sample_steps=10,generator_share=0.1", online.CPU_SIZES,
                           "configs/online_1d.py")
    assert {k: c.strategy.settings[k] for k in ("train_every", "sample_steps", "generator_share")} == \
        {"train_every": "auto", "sample_steps": 10, "generator_share": 0.1}


def test_neuralop_comparison_is_skipped_with_a_reason_without_torch():
    try:
        import neuralop  # noqa: F401
        import torch  # noqa: F401
    except Exception:
        rec = online.compare_neuralop(dict(online.NEURALOP_CASE))
        assert "skipped" in rec and rec["suite"] == "online"
    else:
        pytest.skip("torch and neuralop are installed: the comparison would run")


def test_device_rates_are_positive():
    rates = roofline.device_rates(TINY_RATES)
    for key in ("copy_gbps", "matmul_f32_tflops", "matmul_bf16_tflops"):
        assert rates[key] > 0, key


def test_annotation_gives_positive_floors(records):
    rates = {"copy_gbps": 10.0, "matmul_f32_tflops": 0.1, "matmul_bf16_tflops": 0.1}
    annotated = roofline.annotate(records, rates)
    assert len(annotated) == len(records)
    checked = 0
    for rec in annotated:
        if rec["suite"] in ("solvers", "training") or rec["name"].endswith("/throughput"):
            assert "roofline_error" not in rec, rec.get("roofline_error")
            assert rec["flops"] > 0 and rec["bytes"] > 0 and rec["floor_s"] > 0 and rec["over_floor"] > 0
            assert rec["bound"] in ("memory", "compute") and rec["cost_source"] in ("xla", "jaxpr")
            np.testing.assert_allclose(rec["floor_s"], max(rec["bytes"] / 10e9, rec["flops"] / 0.1e12))
            checked += 1
        else:
            assert "floor_s" not in rec
    assert checked == 3
    (tp,) = [r for r in annotated if r["name"].endswith("/throughput")]
    assert tp["train_floor_s"] > 0 and tp["simulate_floor_s"] > 0


def test_jaxpr_cost_counts_matmuls_scans_and_ffts():
    n = 16
    x = jax.ShapeDtypeStruct((n, n), jnp.float32)
    flops, nbytes = roofline.jaxpr_cost(lambda a: a @ a, x)
    assert flops == 2 * n**3 and nbytes == 2 * n * n * 4
    scanned, _ = roofline.jaxpr_cost(lambda a: jax.lax.scan(lambda c, _: (c @ c, None), a, None, length=5)[0], x)
    assert scanned == 5 * 2 * n**3
    fft, _ = roofline.jaxpr_cost(jnp.fft.fft, jax.ShapeDtypeStruct((3, n), jnp.complex64))
    assert fft == 5.0 * 3 * n * math.log2(n)


@pytest.mark.parametrize("analysis", [{"flops": 4.0, "bytes accessed": 8.0}, [{"flops": 4.0, "bytes accessed": 8.0}], None, []])
def test_xla_cost_accepts_every_shape_of_cost_analysis(analysis):
    class Compiled:
        def cost_analysis(self):
            return analysis

    got = roofline._xla_cost(Compiled())
    assert got == ((4.0, 8.0) if analysis else None)


def test_ffts_are_priced_at_five_n_log_n_not_at_xlas_product_of_logs():
    x = jax.ShapeDtypeStruct((2, 32, 32), jnp.complex64)
    flops, _, source = roofline.cost(jnp.fft.fft2, x)
    usual = 5.0 * 2 * 32 * 32 * math.log2(32 * 32)
    assert source in ("xla", "jaxpr")
    np.testing.assert_allclose(flops, usual, rtol=1e-6)


def test_time_fn_excludes_compilation_and_reports_the_median():
    import jax
    import jax.numpy as jnp

    from qsal_jax.benchmarks import timing

    calls = []
    f = jax.jit(lambda x: (calls.append(1), x * 2)[1])
    seconds = timing.time_fn(f, jnp.ones(8), repeats=3)
    assert seconds > 0 and len(calls) == 1  # traced once, in the warm-up call
    assert set(timing.backend_info()) == {"backend", "device", "num_devices"}


@pytest.mark.slow
def test_harness_splits_a_run_and_sees_the_caches():
    """Two tiny runs in fresh processes on an empty cache: the split adds up to the total, and
    the second run (score set and compiled programs on disk) reaches its first sync sooner."""
    from qsal_jax.benchmarks import harness

    (rec,) = harness.run({"online_config": ONLINE_CONFIG, "harness_args": "tiny"})
    for split in (rec["split_cold_s"], rec["split_warm_s"]):
        parts = sum(v for k, v in split.items() if k != "total")
        assert parts == pytest.approx(split["total"], rel=1e-6)
        assert {"setup", "score_set", "first_sync", "evaluation", "checkpoint", "plots"} <= set(split)
    assert rec["split_warm_s"]["score_set"] < rec["split_cold_s"]["score_set"]  # read from disk, not simulated
    assert rec["start_speedup"] > 1 and 0 < rec["overhead_fraction"] < 1
    # The work done beside the loop and by the drawing process is reported, not hidden.
    assert rec["side_work_s"]["warm"]["evaluation"] > 0 and rec["figures_s"]["warm"] > 0


def test_paired_overhead_is_the_geometric_mean_of_round_ratios_with_an_interval_around_it():
    base = [1.0, 2.0, 4.0, 1.5]
    rec = online.paired_overhead([1.1 * t for t in base], base)
    np.testing.assert_allclose(rec["overhead_pct_paired"], 10.0, rtol=1e-9)  # a uniform 10 % whatever the drift
    np.testing.assert_allclose(rec["overhead_pct_interval"], [10.0, 10.0], atol=1e-9)  # no spread, no width
    noisy = online.paired_overhead([1.0, 2.4, 4.0, 1.8], base)
    lo, hi = noisy["overhead_pct_interval"]
    assert lo < noisy["overhead_pct_paired"] < hi
    assert online.paired_overhead([2.0], [1.0]) == {"overhead_pct_paired": 100.0, "overhead_pct_interval": None}


def test_interleaved_rounds_run_every_call_once_per_round_in_rotating_order():
    from qsal_jax.benchmarks import timing

    order = []
    times = timing.interleaved_wall_times({k: (lambda k=k: order.append(k)) for k in "abc"}, 4)
    assert order == list("abc" "bca" "cab" "abc")
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4}
    ratio, interval = timing.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert ratio == pytest.approx(2.0) and interval == pytest.approx([2.0, 2.0])


def test_query_synthesis_suite_reports_overhead_and_round_memory():
    from qsal_jax.benchmarks import query_synthesis

    recs = query_synthesis.run({"repeats": 1, "online_min_rounds": 2, "online_sizes": TINY_ONLINE,
                                "online_config": ONLINE_CONFIG, "qs_entries": ["adversarial:ascent_steps=1,window=1"]})
    (r,) = recs
    assert r["suite"] == "query_synthesis" and r["ascent_steps"] == 1 and r["window"] == 1
    assert r["wall_s"] > 0 and r["baseline_wall_s"] > 0 and math.isfinite(r["overhead_pct"])
    assert r["round_temp_bytes"] is None or r["round_temp_bytes"] > 0
    assert r["rounds"] >= 1  # the timed loop ran rounds of the strategy
