"""qsal_jax: query-synthesis active learning of neural PDE surrogates, in JAX.

Layers (imports point down this list only):
  solvers/      differentiable pseudo-spectral ETDRK solvers, rollouts, the rolling-ball oracle
  simulation/   parameter spaces λ, initial-condition maps, Simulator (λ batch → trajectories)
  models/       plain Flax surrogates (FNO, U-Net, MLP)
  training/     train state, per-sample losses, metrics, sharding, checkpoints
  proposals/    active-learning strategies as pure (init, sample, update) records
  online/       buffers, the fused simulate–train–sample step, asynchronous executors
  experiments/  train_and_evaluate, reports and plots used by scripts/ and notebooks/
"""

__version__ = "0.1.0"
