"""Persuasion: argue a persona out of a claim it strongly agrees with (UserGym's persuasion environment).

After each message the persona states one of 7 stance levels, from 1 "Strongly agree" to 7 "Strongly
disagree"; a step earns the levels it moved toward disagreement divided by 6. The offline persona takes one
main point from each argument and moves only when that point answers one of its concerns not answered
before, by that concern's strength (1-3 levels). Built-in claims, personas and concerns are package data
(`assets/persuasion/`); UserRL records have no concerns, so the key points of their argument text stand in.
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infopo.envs.actions import format_help, parse_action
from infopo.envs.base import ENVIRONMENTS, StepResult, Task
from infopo.envs.data import create_kwargs, read_asset, read_records
from infopo.envs.llm import (
    USER_SIMULATOR_PROMPT,
    LLMClient,
    SimulatorUnavailable,
    failed_step,
)
from infopo.envs.semantic import STOPWORDS, lexical_similarity, tokens
from infopo.envs.simulated import SimulatedUserEnv

CHOICES = ("action", "answer")  # "action" is the documented move; UserRL's prompt uses "answer"
PROMPTS: dict[str, Any] = read_asset("persuasion/prompts.yaml")
STANCES: tuple[str, ...] = tuple(PROMPTS["stances"])
TOP = len(STANCES)  # "Strongly disagree"
SYSTEM_PROMPT = PROMPTS["system"] + "\n\n" + format_help(CHOICES)

# Similarity of a sentence to a concern kind's arguments (or a UserRL point's sentences) that addresses it.
KIND_THRESHOLDS = {"embedding": 0.6, "lexical": 0.6}
POINT_THRESHOLDS = {"embedding": 0.5, "lexical": 0.3}
TOPIC_THRESHOLD = 0.3  # embedding similarity to the claim that keeps an argument on topic
CUE_WEIGHT = 0.2  # added to a kind's similarity per cue word (at most two) when ranking a sentence's kinds
FLIP_WINDOW = 3  # a flip word this many words before a direction cue reverses it
MAX_SENTENCES = 20  # sentences of one message the offline persona weighs
# UserRL records: levels per point (by number of points); a sentence whose lexical overlap with the claim
# reaches RESTATE_OVERLAP only restates it; a word in more than COMMON_SHARE of a file's arguments (files of
# at least MIN_RECORDS_FOR_COMMON records) is too common to be a point's cue word.
POINT_STRENGTHS = {1: (3,), 2: (3, 3), 3: (3, 2, 1), 4: (2, 2, 1, 1)}
RESTATE_OVERLAP = 0.5
COMMON_SHARE = 0.05
MIN_RECORDS_FOR_COMMON = 20

_WORD = re.compile(r"[a-z0-9]+")
_RAW_WORD = re.compile(r"[A-Za-z0-9'-]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|[;\n]+")
_PARAGRAPH = re.compile(r"\n\s*\n")


def words(text: str) -> list[str]:
    """Lower-cased words in order, "n't" read as "not", plurals stripped ("taxes" -> "tax")."""
    out = []
    for word in _WORD.findall(text.lower().replace("n't", " not").replace("cannot", "can not")):
        if (len(word) > 4 and word.endswith("es") and word[-3] in "sxz") or word.endswith(("ches", "shes")):
            word = word[:-2]
        elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        out.append(word)
    return out


def _word_set(text: str) -> frozenset[str]:
    return frozenset(words(text))


def _without(text: str, drop: frozenset[str]) -> str:
    """`text` without the words whose normal form (see `words`) is in `drop`; other words kept as written."""
    return " ".join(w for w in _RAW_WORD.findall(text) if not set(words(w)) & drop)


def _phrases(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(" ".join(p.split()).replace("-", " ") for p in text.split(sep) if p.strip())


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


HOSTILE = _phrases(PROMPTS["hostile"])
FLIPS = _word_set(PROMPTS["flip"])
QUESTION_WORDS = _word_set(PROMPTS["question_words"])
REFERENCES = _word_set(PROMPTS["references"])
GENERIC_WORDS = _word_set(PROMPTS["generic_words"])
CLOSING = _phrases(PROMPTS["closing_words"], "|")
_HOSTILE = re.compile(r"\b(?:" + "|".join(re.escape(h) for h in HOSTILE) + r")\b")


def _is_question(text: str) -> bool:
    first = words(text)[:1]
    return text.rstrip().endswith("?") or bool(first and first[0] in QUESTION_WORDS)


@dataclass(frozen=True)
class ConcernKind:
    """One kind of concern of the library (concerns.yaml)."""

    name: str
    label: str
    cues: frozenset[str]
    good_cues: frozenset[str]
    bad_cues: frozenset[str]
    good: tuple[str, ...]
    bad: tuple[str, ...]
    worry_against: str
    worry_for: str

    def answers(self, view: str) -> tuple[str, ...]:
        """The arguments that answer a persona for / against the subject on this concern."""
        return self.good if view == "against" else self.bad

    def worry(self, view: str, subject: str) -> str:
        return _sentence_case(
            (self.worry_against if view == "against" else self.worry_for).format(subject=subject)
        )


def _kinds() -> dict[str, ConcernKind]:
    kinds = {}
    for name, spec in read_asset("persuasion/concerns.yaml").items():
        good, bad = _word_set(spec["good_cues"]), _word_set(spec["bad_cues"])
        kinds[name] = ConcernKind(
            name=name,
            label=spec["label"],
            cues=_word_set(spec["cues"]) | good | bad,
            good_cues=good,
            bad_cues=bad,
            good=tuple(spec["good"]),
            bad=tuple(spec["bad"]),
            worry_against=spec["worry_against"],
            worry_for=spec["worry_for"],
        )
    return kinds


KINDS: dict[str, ConcernKind] = _kinds()


KIND_CUES: dict[str, frozenset[str]] = {name: kind.cues for name, kind in KINDS.items()}


def cue_counts(own_words: set[str], cues: dict[str, frozenset[str]]) -> dict[str, int]:
    """How many distinct cue words of each kind (`cues`: kind -> cue words) `own_words` holds; kinds without
    any are left out."""
    counts = {kind: len(kind_cues & own_words) for kind, kind_cues in cues.items()}
    return {kind: n for kind, n in counts.items() if n}


def direction(kind: ConcernKind, sentence_words: list[str], ignore: frozenset[str]) -> int:
    """+1 / -1 when the direction cues of `kind` in a sentence (other than the words in `ignore`) say the
    subject does well / badly, else 0. A flip word shortly before a cue reverses it."""
    total = 0
    for i, word in enumerate(sentence_words):
        if word in ignore:
            continue
        sign = 1 if word in kind.good_cues else -1 if word in kind.bad_cues else 0
        if sign and FLIPS & set(sentence_words[max(0, i - FLIP_WINDOW) : i]):
            sign = -sign
        total += sign
    return (total > 0) - (total < 0)


def carries(argument: str, kind: str, topic: frozenset[str]) -> bool:
    """Whether the cue words of `argument` (topic words aside) point to `kind` at least as much as to any
    other kind."""
    counts = cue_counts(set(words(argument)) - topic, KIND_CUES)
    return counts.get(kind, 0) >= max(counts.values(), default=1)


# -- stance ----------------------------------------------------------------------------------------------
_LABELS = sorted(((s.lower(), i + 1) for i, s in enumerate(STANCES)), key=lambda p: -len(p[0]))
_LABEL = re.compile(
    r"\b(neither agree nor disagree|" + "|".join(re.escape(label) for label, _ in _LABELS) + r")\b"
)
_LEVEL_OF = {label: level for label, level in _LABELS} | {"neither agree nor disagree": (TOP + 1) // 2}
_STANCE_LINE = re.compile(r"stance\b([^\n]*)", re.IGNORECASE)
_DIGIT = re.compile(r"(?<![\d.])([1-7])(?![\d.])")


def parse_stance(text: str) -> int | None:
    """The stance level (1-7) a reply states: the last "Stance: ..." line with a label or a digit 1-7, else
    the one label the reply names (None when it names none, or several different ones)."""
    text = " ".join(text.lower().split("*"))
    for rest in reversed(_STANCE_LINE.findall(text)):
        label = _LABEL.search(rest)
        if label:
            return _LEVEL_OF[label.group(1)]
        digit = _DIGIT.search(rest)
        if digit:
            return int(digit.group(1))
    levels = {_LEVEL_OF[m] for m in _LABEL.findall(" ".join(text.split()))}
    return levels.pop() if len(levels) == 1 else None


def step_reward(before: int, after: int) -> float:
    """Levels moved toward "Strongly disagree" / 6, in [0, 1]; moving back earns 0."""
    return min(1.0, max(0, after - before) / (TOP - 1))


# -- tasks -----------------------------------------------------------------------------------------------
def _persona_line(persona: dict[str, Any] | None) -> str:
    return PROMPTS["persona"].format(**persona) if persona else PROMPTS["anonymous"]


def _make_task(
    task_id: str,
    claim: str,
    subject: str,
    view: str | None,
    persona: dict[str, Any] | None,
    concerns: list[dict[str, Any]],
    topic: set[str],
    argument: str = "",
) -> Task:
    opening = PROMPTS["opening"].format(claim=claim, persona=_persona_line(persona), stance=STANCES[0])
    hidden = {
        "claim": claim,
        "subject": subject,
        "view": view,
        "persona": persona,
        "concerns": concerns,
        "topic": sorted(topic),
        "argument": argument,
    }
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": opening}]
    return Task(task_id=task_id, env="persuasion", messages=messages, hidden=hidden)


def _persona_values(persona: dict[str, Any]) -> dict[str, int]:
    pairs = (item.split(":") for item in persona["values"].split())
    return {kind: int(weight) for kind, weight in pairs}


def _concerns_of(kinds: list[str], values: dict[str, int]) -> list[str]:
    """The claim's kinds the persona values, most valued first (claim order breaks ties), at most four."""
    valued = [k for k in kinds if k in values]
    return sorted(valued, key=lambda k: -values[k])[:4]


