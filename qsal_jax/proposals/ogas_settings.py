"""OGAS's settings: every one with its default, and the checks `proposals.ogas.make_ogas` runs
before anything is traced (one-line errors that name the setting)."""

from __future__ import annotations

import dataclasses

from qsal_jax.proposals import _common as C
from qsal_jax.proposals import checks


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
    clip_denoised: bool = True  # clip x̂0 to the cube at every sampling step but the last (False: at none)
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
    """A `checks.SettingError` naming the first setting of ``s`` (all settings, defaults filled) that cannot work."""
    C.check_known_settings("ogas", s, DEFAULTS)
    for name, low in (("hidden", 1), ("depth", 1), ("capacity", 1), ("batch_size", 1), ("ratio_hidden", 1),
                      ("ratio_depth", 1), ("train_steps", 0), ("ramp_updates", 0), ("min_fill", 1), ("draw_batch", 0),
                      ("reject_rounds", 1)):
        checks.integer("ogas", name, s[name], lo=low)
    checks.integer("ogas", "steps", s["steps"], 2, 1000)
    if s["train_every"] == "auto":
        if s["surrogate_step_flops"] is None:
            raise checks.SettingError("ogas", "surrogate_step_flops", "must be > 0 for train_every='auto' (the flops of "
                                      "one surrogate train step; a driver's context gives it)")
        checks.real("ogas", "surrogate_step_flops", s["surrogate_step_flops"], 0, open_lo=True)
        checks.real("ogas", "generator_share", s["generator_share"], 0, 1, open_lo=True)
        if s["generator_share"] >= 1:
            raise checks.SettingError("ogas", "generator_share", f"must be in (0, 1), got {s['generator_share']}")
    else:
        checks.integer("ogas", "train_every", s["train_every"], lo=1)
    if s["sample_steps"] is not None:
        checks.integer("ogas", "sample_steps", s["sample_steps"], 2, s["steps"])
    if s["min_fill"] > s["capacity"]:
        raise checks.SettingError("ogas", "min_fill", f"({s['min_fill']}) exceeds capacity ({s['capacity']})")
    for name, lo, hi, open_lo in (("lr", 0, None, True), ("ratio_lr", 0, None, True), ("grad_clip", 0, None, False),
                                  ("ema_decay", 0, 1, False), ("p_uncond", 0, 1, False), ("r_max", 0, 1, False),
                                  ("eps_clip", 0, None, True), ("eps_cap", 0, None, True), ("weight_clip", 1, None, False),
                                  ("prior_power", 0, None, False), ("quantile", 0, 1, False), ("guidance", 0, None, False)):
        checks.real("ogas", name, s[name], lo, hi, open_lo=open_lo)
    if s["ema_decay"] >= 1:
        raise checks.SettingError("ogas", "ema_decay", f"must be in [0, 1), got {s['ema_decay']}")
    checks.choice("ogas", "eps_mode", s["eps_mode"], ("clip", "cap"))
    checks.choice("ogas", "schedule", s["schedule"], ("cosine", "linear"))
    checks.choice("ogas", "prior", s["prior"], ("proportional", "quantile"))
    checks.choice("ogas", "signal", s["signal"], ("loss", "disagreement"))
    for name in ("prior_importance", "importance", "clip_denoised"):
        checks.flag("ogas", name, s[name])
