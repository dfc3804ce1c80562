"""`SimulatedUserEnv`: the constructor shared by environments whose user is rule-based offline or an LLM."""

from __future__ import annotations

from typing import Literal

from infopo.envs.base import Environment, Task
from infopo.envs.llm import LLMConfig, simulator_client
from infopo.envs.semantic import SemanticMatcher


class SimulatedUserEnv(Environment):
    """An environment with a user simulator: `simulator` "offline" (rule-based, matching questions to the
    hidden material with `matcher`) or "llm" (an OpenAI-compatible server, `llm`); episodes of at most
    `max_turns` agent turns, agent messages clipped to `max_chars` characters before the user reads them."""

    def __init__(
        self,
        *,
        max_turns: int = 16,
        simulator: Literal["offline", "llm"] = "offline",
        llm: LLMConfig | None = None,
        matcher: SemanticMatcher | None = None,
        max_chars: int = 4000,
    ) -> None:
        self.max_turns = max_turns
        self.client = simulator_client(simulator, llm)
        self.matcher = matcher or SemanticMatcher()
        self.max_chars = max_chars
        self.task: Task | None = None
