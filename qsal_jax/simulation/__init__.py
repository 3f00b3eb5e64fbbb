"""Parameter spaces, initial conditions and the Simulator binding them to a solver."""

from qsal_jax.simulation.function_simulator import FunctionSimulator
from qsal_jax.simulation.param_space import ParamSpace
from qsal_jax.simulation.problems import PROBLEMS, get_problem
from qsal_jax.simulation.simulator import Simulator, Trajectories

__all__ = ["PROBLEMS", "FunctionSimulator", "ParamSpace", "Simulator", "Trajectories", "get_problem"]
