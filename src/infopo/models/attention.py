"""Short attention in float32 inside CPU bfloat16 autocast, where it is faster than in bfloat16.

CPU autocast runs `scaled_dot_product_attention` in bfloat16, and torch's CPU flash-attention backward in
bfloat16 has a large fixed cost per block: at 150 keys forward + backward take 1.75x as long as in
float32, at 256 keys the two are even, at 1,000 float32 takes 1.3x as long (one thread;
docs/performance.md, "The update's attention"). `FLOAT32_CPU_SDPA` is Hugging Face's sdpa attention
that, under CPU autocast and for at most `FLOAT32_MAX_KEYS` keys, turns autocast off and attends in
float32; everywhere else (no autocast, longer sequences, a GPU) it is sdpa itself. Masks are built as for
sdpa.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

FLOAT32_CPU_SDPA = "infopo_sdpa_float32_cpu"
SDPA_LIKE = ("sdpa", FLOAT32_CPU_SDPA)  # implementations that take a boolean 4D mask as given
FLOAT32_MAX_KEYS = 256


def float32_cpu_sdpa(
    module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None, **kwargs: Any
) -> tuple[Tensor, Tensor | None]:
    """sdpa on (B, heads, L_q, head_dim) query and (B, kv_heads, L_k, head_dim) key and value; under CPU
    autocast with L_k <= FLOAT32_MAX_KEYS, with autocast off and all three in float32 (rotary embeddings
    often leave query and key in float32 already: autocast would cast them down)."""
    if query.device.type != "cpu" or not torch.is_autocast_enabled("cpu") or key.shape[-2] > FLOAT32_MAX_KEYS:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast("cpu", enabled=False):
        return sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )


AttentionInterface.register(FLOAT32_CPU_SDPA, float32_cpu_sdpa)
AttentionMaskInterface.register(FLOAT32_CPU_SDPA, sdpa_mask)


def use_float32_cpu_attention(model: nn.Module) -> None:
    """Switch a model that uses sdpa attention to `FLOAT32_CPU_SDPA` (others are left as they are)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base.config, "_attn_implementation", None) == "sdpa":
        base.set_attn_implementation(FLOAT32_CPU_SDPA)
