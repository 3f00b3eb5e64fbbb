"""The main job: a small online active-learning experiment on the CPU.

Online Breed against Uniform on KdV (1D, λ = (A0, A1, φ0, φ1)) at an equal simulation
budget, two seeds each; prints progress, then the comparison table, and says where the
table and plots are. Takes a few minutes on 2 CPU cores.

  python scripts/quickstart.py --workdir runs/quickstart
"""

import os

from absl import app, flags, logging

flags.DEFINE_string("workdir", "runs/quickstart", "Root directory of the runs.")
flags.DEFINE_list("strategies", ["uniform", "breed_online"], "Strategies to compare.")
flags.DEFINE_integer("seeds", 2, "Seeds per strategy.")
flags.DEFINE_string("config_args", "", "Extra config arguments, e.g. 'tiny' for a seconds-long run.")
flags.DEFINE_string("config", "configs/online_1d.py", "Config file whose get_config takes strategy names as arguments.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
    import importlib.util

    from qsal_jax.experiments import report, run_experiment

    spec = importlib.util.spec_from_file_location("experiment_config", FLAGS.config)
    config_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_module)

    workdirs = []
    for strategy in FLAGS.strategies:
        for seed in range(FLAGS.seeds):
            config = config_module.get_config(",".join(filter(None, [strategy, FLAGS.config_args])))
            config.seed = seed
            workdir = os.path.join(FLAGS.workdir, f"{strategy}_seed{seed}")
            print(f"\n=== {strategy}, seed {seed} -> {workdir}")
            run_experiment(config, workdir)
            workdirs.append(workdir)
    table = report.write_report(workdirs, FLAGS.workdir)
    print("\n" + table)
    print(f"\ntable: {os.path.join(FLAGS.workdir, 'report.md')} (and report.csv)")
    print(f"plots: {FLAGS.workdir}/<strategy>_seed<k>/*.png")


if __name__ == "__main__":
    app.run(main)
