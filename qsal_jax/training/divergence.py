"""When a training run has diverged: the one rule the fused online run and the asynchronous mode share.

A step diverges when its loss or any parameter is not finite, or when its loss is a finite
explosion: more than ``factor`` times the running scale of the run's own losses (the median of
the last `SCALE_WINDOW`). A finite explosion trains on as surely to garbage as a NaN does, only
later, and is checkpointed and scored as if it were a model.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

DEFAULT_FACTOR = 1e4  # a loss this many times its running median is an explosion, not noise
SCALE_WINDOW = 50  # losses whose median is the running scale
MIN_SCALE_STEPS = 5  # per-batch losses needed before a finite loss can count as an explosion
LOSS_FLOOR = 1e-8  # a scale below it is read as it: a loss near zero makes no ratio meaningful


def divergence(loss: float, finite: bool, recent: Sequence[float], factor: float = DEFAULT_FACTOR, *,
               min_scale_steps: int = MIN_SCALE_STEPS) -> str | None:
    """Why a training step diverged (one clause for an error message), or None.

    ``finite``: the loss and every parameter after the step are finite. ``recent``: the losses of
    the steps before it, oldest first. A finite ``loss`` is compared with the running scale only
    once there are ``min_scale_steps`` of them: fewer single-batch losses are too noisy a scale,
    while a caller whose losses are already means over many batches can ask for fewer.
    ``factor = inf`` keeps only the non-finite rule.
    """
    if not finite or not math.isfinite(loss):
        return f"loss {loss:.4g}; the loss or the parameters are not finite"
    if len(recent) >= max(min_scale_steps, 1):
        scale = max(statistics.median(recent[-SCALE_WINDOW:]), LOSS_FLOOR)
        if loss > factor * scale:
            return f"loss {loss:.4g}, more than {factor:g} times its running median {scale:.4g}"
    return None
