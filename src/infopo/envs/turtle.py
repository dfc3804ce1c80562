"""Turtle soup: uncover the hidden story behind a puzzling situation (the paper's TurtleGym).

The agent asks yes/no questions (choice "action") and tells its version of the story (choice "answer").
The user answers Yes / No / Maybe from the hidden story; a judge scores an answer 0 / 0.5 / 1 per weighted
criterion (weights sum to 1). The step reward is the gain over the best score so far, so the rewards of an
episode sum to its best score; an answer scoring 1 ends the episode.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from infopo.envs.actions import parse_action
from infopo.envs.base import ENVIRONMENTS, StepResult, Task
from infopo.envs.data import create_kwargs, read_asset, read_records
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
# A question matches a text this similar to it, or one holding COVERAGE of its content words (stemmed).
QUESTION_THRESHOLDS = {"embedding": 0.7, "lexical": 0.6}
# A sentence (clause, pair of sentences) of an answer earns a criterion's full / half credit at this
# similarity to one of its full texts, or when it holds COVERAGE / HALF_COVERAGE of that text's words.
FULL_THRESHOLDS = {"embedding": 0.75, "lexical": 0.6}
HALF_THRESHOLDS = {"embedding": 0.62, "lexical": 0.4}
COVERAGE = 0.75
HALF_COVERAGE = 0.5
MAX_SENTENCES = 60  # of an answer that the offline judge reads
TEST_EVERY = 5  # built-in puzzle i (in file order) is a test puzzle when i % TEST_EVERY == TEST_EVERY - 1
POOL_FILE = "turtle_stories.json"  # UserRL's pool, read beside a parquet file for its criteria
_SOLVED = 1.0 - 1e-6

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_CLAUSE_BREAK = re.compile(r",\s*|\s+(?:and|but|so|because|which|who)\s+", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_REPLY = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)


@cache
def _text() -> dict[str, Any]:
    return read_asset("turtle/prompts.yaml")


@cache
def _lexicon() -> dict[str, Any]:
    lexicon = read_asset("turtle/lexicon.yaml")
    return {
        "negations": frozenset(lexicon["negations"]),
        "auxiliaries": frozenset(lexicon["negative_auxiliaries"]),
        "question_words": frozenset(_stem(w) for w in lexicon["question_words"]),
        "opening": re.compile(lexicon["statement_opening"], re.IGNORECASE),
    }


def negated(text: str, question: bool = False) -> bool:
    """Whether `text` is a negative statement; a question's opening "Wasn't ..." asks and does not count."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    if question and words and words[0] in _lexicon()["auxiliaries"]:
        words = words[1:]
    return any(w in _lexicon()["negations"] or w.endswith("n't") for w in words)


