"""The one place that calls a Hugging Face causal LM: final hidden states and the output embedding."""

from __future__ import annotations

from torch import Tensor, nn


def final_hidden_states(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
) -> Tensor:
    """(B, P, H) last hidden states of the decoder (after its final norm, before the LM head).

    attention_mask: None (plain causal), (B, P) padding mask, or a custom (B, 1, P, P) mask that
    Hugging Face models use as given (bool for sdpa, additive float for eager attention).
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
