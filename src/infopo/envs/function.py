"""`function`: infer a hidden 4-argument arithmetic rule f(a, b, c, d) by probing it, then apply it.

The agent probes with choice "action" (`f(1, 2, 3, 4)`, `1, 2, 3, 4` or `1 2 3 4`: four integers) and the
environment replies with the rule's exact value; choice "search" with content "test" repeats the test case
(the UserRL convention); choice "answer" gives the value of the rule on the test case: reward 1 and the end of
the episode when it is exact (up to 1e-6 relative, so decimals of repeating fractions count), else 0 and the
episode goes on. Rules are data: a rule string is parsed with `ast` into a small tree of +, -, *, /, **,
unary minus, the variables a-d and numeric constants, and evaluated exactly with fractions. Nothing the agent
or a data file writes is ever executed. The agent's prompts are in `assets/function/prompts.yaml`.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

from infopo.envs.actions import FORMAT_HELP, parse_action
from infopo.envs.base import ENVIRONMENTS, Environment, StepResult, Task, split_tasks
from infopo.envs.data import read_asset, read_records
from infopo.envs.llm import LLMConfig, SimulatorUnavailable, failed_step, simulator_client

VARIABLES = ("a", "b", "c", "d")
MAX_RULE_CHARS = 200
MAX_RULE_NODES = 64
MAX_PROBE = 10**6
MAX_EXPONENT = 64
MAX_BITS = 4096
TOLERANCE = Fraction(1, 10**6)
TRAIN_SIZE = 200
TEST_SIZE = 50
GENERATOR_SEED = 20240611

# A rule tree: a variable name, a Fraction constant, ("neg", x) or (op, left, right) with op in _BINARY.
Node = Any
_BINARY: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?")
_PROBE = re.compile(r"^\s*(?:f\s*)?\(?\s*(.*?)\s*\)?\s*$", re.DOTALL | re.IGNORECASE)
_PROMPTS = read_asset("function/prompts.yaml")  # what the agent is shown: system prompt, opening message


class RuleError(ValueError):
    """A rule string that is not plain arithmetic on a, b, c, d and numeric constants."""


class EvaluationError(ArithmeticError):
    """The rule has no exact value at these inputs (division by zero, fractional power, too large)."""


def parse_rule(source: str) -> Node:
    """Parse `source` (e.g. "(a + b) * c ** 2 - d") into a rule tree; raises RuleError for anything else."""
    if not isinstance(source, str) or not source.strip():
        raise RuleError("a rule must be a non-empty string")
    if len(source) > MAX_RULE_CHARS:
        raise RuleError(f"a rule may have at most {MAX_RULE_CHARS} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise RuleError(f"not an arithmetic expression: {error}") from None
    if sum(1 for _ in ast.walk(tree)) > 3 * MAX_RULE_NODES:
        raise RuleError(f"a rule may have at most {MAX_RULE_NODES} operations and operands")
    return _convert(tree.body)


def _convert(node: ast.AST) -> Node:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return (_BINARY[type(node.op)], _convert(node.left), _convert(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return ("neg", _convert(node.operand))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return _convert(node.operand)
    if isinstance(node, ast.Name) and node.id in VARIABLES:
        return node.id
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if node.value != node.value or abs(node.value) == float("inf"):
            raise RuleError("constants must be finite numbers")
        return Fraction(node.value) if isinstance(node.value, int) else Fraction(repr(node.value))
    name = node.id if isinstance(node, ast.Name) else type(node).__name__
    raise RuleError(f"{name!r} is not allowed: only + - * / ** on a, b, c, d and numeric constants")


def evaluate(tree: Node, args: Sequence[int | Fraction]) -> Fraction:
    """The exact value of `tree` at (a, b, c, d) = `args`; raises EvaluationError where it has none."""
    return _evaluate(tree, dict(zip(VARIABLES, (Fraction(x) for x in args), strict=True)))


def _evaluate(node: Node, env: dict[str, Fraction]) -> Fraction:
    if isinstance(node, str):
        return env[node]
    if isinstance(node, Fraction):
        return node
    if node[0] == "neg":
        return -_evaluate(node[1], env)
    op, left, right = node[0], _evaluate(node[1], env), _evaluate(node[2], env)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        if right == 0:
            raise EvaluationError("division by zero")
        return left / right
    return _power(left, right)


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise EvaluationError("a fractional power has no exact value")
    if base == 0 and exponent < 0:
        raise EvaluationError("division by zero")
    if base in (0, 1):
        return base
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if abs(exponent) > MAX_EXPONENT or size * abs(exponent) > MAX_BITS:
        raise EvaluationError("the value is too large; try smaller inputs")
    return base ** int(exponent)


def render(tree: Node) -> str:
    """Canonical source of a rule tree; parse_rule(render(t)) == t."""
    return _render(tree)[0]


def _render(node: Node) -> tuple[str, int]:
    if isinstance(node, str):
        return node, 5
    if isinstance(node, Fraction):  # parse_rule makes only non-negative constants, from ints or floats
        return (str(node) if node.denominator == 1 else repr(float(node))), 5
    if node[0] == "neg":
        text, prec = _render(node[1])
        return "-" + (text if prec > 3 else f"({text})"), 3
    op, (left, lp), (right, rp) = node[0], _render(node[1]), _render(node[2])
    p = _PRECEDENCE[op]
    if lp < p or (op == "**" and lp <= p):
        left = f"({left})"
    if rp <= p and not (op == "**" and rp == p):
        right = f"({right})"
    return f"{left} {op} {right}", p


def format_value(value: Fraction) -> str:
    """An exact value as text: "12", "-3/4 (≈ -0.75)"."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value} (≈ {float(value):.6g})"


