"""Float32 attention under CPU bfloat16 autocast: what it computes, where it applies, the trainer's use."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from fixtures import tiny_model
from toy import toy_config, toy_trainer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from infopo.models.attention import (
    FLOAT32_CPU_SDPA,
    FLOAT32_MAX_KEYS,
    float32_cpu_sdpa,
    use_float32_cpu_attention,
)


class _Module(torch.nn.Module):
    """What Hugging Face's sdpa reads off an attention module."""

    is_causal = True
    num_key_value_groups = 2


def _qkv(keys: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    query = torch.randn(2, 4, keys, 16)  # float32, as rotary embeddings leave it
    key = torch.randn(2, 2, keys, 16)
    value = torch.randn(2, 2, keys, 16, dtype=torch.bfloat16)  # v_proj's output under autocast
    return query, key, value


def test_under_cpu_autocast_short_attention_is_computed_in_float32() -> None:
    query, key, value = _qkv(12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = float32_cpu_sdpa(_Module(), query, key, value, None)
        autocast_sdpa, _ = sdpa_attention_forward(_Module(), query, key, value, None)
    expected = F.scaled_dot_product_attention(
        query,
        key.repeat_interleave(2, dim=1),
        value.float().repeat_interleave(2, dim=1),
        is_causal=True,
    ).transpose(1, 2)
    assert out.dtype == torch.float32 and autocast_sdpa.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert (autocast_sdpa.float() - expected).abs().max() > 1e-3  # what autocast alone would have computed


def test_long_attention_and_attention_outside_autocast_are_sdpa_itself() -> None:
    for keys, autocast in ((FLOAT32_MAX_KEYS + 1, True), (12, False)):
        query, key, value = _qkv(keys)
        value = value.float()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out, _ = float32_cpu_sdpa(_Module(), query, key, value, None)
            plain, _ = sdpa_attention_forward(_Module(), query, key, value, None)
        assert out.dtype == plain.dtype and torch.equal(out, plain)


def test_a_switched_model_computes_what_sdpa_computes_without_autocast() -> None:
    sdpa, switched = tiny_model(64), tiny_model(64)
    use_float32_cpu_attention(switched)
    assert switched.config._attn_implementation == FLOAT32_CPU_SDPA
    ids = torch.randint(0, 64, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, :5] = 0  # left padding: the mask is built as for sdpa
    with torch.no_grad():
        assert torch.equal(sdpa(ids, attention_mask=mask).logits, switched(ids, attention_mask=mask).logits)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = sdpa(ids, attention_mask=mask).logits
            high = switched(ids, attention_mask=mask).logits
    assert not torch.equal(low, high)


def test_only_sdpa_models_are_switched() -> None:
    eager = tiny_model(64, attn_implementation="eager")
    use_float32_cpu_attention(eager)
    assert eager.config._attn_implementation == "eager"


def test_the_trainer_switches_its_policy_when_it_trains_in_bfloat16(tmp_path: Path) -> None:
    implementations = {}
    for dtype in ("float32", "bfloat16"):
        AcceleratorState._reset_state(reset_partial_state=True)  # mixed precision is fixed per process
        try:
            config = toy_config(output_dir=str(tmp_path / dtype), dtype=dtype, advantage="infopo")
            trainer = toy_trainer(config)
            trainer.train_step()  # the packed IG pass takes the switched model's mask as sdpa's
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)
        implementations[dtype] = trainer.policy.config._attn_implementation
    assert implementations == {"float32": "sdpa", "bfloat16": FLOAT32_CPU_SDPA}
