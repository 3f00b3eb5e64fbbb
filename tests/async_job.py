"""One asynchronous run with checkpoints, for the SIGKILL test of `tests/test_async.py`.

``python tests/async_job.py CHECKPOINT_DIR RESULT.json``: Burgers (scripts/external_solver.py)
in two threads, a tiny FNO, uniform λ, a checkpoint every 4 training steps; each solve sleeps
a little so that a kill lands mid-run. Writes the run's summary numbers to RESULT.json.
"""

import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import concurrent.futures as cf  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import external_solver  # noqa: E402
from qsal_jax import models, proposals, training  # noqa: E402
from qsal_jax.online import async_mode  # noqa: E402
from qsal_jax.simulation.param_space import ParamSpace  # noqa: E402

N, T = 32, 6
SPACE = ParamSpace.box({"A0": (0.2, 1.0), "A1": (0.2, 1.0), "phi0": (0.0, 2 * math.pi), "phi1": (0.0, 2 * math.pi)})


class SlowSolver(external_solver.Solver):
    def __call__(self, lam):
        time.sleep(0.15)
        return super().__call__(lam)


def main(checkpoint_dir, result_path):
    model = models.build("fno1d_tiny")
    optimizer = training.make_optimizer(learning_rate=3e-3, warmup_steps=1)
    state = training.create_train_state(jax.random.PRNGKey(0), model, jnp.zeros((1, 1, N), jnp.float32), optimizer)
    step = training.make_train_step(model.apply, optimizer, donate=False)
    with cf.ThreadPoolExecutor(2) as pool:
        result = async_mode.run_async(
            SlowSolver(num_points=N, num_frames=T, substeps=2), proposals.build("uniform", SPACE), step, state,
            jax.random.PRNGKey(0), executor=pool, trajectory_shape=(T, 1, N), num_workers=2, simulation_budget=24,
            batch_size=8, buffer_capacity=256, watermark=8, task_timeout_s=60.0, checkpoint_dir=checkpoint_dir,
            checkpoint_every=4, max_train_steps=60, drain=False)
    s = result.summary
    with open(result_path, "w") as f:
        json.dump({"completed": s.num_completed, "train_steps": s.num_train_steps, "launched": s.num_launched,
                   "final_step": int(result.train_state.step), "stopped_early": s.stopped_early}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
