"""Telepathy: guess a hidden entity by asking yes/no questions (docs/environments.md).

The offline user answers Yes / No / Maybe from the entity's attributes in the project's knowledge base; a
guess (choice "answer") earns 1 and ends the episode when it names the entity (exact, synonym, or semantic
match). The knowledge base, the question phrasings and the prompts are data, in `assets/telepathy/`.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from infopo.envs.actions import Action, format_help, parse_action
from infopo.envs.base import ENVIRONMENTS, StepResult, Task
from infopo.envs.data import read_asset, read_records
from infopo.envs.llm import (
    JUDGE_PROMPT,
    USER_SIMULATOR_PROMPT,
    LLMClient,
    SimulatorUnavailable,
    failed_step,
)
from infopo.envs.semantic import tokens
from infopo.envs.simulated import SimulatedUserEnv

CHOICES = ("action", "answer")
QUESTION_THRESHOLDS = {"embedding": 0.7, "lexical": 0.6}
GUESS_THRESHOLDS = {"embedding": 0.9, "lexical": 0.99}

_PROMPTS = read_asset("telepathy/prompts.yaml")
SYSTEM_PROMPT = _PROMPTS["system"] + "\n\n" + format_help(CHOICES)

# Attribute -> yes/no questions that ask about it.
ATTRIBUTES: dict[str, list[str]] = read_asset("telepathy/attributes.yaml")
# every phrasing of every attribute question, and the attribute each one asks about
ATTRIBUTE_QUESTIONS = [q for questions in ATTRIBUTES.values() for q in questions]
ATTRIBUTE_OF_QUESTION = [attr for attr, questions in ATTRIBUTES.items() for _ in questions]
_PROFESSIONS = {"scientist", "artist", "leader", "athlete"}


def _parse_kb(groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The entities of the knowledge base (group -> shared attributes and entities), with implied attributes:
    a scientist, artist, leader or athlete is a person, and a person who is not fictional is living."""
    entities = []
    for group, spec in groups.items():
        for entry in spec["entities"]:
            attributes = set(spec["attributes"]) | set(entry.get("attributes", ()))
            if attributes & _PROFESSIONS:
                attributes.add("person")
            if "person" in attributes and "fictional" not in attributes:
                attributes.add("living")
            names = list(entry["names"])
            entities.append({"title": names[0], "names": names, "group": group, "attributes": attributes})
    return entities


def _normalise(text: str) -> str:
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    text = re.sub(r"^\s*(?:(?:is it|it is|it s|i think|my guess is|the answer is|maybe)\s+)+", "", text)
    text = re.sub(r"^\s*(?:the|a|an)\s+", "", text)
    return " ".join(text.split())


KNOWLEDGE_BASE: list[dict[str, Any]] = _parse_kb(read_asset("telepathy/entities.yaml"))
_NAMES: dict[str, str] = {_normalise(n): e["title"] for e in KNOWLEDGE_BASE for n in e["names"]}


def _make_task(task_id: str, entity: dict[str, Any], messages: list[dict[str, str]] | None = None) -> Task:
    hidden = {
        "title": entity["title"],
        "names": list(entity["names"]),
        "category": entity["group"],
        "description": entity.get("description", ""),
        "attributes": sorted(entity["attributes"]) if entity.get("attributes") is not None else None,
    }
    kind = entity["group"].replace("_", " ")
    opening = messages or [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _PROMPTS["opening"].format(kind=kind)},
    ]
    return Task(task_id=task_id, env="telepathy", messages=opening, hidden=hidden)


def generate_tasks(seed: int = 0, n_test: int = 50) -> dict[str, list[Task]]:
    """The built-in task set: one task per knowledge-base entity, split at random by `seed`."""
    entities = list(KNOWLEDGE_BASE)
    random.Random(seed).shuffle(entities)
    tasks = [_make_task(f"telepathy-gen-{seed}-{i:04d}", e) for i, e in enumerate(entities)]
    return {"train": tasks[n_test:], "test": tasks[:n_test]}


def title_id(title: str) -> str:
    """The task id of a UserRL entity, from its title: "Da Vinci's X" -> "telepathy-da-vinci-s-x"."""
    return "telepathy-" + "-".join(re.findall(r"[a-z0-9]+", str(title).lower()))


def _userrl_entity(record: dict[str, Any]) -> dict[str, Any]:
    description = str(record.get("target_entity") or record.get("ground_truth") or "")
    names = [str(record["title"]).strip()]
    head = description.split(" - ")[0].strip()
    if head and head.lower() != names[0].lower():
        names.append(head)
    group = str(record.get("category", ""))
    return {"title": names[0], "names": names, "group": group, "description": description}


