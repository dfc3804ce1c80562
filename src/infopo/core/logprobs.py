"""Token log-probabilities from hidden states, without materialising full-vocabulary logits at once."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def _chunk_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, temperature: float, with_entropy: bool
) -> tuple[Tensor, Tensor]:
    logits = (hidden.to(weight.dtype) @ weight.T) / temperature  # (n, V)
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else torch.zeros_like(logp)
    return logp, entropy


def logprobs_from_hidden(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    with_entropy: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor | None]:
    """log pi(target | hidden) for N positions, computed `chunk_size` rows at a time.

    hidden: (N, H) final hidden states (after the last norm); weight: (V, H) output embedding;
    targets: (N,) token ids. Returns logp (N,) and, if asked, the entropy (N,) of each distribution,
    in `dtype`, the precision of the head matmul and log-softmax (float64 removes the fp32 rounding
    of large logits, about 1e-5 in log-prob on SmolLM2). Under autograd each chunk is recomputed in
    backward (activation checkpointing), so peak memory holds one chunk's (chunk_size, V) logits.
    """
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"hidden has {hidden.shape[0]} rows but targets has {targets.shape[0]}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    weight = weight.to(dtype)
    logps: list[Tensor] = []
    entropies: list[Tensor] = []
    grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    for start in range(0, hidden.shape[0], chunk_size):
        args = (hidden[start : start + chunk_size], weight, targets[start : start + chunk_size])
        if grad:
            logp, ent = checkpoint(_chunk_logprobs, *args, temperature, with_entropy, use_reentrant=False)
        else:
            logp, ent = _chunk_logprobs(*args, temperature, with_entropy)
        logps.append(logp)
        entropies.append(ent)
    empty = hidden.new_zeros(0, dtype=dtype)
    logp = torch.cat(logps) if logps else empty
    entropy = (torch.cat(entropies) if entropies else empty) if with_entropy else None
    return logp, entropy
