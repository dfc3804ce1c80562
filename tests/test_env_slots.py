"""The `slots` environment: questions reveal one slot each, only the relevant slots make the answer."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infopo.envs import ENVIRONMENTS, StepResult, Task
from infopo.envs.slots import RELEVANT, SLOTS, SlotsEnv, parse_move

TEST_TASKS = SlotsEnv.builtin_tasks("test")
WORDS = [*SLOTS, *itertools.chain.from_iterable(SLOTS.values()), "which", "?", ".", "x"]


def _episode(task: Task, actions: list[str]) -> list[StepResult]:
    env = SlotsEnv()
    env.reset(task)
    results = []
    for action in actions:
        results.append(env.step(action))
        if results[-1].done:
            break
    return results


def _wanted(task: Task, slot: str) -> str:
    return task.hidden["wanted"][slot]


def test_registered_with_train_and_test_splits() -> None:
    assert ENVIRONMENTS.get("slots") is SlotsEnv
    train = SlotsEnv.load_tasks("train")
    assert (len(train), len(TEST_TASKS)) == (256, 64)
    assert {t.task_id for t in train}.isdisjoint(t.task_id for t in TEST_TASKS)
    assert len({tuple(t.hidden["wanted"].values()) for t in train}) > 40  # most of the 96 combinations
    with pytest.raises(ValueError, match="splits"):
        SlotsEnv.builtin_tasks("dev")


def test_a_question_reveals_the_first_slot_it_names() -> None:
    task = TEST_TASKS[0]
    colour, size, pattern = _episode(task, ["Which colour?", "what size and colour", "pattern"])
    assert colour.feedback == f"I want {_wanted(task, 'colour')}."
    assert size.feedback == f"I want {_wanted(task, 'size')}."
    assert pattern.feedback == f"I want {_wanted(task, 'pattern')}."
    assert (colour.info["relevant"], pattern.info["relevant"]) == (True, False)
    assert all(r.reward == 0.0 and not r.done for r in (colour, size, pattern))


@pytest.mark.parametrize("action", ["", "hello", "which one?", "no information found ."])
def test_anything_else_gets_a_reminder_and_costs_a_turn(action: str) -> None:
    (result,) = _episode(TEST_TASKS[0], [action])
    assert not result.done and result.reward == 0.0 and result.info == {"invalid": True}
    assert result.feedback is not None and "colour, size or pattern" in result.feedback


def test_the_answer_must_name_every_relevant_value_and_nothing_else_of_them() -> None:
    task = TEST_TASKS[0]
    colour, size, pattern = (_wanted(task, s) for s in ("colour", "size", "pattern"))
    other_colour = next(c for c in SLOTS["colour"] if c != colour)
    other_pattern = next(p for p in SLOTS["pattern"] if p != pattern)
    rewards = {
        f"{colour} {size}": 1.0,
        f"{size} {colour}": 1.0,  # any order
        f"{colour} {size} {other_pattern}": 1.0,  # the irrelevant slot is ignored
        f"{other_colour} {size}": 0.0,
        f"{colour}": 0.0,  # the size is missing
        f"{colour} {other_colour} {size}": 0.0,  # two colours
    }
    for answer, reward in rewards.items():
        (result,) = _episode(task, [answer])
        assert result.done and result.feedback is None and result.reward == reward, answer
    assert SlotsEnv.ground_truth(task) == f"{colour} {size}"


def test_asking_both_relevant_slots_then_answering_always_wins() -> None:
    for task in TEST_TASKS:
        colour, size, answer = _episode(
            task, ["which colour", "which size", SlotsEnv.ground_truth(task) or ""]
        )
        assert answer.reward == 1.0
        revealed = [
            r.feedback.removeprefix("I want ").removesuffix(".") for r in (colour, size) if r.feedback
        ]
        assert " ".join(revealed) == SlotsEnv.ground_truth(task)


def test_guessing_wins_one_in_twenty_four_and_the_pattern_question_does_not_help() -> None:
    task = TEST_TASKS[0]
    guesses = [f"{c} {s}" for c, s in itertools.product(SLOTS["colour"], SLOTS["size"])]
    assert len(guesses) == 24
    for opening in ([], ["which pattern"]):
        wins = [_episode(task, [*opening, guess])[-1].reward for guess in guesses]
        assert sum(wins) == 1.0
    rng = random.Random(0)
    rate = sum(_episode(t, [rng.choice(guesses)])[-1].reward for t in TEST_TASKS * 20) / (
        20 * len(TEST_TASKS)
    )
    assert rate < 0.1


def test_parse_move_classifies_actions() -> None:
    assert parse_move("which pattern", SLOTS).slot == "pattern"
    assert parse_move("size", SLOTS).kind == "question"
    assert parse_move("red large", SLOTS).named == {"colour": {"red"}, "size": {"large"}}
    assert parse_move("which", SLOTS).kind == "invalid"
    assert RELEVANT == ["colour", "size"]


@settings(max_examples=200, deadline=None)
@given(
    actions=st.lists(
        st.one_of(
            st.text(max_size=60),
            st.lists(st.sampled_from(WORDS), max_size=5).map(" ".join),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_fuzz_never_raises_and_rewards_only_a_final_answer(actions: list[str]) -> None:
    results = _episode(TEST_TASKS[1], actions)
    assert all(r.reward in (0.0, 1.0) for r in results)
    assert all(r.reward == 0.0 and not r.done and r.feedback for r in results[:-1])
    assert results[-1].done == (results[-1].feedback is None)


def test_step_before_reset_does_not_raise() -> None:
    result = SlotsEnv().step("which colour")
    assert result.done and result.reward == 0.0
