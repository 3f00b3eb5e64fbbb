"""OGAS's settings: every one with its default, and the checks `proposals.ogas.make_ogas` runs
before anything is traced (one-line errors that name the setting)."""

from __future__ import annotations

import dataclasses

from qsal_jax.proposals import _common as C


@dataclasses.dataclass(frozen=True)
class OGASSettings:
    """Every OGAS setting and its default (``ogas(space, **settings)`` rejects any other name)."""

    hidden: int = 128  # denoiser width
    depth: int = 3  # denoiser residual blocks
    steps: int = 50  # diffusion steps T (training)
    sample_steps: int | None = None  # ancestral steps when sampling (respaced, ≤ steps); None: all T
    schedule: str = "cosine"  # or "linear"
    capacity: int = 4096  # FIFO pairs
    batch_size: int = 128  # generator minibatch
    train_steps: int = 4  # optimiser steps per update (generator and classifier each)
    train_every: int | str = 1  # train on every k-th update only (pairs are still pushed every update); "auto": below
    generator_share: float = 0.05  # "auto": the generator's training is at most this share of a train step's flops
    surrogate_step_flops: float | None = None  # "auto": flops of one surrogate train step (the online builder sets it)
    lr: float = 1e-3
    grad_clip: float = 1.0
    ema_decay: float = 0.9  # weight of the old statistics (the reference's α = 0.3 would be 0.7)
    eps_mode: str = "clip"  # "clip": ε = clip(z, ±eps_clip); "cap": ε = min(z, eps_cap) (authors' code)
    eps_clip: float = 3.0
    eps_cap: float = 5.0  # the authors' reference value
    guidance: float = 1.0  # CFG weight w: ε̃ = (1 + w) ε̂_c − w ε̂_∅
    p_uncond: float = 0.1  # condition dropout during training
    prior: str = "proportional"  # or "quantile"
    prior_power: float = 1.0
    prior_importance: bool = True  # proportional prior ∝ importance weight × (ε − min ε)^power
    quantile: float = 0.9
    r_max: float = 0.7  # final proportion of generator draws
    ramp_updates: int = 200  # trained updates to reach r_max (linear ramp from 0)
    min_fill: int = 64  # FIFO pairs needed before the generator trains
    reject_rounds: int = 4  # generator calls per row before an out-of-box row becomes uniform
    draw_batch: int = 0  # > 0: the generator draws this many rows at once and hands them out in turn
    signal: str = "loss"  # "loss" (OGAS-L) or "disagreement" (OGAS-U); recorded only
    importance: bool = True  # density-ratio importance weights on the DDPM loss
    ratio_hidden: int = 64
    ratio_depth: int = 2
    ratio_lr: float = 1e-3
    weight_clip: float = 10.0  # w ∈ [1/weight_clip, weight_clip]


DEFAULTS = dataclasses.asdict(OGASSettings())


def check_settings(s: dict) -> None:
    """A `ValueError` naming the first setting of ``s`` (all settings, defaults filled) that cannot work."""
    C.check_known_settings("ogas", s, DEFAULTS)
    if not 2 <= s["steps"] <= 1000:
        raise ValueError(f"ogas: steps must be in [2, 1000], got {s['steps']}")
    for name in ("hidden", "depth", "capacity", "batch_size", "ratio_hidden", "ratio_depth"):
        if int(s[name]) < 1:
            raise ValueError(f"ogas: {name} must be >= 1, got {s[name]}")
    if s["train_steps"] < 0 or s["ramp_updates"] < 0 or s["min_fill"] < 1:
        raise ValueError("ogas: train_steps and ramp_updates must be >= 0, min_fill >= 1")
    if s["train_every"] == "auto":
        if not (s["surrogate_step_flops"] or 0) > 0:
            raise ValueError("ogas: train_every='auto' needs surrogate_step_flops > 0 (the flops of one surrogate train step)")
        if not 0.0 < s["generator_share"] < 1.0:
            raise ValueError(f"ogas: generator_share must be in (0, 1), got {s['generator_share']}")
    elif isinstance(s["train_every"], str) or int(s["train_every"]) < 1:
        raise ValueError(f"ogas: train_every must be an integer >= 1 or 'auto', got {s['train_every']!r}")
    if s["sample_steps"] is not None and not 2 <= s["sample_steps"] <= s["steps"]:
        raise ValueError(f"ogas: sample_steps must be None or in [2, steps], got {s['sample_steps']}")
    if s["min_fill"] > s["capacity"]:
        raise ValueError(f"ogas: min_fill ({s['min_fill']}) exceeds capacity ({s['capacity']})")
    if not (0.0 <= s["ema_decay"] < 1.0 and 0.0 <= s["p_uncond"] <= 1.0 and 0.0 <= s["r_max"] <= 1.0):
        raise ValueError("ogas: ema_decay must be in [0, 1), p_uncond and r_max in [0, 1]")
    if not (s["eps_clip"] > 0 and s["eps_cap"] > 0 and s["weight_clip"] >= 1.0 and s["prior_power"] >= 0
            and 0 <= s["quantile"] <= 1):
        raise ValueError("ogas: need eps_clip > 0, eps_cap > 0, weight_clip >= 1, prior_power >= 0, quantile in [0, 1]")
    if s["eps_mode"] not in ("clip", "cap"):
        raise ValueError(f"ogas: eps_mode must be 'clip' or 'cap', got {s['eps_mode']!r}")
    if int(s["draw_batch"]) < 0:
        raise ValueError(f"ogas: draw_batch must be >= 0, got {s['draw_batch']}")
    if int(s["reject_rounds"]) < 1:
        raise ValueError(f"ogas: reject_rounds must be >= 1, got {s['reject_rounds']}")
    if s["prior"] not in ("proportional", "quantile"):
        raise ValueError(f"ogas: prior must be 'proportional' or 'quantile', got {s['prior']!r}")
    if s["signal"] not in ("loss", "disagreement"):
        raise ValueError(f"ogas: signal must be 'loss' or 'disagreement', got {s['signal']!r}")
