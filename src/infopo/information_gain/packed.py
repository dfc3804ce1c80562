"""Packed information gain: one forward pass scores a trajectory and all its counterfactual branches.

Each branch (m(o_t) + rest of the observation block + a_{t+1}) is appended after the factual
sequence. A block attention mask lets branch tokens see the factual prefix up to the start of the
masked span and their own branch (causally); explicit position ids continue the prefix's positions.
The same pass yields the factual log-probs of every action token: the PPO old log-probs and the
factual terms of IG. Extra cost: sum_t (|m(o_t)| + |a_{t+1}|) tokens, no backward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from infopo.core.logprobs import logprobs_from_hidden
from infopo.information_gain.answer_likelihood import answer_branches
from infopo.information_gain.counterfactual import (
    Branch,
    CounterfactualSpec,
    counterfactual_branch,
    turns_with_information_gain,
)
from infopo.models.attention import SDPA_LIKE
from infopo.models.forward import final_hidden_states, output_embedding
from infopo.rollout.trajectory import Trajectory


@dataclass
class PackedScores:
    """token_logprobs: (B, L_max) log pi(x_i | x_<i) on action tokens (loss mask), 0 elsewhere and in
    padding; turn_ig: (B, T_max) IG_t credited to turn t; turn_ig_mask: (B, T_max) bool; answer_logp:
    (B, T_max + 1) IGPO's l_t for t < T_b (0 elsewhere), when answers were given."""

    token_logprobs: Tensor
    turn_ig: Tensor
    turn_ig_mask: Tensor
    answer_logp: Tensor | None = None
    # per trajectory, turn t -> (|a_{t+1}|,) log-probs of a_{t+1} after m(o_t) (scored branches only)
    counterfactual_logprobs: list[dict[int, Tensor]] = field(default_factory=list)


@dataclass
class _Packed:
    """One trajectory laid out as factual tokens followed by its branches.

    segment: 0 for factual tokens, k for the k-th branch; limit: a branch token may also see factual
    tokens before this index (its branch's prefix_end), 0 for factual tokens. predictors / targets:
    the packed index whose output scores each scored token, and that token's id (factual action
    tokens first, then each branch's a_{t+1}).
    """

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)
    limit: list[int] = field(default_factory=list)
    predictors: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)


def _pack(trajectory: Trajectory, branches: list[Branch]) -> _Packed:
    ids = trajectory.input_ids
    n = len(ids)
    packed = _Packed(list(ids), list(range(n)), [0] * n, [0] * n)
    for turn in trajectory.turns:
        packed.predictors.extend(range(turn.action.start - 1, turn.action.end - 1))
        packed.targets.extend(ids[turn.action.start : turn.action.end])
    for k, branch in enumerate(branches, start=1):
        offset, size = len(packed.ids), len(branch.tokens)
        packed.ids.extend(branch.tokens)
        packed.positions.extend(range(branch.prefix_end, branch.prefix_end + size))
        packed.segment.extend([k] * size)
        packed.limit.extend([branch.prefix_end] * size)
        for j in range(size - branch.action_length, size):
            packed.predictors.append(offset + j - 1 if j > 0 else branch.prefix_end - 1)
            packed.targets.append(branch.tokens[j])
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
    if implementation in SDPA_LIKE:
        return allowed.unsqueeze(1)
    if implementation == "eager":
        dtype = next(model.parameters()).dtype
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask.unsqueeze(1)
    raise NotImplementedError(
        f"packed information gain needs a custom 4D attention mask, which attn_implementation "
        f"{implementation!r} does not take; load the model with attn_implementation='sdpa' or 'eager'"
    )