@ENVIRONMENTS.register("telepathy")
class TelepathyEnv(SimulatedUserEnv):
    """Twenty-questions style guessing; 1 for a correct guess, which ends the episode."""

    score_mode = "sum"

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def ground_truth(cls, task: Task) -> str | None:
        """The hidden entity's name (the content of the winning `answer`)."""
        return str(task.hidden["title"])

    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        """The built-in generated tasks of `split` ("train" or "test"), from `generate_tasks(seed=0)`."""
        tasks = generate_tasks()
        if split not in tasks:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return tasks[split]

    @classmethod
    def read_tasks(cls, path: Path) -> list[Task]:
        """Tasks from UserRL's `telepathy_entities.json` or verl `telepathy_train.parquet` (no attributes:
        the offline user answers from the entity's category and description only). The id is a slug of the
        entity's title, which both files carry (the parquet has no other id)."""
        records = read_records(path)
        if path.suffix.lower() != ".parquet":
            return [_make_task(title_id(r["title"]), _userrl_entity(r)) for r in records]
        tasks = []
        for row in records:
            meta = row["reward_model"]
            entity = _userrl_entity({**meta, "target_entity": meta.get("ground_truth")})
            messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            tasks.append(_make_task(title_id(meta["title"]), entity, messages))
        return tasks

    # -- episode ---------------------------------------------------------------------------------------
    @property
    def _hidden(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        return self.task.hidden

    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.turns = 0
        self.history: list[dict[str, str]] = []
        return [dict(m) for m in task.messages]

    def step(self, action: str) -> StepResult:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True})
        try:
            if parsed.choice == "answer":
                if self._is_correct(parsed.content):
                    return StepResult("Yes, that's right!", 1.0, True, {"success": True})
                return StepResult("No, that's not it.", 0.0, out_of_turns, {"success": False})
            return StepResult(self._answer(parsed), 0.0, out_of_turns, {})
        except SimulatorUnavailable as err:
            return failed_step(str(err))

    # -- offline user and judge ------------------------------------------------------------------------
    def names_in(self, text: str) -> bool:
        """Whether `text` names the hidden entity (all words of one of its names)."""
        words = set(_normalise(text).split())
        return any(set(_normalise(n).split()) <= words for n in self._hidden["names"])

    def _is_correct(self, guess: str) -> bool:
        if self.client is not None:
            return self._llm_judge(guess)
        normal = _normalise(guess)
        names = [_normalise(n) for n in self._hidden["names"]]
        if normal in names or any(tokens(normal) == tokens(n) and tokens(n) for n in names):
            return True
        _, score = self.matcher.best_match(normal, names)
        return score >= GUESS_THRESHOLDS[self.matcher.backend]

    def offline_answer(self, question: str) -> str:
        """Yes / No / Maybe from the knowledge base (or, without attributes, the category and description)."""
        hidden = self._hidden
        if self.names_in(question):
            return "Yes."
        attributes = hidden["attributes"]
        if attributes is not None and _NAMES.get(_normalise(question), hidden["title"]) != hidden["title"]:
            return "No."  # "Is it a <another entity>?"
        known = tokens(
            " ".join([hidden["category"].replace("_", " "), hidden["description"], *hidden["names"]])
        )
        if attributes is None and tokens(question) and tokens(question) <= known:
            return "Yes."
        index, score = self.matcher.best_match(question, ATTRIBUTE_QUESTIONS)
        if score < QUESTION_THRESHOLDS[self.matcher.backend]:
            return "Maybe."
        attribute = ATTRIBUTE_OF_QUESTION[index]
        if attributes is not None:
            return "Yes." if attribute in attributes else "No."
        return "Yes." if tokens(attribute.replace("_", " ")) <= known else "Maybe."

    def _answer(self, action: Action) -> str:
        if self.client is None:
            return self.offline_answer(action.content)
        hidden = self._hidden
        facts = hidden["description"] or ", ".join(hidden["attributes"] or [])
        system = USER_SIMULATOR_PROMPT.format(
            scenario="You are thinking of an entity, and the assistant is trying to guess it.",
            hidden=f"The entity: {hidden['title']} ({hidden['category']}). Facts: {facts}",
            rules="- Answer each question with exactly one of: Yes. / No. / Maybe.\n"
            "- Say Maybe only when the question cannot be answered with yes or no.",
        )
        self.history.append({"role": "user", "content": action.content})
        reply = self._client.chat([{"role": "system", "content": system}, *self.history])
        self.history.append({"role": "assistant", "content": reply})
        return reply

    @property
    def _client(self) -> LLMClient:
        if self.client is None:
            raise RuntimeError("the LLM client is only used in simulator='llm' mode")
        return self.client

    def _llm_judge(self, guess: str) -> bool:
        prompt = JUDGE_PROMPT.format(
            instructions="Decide whether the assistant's guess names the hidden entity. Accept the exact "
            "name, a synonym or an unambiguous reference to the same entity; reject anything "
            "broader or different.",
            reference=f"Hidden entity: {' / '.join(self._hidden['names'])}. {self._hidden['description']}",
            candidate=guess,
            answer_format="CORRECT or INCORRECT",
        )
        verdict = self._client.chat([{"role": "user", "content": prompt}]).strip().upper()
        if verdict.startswith("CORRECT"):
            return True
        if verdict.startswith("INCORRECT"):
            return False
        raise SimulatorUnavailable(f"the judge's verdict is neither CORRECT nor INCORRECT: {verdict[:200]!r}")
