"""User-centric environments behind one protocol (`base.py`), selected by name from `ENVIRONMENTS`."""

from infopo.envs import (  # noqa: F401  (registers them)
    clarify,
    colbench,
    function,
    intention,
    persuasion,
    search,
    slots,
    sokoban,
    tau,
    tau2_bench,
    telepathy,
    travel,
    turtle,
)
from infopo.envs.base import ENVIRONMENTS, Environment, StepResult, Task

__all__ = ["ENVIRONMENTS", "Environment", "StepResult", "Task"]
