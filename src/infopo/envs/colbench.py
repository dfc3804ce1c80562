"""ColBench backend programming: write a Python function with a user who knows the hidden reference.

The agent asks the user questions (choice "action") for at most `max_turns` turns and answers with the
code, after the marker `I WANT TO ANSWER:` or as choice "answer". The answer ends the episode with one
terminal reward: the fraction of the hidden test calls for which the agent's function returns the same
value as the reference (both run in the sandbox of `infopo.sandbox`, the reference once per task and
process). The offline user answers from the sentences (or, when the hidden information is code, the
statements) of the hidden information that match the question, in at most two sentences and 400 characters.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import textwrap
import threading
import tokenize
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

from infopo.envs.actions import format_help, parse_action, strip_reasoning
from infopo.envs.base import ENVIRONMENTS, StepResult, Task
from infopo.envs.data import read_asset, read_records
from infopo.envs.llm import (
    USER_SIMULATOR_PROMPT,
    LLMConfig,
    SimulatorUnavailable,
    failed_step,
)
from infopo.envs.semantic import SemanticMatcher, lexical_similarity
from infopo.envs.simulated import SimulatedUserEnv
from infopo.sandbox import CallOutcome, Limits, reprs_match, run_calls

CHOICES = ("action", "answer")
ANSWER_MARKER = re.compile(r"I\s+WANT\s+TO\s+ANSWER\s*:", re.IGNORECASE)
RELEVANCE = {"embedding": 0.3, "lexical": 0.15}  # least relevance of a fact the user mentions
LEXICAL_WEIGHT = 0.5  # with embeddings, relevance = cosine + LEXICAL_WEIGHT * word overlap
MAX_FACTS = 2
MAX_REPLY_CHARS = 400
TEXT: dict[str, str] = read_asset("colbench/prompts.yaml")
SYSTEM_PROMPT = TEXT["system"] + "\n\n" + format_help(CHOICES)

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CODE_WORDS = (  # code to words, for matching questions against code facts
    ("== 0", " is zero empty "),
    ("==", " is "),
    ("!=", " is not "),
    (">=", " at least "),
    ("<=", " at most "),
    ("len(", " length number "),
    ("[]", " empty list "),
    ("round(", " rounded "),
)


# -- hidden information ---------------------------------------------------------------------------------
def sentences(text: str) -> list[str]:
    """The sentences of a prose text (split after . ! ? followed by white space)."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _is_code(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.ClassDef)) for node in tree.body)


def _logical_lines(source: str) -> list[tuple[int, str, str]]:
    """(column, comment above it, statement text) for each logical line of `source`, white space collapsed."""
    lines = source.splitlines()
    out: list[tuple[int, str, str]] = []
    comments: list[str] = []
    start: tuple[int, int] | None = None
    end: tuple[int, int] = (0, 0)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments.append(tok.string.lstrip("#").strip())
        elif tok.type == tokenize.NEWLINE and start is not None:
            rows = lines[start[0] - 1 : end[0]]
            rows[-1] = rows[-1][: end[1]]
            rows[0] = rows[0][start[1] :]
            out.append((start[1], " ".join(comments), " ".join(" ".join(rows).split())))
            comments, start = [], None
        elif tok.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            start = start or tok.start
            end = tok.end
    return out


def _inline_body(definition: str) -> list[str]:
    """The statements of a one-line `def f(...): a; b` (none for a block header)."""
    if definition.endswith(":"):
        return []
    try:
        function = ast.parse(definition).body[0]
    except (SyntaxError, ValueError, RecursionError, MemoryError, IndexError):
        return [definition]
    body = getattr(function, "body", [])
    return [ast.get_source_segment(definition, statement) or "" for statement in body]


def code_facts(source: str) -> list[str]:
    """The statements of reference code as facts: a block header joined with its first line, the comment
    above a statement in front of it; top-level `def` lines (the signature) left out."""
    try:
        lines = _logical_lines(source)
    except (tokenize.TokenError, SyntaxError):
        lines = [(0, "", " ".join(line.split())) for line in source.splitlines() if line.strip()]
    facts = []
    i = 0
    while i < len(lines):
        column, comment, text = lines[i]
        i += 1
        if column == 0 and text.startswith("def "):
            facts.extend(f"`{statement}`" for statement in _inline_body(text))
            continue
        if text.endswith(":") and i < len(lines):
            _, more, body = lines[i]
            text, comment, i = f"{text} {body}", " ".join(filter(None, (comment, more))), i + 1
        facts.append(f"{comment}: `{text}`" if comment else f"`{text}`")
    return facts


def _matching_text(fact: str) -> str:
    """A fact as words, for matching questions against code."""
    for symbol, words in _CODE_WORDS:
        fact = fact.replace(symbol, words)
    return " ".join(re.sub(r"[_\W]+", " ", fact).split())


