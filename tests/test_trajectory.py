"""Trajectories and the token-in/token-out builder, on local ChatML tokenizers and on SmolLM2's."""

from __future__ import annotations

import random

import pytest
import torch
from fixtures import QWEN_TEMPLATE, SMOLLM2_TEMPLATE, random_text, tiny_tokenizer

from infopo.rollout import ChatMarkers, Span, Trajectory, TrajectoryBuilder, Turn
from infopo.rollout.trajectory import TrajectoryError

CHATML_MARKERS = ChatMarkers(
    end_of_turn="<|im_end|>",
    feedback_prefix="\n<|im_start|>user\n",
    feedback_suffix="<|im_end|>\n<|im_start|>assistant\n",
)


@pytest.mark.parametrize("template", [SMOLLM2_TEMPLATE, QWEN_TEMPLATE], ids=["smollm2", "qwen"])
def test_markers_read_off_chatml_templates(template: str) -> None:
    assert ChatMarkers.from_tokenizer(tiny_tokenizer(template)) == CHATML_MARKERS


def test_markers_of_the_real_smollm2_tokenizer(smollm2_tokenizer) -> None:
    assert ChatMarkers.from_tokenizer(smollm2_tokenizer) == CHATML_MARKERS


def test_markers_for_a_tool_role() -> None:
    markers = ChatMarkers.from_tokenizer(tiny_tokenizer(QWEN_TEMPLATE), role="tool")
    assert markers.feedback_prefix == "\n<|im_start|>tool\n"


def _conversation(rng: random.Random, turns: int) -> tuple[list[dict[str, str]], list[str], list[str]]:
    prompt = [{"role": "user", "content": random_text(rng, 3, 15)}]
    actions = [random_text(rng) for _ in range(turns)]
    feedback = [random_text(rng, 1, 20) for _ in range(turns - 1)]
    return prompt, actions, feedback


def _build(tokenizer, prompt, actions, feedback) -> Trajectory:
    builder = TrajectoryBuilder.from_messages(tokenizer, prompt, task_id="t", group_id="g")
    eot = tokenizer.encode("<|im_end|>", add_special_tokens=False)
    for t, action in enumerate(actions):
        ids = tokenizer.encode(action, add_special_tokens=False) + eot
        builder.add_turn(ids, feedback[t] if t < len(feedback) else None, reward=0.25 * t)
    return builder.build()


def _check_spans_and_rendering(tokenizer, seed: int) -> None:
    rng = random.Random(seed)
    prompt, actions, feedback = _conversation(rng, rng.randint(1, 5))
    trajectory = _build(tokenizer, prompt, actions, feedback)
    ids = trajectory.input_ids
    for t, turn in enumerate(trajectory.turns):
        assert tokenizer.decode(ids[turn.action.start : turn.action.end]) == actions[t] + "<|im_end|>"
        if t < len(feedback):
            assert tokenizer.decode(ids[turn.feedback_text.start : turn.feedback_text.end]) == feedback[t]
            assert turn.feedback.contains(turn.feedback_text)
            assert turn.feedback.end == trajectory.turns[t + 1].action.start
    # The whole sequence is exactly what the chat template renders for the same conversation.
    messages = list(prompt)
    for t, action in enumerate(actions):
        messages.append({"role": "assistant", "content": action})
        if t < len(feedback):
            messages.append({"role": "user", "content": feedback[t]})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(ids) + "\n" == rendered
    # Loss mask: exactly the action tokens.
    mask = trajectory.loss_mask
    assert sum(mask) == sum(len(turn.action) for turn in trajectory.turns)
    assert all(mask[i] == 1 for turn in trajectory.turns for i in range(turn.action.start, turn.action.end))
    assert trajectory.step_rewards == [0.25 * t for t in range(len(actions))]


@pytest.mark.parametrize("template", [SMOLLM2_TEMPLATE, QWEN_TEMPLATE], ids=["smollm2", "qwen"])
@pytest.mark.parametrize("seed", range(20))
def test_spans_decode_exactly_on_local_tokenizer(template: str, seed: int) -> None:
    _check_spans_and_rendering(tiny_tokenizer(template), seed)


@pytest.mark.parametrize("seed", range(20))
def test_spans_decode_exactly_on_smollm2(smollm2_tokenizer, seed: int) -> None:
    _check_spans_and_rendering(smollm2_tokenizer, seed)


