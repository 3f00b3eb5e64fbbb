"""Parameter spaces, initial conditions and the Simulator binding them to a solver."""

from qsal_jax.simulation.param_space import ParamSpace

__all__ = ["ParamSpace"]
