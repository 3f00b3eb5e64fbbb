"""Uniform sampling over the box: the baseline every active strategy is compared against."""

from __future__ import annotations

from typing import NamedTuple

import jax

from qsal_jax.proposals._common import DEFAULT_DTYPE, to_box, uniform_unit
from qsal_jax.proposals.base import Feedback, Proposal
from qsal_jax.simulation.param_space import ParamSpace


class UniformState(NamedTuple):
    """No state: uniform draws ignore all feedback."""


def uniform(space: ParamSpace, *, dtype=DEFAULT_DTYPE) -> Proposal:
    """``λ ~ Unif(box)`` i.i.d.; ``sample(state, key, n) -> (λ [n, D] dtype, state)``; update is a no-op."""

    def init(key: jax.Array) -> UniformState:
        del key
        return UniformState()

    def sample(state: UniformState, key: jax.Array, n: int):
        return to_box(space, uniform_unit(key, n, space.dim, dtype)), state

    def update(state: UniformState, feedback: Feedback) -> UniformState:
        del feedback
        return state

    return Proposal(init, sample, update)