def test_sampled_ids_are_kept_as_they_are() -> None:
    """An action is appended token for token, even when re-encoding its text would give other ids."""
    tokenizer = tiny_tokenizer()
    builder = TrajectoryBuilder.from_messages(tokenizer, [{"role": "user", "content": "hello"}])
    text = "the user wants"
    canonical = tokenizer.encode(text, add_special_tokens=False)
    # spell the text one byte-level character at a time: a valid but non-canonical tokenization
    split = [
        tokenizer.convert_tokens_to_ids(c)
        for token in tokenizer.convert_ids_to_tokens(canonical)
        for c in token
    ]
    assert split != canonical and tokenizer.decode(split) == text
    builder.add_turn(split, None)
    trajectory = builder.build()
    action = trajectory.turns[0].action
    assert trajectory.input_ids[action.start : action.end] == split


def test_truncated_action_is_closed_by_the_feedback_block() -> None:
    tokenizer = tiny_tokenizer()
    builder = TrajectoryBuilder.from_messages(tokenizer, [{"role": "user", "content": "hello"}])
    action = tokenizer.encode("which city", add_special_tokens=False)  # cut off: no <|im_end|>
    builder.add_turn(action, "paris")
    builder.add_turn(tokenizer.encode("ok<|im_end|>", add_special_tokens=False))
    trajectory = builder.build()
    turn = trajectory.turns[0]
    assert len(turn.action) == len(action)
    block = trajectory.input_ids[turn.feedback.start : turn.feedback.end]
    assert tokenizer.decode(block) == "<|im_end|>\n<|im_start|>user\nparis<|im_end|>\n<|im_start|>assistant\n"
    assert trajectory.loss_mask[turn.feedback.start] == 0


def test_score_is_final_score_or_sum_of_step_rewards() -> None:
    turns = [Turn(Span(1, 2), Span(2, 3), Span(2, 3), reward=0.5), Turn(Span(3, 4), reward=0.25)]
    assert Trajectory([0, 1, 2, 3], 1, turns).score == 0.75
    assert Trajectory([0, 1, 2, 3], 1, turns, final_score=0.4).score == 0.4


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([], "has no turns"),
        ([Turn(Span(1, 9))], r"turn 0: action span .* out of range"),
        ([Turn(Span(2, 2))], "turn 0: empty action"),
        ([Turn(Span(1, 2), Span(2, 3), None)], "turn 0: feedback and feedback_text"),
        ([Turn(Span(1, 2), Span(2, 3), Span(1, 3))], "turn 0: feedback_text .* not inside"),
        ([Turn(Span(1, 3)), Turn(Span(2, 4))], r"turn 1: action span .* out of range"),
        ([Turn(Span(1, 2), reward=float("nan"))], "turn 0: step reward is nan"),
    ],
)
def test_malformed_trajectories_name_themselves(turns: list[Turn], message: str) -> None:
    trajectory = Trajectory([5, 6, 7, 8], 1, turns, task_id="task-7", group_id="g3")
    with pytest.raises(TrajectoryError, match=message) as info:
        trajectory.validate()
    assert "task 'task-7'" in str(info.value) and "group 'g3'" in str(info.value)


def test_empty_action_is_refused() -> None:
    builder = TrajectoryBuilder(tiny_tokenizer(), [1, 2], CHATML_MARKERS, task_id="x")
    with pytest.raises(TrajectoryError, match="empty action"):
        builder.add_turn([])


def test_no_turn_after_a_turn_without_feedback() -> None:
    builder = TrajectoryBuilder(tiny_tokenizer(), [1, 2], CHATML_MARKERS, task_id="x")
    builder.add_turn([5, 6])
    with pytest.raises(TrajectoryError, match="turn 1 of task 'x': the previous turn drew no feedback"):
        builder.add_turn([7])


def test_action_ids_may_be_a_tensor() -> None:
    tokenizer = tiny_tokenizer()
    builder = TrajectoryBuilder(tokenizer, [1, 2], CHATML_MARKERS)
    eot = tokenizer.encode("<|im_end|>", add_special_tokens=False)
    builder.add_turn(torch.tensor([40, *eot]), "yes")
    turn = builder.build().turns[0]
    assert len(turn.feedback) == len(
        tokenizer.encode(
            "\n<|im_start|>user\nyes<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
        )
    )
