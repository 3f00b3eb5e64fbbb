"""Where a trained OGAS generator puts its draws, with and without its sampler's x̂0 clipping.

    python scripts/ogas_sampler_check.py --workdirs=runs/studies/authors_ks_cons/ogas_s0,...

Restores each run's OGAS state from its newest checkpoint and makes one generator call of
``--rows`` rows (no redraw) under four sampler variants, with the same target ε (drawn from the
run's own prior) and the same noise:

* as the run sampled: its guidance w, x̂0 clipped to the cube at every step but the last;
* ``clip_denoised=False``: no step clipped;
* ``guidance=0``: the conditional prediction alone, clipped as the run did;
* both.

For each it gives the share of rows outside the box (those a run redraws) and, among the rows
inside, the density within ``--delta`` of a face relative to a uniform one (1 = no pile-up;
``2δ`` of a uniform coordinate lies that close). Each run's values, then the mean ± std over runs.
"""

from __future__ import annotations

import json

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "Workdirs of finished or interrupted OGAS runs (their checkpoints).")
flags.DEFINE_integer("rows", 8192, "Rows of the one generator call per variant.", lower_bound=1)
flags.DEFINE_float("delta", 0.02, "Distance to a face, in unit-cube coordinates, that counts as 'at the face'.")
flags.DEFINE_integer("seed", 0, "Seed of the ε and noise draws (the same for every variant).")
flags.DEFINE_string("out", None, "Optional JSON file for the numbers.")
flags.mark_flag_as_required("workdirs")

VARIANTS = {  # name -> setting overrides
    "as run": {},
    "no x̂0 clip": {"clip_denoised": False},
    "w = 0": {"guidance": 0.0},
    "w = 0, no clip": {"guidance": 0.0, "clip_denoised": False},
}


def probe(workdir: str, rows: int, delta: float, seed: int) -> dict:
    """``{variant: {"outside": share, "face_density": ratio to uniform}}`` for the run in ``workdir``."""
    import jax

    from qsal_jax.experiments.runs import load_run
    from qsal_jax.proposals.ogas import make_ogas

    run = load_run(workdir)
    if run.config.strategy.name != "ogas":
        raise app.UsageError(f"{workdir}: a {run.config.strategy.name} run, not ogas")
    space, state = run.simulator.space, run.strategy_state
    # The training schedule does not enter sampling; a fixed one avoids the run's flop count.
    settings = dict(run.config.strategy.settings, train_every=1)
    kp, kd = jax.random.split(jax.random.PRNGKey(seed))
    eps = None
    out = {}
    for name, overrides in VARIANTS.items():
        parts = make_ogas(space, **{**settings, **overrides})
        if eps is None:
            eps = parts.prior(state, kp, rows)
        z, inside = jax.jit(parts.draw)(state, kd, eps)
        z, inside = np.asarray(z), np.asarray(inside)
        near = np.minimum(z[inside], 1.0 - z[inside]) < delta
        out[name] = {"outside": float(1.0 - inside.mean()),
                     "face_density": float(near.mean() / (2.0 * delta)) if inside.any() else float("nan")}
    return out


def main(argv):
    del argv
    results = {w: probe(w, FLAGS.rows, FLAGS.delta, FLAGS.seed) for w in FLAGS.workdirs}
    print(f"{FLAGS.rows} rows per variant; face density = share of in-box coordinates within {FLAGS.delta} of a "
          f"face / {2 * FLAGS.delta:g} (uniform: 1)")
    print(f"{'variant':<16} {'outside':>16} {'face density':>16}  runs with rows inside")
    for name in VARIANTS:
        o = np.array([r[name]["outside"] for r in results.values()])
        f = np.array([r[name]["face_density"] for r in results.values()])
        f = f[np.isfinite(f)]  # a run whose every row landed outside has no in-box density
        spread = lambda x: x.std(ddof=1) if len(x) > 1 else 0.0
        face = f"{f.mean():>9.2f} ± {spread(f):.2f}" if len(f) else f"{'—':>16}"
        print(f"{name:<16} {o.mean():>9.3f} ± {spread(o):.3f} {face}  {len(f)} of {len(o)}")
    if FLAGS.out:
        from qsal_jax.reporting.run_files import write_json

        write_json(FLAGS.out, {"rows": FLAGS.rows, "delta": FLAGS.delta, "seed": FLAGS.seed, "runs": results}, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
