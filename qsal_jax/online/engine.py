"""The fused online step: sample λ → simulate → buffer → train → update the strategy.

One jitted program does what the Melissa framework spreads over solver clients, a
training server and an active-sampling server:

    online_step(state) -> (state, metrics)
      1. λ, s = strategy.sample(s, K)                 the next K solver clients
      2. u = simulator.simulate(λ)                    K trajectories, blow-ups flagged
      3. buffer.push(items of the finite trajectories)  (u_t, u_{t+1}[, u_{t+2}], λ, id, t)
      4. n × [batch = buffer.sample(B); train_step; strategy.update(per-sample losses)]
      5. metrics

Keys derive from ``fold_in(state.key, state.step)``, so a run is a pure function of
its config and seed, and a restored checkpoint continues bit for bit. `run_steps`
scans several online steps between host syncs.

With a ``mesh`` the K solver clients and every training batch are split over the
mesh's "data" axis while parameters, optimiser state, buffer and strategy state stay
replicated: the same program runs on 1 CPU, N GPUs or a TPU slice. A replicated buffer's
capacity is one device's memory; with ``shard_buffer`` it is split over the devices instead
(`sharded_buffer`: each holds capacity / N items, pushes its own clients' items and draws its
share of each batch), so capacity grows with the device count.

With ``ensemble_size > 1`` the surrogate is an ensemble (stacked parameters, a vmapped
train step on the same batches); its spread is the "disagreement" signal (OGAS-U) and
the uncertainty SBAL scores its candidate pool with.

Every strategy is driven the same way: ``sample`` once per step, ``update`` after every
training batch with a `Feedback` that also carries the surrogate (`EnsembleSurrogate`: the
parameters after that batch, the apply function, the simulator's initial-state map,
conditioning and trajectory length). A pool-scoring strategy (`combinators.with_pool`) scores
its candidates with it when its selection round is due; the others ignore it. The engine has
no strategy-specific branch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qsal_jax.online import buffers as B
from qsal_jax.online import sharded_buffer as SB
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.proposals.scorers import EnsembleSurrogate
from qsal_jax.simulation.simulator import Simulator
from qsal_jax.training.step import Batch


class OnlineState(NamedTuple):
    train: Any  # TrainState; parameters carry a leading [E] axis when ensemble_size > 1
    buffer: B.BufferState
    strategy: Any  # the strategy's own state
    key: jax.Array  # base PRNG key of the run
    step: jax.Array  # [] int32 online steps done
    next_lam_id: jax.Array  # [] int32 id of the next launched simulation
    num_rejected: jax.Array  # [] int32 trajectories that blew up (never buffered)
    num_trained: jax.Array  # [] int32 valid samples trained on
    training_started: jax.Array  # [] bool, the buffer once reached the watermark


@dataclasses.dataclass(frozen=True)
class OnlineEngine:
    """Static description of an online run; hashable, so its methods jit cleanly.

    Attributes:
      simulator: λ batch → trajectories.
      strategy: the active-learning `Proposal`.
      train_step: ``(train_state, Batch) -> (train_state, per_sample_loss [B], metrics)``.
      apply_fn: ``(params, x, cond) -> prediction`` of one ensemble member.
      clients_per_step: K simulations launched per online step (the simulation budget unit).
      train_steps_per_step: n gradient steps per online step.
      batch_size, buffer_capacity, buffer_policy, seen_threshold: the buffer.
      watermark: training starts once the buffer has held this many items.
      signal: "loss" (OGAS-L, Breed) or "disagreement" (OGAS-U) — what strategies see.
      ensemble_size: E surrogates trained side by side (needed by SBAL and OGAS-U).
      importance_clip: > 0: importance-weighted training. Each launched simulation gets the
        weight ``clip(U(λ) / p_draw(λ), 1/c, c)`` from the strategy's ``density`` at launch
        (c = importance_clip), and every training sample's loss is weighted by its
        simulation's weight (self-normalised over the batch), so the surrogate's effective
        training distribution is the uniform one again. 0: unweighted.
    """

    simulator: Simulator
    strategy: Proposal
    train_step: Callable
    apply_fn: Callable
    clients_per_step: int
    train_steps_per_step: int
    batch_size: int
    buffer_capacity: int
    buffer_policy: str = "fifo"
    seen_threshold: int = 1
    watermark: int = 1
    signal: str = "loss"
    ensemble_size: int = 1
    mesh: Any = None  # jax.sharding.Mesh with a "data" axis, or None
    importance_clip: float = 0.0
    shard_buffer: bool = False  # split the buffer over the mesh's devices (needs a mesh)
    objective: str = "one_step"  # or "two_step": items carry u_{t+2} (training.step.loss_and_per_sample)

    def __post_init__(self):
        for field, low in (("clients_per_step", 1), ("train_steps_per_step", 1), ("batch_size", 1), ("buffer_capacity", 1),
                           ("seen_threshold", 1), ("watermark", 0), ("ensemble_size", 1)):
            value = getattr(self, field)  # NaN or 2.5 would fail deep inside a trace
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"OnlineEngine: {field} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.strategy, Proposal):
            raise TypeError(f"OnlineEngine: strategy must be a proposals.Proposal, got {type(self.strategy).__name__}")
        if self.mesh is not None:
            n = self.mesh.shape["data"]
            for field in ("clients_per_step", "batch_size"):
                if getattr(self, field) % n:
                    raise ValueError(f"online.{field} ({getattr(self, field)}) must be divisible by the {n} devices of the mesh")
        if self.shard_buffer:
            if self.mesh is None:
                raise ValueError("buffer.sharded needs a mesh (online.shard = True)")
            if self.buffer_capacity % self.mesh.shape["data"]:
                raise ValueError(f"buffer.capacity ({self.buffer_capacity}) must be divisible by the "
                                 f"{self.mesh.shape['data']} devices when buffer.sharded is true")
        from qsal_jax.training.step import OBJECTIVES

        if self.objective not in OBJECTIVES:
            raise ValueError(f"train.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.items_per_trajectory < 1:
            raise ValueError(f"train.objective={self.objective!r} needs at least {self.item_frames} frames per "
                             f"trajectory; the simulator makes {self.simulator.num_frames}")
        items_per_step = self.clients_per_step * self.items_per_trajectory
        if items_per_step > self.buffer_capacity:
            raise ValueError(
                f"buffer.capacity ({self.buffer_capacity}) must hold one step of trajectories "
                f"({self.clients_per_step} clients × {self.items_per_trajectory} items = {items_per_step})"
            )
        if self.batch_size > self.buffer_capacity:
            raise ValueError(f"train.batch_size ({self.batch_size}) must not exceed buffer.capacity ({self.buffer_capacity})")
        if self.signal not in ("loss", "disagreement"):
            raise ValueError(f"strategy.signal must be 'loss' or 'disagreement', got {self.signal!r}")
        if self.signal == "disagreement" and self.ensemble_size < 2:
            raise ValueError("strategy.signal='disagreement' needs model.ensemble_size >= 2")
        if self.importance_clip and self.strategy.density is None:
            raise ValueError("train.importance_clip > 0 needs a strategy that knows the density of its draws "
                             "(breed_online, ogas)")
        if self.importance_clip and self.importance_clip < 1:
            raise ValueError(f"train.importance_clip must be 0 (off) or >= 1, got {self.importance_clip}")

    @property
    def item_frames(self) -> int:
        """Consecutive frames per buffer item: 2 (u_t, u_{t+1}), or 3 for the two-step objective."""
        return 3 if self.objective == "two_step" else 2

    @property
    def items_per_trajectory(self) -> int:
        return self.simulator.num_frames - self.item_frames + 1

    # ------------------------------------------------------------------ state
    def init(self, key: jax.Array, train_state: Any) -> OnlineState:
        """Fresh state around an initialised train state (stacked over members if E > 1)."""
        sim = self.simulator
        shape = sim.state_shape
        dtype = sim.dtype
        example = B.Items(
            inputs=jnp.zeros(shape, dtype),
            targets=jnp.zeros(shape, dtype),
            cond=jnp.zeros((len(sim.cond_names),), dtype),
            lam=jnp.zeros((sim.space.dim,), dtype),
            lam_id=jnp.zeros((), jnp.int32),
            time_index=jnp.zeros((), jnp.int32),
            weight=jnp.zeros((), jnp.float32) if self.importance_clip else None,
            targets2=jnp.zeros(shape, dtype) if self.objective == "two_step" else None,
        )
        key, strategy_key = jax.random.split(key)
        zero = jnp.zeros((), jnp.int32)
        state = OnlineState(
            train=train_state,
            buffer=(SB.init(self.buffer_capacity, example, self.mesh.shape["data"]) if self.shard_buffer
                    else B.init_buffer(self.buffer_capacity, example)),
            strategy=self.strategy.init(strategy_key),
            key=key,
            step=zero,
            next_lam_id=zero,
            num_rejected=zero,
            num_trained=zero,
            training_started=jnp.zeros((), bool),
        )
        # Fresh buffers for every leaf: shared ones could not be donated to the jitted step.
        return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state)

    def state_shardings(self, state: OnlineState):
        """Where each leaf of ``state`` lives on the mesh: replicated, except a sharded buffer."""
        from jax.sharding import NamedSharding, PartitionSpec

        rep = NamedSharding(self.mesh, PartitionSpec())
        shardings = jax.tree_util.tree_map(lambda _: rep, state)
        if self.shard_buffer:
            shardings = shardings._replace(buffer=SB.shardings(state.buffer, self.mesh))
        return shardings

    def _push(self, buffer, items, valid):
        if self.shard_buffer:
            return SB.push(buffer, items, valid, self.mesh, seen_threshold=self.seen_threshold)
        return B.push(buffer, items, valid, seen_threshold=self.seen_threshold)

    def _sample(self, buffer, key):
        if self.shard_buffer:
            return SB.sample(buffer, key, self.batch_size, self.buffer_policy, self.mesh)
        return B.sample(buffer, key, self.batch_size, self.buffer_policy)

    def _split(self, x):
        """Constrain the leading axis to the mesh's data axis (no-op without a mesh)."""
        if self.mesh is None:
            return x
        from jax.sharding import NamedSharding, PartitionSpec

        spec = PartitionSpec("data", *([None] * (x.ndim - 1)))
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, spec))

    # ------------------------------------------------------------- ensembles
    def _predict(self, params, x, cond):
        """Member predictions ``[E, B, ...]`` (E = 1 without an ensemble)."""
        if self.ensemble_size > 1:
            return jax.vmap(self.apply_fn, in_axes=(0, None, None))(params, x, cond)
        return self.apply_fn(params, x, cond)[None]

    def train_on(self, train_state, batch: Batch):
        """One gradient step of the surrogate (every member of an ensemble on the same batch).

        Returns ``(train_state, per_sample_loss [B], metrics)``; with an ensemble the losses and
        metrics are member means, except ``finite``, which holds only if every member is finite.
        """
        if self.ensemble_size > 1:
            new, losses, metrics = jax.vmap(self.train_step, in_axes=(0, None))(train_state, batch)
            finite = jnp.all(metrics.pop("finite"))
            metrics = jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=0), metrics)
            return new, jnp.mean(losses, axis=0), {**metrics, "finite": finite}
        return self.train_step(train_state, batch)

    def _disagreement(self, params, batch: Batch) -> jax.Array:
        """Per-sample ensemble spread, normalised like nRMSE: ‖std over members‖ / ‖target‖, ``[B]``."""
        preds = jax.lax.stop_gradient(self._predict(params, batch.inputs, batch.cond))
        spread = jnp.sqrt(jnp.mean(jnp.var(preds, axis=0), axis=tuple(range(1, preds.ndim - 1))))
        scale = jnp.sqrt(jnp.mean(batch.targets**2, axis=tuple(range(1, batch.targets.ndim))))
        return spread / jnp.maximum(scale, 1e-8)

    def surrogate(self, params) -> EnsembleSurrogate:
        """What a pool scorer may use of the model: parameters with a leading [E] axis (E = 1 too)."""
        if self.ensemble_size == 1:
            params = jax.tree_util.tree_map(lambda x: x[None], params)
        sim = self.simulator
        return EnsembleSurrogate(params, self.apply_fn, sim.initial_state, sim.conditioning, sim.num_frames,
                                 sim.simulate_prefix, sim.frame_step)

    # ------------------------------------------------------------------- step
    def online_step(self, state: OnlineState) -> tuple[OnlineState, dict]:
        sim, k = self.simulator, self.clients_per_step
        step_key = jax.random.fold_in(state.key, state.step)
        _, key_sample, key_train = jax.random.split(step_key, 3)  # three as before: runs keep their keys

        # 1–3: launch K clients, reject blow-ups, push the rest.
        lam, strategy_state = self.strategy.sample(state.strategy, key_sample, k)
        weight = None
        if self.importance_clip:  # the density the draws were made with: the state before sampling
            from qsal_jax.proposals.densities import importance_weights

            density = self.strategy.density(state.strategy, lam.astype(sim.dtype))
            weight = jax.lax.stop_gradient(importance_weights(density.astype(jnp.float32), self.importance_clip))
        lam = self._split(lam.astype(sim.dtype))
        traj = sim.simulate(lam)
        traj = traj._replace(u=self._split(traj.u))
        lam_id = state.next_lam_id + jnp.arange(k, dtype=jnp.int32)
        items = B.trajectories_to_items(traj.u, lam, lam_id, sim.conditioning(lam), weight, frames=self.item_frames)
        valid = jnp.repeat(traj.finite, self.items_per_trajectory)
        buffer = self._push(state.buffer, items, valid)
        started = state.training_started | (B.size(buffer) >= self.watermark)

        # 4: n gradient steps, each feeding its per-sample losses to the strategy.
        def train_one(carry, key):
            train_state, buffer, strategy_state = carry
            buffer_after, drawn, drawn_valid = self._sample(buffer, key)
            use = drawn_valid & started
            w = use.astype(jnp.float32) if drawn.weight is None else jnp.where(use, drawn.weight, 0.0)
            batch = Batch(drawn.inputs, drawn.targets, drawn.cond, drawn.lam_id, drawn.time_index, w, drawn.targets2)
            batch = jax.tree_util.tree_map(self._split, batch)

            def do_train(_):
                new_state, losses, m = self.train_on(train_state, batch)
                if self.signal == "loss":  # the signal metric of the training forward pass
                    signal = m["per_sample_signal"].astype(sim.dtype)
                else:
                    signal = self._disagreement(new_state.params, batch)
                return new_state, buffer_after, losses, signal, m["finite"]

            def skip(_):
                zeros = jnp.zeros((self.batch_size,), sim.dtype)
                return train_state, buffer, zeros, zeros, jnp.asarray(True)

            train_state, buffer, losses, signal, finite = jax.lax.cond(jnp.any(use), do_train, skip, None)
            ts = train_state.step if self.ensemble_size == 1 else train_state.step[0]
            feedback = Feedback(lam=drawn.lam, lam_id=drawn.lam_id, time_index=drawn.time_index, loss=signal,
                                valid=use & finite, step=ts, surrogate=self.surrogate(train_state.params))
            strategy_state = jax.lax.cond(
                jnp.any(use), lambda s: self.strategy.update(s, feedback), lambda s: s, strategy_state
            )
            n_used = jnp.sum(use, dtype=jnp.int32)
            mean_loss = jnp.sum(jnp.where(use, losses, 0.0)) / jnp.maximum(n_used, 1)
            return (train_state, buffer, strategy_state), (mean_loss, n_used, finite)

        keys = jax.random.split(key_train, self.train_steps_per_step)
        (train_state, buffer, strategy_state), (losses, used, finite) = jax.lax.scan(
            train_one, (state.train, buffer, strategy_state), keys
        )
        n_rejected = jnp.sum(~traj.finite, dtype=jnp.int32)
        n_trained = jnp.sum(used, dtype=jnp.int32)
        new_state = OnlineState(
            train=train_state,
            buffer=buffer,
            strategy=strategy_state,
            key=state.key,
            step=state.step + 1,
            next_lam_id=state.next_lam_id + k,
            num_rejected=state.num_rejected + n_rejected,
            num_trained=state.num_trained + n_trained,
            training_started=started,
        )
        metrics = {
            "train_loss": jnp.sum(losses * used) / jnp.maximum(n_trained, 1),
            "trained_samples": n_trained,
            "buffer_size": B.size(buffer),
            "buffer_seen": B.num_seen(buffer, self.seen_threshold),
            "rejected": n_rejected,
            "evicted_unseen": jnp.sum(buffer.num_evicted_unseen),  # [] or one count per shard
            "finite": jnp.all(finite),  # loss and parameters stayed finite (divergence check at the sync)
            "lam": lam,  # [K, D] where the strategy sampled this step
            **self.strategy_diagnostics(strategy_state),
        }
        return new_state, metrics

    def strategy_diagnostics(self, strategy_state) -> dict:
        """The strategy's own diagnostics (``Proposal.diagnostics``) as ``strategy/<name>`` scalars."""
        if self.strategy.diagnostics is None:
            return {}
        return {f"strategy/{k}": jnp.asarray(v, jnp.float32) for k, v in self.strategy.diagnostics(strategy_state).items()}

    def run_steps(self, state: OnlineState, num_steps: int) -> tuple[OnlineState, dict]:
        """``num_steps`` online steps in one `lax.scan`; metrics stacked ``[num_steps, ...]``."""
        return jax.lax.scan(lambda s, _: self.online_step(s), state, None, length=num_steps)
