"""Benchmark suites used by scripts/benchmark.py; each module exposes `run(cfg) -> list[dict]`."""
