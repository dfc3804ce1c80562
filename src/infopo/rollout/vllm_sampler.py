"""Sampling with vLLM on a GPU, colocated with the trainer in the same process (`rollout_engine: vllm`).

vLLM is optional (`pip install vllm` on a GPU machine) and imported only here. Each request carries
its own seed (`episode_seed`), so sampling stays independent of the batch as with `HFSampler`; the
trainer still recomputes the old log-probs with the training model. Before every rollout the policy's
weights are copied into the engine: full weights, or for LoRA the base weight plus the adapter's delta,
computed functionally so the training weights are never merged in place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from infopo.rollout.engine import SamplingConfig, cut_at_end_of_turn


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


class VLLMSampler:
    """The engine's sampler on an in-process `vllm.LLM` loaded from `model_path`."""

    def __init__(
        self,
        model_path: str | Path,
        eot_id: int,
        gpu_memory_utilization: float,
        seed: int,
        dtype: str = "auto",
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the model must live in this process
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "rollout_engine: vllm needs vLLM on a GPU machine (pip install vllm); "
                "use rollout_engine: hf otherwise"
            ) from err
        self.vllm, self.eot_id = vllm, eot_id
        self.llm = vllm.LLM(
            model=str(model_path),
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            dtype=dtype,
            enable_prefix_caching=True,
        )

    def _engine_model(self) -> Any:
        """The torch model inside the engine (its location moved between vLLM versions)."""
        executor = self.llm.llm_engine.model_executor
        for path in (
            ("driver_worker", "worker", "model_runner", "model"),
            ("driver_worker", "model_runner", "model"),
        ):
            node = executor
            for attribute in path:
                node = getattr(node, attribute, None)
            if node is not None:
                return node
        raise RuntimeError(
            f"cannot reach the model inside vLLM {getattr(self.vllm, '__version__', '?')} to update its "
            "weights; pin a vLLM release documented in docs/training.md"
        )

    @torch.no_grad()
    def update_weights(self, policy: nn.Module) -> None:
        self._engine_model().load_weights(merged_weights(policy))
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights

    def sample(
        self, contexts: list[list[int]], seeds: list[int], sampling: SamplingConfig
    ) -> list[list[int]]:
        params = [
            self.vllm.SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                stop_token_ids=[self.eot_id],
                seed=seed,
                detokenize=False,
            )
            for seed in seeds
        ]
        prompts = [{"prompt_token_ids": context} for context in contexts]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        actions = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            if completion.finish_reason == "stop" and ids[-1:] != [self.eot_id]:
                ids.append(self.eot_id)  # a stop token the engine left out of token_ids
            actions.append(cut_at_end_of_turn(ids, self.eot_id))
        return actions
