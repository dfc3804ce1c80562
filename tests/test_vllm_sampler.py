"""The vLLM sampler against a stand-in `vllm` module (no GPU here): requests, seeds, weight sync.

What is checked for real: the merged LoRA weights handed to the engine compute the same logits as the
peft model, and the trainer drives the engine as documented. vLLM itself is checked on a GPU machine.
"""

from __future__ import annotations

import importlib.machinery
import os
import random
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from peft import LoraConfig, get_peft_model
from toy import COLOURS, tiny_policy, toy_config, toy_trainer, word_tokenizer

from infopo.rollout.engine import episode_seed
from infopo.rollout.lora_weights import merged_weights
from infopo.rollout.vllm_sampler import VLLMSampler


class FakeLLM:
    """Records what the sampler asks; 'generates' two colour words per request from the request's seed,
    then stops at end of turn (left out of token_ids, as stop tokens may be) or runs out of tokens."""

    instances: ClassVar[list[FakeLLM]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs, self.requests, self.loaded, self.resets = kwargs, [], [], 0
        model = types.SimpleNamespace(load_weights=lambda weights: self.loaded.append(dict(weights)))
        runner = types.SimpleNamespace(model_runner=types.SimpleNamespace(model=model))
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(worker=runner))
        )
        self.colour_ids = word_tokenizer().convert_tokens_to_ids(COLOURS)
        FakeLLM.instances.append(self)

    def reset_prefix_cache(self) -> None:
        self.resets += 1

    def generate(self, prompts: list[dict[str, list[int]]], params: list[Any], use_tqdm: bool) -> list[Any]:
        outputs = []
        for prompt, param in zip(prompts, params, strict=True):
            self.requests.append((prompt["prompt_token_ids"], param.kwargs))
            rng = random.Random(param.kwargs["seed"])
            ids = [rng.choice(self.colour_ids) for _ in range(min(2, param.kwargs["max_tokens"]))]
            reason = "stop" if param.kwargs["max_tokens"] > 2 else "length"
            completion = types.SimpleNamespace(token_ids=tuple(ids), finish_reason=reason)
            outputs.append(types.SimpleNamespace(outputs=[completion]))
        return outputs


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[FakeLLM]:
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = FakeLLM, FakeSamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    FakeLLM.instances.clear()
    return FakeLLM


def test_merged_lora_weights_compute_what_the_peft_model_computes() -> None:
    tokenizer = word_tokenizer()
    policy = get_peft_model(
        tiny_policy(len(tokenizer)), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # peft starts B at zero: make the adapter matter
    plain = tiny_policy(len(tokenizer), seed=1)
    weights = dict(merged_weights(policy))
    assert set(weights) == {n for n, _ in plain.named_parameters()}
    plain.load_state_dict(weights, strict=False)
    ids = torch.tensor([tokenizer.encode("i want a colour . which one ? red or blue")])
    with torch.no_grad():
        expected, got = policy(input_ids=ids).logits, plain(input_ids=ids).logits
        with policy.disable_adapter():
            without = policy(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (without - expected).abs().max() > 1e-2  # the adapter changed the function
    base = policy.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert not torch.equal(weights["model.layers.0.self_attn.q_proj.weight"], base)  # merged, not in place


def test_the_trainer_drives_the_engine(tmp_path: Path, fake_vllm: type[FakeLLM]) -> None:
    config = toy_config(
        model=str(tmp_path),
        rollout_engine="vllm",
        output_dir=str(tmp_path / "run"),
        max_new_tokens=3,
        steps=2,
    )
    trainer = toy_trainer(config)
    assert isinstance(trainer.sampler, VLLMSampler)
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    trainer.train()
    [llm] = fake_vllm.instances
    assert llm.kwargs["model"] == str(tmp_path) and llm.kwargs["seed"] == config.seed
    assert llm.kwargs["dtype"] == "float32"  # rollout_dtype
    assert len(llm.loaded) == llm.resets == 2  # fresh weights before each step's rollouts
    assert set(llm.loaded[0]) == {n for n, _ in trainer.policy.named_parameters()}
    eot = trainer.tokenizer.convert_tokens_to_ids("<eot>")
    for _, params in llm.requests:
        assert (
            params["stop_token_ids"] == [eot] and params["max_tokens"] == 3 and params["temperature"] == 1.0
        )
    group_ids, _ = trainer.tasks_for_step(0)
    first_turn = [params["seed"] for _, params in llm.requests[: len(group_ids) * config.group_size]]
    assert first_turn == [
        episode_seed(config.seed, g, k, 0) for g in group_ids for k in range(config.group_size)
    ]


def test_actions_end_at_end_of_turn(tmp_path: Path, fake_vllm: type[FakeLLM]) -> None:
    from infopo.rollout.engine import SamplingConfig

    sampler = VLLMSampler(tmp_path, eot_id=1, gpu_memory_utilization=0.5, seed=0)
    stopped = sampler.sample([[5, 6], [7]], [11, 12], SamplingConfig(max_new_tokens=8, top_p=0.9))
    assert [len(a) for a in stopped] == [3, 3] and all(a[-1] == 1 for a in stopped)
    cut = sampler.sample([[5, 6]], [11], SamplingConfig(max_new_tokens=2))
    assert cut == [stopped[0][:2]]  # the same seed, cut by the token cap: no end-of-turn added
    [llm] = fake_vllm.instances
    assert llm.requests[0][1]["top_p"] == 0.9 and llm.requests[0][1]["seed"] == 11
    assert llm.kwargs["gpu_memory_utilization"] == 0.5


def test_vllm_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="pip install vllm"):
        toy_trainer(toy_config(model=str(tmp_path), rollout_engine="vllm"))
    with pytest.raises(ValueError, match="loads the model from a directory"):
        toy_trainer(toy_config(model=str(tmp_path / "nowhere"), rollout_engine="vllm"))
