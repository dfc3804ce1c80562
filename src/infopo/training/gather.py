"""The global batch of a step across processes: every process's trajectories and their scores."""

from __future__ import annotations

import torch
from accelerate.utils import gather_object
from torch import Tensor

from infopo.information_gain.packed import PackedScores
from infopo.rollout.trajectory import Trajectory


def gather_scores(
    trajectories: list[Trajectory], scores: PackedScores, process_index: int
) -> tuple[list[Trajectory], Tensor, Tensor, Tensor | None, int]:
    """The global batch (all processes' trajectories in rank order), its (B, T) IG and IG mask, its
    (B, T + 1) IGPO answer log-probs (when scored), and where this process's trajectories start in it.
    A single process gets its own batch back, offset 0."""
    rows = [
        (
            tr,
            scores.turn_ig[b, : len(tr.turns)].tolist(),
            scores.turn_ig_mask[b, : len(tr.turns)].tolist(),
            None if scores.answer_logp is None else scores.answer_logp[b, : len(tr.turns) + 1].tolist(),
        )
        for b, tr in enumerate(trajectories)
    ]
    counts = gather_object([len(rows)])
    everything = gather_object(rows)
    batch = [tr for tr, _, _, _ in everything]
    dtype = scores.turn_ig.dtype
    ig = torch.zeros(len(batch), max(len(tr.turns) for tr in batch), dtype=dtype)
    ig_mask = torch.zeros(ig.shape, dtype=torch.bool)
    answer_logp = (
        None if scores.answer_logp is None else torch.zeros(len(batch), ig.shape[1] + 1, dtype=dtype)
    )
    for b, (_, values, keep, answer) in enumerate(everything):
        ig[b, : len(values)] = torch.tensor(values, dtype=dtype)
        ig_mask[b, : len(keep)] = torch.tensor(keep, dtype=torch.bool)
        if answer_logp is not None:
            answer_logp[b, : len(answer)] = torch.tensor(answer, dtype=dtype)
    return batch, ig, ig_mask, answer_logp, sum(counts[:process_index])
