from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infopo.envs.actions import FORMAT_HELP, Action, format_help, parse_action

CALL = {"name": "interact_with_env", "arguments": {"choice": "answer", "content": "Paris"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"<think>plan</think>\n<tool_call>{json.dumps(CALL)}</tool_call>", Action("answer", "Paris")),
        (f"<tool_call>\n{json.dumps(CALL)}\n", Action("answer", "Paris")),
        ("reasoning only</think><tool_call>" + json.dumps(CALL) + "</tool_call>", Action("answer", "Paris")),
        (json.dumps(CALL), Action("answer", "Paris")),
        (json.dumps({**CALL, "arguments": json.dumps(CALL["arguments"])}), Action("answer", "Paris")),
        (json.dumps({"type": "function", "function": CALL}), Action("answer", "Paris")),
        ('Sure: {"choice": "search", "content": "flights"}', Action("search", "flights")),
        (
            '```json\n{"choice": "ACTION", "content": " How many guests? "}\n```',
            Action("action", "How many guests?"),
        ),
        (
            'interact_with_env(choice="answer", content="f(1) = 3 (I think)")',
            Action("answer", "f(1) = 3 (I think)"),
        ),
        ("interact_with_env('action', 'Is it alive?')", Action("action", "Is it alive?")),
        ('{"choice": "answer", "content": 42}', Action("answer", "42")),
        ("ANSWER: Tokyo", Action("answer", "Tokyo")),
        ("Let me think.\n**Answer:** Tokyo", Action("answer", "Tokyo")),
        ("search: cheapest hotel", Action("search", "cheapest hotel")),
        ("What is your budget?", Action("action", "What is your budget?")),
    ],
)
def test_parses_accepted_forms(text: str, expected: Action) -> None:
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "The `content` field is empty."),
        ('{"choice": "answer", "content": "  "}', "The `content` field is empty."),
        ('{"choice": "dance", "content": "x"}', "Unknown choice 'dance'"),
        ("<tool_call>{not json}</tool_call>", "not valid JSON"),
        ('{"choice": "answer", "content": "unterminated', "The tool call is not valid JSON."),
        ('{"name": "other_tool", "arguments": {}}', "Unknown tool 'other_tool'"),
        ('{"name": "interact_with_env", "arguments": "{bad"}', "arguments are not valid JSON"),
        ('{"choice": "answer", "content": ["a"]}', "must be a string"),
        ("interact_with_env(choice=x, content='y')", "must be string literals"),
        ("interact_with_env(choice='answer', content='y'", "could not be parsed"),
    ],
)
def test_malformed_actions_get_feedback(text: str, problem: str) -> None:
    out = parse_action(text)
    assert isinstance(out, str)
    assert out.startswith("[invalid action]")
    assert problem in out
    assert "<tool_call>" in out  # the expected format, with an example


def test_over_long_and_restricted_choices() -> None:
    out = parse_action("ANSWER: " + "x" * 50, max_chars=10)
    assert isinstance(out, str) and "50 characters long; the limit is 10" in out
    assert parse_action("x" * 10, max_chars=10) == Action("action", "x" * 10)
    out = parse_action("ANSWER: 3", choices=("action",))
    assert isinstance(out, str) and 'it must be one of "action"' in out
    out = parse_action("just text", choices=("answer",))
    assert isinstance(out, str) and "No tool call was found" in out
    assert parse_action(None) == f"[invalid action] Expected a text message, got NoneType.\n{FORMAT_HELP}"  # type: ignore[arg-type]
    assert '"choice": "answer"' in format_help(("answer",))


def _check(text: str) -> None:
    out = parse_action(text, max_chars=200)
    assert isinstance(out, (Action, str))
    if isinstance(out, Action):
        assert out.choice in ("action", "answer", "search")
        assert 0 < len(out.content) <= 200


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_arbitrary_text(text: str) -> None:
    _check(text)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_fragments = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        '"',
        "'",
        ",",
        ":",
        "(",
        ")",
        "\\",
        "<tool_call>",
        "</tool_call>",
        "<think>",
        "</think>",
        '"choice"',
        '"content"',
        '"name"',
        '"arguments"',
        "interact_with_env(",
        "choice=",
        "content=",
        "ANSWER:",
        '"answer"',
        '"action"',
        "\n",
        "1e999",
        "null",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.builds(lambda v: json.dumps({"name": "interact_with_env", "arguments": v}), _json_values),
        st.builds(lambda c, v: json.dumps({"choice": c, "content": v}), _json_values, _json_values),
        st.builds(
            lambda c, v: f"<tool_call>{json.dumps({'choice': c, 'content': v})}", _json_values, _json_values
        ),
        st.lists(_fragments | st.text(max_size=5), max_size=40).map("".join),
    )
)
def test_fuzz_json_like_text(text: str) -> None:
    _check(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"choice": ' + "[" * 5000,
        "interact_with_env(" + "(" * 5000 + ")" * 5000,
        "{" * 3000,
        "<tool_call>" + "[" * 5000,
    ],
)
def test_pathological_nesting_never_raises(text: str) -> None:
    assert isinstance(parse_action(text), (Action, str))
