from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import USERRL_DATA

from infopo.envs.base import ENVIRONMENTS, Task
from infopo.envs.intention import IntentionEnv, generate_tasks, turn_reward
from infopo.envs.semantic import SemanticMatcher

LEXICAL = SemanticMatcher("lexical")


def _task(*importances: int) -> Task:
    names = ["Travel dates", "Trip budget", "Number of travellers", "Dietary needs"]
    inquiries = [
        "When are you travelling?",
        "What budget do you have?",
        "How many people are going?",
        "Any dietary restrictions?",
    ]
    details = [
        {
            "description": names[i],
            "importance": imp,
            "inquiry": inquiries[i],
            "options": ["a", "b"],
            "answer": f"answer {i}",
        }
        for i, imp in enumerate(importances)
    ]
    return Task("t", "intention", [], {"category": "Travel", "task": "Plan a trip.", "details": details})


def _oracle(env: IntentionEnv, task: Task) -> float:
    env.reset(task)
    score = 0.0
    for detail in sorted(task.hidden["details"], key=lambda d: -d["importance"]):
        step = env.step(
            f'<tool_call>{{"name": "interact_with_env", "arguments": {{"choice": "action", '
            f'"content": {json.dumps(detail["inquiry"])}}}}}</tool_call>'
        )
        score += step.reward
    assert step.done
    return score


def test_turn_reward_values() -> None:
    assert turn_reward([]) == 0.0
    assert turn_reward([3]) == 1.0 and turn_reward([2]) == 0.7 and turn_reward([1]) == 0.4
    assert turn_reward([3, 1]) == 0.8
    assert turn_reward([2, 2, 1]) == 0.3
    assert turn_reward([1, 1, 1, 1]) == 0.0  # floored at 0


def test_constructed_rewards() -> None:
    env = IntentionEnv(matcher=LEXICAL)
    env.reset(_task(3, 2, 2, 1))
    step = env.step("When are you travelling? Any dietary restrictions?")
    assert (step.reward, step.done, step.info) == (0.8, False, {"covered": [0, 3], "remaining": 2})
    assert step.feedback == "Travel dates: answer 0. Dietary needs: answer 3."
    step = env.step("When are you travelling?")  # already covered: nothing new
    assert (step.reward, step.feedback) == (0.0, "I don't have anything specific in mind about that.")
    step = env.step("Do you like jazz?")
    assert step.reward == 0.0
    step = env.step("What? How?")  # bare question words name no detail (an RL policy exploited them)
    assert (step.reward, step.info["covered"]) == (0.0, [])
    step = env.step("what budget do you have")
    assert (step.reward, step.done) == (0.7, False)
    step = env.step("ANSWER: done")
    assert step.info == {"invalid": True} and 'must be one of "action"' in step.feedback
    step = env.step("How many people are going?")
    assert (step.reward, step.done, step.info["remaining"]) == (0.7, True, 0)


def test_max_turns_ends_episode() -> None:
    env = IntentionEnv(matcher=LEXICAL, max_turns=2)
    env.reset(_task(3, 2))
    assert not env.step("Hello?").done
    assert env.step("Hello again?").done


def test_oracle_reaches_max_and_guesser_scores_low() -> None:
    env = IntentionEnv(matcher=LEXICAL)
    tasks = IntentionEnv.load_tasks("test")
    oracle = sum(_oracle(env, t) for t in tasks)
    best = sum(IntentionEnv.max_score(t) for t in tasks)
    assert oracle == pytest.approx(best)
    guessed = 0.0
    for task in tasks:
        env.reset(task)
        for question in ("Can you tell me more?", "Anything else I should know?", "Is that everything?"):
            guessed += env.step(question).reward
    assert guessed <= 0.05 * best


def test_oracle_with_embeddings() -> None:
    env = IntentionEnv(matcher=SemanticMatcher("embedding"))
    tasks = IntentionEnv.load_tasks("test")[:5]
    assert sum(_oracle(env, t) for t in tasks) == pytest.approx(sum(IntentionEnv.max_score(t) for t in tasks))
    env.reset(_task(3, 2, 2, 1))
    assert env.step("Which dates are you planning to go on?").info["covered"] == [0]


def test_generated_task_set() -> None:
    train, test = IntentionEnv.load_tasks("train"), IntentionEnv.load_tasks("test")
    assert (len(train), len(test)) == (250, 50)
    requests = [t.hidden["task"] for t in train + test]
    assert len(set(requests)) == 300  # distinct, so no train/test overlap
    assert not {t.task_id for t in train} & {t.task_id for t in test}
    assert IntentionEnv.load_tasks("train")[0].hidden == train[0].hidden  # deterministic
    assert generate_tasks(seed=1)["train"][0].hidden != train[0].hidden  # the generator is seedable
    for task in train + test:
        details = task.hidden["details"]
        assert 3 <= len(details) <= 5
        assert all(d["importance"] in (1, 2, 3) and d["answer"] in d["options"] for d in details)
    with pytest.raises(ValueError, match="unknown split"):
        IntentionEnv.load_tasks("dev")
    assert ENVIRONMENTS.get("intention") is IntentionEnv


def test_userrl_json_loader_and_round_trip(tmp_path: Path) -> None:
    tasks = IntentionEnv.read_tasks(USERRL_DATA / "intention_train.json")
    raw = json.loads((USERRL_DATA / "intention_train.json").read_text())
    assert len(tasks) == len(raw) == 1012
    first = tasks[0].hidden["details"][0]
    assert (tasks[0].task_id, first["description"], first["importance"]) == (
        raw[0]["id"],
        "Duration of the trip",
        3,
    )
    assert first["answer"] == "3-5 days"
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([IntentionEnv.to_record(t) for t in tasks]))
    again = IntentionEnv.read_tasks(path)
    assert [(t.task_id, t.hidden, t.messages) for t in again] == [
        (t.task_id, t.hidden, t.messages) for t in tasks
    ]


def test_userrl_parquet_loader() -> None:
    tasks = IntentionEnv.read_tasks(USERRL_DATA / "intention_train.parquet")
    assert len(tasks) == 380
    by_id = {t.task_id: t for t in IntentionEnv.read_tasks(USERRL_DATA / "intention_train.json")}
    assert all(t.hidden == by_id[t.task_id].hidden for t in tasks)
    assert tasks[0].messages[0]["role"] == "system" and "IntentionGym" in tasks[0].messages[0]["content"]
    env = IntentionEnv(matcher=LEXICAL)
    assert _oracle(env, tasks[0]) == pytest.approx(IntentionEnv.max_score(tasks[0]))


def test_parquet_without_json_uses_ground_truth(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = pq.read_table(USERRL_DATA / "intention_train.parquet").slice(0, 2)
    pq.write_table(rows, tmp_path / "intention_train.parquet")
    tasks = IntentionEnv.read_tasks(tmp_path / "intention_train.parquet")
    assert [d["description"] for d in tasks[0].hidden["details"]] == [
        "Specific directory to analyze",
        "Inclusion of subdirectories",
        "Output format preference",
    ]
    assert {d["importance"] for d in tasks[0].hidden["details"]} == {2}
