"""From a list of trajectories to the (B, L) / (B, T) tensors that the core estimators read."""

from __future__ import annotations

import torch
from torch import Tensor

from infopo.core.advantages import AdvantageInputs
from infopo.rollout.trajectory import Trajectory


def advantage_inputs(
    trajectories: list[Trajectory],
    turn_ig: Tensor | None = None,
    turn_ig_mask: Tensor | None = None,
    answer_logp: Tensor | None = None,
) -> AdvantageInputs:
    """Right-padded tensors of a batch; groups are the trajectories' group ids in order of appearance.

    turn_ig / turn_ig_mask: (B, T_max) as `score_packed` returns them; answer_logp: (B, T_max + 1).
    Raises TrajectoryError naming the trajectory whose spans or rewards are malformed.
    """
    if not trajectories:
        raise ValueError("empty batch: no trajectories")
    for trajectory in trajectories:
        trajectory.validate()
    bsz = len(trajectories)
    l_max = max(len(tr.input_ids) for tr in trajectories)
    t_max = max(len(tr.turns) for tr in trajectories)
    token_turn = torch.full((bsz, l_max), -1, dtype=torch.long)
    turn_mask = torch.zeros(bsz, t_max, dtype=torch.bool)
    turn_rewards = torch.zeros(bsz, t_max, dtype=torch.float64)
    groups: dict[str, int] = {}
    for b, trajectory in enumerate(trajectories):
        for t, turn in enumerate(trajectory.turns):
            token_turn[b, turn.action.start : turn.action.end] = t
            turn_mask[b, t] = True
            turn_rewards[b, t] = turn.reward
        groups.setdefault(trajectory.group_id, len(groups))
    return AdvantageInputs(
        action_mask=token_turn >= 0,
        token_turn=token_turn,
        group_index=torch.tensor([groups[tr.group_id] for tr in trajectories]),
        scores=torch.tensor([tr.score for tr in trajectories], dtype=torch.float64),
        turn_mask=turn_mask,
        turn_rewards=turn_rewards,
        turn_ig=turn_ig,
        turn_ig_mask=turn_ig_mask,
        answer_logp=answer_logp,
        trajectory_ids=[tr.name for tr in trajectories],
    )