def parse_probe(content: str) -> tuple[int, ...] | str:
    """Four integers from `f(1, 2, 3, 4)`, `1, 2, 3, 4` or `1 2 3 4`; explanatory feedback otherwise."""
    match = _PROBE.match(content)
    tokens = [t for t in re.split(r"[\s,;]+", match.group(1) if match else "") if t]
    if len(tokens) != 4 or not all(re.fullmatch(r"[+-]?\d{1,7}", t) for t in tokens):
        return (
            "Probe the rule with exactly four integers, e.g. `f(1, 2, 3, 4)` or `1 2 3 4`; "
            f"got {content[:80]!r}."
        )
    values = tuple(int(t) for t in tokens)
    if any(abs(v) > MAX_PROBE for v in values):
        return f"Each input must lie between -{MAX_PROBE} and {MAX_PROBE}."
    return values


def parse_number(content: str) -> Fraction | None:
    """The last number in `content` ("225", "-2.5", "7/3", "f(...) = 12"), or None."""
    found = _NUMBER.findall(content)
    if not found:
        return None
    text = found[-1].replace(" ", "")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def is_correct(given: Fraction, expected: Fraction) -> bool:
    """Exact, up to 1e-6 relative (so a rounded decimal of a repeating fraction counts)."""
    return abs(given - expected) <= TOLERANCE * max(1, abs(expected))


def make_task(task_id: str, rule: str, test_case: Sequence[int]) -> Task:
    """A task with the project's prompt for `rule` and `test_case`; raises RuleError/EvaluationError."""
    answer = evaluate(parse_rule(rule), test_case)
    system = _PROMPTS["system"] + "\n\n" + FORMAT_HELP
    user = _PROMPTS["opening"].format(args=", ".join(str(x) for x in test_case))
    return Task(
        task_id=task_id,
        env="function",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        hidden={"rule": rule, "test_case": [int(x) for x in test_case], "answer": str(answer)},
    )


def _random_rule(rng: random.Random) -> Node:
    leaves: list[Node] = list(VARIABLES)
    rng.shuffle(leaves)
    if rng.random() < 0.35:
        i = rng.randrange(4)
        leaves[i] = ("**", leaves[i], Fraction(2))
    if rng.random() < 0.25:
        i = rng.randrange(4)
        leaves[i] = (rng.choice("+-*"), leaves[i], Fraction(rng.randint(2, 9)))
    while len(leaves) > 1:
        i = rng.randrange(len(leaves) - 1)
        op = rng.choices("+-*/", weights=(4, 4, 4, 1))[0]
        leaves[i : i + 2] = [(op, leaves[i], leaves[i + 1])]
    return leaves[0]


def generate_tasks(n: int, seed: int = GENERATOR_SEED, prefix: str = "function") -> list[Task]:
    """`n` tasks with pairwise different rules (different values on fixed probe points), deterministic."""
    rng = random.Random(seed)
    probes = [tuple(rng.randint(-9, 9) for _ in range(4)) for _ in range(6)]
    seen: set[tuple[Fraction | None, ...]] = set()
    tasks: list[Task] = []
    while len(tasks) < n:
        tree = _random_rule(rng)
        fingerprint = tuple(_value_or_none(tree, p) for p in probes)
        test_case = [rng.randint(1, 10) for _ in range(4)]
        value = _value_or_none(tree, test_case)
        if fingerprint in seen or value is None or value.denominator != 1:
            continue
        seen.add(fingerprint)
        tasks.append(make_task(f"{prefix}-{len(tasks):04d}", render(tree), test_case))
    return tasks


def _value_or_none(tree: Node, args: Sequence[int]) -> Fraction | None:
    try:
        return evaluate(tree, args)
    except EvaluationError:
        return None


def to_userrl(task: Task) -> dict[str, Any]:
    """The task as a UserRL `functions.json` record."""
    hidden = task.hidden
    return {
        "id": task.task_id,
        "rule": hidden["rule"],
        "test_case": list(hidden["test_case"]),
        "expected_result": float(Fraction(hidden["answer"])),
    }


def _from_function_record(record: dict[str, Any]) -> Task:
    task = make_task(str(record["id"]), str(record["rule"]), record["test_case"])
    if not is_correct(Fraction(repr(float(record["expected_result"]))), Fraction(task.hidden["answer"])):
        raise ValueError(f"{record['id']}: expected_result disagrees with the rule {record['rule']!r}")
    return task