def limit_reply(text: str, max_sentences: int = MAX_FACTS, max_chars: int = MAX_REPLY_CHARS) -> str:
    """The first `max_sentences` sentences of `text`, cut to `max_chars` characters at a word boundary."""
    text = " ".join(sentences(text)[:max_sentences])
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 3].rsplit(" ", 1)[0]
    return (cut or text[: max_chars - 3]) + "..."


# -- the answer -----------------------------------------------------------------------------------------
def extract_code(answer: str) -> str:
    """The code of an answer: its fenced blocks joined (an unclosed fence runs to the end), else the text."""
    blocks = _FENCE.findall(answer)
    code = "\n\n".join(blocks) if blocks else answer
    return textwrap.dedent(code).strip()


def syntax_error(code: str) -> str | None:
    """Why `code` does not parse as Python, or None."""
    try:
        ast.parse(code)
    except SyntaxError as err:
        return f"SyntaxError: {err.msg} (line {err.lineno})"
    except (ValueError, RecursionError, MemoryError, OverflowError) as err:
        return f"{type(err).__name__}: {str(err)[:200]}"
    return None


_reference_lock = threading.Lock()
_reference_runs: OrderedDict[str, tuple[CallOutcome, ...]] = OrderedDict()
_REFERENCE_CACHE = 4096


def reference_outcomes(reference: str, tests: list[str], limits: Limits) -> tuple[CallOutcome, ...]:
    """The reference's outcomes on `tests`, run once per process and cached (unless the run was cut short)."""
    key = hashlib.sha256(json.dumps([reference, tests, limits.as_dict()]).encode()).hexdigest()
    with _reference_lock:
        if key in _reference_runs:
            _reference_runs.move_to_end(key)
            return _reference_runs[key]
    run = run_calls(reference, tests, limits)
    if run.status != "ok":
        return run.calls
    outcomes = run.calls
    with _reference_lock:
        _reference_runs[key] = outcomes
        while len(_reference_runs) > _REFERENCE_CACHE:
            _reference_runs.popitem(last=False)
    return outcomes


def score_code(
    code: str, reference: str, tests: list[str], limits: Limits
) -> tuple[float, str, dict[str, Any]]:
    """(score, feedback, info) of the agent's code: the fraction of tests whose value matches the
    reference's (a test the reference fails on counts as failed)."""
    if not code:
        return 0.0, TEXT["no_code"], {"success": False, "passed": 0, "total": len(tests), "status": "no_code"}
    error = syntax_error(code)
    if error is not None:
        feedback = TEXT["syntax_error"].format(error=error)
        return 0.0, feedback, {"success": False, "passed": 0, "total": len(tests), "status": "syntax_error"}
    expected = reference_outcomes(reference, tests, limits)
    run = run_calls(code, tests, limits)
    passed = [
        want.ok and got.ok and reprs_match(want.value or "", got.value or "")
        for want, got in zip(expected, run.calls, strict=True)
    ]
    score = sum(passed) / len(tests) if tests else 0.0
    notes = [TEXT["score"].format(passed=sum(passed), total=len(tests), score=round(score, 3))]
    if run.load_error:
        notes.append(TEXT["load_error"].format(error=run.load_error))
    if run.status != "ok":
        notes.append(TEXT["run_stopped"].format(detail=run.detail))
    failures = {
        i: f"reference failed: {want.error}" if not want.ok else got.error or "different value"
        for i, (want, got, ok) in enumerate(zip(expected, run.calls, passed, strict=True))
        if not ok
    }
    info = {
        "success": bool(tests) and all(passed),
        "passed": sum(passed),
        "total": len(tests),
        "tests": passed,
        "failures": failures,
        "status": run.status,
    }
    return score, " ".join(notes), info


# -- tasks ----------------------------------------------------------------------------------------------
def make_task(task_id: str, problem: str, hidden: str, reference: str, tests: list[str]) -> Task:
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": TEXT["opening"].format(problem=problem)},
    ]
    info = {"problem": problem, "hidden_information": hidden, "reference": reference, "tests": list(tests)}
    return Task(task_id=task_id, env="colbench", messages=messages, hidden=info)


def _builtin(record: dict[str, Any]) -> Task:
    problem = TEXT["signature"].format(
        description=record["description"].strip(), signature=record["signature"]
    )
    return make_task(
        f"colbench-{record['id']}", problem, record["hidden"], record["reference"], record["tests"]
    )


def _tests_of(record: dict[str, Any]) -> list[str]:
    tests = record.get("test_cases") or record.get("tests") or []
    if isinstance(tests, str):
        tests = json.loads(tests)
    values = tests.values() if isinstance(tests, dict) else tests
    return [str(t) for t in values]


def _record_id(record: dict[str, Any]) -> str:
    for key in ("task_id", "id"):
        if record.get(key) not in (None, ""):
            return f"colbench-{record[key]}"
    digest = hashlib.sha1(str(record["problem_description"]).encode()).hexdigest()[:12]
    return f"colbench-{digest}"


