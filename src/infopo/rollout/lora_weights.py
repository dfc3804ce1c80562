"""The plain weights a (possibly peft LoRA) policy computes, for samplers that run a plain model copy."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn


def merged_weights(policy: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """(name, tensor) of the plain Hugging Face model that `policy` computes: for a peft LoRA model the
    base names with W + scale * B A; otherwise the parameters as they are."""
    if not hasattr(policy, "get_base_model"):
        yield from ((name, p.detach()) for name, p in policy.named_parameters())
        return
    base = policy.get_base_model()
    deltas: dict[str, Tensor] = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            for adapter in module.active_adapters:
                delta = module.get_delta_weight(adapter).detach()
                key = f"{name}.base_layer.weight"
                deltas[key] = deltas[key] + delta if key in deltas else delta
    for name, param in base.named_parameters():
        if ".lora_" in name:
            continue
        value = param.detach() + deltas[name] if name in deltas else param.detach()
        yield name.replace(".base_layer", ""), value
