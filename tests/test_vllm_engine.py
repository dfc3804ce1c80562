"""The vLLM sampler against the real engine (the CPU build in .venv-vllm; skipped where vllm is absent).

Checked: per-request seeds make a row independent of its batch, actions end at end of turn or at the
token cap, and `update_weights` (collective_rpc reload_weights) makes the engine compute what the
training policy computes: after moving a LoRA adapter, greedy decoding in the engine (fp32) gives the
tokens of greedy decoding with the Hugging Face model.
"""

from __future__ import annotations

import pytest
import torch

vllm = pytest.importorskip("vllm")

from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from infopo.models.embedded import prepare_embedded_model  # noqa: E402
from infopo.rollout.engine import SamplingConfig  # noqa: E402
from infopo.rollout.hf_sampler import HFSampler  # noqa: E402
from infopo.rollout.vllm_sampler import VLLMSampler  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine() -> tuple[VLLMSampler, AutoTokenizer, int]:
    path = prepare_embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    threads = torch.get_num_threads()
    sampler = VLLMSampler(path, eot, gpu_memory_utilization=0.5, seed=0, dtype="float32")
    assert torch.get_num_threads() == threads  # restored after vLLM lowered it
    return sampler, tokenizer, eot


def _contexts(tokenizer: AutoTokenizer) -> list[list[int]]:
    prompts = ["Name a colour.", "Plan a short trip to Lisbon for me, please.", "Hi"]
    return [
        list(
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)[
                "input_ids"
            ]
        )
        for p in prompts
    ]


def test_a_row_does_not_depend_on_its_batch(engine: tuple[VLLMSampler, AutoTokenizer, int]) -> None:
    sampler, tokenizer, eot = engine
    contexts = _contexts(tokenizer)
    sampling = SamplingConfig(max_new_tokens=12)
    batched = sampler.sample(contexts, [11, 12, 13], sampling)
    alone = [sampler.sample([c], [s], sampling)[0] for c, s in zip(contexts, [11, 12, 13], strict=True)]
    assert batched == alone
    assert all(len(a) == 12 or (a[-1] == eot and a.count(eot) == 1) for a in batched)
    assert sampler.sample(contexts, [21, 22, 23], sampling) != batched


def test_update_weights_makes_the_engine_compute_the_policy(
    engine: tuple[VLLMSampler, AutoTokenizer, int],
) -> None:
    sampler, tokenizer, eot = engine
    model = AutoModelForCausalLM.from_pretrained(prepare_embedded_model(), dtype=torch.float32)
    policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).eval()
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    contexts = _contexts(tokenizer)
    before = sampler.sample(contexts, [1, 2, 3], SamplingConfig(max_new_tokens=8, temperature=1e-6))
    sampler.update_weights(policy)
    greedy = sampler.sample(contexts, [1, 2, 3], SamplingConfig(max_new_tokens=8, temperature=1e-6))
    expected = HFSampler(policy, eot, eot).generate(contexts, [], 8)
    assert greedy == expected
    assert greedy != before  # the adapter changed what the engine computes
