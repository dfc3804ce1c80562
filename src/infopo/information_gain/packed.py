"""Packed information gain: one forward pass scores a trajectory and all its counterfactual branches.

Each branch (m(o_t) + rest of the observation block + a_{t+1}) is appended after the factual
sequence. A block attention mask lets branch tokens see the factual prefix up to the start of the
masked span and their own branch (causally); explicit position ids continue the prefix's positions.
The same pass yields the factual log-probs of every token: the PPO old log-probs and the factual
terms of IG. Extra cost: sum_t (|m(o_t)| + |a_{t+1}|) tokens, no backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from infopo.information_gain.counterfactual import (
    Branch,
    CounterfactualSpec,
    counterfactual_branch,
    turns_with_information_gain,
)
from infopo.models.forward import final_hidden_states, gather_logprobs
from infopo.rollout.trajectory import Trajectory


@dataclass
class PackedScores:
    """token_logprobs: (B, L_max) log pi(x_i | x_<i) of each trajectory's tokens, right-padded with 0
    (entry 0 is 0); turn_ig: (B, T_max) IG_t credited to turn t; turn_ig_mask: (B, T_max) bool."""

    token_logprobs: Tensor
    turn_ig: Tensor
    turn_ig_mask: Tensor


@dataclass
class _Packed:
    """One trajectory laid out as factual tokens followed by its branches.

    segment: 0 for factual tokens, k for the k-th branch; limit: a branch token may also see factual
    tokens before this index (its branch's prefix_end), 0 for factual tokens.
    """

    ids: list[int]
    positions: list[int]
    segment: list[int]
    limit: list[int]
    branches: list[Branch]
    offsets: list[int]  # packed index of each branch's first token


def _pack(trajectory: Trajectory, branches: list[Branch]) -> _Packed:
    n = len(trajectory.input_ids)
    packed = _Packed(list(trajectory.input_ids), list(range(n)), [0] * n, [0] * n, branches, [])
    for k, branch in enumerate(branches, start=1):
        size = len(branch.tokens)
        packed.offsets.append(len(packed.ids))
        packed.ids.extend(branch.tokens)
        packed.positions.extend(range(branch.prefix_end, branch.prefix_end + size))
        packed.segment.extend([k] * size)
        packed.limit.extend([branch.prefix_end] * size)
    return packed


def _block_mask(segment: Tensor, limit: Tensor) -> Tensor:
    """(B, P, P) bool: query i sees key j if j <= i in its own segment, or j is factual and j < limit[i].

    segment, limit: (B, P) with padding in a segment of its own (-1), so every row sees itself.
    """
    index = torch.arange(segment.shape[1])
    causal = index[None, :] <= index[:, None]
    same = segment[:, :, None] == segment[:, None, :]
    prefix = (segment[:, None, :] == 0) & (index[None, None, :] < limit[:, :, None])
    return (same & causal) | prefix


def _attention_mask(allowed: Tensor, model: nn.Module) -> Tensor:
    """(B, 1, P, P) mask in the form the model's attention implementation takes as given."""
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    if implementation == "sdpa":
        return allowed.unsqueeze(1)
    if implementation == "eager":
        dtype = next(model.parameters()).dtype
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask.unsqueeze(1)
    raise NotImplementedError(
        f"packed information gain needs a custom 4D attention mask, which attn_implementation "
        f"{implementation!r} does not take; load the model with attn_implementation='sdpa' or 'eager'"
    )


@torch.no_grad()
def score_packed(
    model: nn.Module,
    trajectories: list[Trajectory],
    placeholder_ids: list[int],
    spec: CounterfactualSpec,
    *,
    micro_batch_size: int = 8,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    padding_side: Literal["left", "right"] = "right",
    information_gain: bool = True,
) -> PackedScores:
    """Old log-probs of every token and IG_t (spec section 2) of every turn, one forward per micro-batch.

    With information_gain=False no branch is appended: this is the plain old-log-prob pass.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    device = next(model.parameters()).device
    bsz = len(trajectories)
    l_max = max((len(tr.input_ids) for tr in trajectories), default=0)
    t_max = max((len(tr.turns) for tr in trajectories), default=0)
    token_logprobs = torch.zeros(bsz, l_max)
    turn_ig = torch.zeros(bsz, t_max)
    turn_ig_mask = torch.zeros(bsz, t_max, dtype=torch.bool)
    for first in range(0, bsz, micro_batch_size):
        chunk = trajectories[first : first + micro_batch_size]
        packs = []
        for trajectory in chunk:
            trajectory.validate()
            turns = turns_with_information_gain(trajectory) if information_gain else []
            branches = [counterfactual_branch(trajectory, t, placeholder_ids, spec) for t in turns]
            for branch in branches:
                turn_ig_mask[first + len(packs), branch.turn] = True  # identical branches keep IG_t = 0
            packs.append(_pack(trajectory, [branch for branch in branches if not branch.identical]))
        p_max = max(len(p.ids) for p in packs)
        ids = torch.zeros(len(packs), p_max, dtype=torch.long)
        positions = torch.zeros(len(packs), p_max, dtype=torch.long)
        segment = torch.full((len(packs), p_max), -1, dtype=torch.long)
        limit = torch.zeros(len(packs), p_max, dtype=torch.long)
        rows, cols, targets = [], [], []
        for r, pack in enumerate(packs):
            size = len(pack.ids)
            shift = p_max - size if padding_side == "left" else 0
            where = slice(shift, shift + size)
            ids[r, where] = torch.tensor(pack.ids)
            positions[r, where] = torch.tensor(pack.positions)
            segment[r, where] = torch.tensor(pack.segment)
            limit[r, where] = torch.tensor(pack.limit) + shift
            n = len(chunk[r].input_ids)
            # factual token i is predicted at i - 1
            rows.append(torch.full((n - 1,), r))
            cols.append(torch.arange(n - 1) + shift)
            targets.append(torch.tensor(pack.ids[1:n]))
            for branch, offset in zip(pack.branches, pack.offsets, strict=True):
                first_action = len(branch.tokens) - branch.action_length
                index = torch.arange(first_action, len(branch.tokens))
                predictor = offset + index - 1
                predictor[index == 0] = branch.prefix_end - 1  # a branch's first token follows the prefix
                rows.append(torch.full((branch.action_length,), r))
                cols.append(predictor + shift)
                targets.append(torch.tensor(branch.tokens[first_action:]))
        hidden = final_hidden_states(
            model,
            ids.to(device),
            _attention_mask(_block_mask(segment, limit), model).to(device),
            positions.to(device),
        )
        logp, _ = gather_logprobs(
            model,
            hidden,
            torch.cat(rows).to(device),
            torch.cat(cols).to(device),
            torch.cat(targets).to(device),
            chunk_size=chunk_size,
            temperature=temperature,
        )
        logp = logp.cpu()
        cursor = 0
        for r, pack in enumerate(packs):
            b, trajectory = first + r, chunk[r]
            n = len(trajectory.input_ids)
            token_logprobs[b, 1:n] = logp[cursor : cursor + n - 1]
            cursor += n - 1
            for branch in pack.branches:
                m = branch.action_length
                action = trajectory.turns[branch.turn + 1].action
                counterfactual_lp = logp[cursor : cursor + m]
                cursor += m
                turn_ig[b, branch.turn] = (
                    token_logprobs[b, action.start : action.end] - counterfactual_lp
                ).mean()
    return PackedScores(token_logprobs, turn_ig, turn_ig_mask)