def _score_micro_batch(
    model: nn.Module,
    packs: list[_Packed],
    padding_side: str,
    chunk_size: int,
    temperature: float,
    dtype: torch.dtype,
) -> list[Tensor]:
    """One forward over the padded packs; returns each pack's scored log-probs in its targets' order."""
    device = next(model.parameters()).device
    p_max = max(len(p.ids) for p in packs)
    ids = torch.zeros(len(packs), p_max, dtype=torch.long)
    positions = torch.zeros(len(packs), p_max, dtype=torch.long)
    segment = torch.full((len(packs), p_max), -1, dtype=torch.long)
    limit = torch.zeros(len(packs), p_max, dtype=torch.long)
    rows, cols, targets = [], [], []
    for r, pack in enumerate(packs):
        shift = p_max - len(pack.ids) if padding_side == "left" else 0
        where = slice(shift, shift + len(pack.ids))
        ids[r, where] = torch.tensor(pack.ids)
        positions[r, where] = torch.tensor(pack.positions)
        segment[r, where] = torch.tensor(pack.segment)
        limit[r, where] = torch.tensor(pack.limit) + shift
        rows.append(torch.full((len(pack.targets),), r))
        cols.append(torch.tensor(pack.predictors, dtype=torch.long) + shift)
        targets.append(torch.tensor(pack.targets, dtype=torch.long))
    mask = _attention_mask(_block_mask(segment, limit), model)
    hidden = final_hidden_states(model, ids.to(device), mask.to(device), positions.to(device))
    logp, _ = logprobs_from_hidden(
        hidden[torch.cat(rows).to(device), torch.cat(cols).to(device)],
        output_embedding(model),
        torch.cat(targets).to(device),
        chunk_size=chunk_size,
        temperature=temperature,
        dtype=dtype,
    )
    return list(logp.cpu().split([len(p.targets) for p in packs]))


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
    answers: list[list[int]] | None = None,
    dtype: torch.dtype = torch.float64,
) -> PackedScores:
    """Old log-probs of every action token and IG_t (docs/algorithm.md section 2) of every turn, one
    forward per micro-batch of trajectories (taken longest first, so that each pads little).

    dtype is the precision of the LM head and log-softmax (the model itself runs in its own dtype).
    With information_gain=False no branch is appended: this is the plain old-log-prob pass.
    answers: per trajectory, the token ids of its ground-truth answer y; then IGPO's l_t of every turn
    (`answer_likelihood.py`) is scored in the same forward, as more branches.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    bsz = len(trajectories)
    t_max = max((len(tr.turns) for tr in trajectories), default=0)
    token_logprobs = torch.zeros(bsz, max((len(tr.input_ids) for tr in trajectories), default=0), dtype=dtype)
    turn_ig = torch.zeros(bsz, t_max, dtype=dtype)
    turn_ig_mask = torch.zeros(bsz, t_max, dtype=torch.bool)
    if answers is not None and len(answers) != bsz:
        raise ValueError(f"{len(answers)} answers for {bsz} trajectories")
    answer_logp = torch.zeros(bsz, t_max + 1, dtype=dtype) if answers is not None else None
    counterfactual_logprobs: list[dict[int, Tensor]] = [{} for _ in trajectories]
    packs, scored_branches, scored_answers = [], [], []
    for b, trajectory in enumerate(trajectories):
        trajectory.validate(rewards=False)
        turns = turns_with_information_gain(trajectory) if information_gain else []
        branches = [counterfactual_branch(trajectory, t, placeholder_ids, spec) for t in turns]
        turn_ig_mask[b, turns] = True  # identical branches are not scored: their IG_t is exactly 0
        scored_branches.append([branch for branch in branches if not branch.identical])
        scored_answers.append(answer_branches(trajectory, answers[b]) if answers is not None else [])
        packs.append(_pack(trajectory, scored_branches[-1] + scored_answers[-1]))
    order = sorted(range(bsz), key=lambda b: -len(packs[b].ids))  # similar lengths share a micro-batch
    for first in range(0, bsz, micro_batch_size):
        chunk = order[first : first + micro_batch_size]
        logps = _score_micro_batch(
            model, [packs[b] for b in chunk], padding_side, chunk_size, temperature, dtype
        )
        for b, logp in zip(chunk, logps, strict=True):
            trajectory, branches, answer_parts = trajectories[b], scored_branches[b], scored_answers[b]
            actions = torch.tensor(trajectory.loss_mask, dtype=torch.bool)
            cursor = int(actions.sum())
            token_logprobs[b, : len(actions)][actions] = logp[:cursor]
            for branch in branches:
                action = trajectory.turns[branch.turn + 1].action
                counterfactual = logp[cursor : cursor + branch.action_length]
                counterfactual_logprobs[b][branch.turn] = counterfactual
                cursor += branch.action_length
                turn_ig[b, branch.turn] = (
                    token_logprobs[b, action.start : action.end] - counterfactual
                ).mean()
            for branch in answer_parts:
                assert answer_logp is not None
                answer_logp[b, branch.turn] = logp[cursor : cursor + branch.action_length].mean()
                cursor += branch.action_length
    return PackedScores(token_logprobs, turn_ig, turn_ig_mask, answer_logp, counterfactual_logprobs)
