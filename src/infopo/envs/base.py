"""The environment protocol: reset a task, step with an agent message, read feedback, reward, done.

One `Environment` instance runs one episode at a time (the rollout engine makes one per trajectory).
Actions never raise: a malformed or over-long action gets explanatory feedback and counts as a turn.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from infopo.core.registry import Registry


@dataclass
class Task:
    """One task: what the agent is shown first, and what only the user simulator / judge may see."""

    task_id: str
    env: str
    messages: list[dict[str, str]]  # the agent's opening chat messages (system, user)
    hidden: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    """What one agent turn produced. `feedback` is None when the episode ended without a reply."""

    feedback: str | None
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Environment(ABC):
    """Base class of every environment; subclasses register with `@ENVIRONMENTS.register(name)`.

    score_mode says how the trajectory score S is formed (spec section 3): "sum" of step rewards, or the
    environment's own "final" score (e.g. best-so-far, unit-test pass rate), reported by final_score().
    """

    score_mode: ClassVar[Literal["sum", "final"]] = "sum"

    @abstractmethod
    def reset(self, task: Task) -> list[dict[str, str]]:
        """Start an episode on `task`; returns the agent's opening messages."""

    @abstractmethod
    def step(self, action: str) -> StepResult:
        """Apply one agent message; never raises on bad input."""

    @classmethod
    def load_tasks(cls, split: str) -> list[Task]:
        """The environment's built-in task set for `split` ("train" or "test")."""
        raise NotImplementedError(f"{cls.__name__} ships no built-in task set")

    def final_score(self) -> float | None:
        """The episode's final score when score_mode is "final", else None."""
        return None


ENVIRONMENTS: Registry[type[Environment]] = Registry("environment")


def split_tasks(tasks: list[Task], split: str, train_size: int, prefix: str) -> list[Task]:
    """The "train" (first train_size) or "test" (the rest) part of a generated set, renamed prefix-split-i."""
    if split not in ("train", "test"):
        raise ValueError(f"{prefix} has splits 'train' and 'test', not {split!r}")
    chosen = tasks[:train_size] if split == "train" else tasks[train_size:]
    return [Task(f"{prefix}-{split}-{i:04d}", t.env, t.messages, t.hidden) for i, t in enumerate(chosen)]