def _fits(kinds: list[str], values: dict[str, int]) -> bool:
    concerns = _concerns_of(kinds, values)
    return len(concerns) >= 3 and sum(values[k] for k in concerns) >= TOP - 1


def claim_task(task_id: str, entry: dict[str, Any], view: str, persona: dict[str, Any]) -> Task:
    """The task of `entry`'s claim for or against its subject (`view`), held by `persona` (entries as in
    claims.yaml and personas.yaml): its concerns are the claim's kinds the persona values, at most four."""
    subject, kinds = entry["subject"], entry[view]["concerns"].split()
    values = _persona_values(persona)
    topic = frozenset(words(f"{subject} {entry.get('keywords', '')}")) - STOPWORDS
    concerns = [
        {
            "kind": kind,
            "label": KINDS[kind].label,
            "worry": KINDS[kind].worry(view, subject),
            "strength": values[kind],
            "arguments": [a for a in KINDS[kind].answers(view) if carries(a, kind, topic)],
        }
        for kind in _concerns_of(kinds, values)
    ]
    about = {k: persona[k] for k in ("name", "age", "occupation", "traits")}
    return _make_task(task_id, entry[view]["claim"], subject, view, about, concerns, topic)


def generate_tasks(seed: int = 0, n_test_subjects: int = 25) -> dict[str, list[Task]]:
    """The built-in tasks: both claims of every subject, the subjects split at random by `seed` (so no
    subject is in both splits), each claim held by a persona drawn from those with at least three of the
    claim's concerns worth six levels or more."""
    entries = read_asset("persuasion/claims.yaml")
    personas = read_asset("persuasion/personas.yaml")
    rng = random.Random(seed)
    order = list(range(len(entries)))
    rng.shuffle(order)
    splits = {"test": order[:n_test_subjects], "train": order[n_test_subjects:]}
    tasks: dict[str, list[Task]] = {}
    for split, chosen in splits.items():
        tasks[split] = []
        for index in chosen:
            for view in ("against", "for"):
                kinds = entries[index][view]["concerns"].split()
                fitting = [p for p in personas if _fits(kinds, _persona_values(p))]
                task_id = f"persuasion-{split}-{len(tasks[split]):04d}"
                tasks[split].append(claim_task(task_id, entries[index], view, rng.choice(fitting)))
    return tasks


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _shorten(text: str, n_words: int) -> str:
    parts = text.split()
    return " ".join(parts[:n_words]) + ("..." if len(parts) > n_words else "")


