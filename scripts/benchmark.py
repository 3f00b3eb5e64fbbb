"""Benchmarks: solver, training, proposal, online and harness suites, written as JSON.

  python scripts/benchmark.py --suites=solvers,proposals --out=runs/bench.json
  python scripts/benchmark.py --gpu   # accelerator sizes (default: on when a GPU/TPU is present)

Each suite lives in `qsal_jax.benchmarks.<suite>` and returns a list of records.
Figures taken on a CPU are labelled with their backend and are never accelerator results.
"""

import importlib
import json
import os

from absl import app, flags

flags.DEFINE_list("suites", ["solvers", "training", "proposals", "online", "harness"],
                  "Suites to run (also: query_synthesis, authors).")
flags.DEFINE_string("out", "runs/benchmark.json", "Where to write the JSON records.")
flags.DEFINE_bool("gpu", None, "Use accelerator sizes (default: auto-detect).")
flags.DEFINE_bool("exponax", True, "Time exponax on the same solver problems.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions per measurement (median reported).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import jax

    gpu = FLAGS.gpu if FLAGS.gpu is not None else jax.default_backend() in ("gpu", "cuda", "rocm", "tpu")
    online_config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "online_1d.py")
    authors_config = os.path.join(os.path.dirname(online_config), "authors_1d.py")
    cfg = {"gpu": gpu, "exponax": FLAGS.exponax, "repeats": FLAGS.repeats, "online_config": online_config,
           "authors_config": authors_config}
    records = []
    for suite in FLAGS.suites:
        module = importlib.import_module(f"qsal_jax.benchmarks.{suite}")
        for rec in module.run(cfg):
            records.append(rec)
            print(json.dumps(rec), flush=True)
    from qsal_jax.benchmarks.timing import run_metadata
    from qsal_jax.reporting.run_files import write_json

    meta = run_metadata(gpu_sizes=gpu)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    write_json(FLAGS.out, {"meta": meta, "records": records}, indent=1)
    print(f"wrote {len(records)} records to {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
