"""Naive information gain: a factual and a counterfactual forward pass per turn (the reference's way).

Slow, and kept as the oracle that the packed path is tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from infopo.information_gain.counterfactual import (
    CounterfactualSpec,
    counterfactual_branch,
    turns_with_information_gain,
)
from infopo.rollout.trajectory import Trajectory


def sequence_logprobs(model: nn.Module, input_ids: list[int], temperature: float = 1.0) -> Tensor:
    """(L,) log pi(x_i | x_<i) of one unpadded sequence through the model's full forward; entry 0 is 0."""
    ids = torch.tensor([input_ids])
    logits = model(input_ids=ids).logits[0].float() / temperature
    logp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.cat([logp.new_zeros(1), logp])


@torch.no_grad()
def information_gain_naive(
    model: nn.Module,
    trajectories: list[Trajectory],
    placeholder_ids: list[int],
    spec: CounterfactualSpec,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """IG_t of spec section 2 for every turn, two full forward passes per turn.

    IG_t = mean_j [log pi(a_{t+1,j} | h_t, o_t, a_{t+1,<j}) - log pi(a_{t+1,j} | h_t, m(o_t), a_{t+1,<j})]

    Returns turn_ig (B, T_max) float32 (IG_t credited to turn t, 0 where none) and turn_ig_mask (B, T_max).
    """
    t_max = max((len(tr.turns) for tr in trajectories), default=0)
    turn_ig = torch.zeros(len(trajectories), t_max)
    turn_ig_mask = torch.zeros(len(trajectories), t_max, dtype=torch.bool)
    for b, trajectory in enumerate(trajectories):
        trajectory.validate()
        for t in turns_with_information_gain(trajectory):
            branch = counterfactual_branch(trajectory, t, placeholder_ids, spec)
            turn_ig_mask[b, t] = True
            if branch.identical:
                continue
            n = branch.action_length
            factual = trajectory.input_ids[: trajectory.turns[t + 1].action.end]
            counterfactual = trajectory.input_ids[: branch.prefix_end] + branch.tokens
            factual_lp = sequence_logprobs(model, factual, temperature)[-n:]
            counterfactual_lp = sequence_logprobs(model, counterfactual, temperature)[-n:]
            turn_ig[b, t] = (factual_lp - counterfactual_lp).mean()
    return turn_ig, turn_ig_mask