def argument_points(argument: str, claim: str) -> list[list[str]]:
    """The key points of a UserRL argument text, at most four, each a list of sentences: its paragraphs
    when it has three or more, else its sentences in near-equal runs. Left out: a first sentence that states
    the claim (has half its words), sentences that restate it, and a summing-up sentence ("In conclusion,
    ...") with the rest of its paragraph."""
    claim_words = set(words(claim)) - STOPWORDS

    def restates(sentence: str) -> bool:
        return len(words(sentence)) < 4 or lexical_similarity(sentence, claim) >= RESTATE_OVERLAP

    def before_summary(sentences: list[str]) -> list[str]:
        ends = [i for i, s in enumerate(sentences) if s.lower().startswith(CLOSING)]
        return sentences[: ends[0]] if ends else sentences

    paragraphs = [before_summary(_sentences(p)) for p in _PARAGRAPH.split(argument)]
    paragraphs = [p for p in paragraphs if p]
    if paragraphs and len(claim_words & set(words(paragraphs[0][0]))) * 2 >= len(claim_words):
        paragraphs[0] = paragraphs[0][1:]  # the thesis sentence
    paragraphs = [kept for p in paragraphs if (kept := [s for s in p if not restates(s)])]
    if len(paragraphs) >= 3:
        return paragraphs[:4]
    flat = [s for p in paragraphs for s in p]
    n = min(4, len(flat))
    return [flat[i * len(flat) // n : (i + 1) * len(flat) // n] for i in range(n)]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _record_fields(record: dict[str, Any]) -> tuple[str, str, str]:
    """(id, claim, argument) of a UserRL record (verl row or plain JSON); the id falls back to a slug of the
    claim and a checksum of the argument."""
    meta = {**record, **create_kwargs(record), **(record.get("reward_model") or {})}
    claim = str(meta.get("claim") or meta.get("ground_truth") or "").strip()
    argument = str(meta.get("argument") or "")
    task_id = str(meta.get("id") or f"{_slug(claim)}-{zlib.crc32(argument.encode()):08x}")
    return task_id, claim, argument


def _record_task(task_id: str, claim: str, argument: str, common: frozenset[str]) -> Task:
    """A task whose concerns are the key points of `argument`. A point's cue words are its own words that no
    other point has and that are not `common` (frequent across the file's arguments)."""
    topic = frozenset(words(claim)) - GENERIC_WORDS - STOPWORDS
    points = argument_points(argument, claim)
    vocab = [set(words(" ".join(p))) - STOPWORDS - GENERIC_WORDS - topic - common for p in points]
    concerns = []
    for i, (sentences, strength) in enumerate(
        zip(points, POINT_STRENGTHS.get(len(points), ()), strict=False)
    ):
        main = max(sentences, key=lambda s: len(tokens(s)))
        others = set().union(*(v for j, v in enumerate(vocab) if j != i))
        concerns.append(
            {
                "kind": f"point-{i + 1}",
                "label": f'"{_shorten(main, 8)}"',
                "worry": _shorten(main, 40),
                "strength": strength,
                "arguments": sentences,
                "cues": sorted(w for w in vocab[i] - others if len(w) >= 3 and not w.isdigit()),
            }
        )
    return _make_task(
        task_id, claim, f'the claim "{claim.rstrip(".")}"', None, None, concerns, set(topic), argument
    )


# -- environment -----------------------------------------------------------------------------------------
@dataclass
class _Point:
    """What one argument is mainly about: a concern kind (or UserRL point), how many sentences make it,
    their summed match score and direction (+ the subject does well, - badly), and how many kinds the
    argument touched."""

    kind: str
    sentences: int = 0
    score: float = 0.0
    direction: int = 0
    touched: int = 0


@ENVIRONMENTS.register("persuasion")
class PersuasionEnv(SimulatedUserEnv):
    """Persuade a persona to disagree with a claim; step reward = stance levels gained / 6."""

    score_mode = "sum"

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        tasks = generate_tasks()
        if split not in tasks:
            raise ValueError(f"persuasion has splits 'train' and 'test', not {split!r}")
        return tasks[split]

    @classmethod
    def read_tasks(cls, path: Path) -> list[Task]:
        """Tasks from UserRL's verl `persuasion_train.parquet` (or JSON records with `claim`, `argument`
        and `id`); the concerns are the key points of each record's argument text."""
        path = Path(path)
        fields = [_record_fields(record) for record in read_records(path)]
        if any(not claim for _, claim, _ in fields):
            raise ValueError(f"{path}: a persuasion record without a claim")
        counts = Counter(w for _, _, argument in fields for w in set(words(argument)))
        common = frozenset(w for w, n in counts.items() if n > COMMON_SHARE * len(fields))
        if len(fields) < MIN_RECORDS_FOR_COMMON:
            common = frozenset()
        return [_record_task(*f, common) for f in fields]

    # -- episode ---------------------------------------------------------------------------------------
    @property
    def _hidden(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        return self.task.hidden

    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.turns = 0
        self.level = 1
        self.addressed: set[str] = set()
        self.said: set[str] = set()
        self.history: list[dict[str, str]] = []
        self._seed = zlib.crc32(task.task_id.encode())  # picks reply variants
        hidden = task.hidden
        self._topic = frozenset(hidden["topic"])
        self._strip = self._topic  # words that are no evidence of a concern
        if hidden["view"] is None:  # UserRL points: match the point sentences themselves
            self._strip = self._topic | frozenset(words(hidden["claim"]))
            self._candidates = [
                (_without(s, self._strip), c["kind"]) for c in hidden["concerns"] for s in c["arguments"]
            ]
            self._cues = {c["kind"]: frozenset(c["cues"]) for c in hidden["concerns"]}
            self._related = frozenset().union(*self._cues.values())  # a point's own words keep it on topic
        else:
            self._candidates = [(text, k.name) for k in KINDS.values() for text in (*k.good, *k.bad)]
            self._cues = KIND_CUES
            self._related = frozenset()
        return [dict(m) for m in task.messages]

    def step(self, action: str) -> StepResult:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        before = self.level
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True, **self._state()})
        try:
            if self.client is None:
                feedback, moved_by = self._offline_reply(parsed.content)
            else:
                feedback, moved_by = self._llm_reply(parsed.content), None
        except SimulatorUnavailable as err:
            return failed_step(str(err))
        info = {**self._state(), "moved_by": moved_by}
        return StepResult(feedback, step_reward(before, self.level), out_of_turns or self.level == TOP, info)

    def _state(self) -> dict[str, Any]:
        return {"stance": self.level, "stance_label": STANCES[self.level - 1], "success": self.level == TOP}

    # -- offline persona -------------------------------------------------------------------------------
    def _variant(self, key: str) -> str:
        options = PROMPTS["replies"][key]
        if isinstance(options, str):
            return options
        return options[(self.turns + self._seed) % len(options)]

    def _on_topic(self, text: str) -> bool:
        """Whether `text` names the topic (a subject or keyword word), refers back to it ("it", "this"),
        or (embeddings) is close to the claim."""
        if set(words(text)) & (self._topic | self._related | REFERENCES):
            return True
        return self.matcher.backend == "embedding" and (
            self.matcher.similarity(text, self._hidden["claim"]) >= TOPIC_THRESHOLD
        )

    def main_point(self, text: str) -> _Point | None:
        """The concern kind (or UserRL point) that most sentences of `text` are about, or None."""
        library = self._hidden["view"] is not None
        thresholds = KIND_THRESHOLDS if library else POINT_THRESHOLDS
        threshold = thresholds[self.matcher.backend]
        texts = [c[0] for c in self._candidates]
        found: dict[str, _Point] = {}
        for sentence in _sentences(text)[:MAX_SENTENCES]:
            sentence_words = words(sentence)
            stripped = _without(sentence, self._strip)
            own_words = set(sentence_words) - self._strip
            cues = cue_counts(own_words, self._cues)
            weighable = len(tokens(stripped)) >= 2  # one word besides the topic is too little to compare
            if not (cues or weighable):
                continue
            best: dict[str, float] = {}
            for (_, kind), score in zip(
                self._candidates, self.matcher.similarities(stripped, texts), strict=True
            ):
                best[kind] = max(best.get(kind, -1.0), score)
            ranked = [
                (score + CUE_WEIGHT * min(cues.get(kind, 0), 2), kind)
                for kind, score in best.items()
                if kind in cues or (weighable and score >= threshold)
            ]
            if not ranked:
                continue
            score, kind = max(ranked)
            sign = direction(KINDS[kind], sentence_words, self._strip) if library else 0
            point = found.setdefault(kind, _Point(kind))
            point.sentences += 1
            point.score += score
            point.direction += sign
        if not found:
            return None
        main = max(found.values(), key=lambda p: (p.sentences, p.score))
        main.touched = len(found)
        return main

    def _offline_reply(self, text: str) -> tuple[str, str | None]:
        """The persona's reply to `text` and the concern that moved it (None when it did not move)."""
        hidden = self._hidden
        normal = " ".join(words(text))
        repeated = normal in self.said
        self.said.add(normal)
        if _HOSTILE.search(" ".join(_WORD.findall(text.lower()))):
            return self._compose(self._variant("hostile")), None
        if repeated:
            return self._compose(self._variant("repeated_text")), None
        point = self.main_point(text)
        if point is None and _is_question(text):
            return self._answer_question(), None
        if not self._on_topic(text):
            return self._compose(self._variant("off_topic").format(subject=hidden["subject"])), None
        if point is None:
            return self._compose(self._variant("unmatched")), None
        concern = next((c for c in hidden["concerns"] if c["kind"] == point.kind), None)
        if concern is None:
            return self._compose(self._variant("not_mine").format(label=KINDS[point.kind].label)), None
        wanted = {"against": 1, "for": -1}.get(hidden["view"], 0)
        if wanted and point.direction == -wanted:
            return self._compose(self._variant("agrees").format(label=concern["label"])), None
        if point.kind in self.addressed:
            return self._compose(self._variant("repeated").format(label=concern["label"])), None
        self.addressed.add(point.kind)
        self.level = min(TOP, self.level + int(concern["strength"]))
        reaction = self._variant("moved_main" if point.touched > 1 else "moved").format(
            label=concern["label"]
        )
        return self._compose(reaction), point.kind

    def _compose(self, reaction: str) -> str:
        if self.level == TOP:
            return f"{reaction} {self._variant('convinced')} {self._stance_line()}"
        remaining = [c for c in self._hidden["concerns"] if c["kind"] not in self.addressed]
        if remaining:
            tail = self._variant("remaining").format(worry=remaining[0]["worry"])
        else:
            tail = self._variant("settled")
        return f"{reaction} {self._stance_line()} {tail}"

    def _stance_line(self) -> str:
        return self._variant("stance").format(stance=STANCES[self.level - 1])

    def _answer_question(self) -> str:
        remaining = [c["label"] for c in self._hidden["concerns"] if c["kind"] not in self.addressed]
        if not remaining:
            return f"{self._variant('question_none')} {self._stance_line()}"
        listed = ", then ".join(remaining)
        return f"{self._variant('question_intro').format(concerns=listed)} {self._stance_line()}"

    # -- LLM persona -----------------------------------------------------------------------------------
    @property
    def _client(self) -> LLMClient:
        if self.client is None:
            raise RuntimeError("the LLM client is only used in simulator='llm' mode")
        return self.client

    def simulator_prompt(self) -> str:
        """The LLM persona's system prompt: persona, claim, concerns and the stance-reporting rule."""
        hidden = self._hidden
        llm = PROMPTS["llm"]
        listed = "\n".join(llm["concern"].format(**c) for c in hidden["concerns"])
        if hidden["view"] is None:
            known = llm["points"].format(concerns=listed, argument=hidden["argument"])
        else:
            known = llm["concerns"].format(concerns=listed)
        return USER_SIMULATOR_PROMPT.format(
            scenario=llm["scenario"].format(persona=_persona_line(hidden["persona"]), claim=hidden["claim"]),
            hidden=known,
            rules=llm["rules"].format(stances=" / ".join(STANCES)),
        )

    def _llm_reply(self, text: str) -> str:
        """The LLM persona's reply; its stated stance becomes the level. A reply without one is asked once
        more for it; SimulatorUnavailable when the second reply has none either."""
        system = {"role": "system", "content": self.simulator_prompt()}
        self.history.append({"role": "user", "content": text})
        reply = self._client.chat([system, *self.history])
        self.history.append({"role": "assistant", "content": reply})
        level = parse_stance(reply)
        if level is None:
            ask = PROMPTS["replies"]["ask_stance"].format(stances=" / ".join(STANCES))
            self.history.append({"role": "user", "content": ask})
            again = self._client.chat([system, *self.history])
            self.history.append({"role": "assistant", "content": again})
            level = parse_stance(again)
            if level is None:
                raise SimulatorUnavailable(f"the persona's reply states no stance: {again[:200]!r}")
            reply = f"{reply}\n{again}"
        self.level = level
        return reply