@ENVIRONMENTS.register("colbench")
class ColBenchEnv(SimulatedUserEnv):
    """Collaborative backend coding; one terminal reward in [0, 1], the hidden-test pass rate."""

    score_mode = "sum"
    metric_family = "colbench"  # average correctness and % fully correct

    def __init__(
        self,
        *,
        max_turns: int = 10,
        simulator: Literal["offline", "llm"] = "offline",
        llm: LLMConfig | None = None,
        matcher: SemanticMatcher | None = None,
        max_chars: int = 8000,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(
            max_turns=max_turns, simulator=simulator, llm=llm, matcher=matcher, max_chars=max_chars
        )
        self.limits = limits or Limits()

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        """The project's own functions (assets/colbench/{train,test}.yaml)."""
        if split not in ("train", "test"):
            raise ValueError(f"colbench has splits 'train' and 'test', not {split!r}")
        return [_builtin(record) for record in read_asset(f"colbench/{split}.yaml")]

    @classmethod
    def read_tasks(cls, path: Path) -> list[Task]:
        """Tasks from a ColBench backend file (JSON lines or JSON: problem_description, hidden_information,
        ground_truth, test_cases); ids from the record's id, else a hash of the problem description."""
        return [
            make_task(
                _record_id(r),
                str(r["problem_description"]),
                str(r.get("hidden_information") or r["ground_truth"]),
                str(r["ground_truth"]),
                _tests_of(r),
            )
            for r in read_records(path)
        ]

    # -- episode ---------------------------------------------------------------------------------------
    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.turns = 0
        self.history: list[dict[str, str]] = []
        hidden = task.hidden["hidden_information"]
        self.code_hidden = _is_code(hidden)
        self.facts = code_facts(hidden) if self.code_hidden else sentences(hidden)
        return [dict(m) for m in task.messages]

    def step(self, action: str) -> StepResult:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        text = strip_reasoning(action) if isinstance(action, str) else action
        marker = ANSWER_MARKER.search(text) if isinstance(text, str) else None
        if marker is not None:
            content = text[marker.end() :].strip()
            if len(content) > self.max_chars:
                return StepResult(
                    f"[invalid action] The answer is {len(content)} characters long; the limit is "
                    f"{self.max_chars}.",
                    0.0,
                    out_of_turns,
                    {"invalid": True},
                )
            return self._answer(content)
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True})
        if parsed.choice == "answer":
            return self._answer(parsed.content)
        try:
            reply = self._reply(parsed.content)
        except SimulatorUnavailable as err:
            return failed_step(str(err))
        return StepResult(reply, 0.0, out_of_turns, {})

    def _answer(self, content: str) -> StepResult:
        hidden = self.task.hidden  # type: ignore[union-attr]
        marker = ANSWER_MARKER.match(content)
        code = extract_code(content[marker.end() :] if marker else content)
        score, feedback, info = score_code(code, hidden["reference"], hidden["tests"], self.limits)
        return StepResult(feedback, score, True, info)

    # -- the user --------------------------------------------------------------------------------------
    def offline_reply(self, question: str) -> str:
        """The facts of the hidden information relevant to `question` (at most two, in their order), or
        "I don't know."."""
        if not self.facts:
            return TEXT["dont_know"]
        texts = [_matching_text(f) for f in self.facts]
        scores = self.matcher.similarities(question, texts)
        if self.matcher.backend == "embedding":
            overlap = [lexical_similarity(question, t) for t in texts]
            scores = [s + LEXICAL_WEIGHT * o for s, o in zip(scores, overlap, strict=True)]
        threshold = RELEVANCE[self.matcher.backend]
        best = sorted(range(len(scores)), key=lambda i: -scores[i])[:MAX_FACTS]
        chosen = sorted(i for i in best if scores[i] >= threshold)
        if not chosen:
            return TEXT["dont_know"]
        facts = [self.facts[i] for i in chosen]
        reply = self._render(facts)
        if len(reply) > MAX_REPLY_CHARS and len(facts) > 1:
            reply = self._render([self.facts[best[0]]])
        if len(reply) > MAX_REPLY_CHARS:
            reply = reply[: MAX_REPLY_CHARS - 3].rsplit(" ", 1)[0] + "..."
        return reply

    def _render(self, facts: list[str]) -> str:
        return TEXT["code_reply"].format(facts="; ".join(facts)) if self.code_hidden else " ".join(facts)

    def _reply(self, message: str) -> str:
        if self.client is None:
            return self.offline_reply(message)
        hidden = self.task.hidden  # type: ignore[union-attr]
        system = USER_SIMULATOR_PROMPT.format(
            scenario=TEXT["llm_scenario"].format(problem=hidden["problem"]),
            hidden=hidden["hidden_information"],
            rules=TEXT["llm_rules"],
        )
        self.history.append({"role": "user", "content": message})
        reply = limit_reply(self.client.chat([{"role": "system", "content": system}, *self.history]))
        self.history.append({"role": "assistant", "content": reply})
        return reply
