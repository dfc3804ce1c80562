"""Intention: clarify a vague request by asking about its hidden missing details (docs/environments.md).

Each turn earns 1.0 / 0.7 / 0.4 for the highest importance (3 / 2 / 1) among the details the question newly
covers, minus 0.2 for every further detail covered by the same question (floored at 0); the episode ends
when every detail is covered or after `max_turns`. The generator's domains and the agent's prompts are data,
in `assets/intention/`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from infopo.envs.actions import Action, format_help, parse_action
from infopo.envs.base import ENVIRONMENTS, StepResult, Task
from infopo.envs.data import read_asset, read_records
from infopo.envs.llm import (
    JUDGE_PROMPT,
    USER_SIMULATOR_PROMPT,
    LLMConfig,
    SimulatorUnavailable,
    failed_step,
)
from infopo.envs.semantic import SemanticMatcher
from infopo.envs.simulated import SimulatedUserEnv

IMPORTANCE_REWARD = {3: 1.0, 2: 0.7, 1: 0.4}
EXTRA_DETAIL_PENALTY = 0.2
COVER_THRESHOLDS = {"embedding": 0.55, "lexical": 0.5}
CHOICES = ("action",)

_PROMPTS = read_asset("intention/prompts.yaml")
SYSTEM_PROMPT = _PROMPTS["system"] + "\n\n" + format_help(CHOICES)

# Generator vocabulary: category -> request templates ({x} a filler), fillers, and the missing details
# (description, importance, inquiry, possible answers).
DOMAINS: dict[str, dict[str, Any]] = read_asset("intention/domains.yaml")


def turn_reward(importances: Sequence[int]) -> float:
    """Reward for one question that newly covers details of these importances."""
    if not importances:
        return 0.0
    extra = len(importances) - 1
    return round(max(0.0, IMPORTANCE_REWARD[max(importances)] - EXTRA_DETAIL_PENALTY * extra), 10)


def _make_task(task_id: str, category: str, request: str, details: list[dict[str, Any]]) -> Task:
    return Task(
        task_id=task_id,
        env="intention",
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _PROMPTS["opening"].format(category=category, request=request)},
        ],
        hidden={"category": category, "task": request, "details": details},
    )


def generate_tasks(seed: int = 0, n_train: int = 250, n_test: int = 50) -> dict[str, list[Task]]:
    """The built-in task set: every (template, filler) request once, with 3-5 sampled details each."""
    rng = random.Random(seed)
    pool: list[tuple[str, str, list[dict[str, Any]]]] = []
    for category, domain in DOMAINS.items():
        requests = [t.format(x=f) for t in domain["templates"] for f in domain["fillers"]]
        pool.extend((category, request, domain["details"]) for request in requests)
    if n_train + n_test > len(pool):
        raise ValueError(f"only {len(pool)} distinct requests; asked for {n_train + n_test}")
    rng.shuffle(pool)
    tasks = []
    for i, (category, request, details) in enumerate(pool[: n_train + n_test]):
        chosen = sorted(rng.sample(range(len(details)), rng.randint(3, 5)))
        hidden = [
            {
                "description": details[j]["description"],
                "importance": details[j]["importance"],
                "inquiry": details[j]["inquiry"],
                "options": list(details[j]["answers"]),
                "answer": rng.choice(details[j]["answers"]),
            }
            for j in chosen
        ]
        tasks.append(_make_task(f"intention-gen-{seed}-{i:04d}", category, request, hidden))
    return {"train": tasks[:n_train], "test": tasks[n_train:]}


def _details_from_in3(record: dict[str, Any]) -> list[dict[str, Any]]:
    details = []
    for d in record.get("missing_details") or []:
        options = [str(o).strip() for o in d.get("options") or []]
        details.append(
            {
                "description": str(d["description"]).strip(),
                "importance": min(3, max(1, int(d.get("importance", 2)))),
                "inquiry": str(d.get("inquiry") or d["description"]).strip(),
                "options": options,
                "answer": str(d.get("answer") or (options[0] if options else "no preference")),
            }
        )
    return details


@ENVIRONMENTS.register("intention")
class IntentionEnv(SimulatedUserEnv):
    """Vague request with hidden missing details; the user answers the details a question covers."""

    score_mode = "sum"

    def __init__(
        self,
        *,
        max_turns: int = 16,
        simulator: Literal["offline", "llm"] = "offline",
        llm: LLMConfig | None = None,
        matcher: SemanticMatcher | None = None,
        cover_threshold: float | None = None,
        max_chars: int = 4000,
    ) -> None:
        super().__init__(
            max_turns=max_turns, simulator=simulator, llm=llm, matcher=matcher, max_chars=max_chars
        )
        self.cover_threshold = cover_threshold

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        """The built-in generated tasks of `split` ("train" or "test"), from `generate_tasks(seed=0)`."""
        tasks = generate_tasks()
        if split not in tasks:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return tasks[split]

    @classmethod
    def read_tasks(cls, path: Path) -> list[Task]:
        """Tasks from UserRL's IN3 JSON (`intention_train.json`) or verl parquet (`intention_train.parquet`),
        with the records' own ids (the same item has the same id in both).

        Parquet rows name only the missing details; their importances, inquiries and options are joined
        by id from `intention_train.json` beside the parquet file when it exists (else importance 2).
        """
        records = read_records(path)
        if path.suffix.lower() != ".parquet":
            return [
                _make_task(str(r["id"]), str(r.get("category", "")), str(r["task"]), _details_from_in3(r))
                for r in records
            ]
        sibling = path.with_name("intention_train.json")
        by_id = {str(r["id"]): r for r in read_records(sibling)} if sibling.is_file() else {}
        tasks = []
        for row in records:
            meta = row["reward_model"]
            if str(meta["id"]) in by_id:
                details = _details_from_in3(by_id[str(meta["id"])])
            else:
                names = [s.strip() for s in str(meta["ground_truth"]).split(",") if s.strip()]
                details = _details_from_in3({"missing_details": [{"description": n} for n in names]})
            task = _make_task(str(meta["id"]), str(meta.get("category", "")), str(meta["task"]), details)
            task.messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            tasks.append(task)
        return tasks

    @staticmethod
    def to_record(task: Task) -> dict[str, Any]:
        """The IN3 JSON record of a task (what `read_tasks` reads back)."""
        hidden = task.hidden
        return {
            "id": task.task_id,
            "category": hidden["category"],
            "task": hidden["task"],
            "missing_details": [
                {
                    "description": d["description"],
                    "importance": str(d["importance"]),
                    "inquiry": d["inquiry"],
                    "options": d["options"],
                    "answer": d["answer"],
                }
                for d in hidden["details"]
            ],
        }

    @staticmethod
    def max_score(task: Task) -> float:
        """The best achievable score: every detail asked about separately."""
        return round(sum(IMPORTANCE_REWARD[d["importance"]] for d in task.hidden["details"]), 10)

    # -- episode ---------------------------------------------------------------------------------------
    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.covered: set[int] = set()
        self.turns = 0
        self.history: list[dict[str, str]] = []
        return [dict(m) for m in task.messages]

    @property
    def _hidden(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        return self.task.hidden

    def step(self, action: str) -> StepResult:
        details = self._hidden["details"]
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True})
        try:
            new = self._judge(parsed) - self.covered
            reply = self._reply(parsed, sorted(new))
        except SimulatorUnavailable as err:
            return failed_step(str(err))
        details = self._hidden["details"]
        self.covered |= new
        reward = turn_reward([details[i]["importance"] for i in new])
        done = len(self.covered) == len(details) or out_of_turns
        info = {"covered": sorted(new), "remaining": len(details) - len(self.covered)}
        return StepResult(reply, reward, done, info)

    # -- offline judge and user ------------------------------------------------------------------------
    def _segments(self, question: str) -> list[str]:
        parts = re.split(r"[?!;\n]+|\.\s+", question)
        return [p.strip(" ,.") for p in parts if re.search(r"\w", p)]

    def _offline_cover(self, question: str) -> set[int]:
        details = self._hidden["details"]
        texts = [text for d in details for text in (d["inquiry"], d["description"])]
        threshold = self.cover_threshold
        if threshold is None:
            threshold = COVER_THRESHOLDS[self.matcher.backend]
        covered = set()
        for segment in self._segments(question):
            scores = self.matcher.similarities(segment, texts)
            per_detail = [max(scores[2 * i], scores[2 * i + 1]) for i in range(len(details))]
            best = max(range(len(details)), key=per_detail.__getitem__)
            if per_detail[best] >= threshold:
                covered.add(best)
        return covered

    def _judge(self, action: Action) -> set[int]:
        if self.client is None:
            return self._offline_cover(action.content)
        details = self._hidden["details"]
        listing = "\n".join(
            f"{i + 1}. {d['description']} (e.g. {d['inquiry']})" for i, d in enumerate(details)
        )
        prompt = JUDGE_PROMPT.format(
            instructions="Decide which of the numbered missing details the assistant's question asks about. "
            "A detail counts only if the question clearly asks for it.",
            reference=f"Request: {self._hidden['task']}\nMissing details:\n{listing}",
            candidate=action.content,
            answer_format="a JSON list of the detail numbers it asks about, e.g. [1, 3], or [] if none",
        )
        reply = self.client.chat([{"role": "user", "content": prompt}])
        found = re.search(r"\[[^\]]*\]", reply)
        if found is None:
            raise SimulatorUnavailable(f"the judge's reply has no list: {reply[:200]!r}")
        try:
            numbers = json.loads(found.group(0))
        except ValueError:
            raise SimulatorUnavailable(f"the judge's reply is not a JSON list: {reply[:200]!r}") from None
        return {n - 1 for n in numbers if isinstance(n, int) and 1 <= n <= len(details)}

    def _reply(self, action: Action, new: list[int]) -> str:
        details = self._hidden["details"]
        if self.client is None:
            if not new:
                return "I don't have anything specific in mind about that."
            return " ".join(f"{details[i]['description']}: {details[i]['answer']}." for i in new)
        system = USER_SIMULATOR_PROMPT.format(
            scenario=f"You asked an assistant for help with this request: {self._hidden['task']}",
            hidden="\n".join(f"- {d['description']}: {d['answer']}" for d in details),
            rules="- When asked about one of these details, give your answer for it.\n"
            "- When asked about anything else, say you have no particular preference.",
        )
        self.history += [{"role": "user", "content": action.content}]
        reply = self.client.chat([{"role": "system", "content": system}, *self.history])
        self.history.append({"role": "assistant", "content": reply})
        return reply
