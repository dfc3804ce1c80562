"""Trajectories to estimator inputs, and the whole scoring -> advantage path on a tiny model."""

from __future__ import annotations

import random

import pytest
import torch
from fixtures import random_trajectory, tiny_model, tiny_tokenizer

from infopo.core.advantages import compute_advantages
from infopo.information_gain import CounterfactualSpec, score_packed
from infopo.rollout import ChatMarkers, Span, Trajectory, Turn
from infopo.rollout.collate import advantage_inputs
from infopo.rollout.trajectory import TrajectoryError


def test_tensors_follow_the_spans() -> None:
    a = Trajectory(
        [1, 2, 3, 4, 5, 6],
        1,
        [Turn(Span(1, 3), Span(3, 4), Span(3, 4), 0.5), Turn(Span(4, 6))],
        None,
        "a",
        "g1",
    )
    b = Trajectory([1, 2, 3], 1, [Turn(Span(1, 3), reward=1.0)], 0.3, "b", "g0")
    c = Trajectory([1, 2], 1, [Turn(Span(1, 2), reward=0.0)], None, "c", "g1")
    inputs = advantage_inputs([a, b, c])
    assert inputs.token_turn.tolist() == [
        [-1, 0, 0, -1, 1, 1],
        [-1, 0, 0, -1, -1, -1],
        [-1, 0, -1, -1, -1, -1],
    ]
    assert inputs.action_mask.tolist() == [
        [bool(x) for x in row] for row in [[0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0]]
    ]
    assert inputs.group_index.tolist() == [0, 1, 0]
    assert inputs.scores.tolist() == [0.5, 0.3, 0.0]
    assert inputs.turn_mask.tolist() == [[True, True], [True, False], [True, False]]
    assert inputs.turn_rewards.tolist() == [[0.5, 0.0], [1.0, 0.0], [0.0, 0.0]]


def test_bad_batches_name_the_trajectory() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        advantage_inputs([])
    bad = Trajectory([1, 2, 3], 1, [Turn(Span(1, 3), reward=float("nan"))], None, "task-4", "g")
    with pytest.raises(TrajectoryError, match=r"task 'task-4'.*step reward is nan"):
        advantage_inputs([bad])
    out_of_range = Trajectory([1, 2, 3], 1, [Turn(Span(1, 5))], None, "task-5", "g")
    with pytest.raises(TrajectoryError, match=r"task 'task-5'.*out of range"):
        advantage_inputs([out_of_range])


def test_scoring_to_infopo_advantages() -> None:
    """Groups of tied outcomes learn from information alone; advantages live on action tokens only."""
    tokenizer = tiny_tokenizer()
    rng = random.Random(3)
    trajectories = []
    for g in range(3):
        for _ in range(4):
            trajectory = random_trajectory(tokenizer, rng, max_turns=4)
            trajectory.group_id = f"g{g}"
            trajectory.final_score = 0.0  # every group ties: the outcome says nothing
            trajectories.append(trajectory)
    spec = CounterfactualSpec()
    placeholder = spec.placeholder_ids(tokenizer, ChatMarkers.from_tokenizer(tokenizer))
    scores = score_packed(tiny_model(len(tokenizer)), trajectories, placeholder, spec)
    inputs = advantage_inputs(trajectories, scores.turn_ig, scores.turn_ig_mask)
    grpo = compute_advantages("grpo", inputs)
    infopo = compute_advantages("infopo", inputs)
    assert torch.all(grpo.advantages == 0)
    assert infopo.metrics["gate_mean"] == pytest.approx(0.5)
    assert torch.all(infopo.advantages[~inputs.action_mask] == 0)
    assert float(infopo.advantages.abs().max()) > 0.1