def _stem(word: str) -> str:
    for suffix, replacement in (
        ("ment", ""),
        ("ies", "i"),
        ("ied", "i"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("e", ""),
        ("y", "i"),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def _content(text: str) -> set[str]:
    return {_stem(w) for w in tokens(text)} - _lexicon()["question_words"]


def coverage(query: str, text: str, least: int = 2) -> float:
    """The share of the content words (crudely stemmed) of `query` that `text` holds; 0 when `query` has
    fewer than `least`."""
    asked = _content(query)
    return len(asked & _content(text)) / len(asked) if len(asked) >= max(least, 1) else 0.0


def sentences(text: str) -> list[str]:
    """The sentences of `text` (split after . ! ? ; and at line breaks)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _clauses(text: str) -> list[str]:
    """The clauses of a sentence (split at commas and conjunctions); the sentence itself if none."""
    return [c.strip() for c in _CLAUSE_BREAK.split(text) if c.strip()] or [text]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "untitled"


def task_id(title: str, surface: str) -> str:
    """The id of a puzzle: a slug of its title and a short hash of title and surface (titles may repeat)."""
    key = " ".join(title.split()).lower() + "\n" + " ".join(surface.split()).lower()
    return f"turtle-{_slug(title)}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:6]}"


def _opening(title: str, surface: str) -> list[dict[str, str]]:
    text = _text()
    return [
        {"role": "system", "content": text["system"]},
        {"role": "user", "content": text["opening"].format(title=title, surface=surface)},
    ]


def make_task(story: dict[str, Any], messages: list[dict[str, str]] | None = None) -> Task:
    """A task from a story: title, surface, facts, wrong (false hypotheses), criteria (statement, weight,
    full and half texts), bottom."""
    total = sum(c["weight"] for c in story["criteria"])
    if total > 0 and abs(total - 1.0) > 1e-6:  # weights that do not sum to 1 are rescaled
        story = {**story, "criteria": [{**c, "weight": c["weight"] / total} for c in story["criteria"]]}
    return Task(
        task_id=task_id(story["title"], story["surface"]),
        env="turtle",
        messages=messages or _opening(story["title"], story["surface"]),
        hidden=story,
    )


@cache
def _builtin_stories() -> tuple[dict[str, Any], ...]:
    stories = []
    for puzzle in read_asset("turtle/puzzles.yaml"):
        criteria = [
            {
                "statement": c["full"][0],
                "weight": float(c["weight"]),
                "full": c["full"],
                "half": c.get("half", []),
            }
            for c in puzzle["criteria"]
        ]
        stories.append(
            {
                "title": puzzle["title"],
                "surface": puzzle["surface"],
                "facts": list(puzzle["facts"]),
                "wrong": list(puzzle.get("wrong", [])),
                "criteria": criteria,
                "bottom": " ".join(puzzle["facts"]),
            }
        )
    return tuple(stories)


def _userrl_criteria(evaluation: list[dict[str, Any]] | None, bottom: str) -> list[dict[str, Any]]:
    """Criteria from UserRL's evaluation list (each statement's full texts: the statement without its
    "The story reveals that" opening, and the sentence of the bottom sharing most of its words, when that
    is at least half), else one equally weighted criterion per sentence of the bottom."""
    facts = sentences(bottom) or [bottom]
    if not evaluation:
        evaluation = [{"statement": fact, "score": 1.0 / len(facts)} for fact in facts]
    criteria = []
    for item in evaluation:
        statement = str(item["statement"])
        point = _lexicon()["opening"].sub("", statement).strip() or statement
        anchor = max(facts, key=lambda fact: coverage(point, fact))
        full = [point, anchor] if anchor != point and coverage(point, anchor) >= HALF_COVERAGE else [point]
        criteria.append(
            {"statement": statement, "weight": float(item.get("score", 1.0)), "full": full, "half": []}
        )
    return criteria


def _userrl_story(record: dict[str, Any], evaluations: dict[str, Any]) -> dict[str, Any]:
    """A story from a pool record (new_title, new_surface, new_bottom, evaluation) or a verl row."""
    source = {**create_kwargs(record), **(record.get("reward_model") or {}), **record}
    title = str(source.get("new_title") or source.get("title") or "").strip()
    surface = str(source.get("new_surface") or source.get("surface") or "").strip()
    bottom = str(source.get("new_bottom") or source.get("bottom") or source.get("ground_truth") or "").strip()
    if not (title and surface and bottom):
        raise ValueError(f"a turtle record needs a title, a surface and a bottom: {str(record)[:200]}")
    evaluation = source.get("evaluation") or evaluations.get(task_id(title, surface))
    return {
        "title": title,
        "surface": surface,
        "facts": sentences(bottom),
        "wrong": [],
        "criteria": _userrl_criteria(evaluation, bottom),
        "bottom": bottom,
    }


def _pool_evaluations(path: Path) -> dict[str, Any]:
    """Task id -> evaluation list from the UserRL pool beside a parquet file ({} when there is none)."""
    pool = path.parent / POOL_FILE
    if path.suffix.lower() != ".parquet" or not pool.is_file():
        return {}
    evaluations = {}
    for record in read_records(pool):
        if record.get("new_title") and record.get("new_surface") and record.get("evaluation"):
            evaluations[task_id(str(record["new_title"]).strip(), str(record["new_surface"]).strip())] = (
                record["evaluation"]
            )
    return evaluations


def _json_values(text: str) -> list[Any]:
    """JSON (or Python-literal) objects and lists found in `text`, outermost first."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    pos = 0
    while len(found) < 8:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            close = "}" if text[start] == "{" else "]"
            end = text.rfind(close) + 1
            try:
                value = ast.literal_eval(text[start:end]) if end > start else None
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pos = start + 1
                continue
        if isinstance(value, (dict, list)):
            found.append(value)
        pos = max(end, start + 1)
    return found


def _score_value(item: Any) -> float | None:
    if isinstance(item, dict):
        item = item.get("score")
    if isinstance(item, bool):
        return None
    try:
        value = float(item)
    except (TypeError, ValueError):
        return None
    return value if value in (0.0, 0.5, 1.0) else None


def parse_verdict(text: str, count: int) -> list[float]:
    """The judge's per-criterion scores: `{"scores": [...]}` or a bare list, items 0 / 0.5 / 1 (numbers,
    numeric strings or objects with a "score"); SimulatorUnavailable for anything else."""
    for value in _json_values(text):
        items = value.get("scores") if isinstance(value, dict) else value
        if not isinstance(items, list):
            continue
        scores = [_score_value(item) for item in items]
        if len(scores) == count and all(s is not None for s in scores):
            return [float(s) for s in scores if s is not None]
    raise SimulatorUnavailable(
        f"the judge's verdict is not {count} scores of 0, 0.5 or 1: {text.strip()[:200]!r}"
    )


def normalise_reply(reply: str) -> str:
    """The LLM user's reply as "Yes." / "No." / "Maybe." (its first such word, or a JSON object's
    "response"), else as written."""
    for value in _json_values(reply):
        if isinstance(value, dict) and isinstance(value.get("response"), str):
            reply = value["response"]
            break
    match = _REPLY.search(reply.strip()[:200])
    return f"{match.group(1).capitalize()}." if match else reply.strip()


@ENVIRONMENTS.register("turtle")
class TurtleEnv(SimulatedUserEnv):
    """Lateral-thinking puzzles; rewards sum to the best answer score, and a score of 1 ends the episode."""

    score_mode = "sum"

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def ground_truth(cls, task: Task) -> str | None:
        """The hidden story (the content of a full-score `answer`)."""
        return str(task.hidden["bottom"])

    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        """The project's puzzles: every TEST_EVERY-th one (in file order) is a test puzzle."""
        if split not in ("train", "test"):
            raise ValueError(f"turtle has splits 'train' and 'test', not {split!r}")
        in_test = split == "test"
        return [
            make_task(story)
            for i, story in enumerate(_builtin_stories())
            if (i % TEST_EVERY == TEST_EVERY - 1) == in_test
        ]

    @classmethod
    def read_tasks(cls, path: Path) -> list[Task]:
        """UserRL's `turtle_stories.json` pool or a verl `turtle_train.parquet` (its rows' prompts are kept;
        their criteria come from the pool beside it, else one per sentence of the bottom)."""
        path = Path(path)
        evaluations = _pool_evaluations(path)
        tasks: dict[str, Task] = {}
        for record in read_records(path):
            prompt = record.get("prompt")
            messages = (
                [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
                if isinstance(prompt, list) and prompt
                else None
            )
            task = make_task(_userrl_story(record, evaluations), messages)
            tasks.setdefault(task.task_id, task)  # the same title and surface twice: one puzzle
        return list(tasks.values())

    # -- episode ---------------------------------------------------------------------------------------
    @property
    def _hidden(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        return self.task.hidden

    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.turns = 0
        self.best = 0.0
        return [dict(m) for m in task.messages]

    def step(self, action: str) -> StepResult:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True, "success": False})
        try:
            if parsed.choice == "answer":
                return self._score_answer(parsed.content, out_of_turns)
            reply = self._llm_answer(parsed.content) if self.client else self.offline_answer(parsed.content)
        except SimulatorUnavailable as err:
            return failed_step(str(err))
        return StepResult(reply, 0.0, out_of_turns, {"success": False})

    def _score_answer(self, story: str, out_of_turns: bool) -> StepResult:
        criteria = self._hidden["criteria"]
        marks = self._llm_judge(story) if self.client else self.offline_judge(story)
        score = round(sum(c["weight"] * m for c, m in zip(criteria, marks, strict=True)), 6)
        reward = round(max(0.0, score - self.best), 6)
        self.best = max(self.best, score)
        solved = score >= _SOLVED
        feedback = _text()["feedback"]
        lines = [feedback["score"].format(score=score)]
        if solved:
            lines.append(feedback["solved"])
        else:
            covered = [c["statement"] for c, m in zip(criteria, marks, strict=True) if m == 1.0]
            lines += [feedback["covered"], *(f"- {s}" for s in covered)] if covered else [feedback["none"]]
            lines.append(feedback["more"])
        info = {"score": score, "best": self.best, "marks": marks, "success": solved}
        return StepResult("\n".join(lines), reward, solved or out_of_turns, info)

    # -- offline user and judge ------------------------------------------------------------------------
    def _similarities(self, text: str, candidates: list[str]) -> list[float]:
        """Similarity of `text` to each candidate, 0 where one is negated and the other is not."""
        polarity = negated(text)
        scores = self.matcher.similarities(text, candidates)
        return [s if negated(c) == polarity else 0.0 for s, c in zip(scores, candidates, strict=True)]

    def offline_answer(self, question: str) -> str:
        """Yes when the question matches a fact (or the surface, or a criterion), No when it matches a false
        hypothesis or a fact it negates, else Maybe. A question matches a text that is similar enough or
        holds most of its content words (all of them, for a one-word question, except on the surface)."""
        hidden = self._hidden
        surface = sentences(hidden["surface"])
        true = [*hidden["facts"], *surface, *(t for c in hidden["criteria"] for t in c["full"])]
        candidates = true + list(hidden["wrong"])
        threshold = QUESTION_THRESHOLDS[self.matcher.backend]
        similarities = self.matcher.similarities(question, candidates)
        scores = [
            max(s / threshold, coverage(question, c, 2 if c in surface else 1) / COVERAGE)
            for s, c in zip(similarities, candidates, strict=True)
        ]
        best = max(range(len(scores)), key=scores.__getitem__, default=-1)
        if best < 0 or scores[best] < 1.0:
            return "Maybe."
        # same polarity as the text, or as the clause of it that the question is closest to
        polarity, clauses = negated(question, question=True), _clauses(candidates[best])
        agrees = negated(candidates[best]) == polarity or (
            len(clauses) > 1 and negated(clauses[self.matcher.best_match(question, clauses)[0]]) == polarity
        )
        return "Yes." if agrees == (best < len(true)) else "No."

    def _closeness(self, units: list[str], texts: list[str]) -> tuple[float, float]:
        """The best similarity and the best coverage of a text's words between any unit and any text of the
        same polarity (negated or not)."""
        similarity = cover = 0.0
        for unit in units:
            scores = self._similarities(unit, texts)
            similarity = max(similarity, *scores, 0.0)
            cover = max(cover, *(coverage(t, unit) for t, s in zip(texts, scores, strict=True) if s), 0.0)
        return similarity, cover

    def offline_judge(self, story: str) -> list[float]:
        """Per criterion: 1 when a sentence, clause or pair of sentences of `story` matches one of its full
        texts (similar enough, or holding most of its words), 0.5 when one comes close or matches a half
        text, else 0. Only the first MAX_SENTENCES sentences count."""
        parts = sentences(story)[:MAX_SENTENCES]
        clauses = [c for p in parts for c in _clauses(p)]
        units = list(dict.fromkeys(parts + clauses + [f"{a} {b}" for a, b in itertools.pairwise(parts)]))
        full_at, half_at = FULL_THRESHOLDS[self.matcher.backend], HALF_THRESHOLDS[self.matcher.backend]
        marks = []
        for criterion in self._hidden["criteria"]:
            similarity, cover = self._closeness(units, criterion["full"])
            half_similarity, half_cover = self._closeness(units, criterion["half"])
            full = max(similarity / full_at, cover / COVERAGE)
            half = max(
                similarity / half_at, cover / HALF_COVERAGE, half_similarity / full_at, half_cover / COVERAGE
            )
            marks.append(1.0 if full >= 1 else 0.5 if half >= 1 else 0.0)
        return marks

    # -- LLM user and judge ----------------------------------------------------------------------------
    @property
    def _client(self) -> LLMClient:
        if self.client is None:
            raise RuntimeError("the LLM client is only used in simulator='llm' mode")
        return self.client

    def _llm_answer(self, question: str) -> str:
        hidden, text = self._hidden, _text()
        system = USER_SIMULATOR_PROMPT.format(
            scenario=text["user_scenario"].format(title=hidden["title"], surface=hidden["surface"]),
            hidden=hidden["bottom"],
            rules=text["user_rules"],
        )
        reply = self._client.chat(
            [{"role": "system", "content": system}, {"role": "user", "content": question}]
        )
        return normalise_reply(reply)

    def _llm_judge(self, story: str) -> list[float]:
        hidden, text = self._hidden, _text()
        listed = "\n".join(f"{i}. {c['statement']}" for i, c in enumerate(hidden["criteria"], 1))
        prompt = JUDGE_PROMPT.format(
            instructions=text["judge_instructions"],
            reference=text["judge_reference"].format(
                surface=hidden["surface"], bottom=hidden["bottom"], criteria=listed
            ),
            candidate=story,
            answer_format=text["judge_format"],
        )
        verdict = self._client.chat([{"role": "user", "content": prompt}])
        return parse_verdict(verdict, len(hidden["criteria"]))
