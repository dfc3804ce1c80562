"""Helpers shared by the benchmarks: the embedded model, synthetic dialogues, timing and tables."""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from infopo.envs.base import Environment, StepResult, Task
from infopo.models.embedded import prepare_embedded_model
from infopo.rollout import ChatMarkers, Trajectory, TrajectoryBuilder

T = TypeVar("T")

QUESTIONS = [
    "Which city are you flying from?",
    "What dates work for you, and is there any flexibility?",
    "Do you prefer a window or an aisle seat?",
    "What is your budget for the whole trip?",
    "Should I include hotels near the city centre?",
]
ANSWERS = [
    "From Lyon, and I would like to leave on a Friday morning if possible.",
    "The twelfth to the nineteenth of March; a day either way is fine.",
    "Window please, and somewhere near the front of the plane.",
    "About nine hundred euros including everything.",
    "Yes, something walkable with breakfast included.",
]


class ScriptedUser(Environment):
    """Answers every action with the same sentence; never ends an episode by itself."""

    score_mode: ClassVar[Literal["sum", "final"]] = "sum"

    def reset(self, task: Task) -> list[dict[str, str]]:
        return list(task.messages)

    def step(self, action: str) -> StepResult:
        return StepResult(
            "I see. Could you also check the weather for that week, and one more option?", 0.0, False
        )


def load_model(dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct (the embedded model), sdpa attention, eval mode."""
    path = prepare_embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    return model.eval(), tokenizer


def dialogue(
    tokenizer: PreTrainedTokenizerBase, markers: ChatMarkers, turns: int, rng: random.Random, group: str
) -> Trajectory:
    """A trip-planning dialogue of `turns` agent questions and user answers (about 33 tokens a turn)."""
    prompt = [{"role": "user", "content": "Plan a trip to Lisbon for me."}]
    builder = TrajectoryBuilder.from_messages(tokenizer, prompt, markers, task_id=group, group_id=group)
    eot = tokenizer.encode(markers.end_of_turn, add_special_tokens=False)
    for t in range(turns):
        action = tokenizer.encode(rng.choice(QUESTIONS), add_special_tokens=False) + eot
        builder.add_turn(action, rng.choice(ANSWERS) if t < turns - 1 else None, float(rng.random() < 0.5))
    return builder.build()


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """Seconds `fn` takes, GPU work included (CUDA is synchronised before and after)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
    sync()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    sync()
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A Markdown table of `columns` of `rows` (floats to 3 significant digits)."""

    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    print("| " + " | ".join(columns) + " |")
    print("|" + "---:|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")