_HOST_PROMPT = (
    "You host a number-guessing game. The secret rule is f(a, b, c, d) = {rule}. The player sends you "
    "messages to learn about the rule. Answer in one short sentence with the rule's output for the four "
    "inputs the player names; when an exact output is supplied below, report exactly that value. If the "
    "message names no four inputs, ask for four integers. Never state, paraphrase or hint at the formula."
)


@ENVIRONMENTS.register("function")
class FunctionEnv(Environment):
    """One episode of the function game; see the module docstring for the rules."""

    score_mode: ClassVar[Literal["sum", "final"]] = "sum"

    @classmethod
    def ground_truth(cls, task: Task) -> str | None:
        """The rule's value on the test case (the content of the winning `answer`)."""
        return format_value(Fraction(task.hidden["answer"]))

    @classmethod
    def builtin_tasks(cls, split: str) -> list[Task]:
        """The built-in generated set: 200 train / 50 test tasks, no rule shared between them."""
        return split_tasks(generate_tasks(TRAIN_SIZE + TEST_SIZE), split, TRAIN_SIZE, "function")

    @classmethod
    def read_tasks(cls, path: Path) -> list[Task]:
        """Tasks from UserRL's `functions.json` (our prompt) or a verl parquet (`function_train.parquet`),
        with the records' ids (`func-12`: the same item has the same id in both).

        A parquet row names its rule by id only, so the rules come from `functions.json` beside the parquet;
        the row's own prompt messages are kept. Raises ValueError when a record's expected result disagrees
        with its rule.
        """
        if path.suffix.lower() != ".parquet":
            return [_from_function_record(record) for record in read_records(path)]
        pool = path.with_name("functions.json")
        rules = {r["id"]: r for r in read_records(pool)}
        tasks = []
        for row in read_records(path):
            reward = row["reward_model"]
            if reward["id"] not in rules:
                raise ValueError(f"{path.name}: rule {reward['id']!r} is not in {pool}")
            base = _from_function_record(rules[reward["id"]])
            if not is_correct(Fraction(reward["ground_truth"]), Fraction(base.hidden["answer"])):
                raise ValueError(
                    f"{reward['id']}: ground truth {reward['ground_truth']} disagrees with the rule"
                )
            messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            tasks.append(Task(reward["id"], "function", messages, base.hidden))
        return tasks

    def __init__(
        self,
        simulator: Literal["offline", "llm"] = "offline",
        llm: LLMConfig | None = None,
        max_turns: int = 16,
    ) -> None:
        self.client = simulator_client(simulator, llm)
        self.max_turns = max_turns
        self.task: Task | None = None
        self.hidden: dict[str, Any] = {}
        self.rule: Node = None
        self.turns = 0
        self.done = False

    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.hidden = task.hidden
        self.rule = parse_rule(task.hidden["rule"])
        self.turns = 0
        self.done = False
        return [dict(m) for m in task.messages]

    def step(self, action: str) -> StepResult:
        if self.task is None or self.done:
            return StepResult("The episode is over; reset a task first.", 0.0, True, {"invalid": True})
        self.turns += 1
        result = self._respond(action)
        if not result.done and self.turns >= self.max_turns:
            result = StepResult(
                f"{result.feedback}\nThe turn limit is reached.", result.reward, True, result.info
            )
        self.done = result.done
        return result

    def _respond(self, action: str) -> StepResult:
        parsed = parse_action(action)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, False, {"invalid": True})
        hidden = self.hidden
        test_case = ", ".join(str(x) for x in hidden["test_case"])
        if parsed.choice == "search":
            if "test" not in parsed.content.lower():
                return StepResult(
                    "Search only returns the test case: write `test`.", 0.0, False, {"invalid": True}
                )
            return StepResult(f"The test case is f({test_case}).", 0.0, False, {})
        if parsed.choice == "answer":
            given = parse_number(parsed.content)
            if given is None:
                return StepResult("Answer with a single number.", 0.0, False, {"invalid": True})
            if is_correct(given, Fraction(hidden["answer"])):
                return StepResult(
                    f"Correct: f({test_case}) = {format_value(given)}.", 1.0, True, {"success": True}
                )
            return StepResult(f"{format_value(given)} is not the value of f({test_case}).", 0.0, False, {})
        return self._probe(parsed.content)

    def _probe(self, content: str) -> StepResult:
        probe = parse_probe(content)
        if isinstance(probe, str):
            if self.client is None:
                return StepResult(probe, 0.0, False, {"invalid": True})
            exact = ""
        else:
            call = f"f({', '.join(map(str, probe))})"
            try:
                exact = f"{call} = {format_value(evaluate(self.rule, probe))}"
            except EvaluationError as error:
                exact = f"{call} is undefined: {error}"
            if self.client is None:
                return StepResult(exact, 0.0, False, {})
        messages = [
            {"role": "system", "content": _HOST_PROMPT.format(rule=self.hidden["rule"])},
            {"role": "user", "content": content + (f"\n\n[exact output: {exact}]" if exact else "")},
        ]
        try:
            return StepResult(self.client.chat(messages), 0.0, False, {})
        except SimulatorUnavailable as error:
            return failed_step(f"function host: {error}")
