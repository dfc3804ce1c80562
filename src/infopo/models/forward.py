"""The one place that calls a Hugging Face causal LM: hidden states in, token log-probs out."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from infopo.core.logprobs import logprobs_from_hidden


def final_hidden_states(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor | None = None
) -> Tensor:
    """(B, P, H) last hidden states of the decoder (no LM head).

    attention_mask: (B, P) padding mask, or (B, 1, P, P) additive float mask (0 attend, -inf not),
    which Hugging Face models use as given (custom block masks). Works for peft-wrapped models too.
    """
    decoder = model.get_decoder()
    out = decoder(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    )
    return out.last_hidden_state


def output_embedding(model: nn.Module) -> Tensor:
    """(V, H) weight of the LM head (tied to the input embedding where the model ties them)."""
    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise NotImplementedError("LM heads with a bias are not supported")
    return head.weight


def gather_logprobs(
    model: nn.Module,
    hidden: Tensor,
    rows: Tensor,
    cols: Tensor,
    targets: Tensor,
    *,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    with_entropy: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor | None]:
    """log pi(targets[n] | hidden[rows[n], cols[n]]) for N (row, col) predictor positions.

    hidden: (B, P, H); rows, cols, targets: (N,). Only the N gathered positions meet the LM head.
    """
    picked = hidden[rows, cols]
    return logprobs_from_hidden(
        picked,
        output_embedding(model),
        targets,
        chunk_size=chunk_size,
        temperature=temperature,
        with_entropy=with_entropy,
        dtype=dtype,
    )
