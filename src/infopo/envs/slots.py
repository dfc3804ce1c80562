"""`slots`: ask about the slots that matter, then answer; questions differ in how much they reveal.

The user wants an item (a shirt) with a hidden value in each slot (colour, size, pattern) and does not say
which. A question names one slot ("Which colour?") and the user reveals that slot's value ("I want red.").
The answer must name the value of every relevant slot ("red large"); the irrelevant slot (pattern) is
never part of the answer, so asking about it wastes a turn. Reward 1 for a correct answer, 0 otherwise; the
episode ends at the first answer. With 6 colours and 4 sizes, guessing wins 1/24, asking about one relevant
slot and guessing the other 1/4 or 1/6, asking about both (three turns: ask, ask, answer) always wins.

A question reveals one slot: the first slot it names. An action that is not a question and names a value is
an answer: correct when, for every relevant slot, the values it names of that slot are exactly the wanted
one (values of irrelevant slots are ignored). Anything else gets a reminder of the rules and counts as a
turn. Slots, values, relevance and wording are data (`assets/slots/tasks.yaml`); each task carries its own
slots, so task files may define others.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from infopo.envs.base import ENVIRONMENTS, Environment, StepResult, Task
from infopo.envs.data import read_asset

_ASSET = read_asset("slots/tasks.yaml")
SLOTS: dict[str, list[str]] = {name: list(spec["values"]) for name, spec in _ASSET["slots"].items()}
RELEVANT: list[str] = [name for name, spec in _ASSET["slots"].items() if spec["relevant"]]
TRAIN_SIZE, TEST_SIZE = 256, 64
QUESTION_WORDS = frozenset({"ask", "which", "what", "choose", "tell"})
_WORD = re.compile(r"[a-z]+")


def _listing(names: list[str], last: str) -> str:
    """ "a, b or c" (last="or") / "a and b" (last="and")."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def request_text(slots: list[str], relevant: list[str]) -> str:
    """The user's opening request for an item with these slots."""
    return _ASSET["request"].format(
        item=_ASSET["item"], slots=_listing(slots, "or"), relevant=_listing(relevant, "and")
    )


def reply_text(value: str) -> str:
    """The user's reply to a question about a slot whose wanted value is `value`."""
    return _ASSET["reply"].format(value=value)


@dataclass(frozen=True)
class Move:
    """What an action does: ask about `slot`, answer with the `named` values per slot, or neither."""

    kind: Literal["question", "answer", "invalid"]
    slot: str | None = None
    named: dict[str, set[str]] = field(default_factory=dict)


def parse_move(action: str, slots: dict[str, list[str]]) -> Move:
    """Classify an action against the task's `slots` (slot -> values); never raises."""
    words = _WORD.findall(action.lower())
    named = {s: {w for w in words if w in values} for s, values in slots.items()}
    named = {s: v for s, v in named.items() if v}
    asked = next((w for w in words if w in slots), None)
    if QUESTION_WORDS.intersection(words) or "?" in action or (asked is not None and not named):
        return Move("question", slot=asked) if asked is not None else Move("invalid")
    return Move("answer", named=named) if named else Move("invalid")


def make_tasks(n: int, split: str) -> list[Task]:
    """`n` tasks of `split`, each with a wanted value per slot drawn uniformly (seeded by the split)."""
    rng = random.Random(f"slots-{split}")
    names = list(SLOTS)
    return [
        Task(
            task_id=f"slots-{split}-{i:04d}",
            env="slots",
            messages=[{"role": "user", "content": request_text(names, RELEVANT)}],
            hidden={
                "slots": SLOTS,
                "relevant": RELEVANT,
                "wanted": {s: rng.choice(values) for s, values in SLOTS.items()},
            },
        )
        for i in range(n)
    ]


@ENVIRONMENTS.register("slots")
class SlotsEnv(Environment):
    """One episode of the slots task; see the module docstring for the rules."""

    score_mode: ClassVar[Literal["sum", "final"]] = "sum"

    def __init__(self) -> None:
        self.task: Task | None = None

    @classmethod
    def ground_truth(cls, task: Task) -> str | None:
        """The relevant slots' wanted values in order ("red large"), which is the whole answer."""
        return " ".join(task.hidden["wanted"][s] for s in task.hidden["relevant"])

    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        """The built-in task set: 256 train or 64 test tasks."""
        sizes = {"train": TRAIN_SIZE, "test": TEST_SIZE}
        if split not in sizes:
            raise ValueError(f"slots has splits {sorted(sizes)}, not {split!r}")
        return make_tasks(sizes[split], split)

    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        return list(task.messages)

    def step(self, action: str) -> StepResult:
        if self.task is None:
            return StepResult("The episode has not started.", 0.0, True, {"invalid": True})
        slots, relevant, wanted = (self.task.hidden[k] for k in ("slots", "relevant", "wanted"))
        move = parse_move(action, slots)
        if move.kind == "question" and move.slot is not None:
            info = {"asked": move.slot, "relevant": move.slot in relevant}
            return StepResult(reply_text(wanted[move.slot]), 0.0, False, info)
        if move.kind == "answer":
            correct = all(move.named.get(s) == {wanted[s]} for s in relevant)
            return StepResult(None, 1.0 if correct else 0.0, True, {"success": correct})
        reminder = _ASSET["help"].format(
            slots=_listing(list(slots), "or"), relevant=_listing(relevant, "and")
        )
        return StepResult(reminder, 0.0, False, {"invalid": True})
