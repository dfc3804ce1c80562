"""Goal 4: rollout throughput against the number of turns, and batched against sequential generation.

A group of `--group` SmolLM2-135M-Instruct (LoRA, as in training) episodes talks to a scripted user that
answers every turn with a fixed sentence, for 2 and 16 turns of up to `--max-new-tokens` tokens. Reports
generated tokens per second of `generate_rollouts` (one batch per turn) for today's sampler (per-episode
KV caches, merged LoRA copy) and, with `--baseline`, for the HF-`generate` sampler of a baseline tree;
then the same trajectories generated one episode at a time (same seeds, so the same tokens).

    python benchmarks/bench_rollout.py [--turns 2 16] [--group 8] [--baseline DIR] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch
from bench_common import ScriptedUser, emit, load_model, machine, table, timed
from peft import LoraConfig, get_peft_model

from infopo.envs.base import Task
from infopo.rollout import ChatMarkers
from infopo.rollout.engine import SamplingConfig, generate_rollouts
from infopo.rollout.hf_sampler import HFSampler


def old_sampler(baseline: Path) -> type:
    spec = importlib.util.spec_from_file_location(
        "baseline_hf_sampler", baseline / "src/infopo/rollout/hf_sampler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module.HFSampler


def generated(trajectories: list) -> int:
    return sum(len(turn.action) for tr in trajectories for turn in tr.turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--sequential", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="today's copy")
    args = parser.parse_args()
    model, tokenizer = load_model()
    torch.manual_seed(0)
    policy = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    )
    policy.eval()
    markers = ChatMarkers.from_tokenizer(tokenizer)
    eot = markers.end_of_turn_id(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot
    task = Task(
        "trip", "scripted", [{"role": "user", "content": "Plan a week in Lisbon for me, step by step."}]
    )
    samplers = {"today": HFSampler(policy, eot, pad, dtype=getattr(torch, args.dtype))}
    if args.baseline is not None:
        samplers["baseline"] = old_sampler(args.baseline)(policy, eot, pad)
    rows = []
    for turns in args.turns:
        sampling = SamplingConfig(args.group, turns, args.max_new_tokens, temperature=1.0)
        reference = None
        for name, sampler in samplers.items():
            sampler.update_weights(policy)
            seconds, trajectories = timed(
                generate_rollouts, sampler, tokenizer, [task], ScriptedUser, sampling, seed=0
            )
            same = reference is None or [t.input_ids for t in trajectories] == reference
            reference = reference or [t.input_ids for t in trajectories]
            row = {
                "turns": turns,
                "sampler": name,
                "mode": "batched",
                "seconds": seconds,
                "tokens": generated(trajectories),
                "tokens_per_s": generated(trajectories) / seconds,
                "same_tokens": same,
                **machine(),
            }
            rows.append(row)
            emit(row)
            if name == "today" and args.sequential:
                one = SamplingConfig(1, turns, args.max_new_tokens, temperature=1.0)
                seconds = 0.0
                alone = []
                for k in range(args.group):  # sample k of the group, alone: the same seeds, the same tokens
                    sampler.update_weights(policy)
                    solo = _Solo(sampler, k)
                    s, trs = timed(generate_rollouts, solo, tokenizer, [task], ScriptedUser, one, seed=0)
                    seconds += s
                    alone += trs
                row = {
                    "turns": turns,
                    "sampler": name,
                    "mode": "sequential",
                    "seconds": seconds,
                    "tokens": generated(alone),
                    "tokens_per_s": generated(alone) / seconds,
                    "same_tokens": [t.input_ids for t in alone] == reference,
                    **machine(),
                }
                rows.append(row)
                emit(row)
    for row in rows:
        first = next(r for r in rows if r["sampler"] == row["sampler"] and r["mode"] == row["mode"])
        row["rate_vs_first_turns"] = row["tokens_per_s"] / first["tokens_per_s"]
        batched = next(
            r
            for r in rows
            if r["turns"] == row["turns"] and r["sampler"] == "today" and r["mode"] == "batched"
        )
        row["today_batched_speedup"] = batched["tokens_per_s"] / row["tokens_per_s"]
    table(
        rows,
        [
            "turns",
            "sampler",
            "mode",
            "seconds",
            "tokens",
            "tokens_per_s",
            "rate_vs_first_turns",
            "today_batched_speedup",
            "same_tokens",
        ],
    )


class _Solo:
    """A sampler that stands in episode `k` of a group for the group's first (and only) one: the seeds
    of sample k, so that sequential generation reproduces the batched trajectories."""

    def __init__(self, sampler: HFSampler, k: int) -> None:
        self.sampler, self.k = sampler, k
        self.turn = 0

    def sample(
        self, contexts: list[list[int]], seeds: list[int], sampling: SamplingConfig
    ) -> list[list[int]]:
        from infopo.rollout.engine import episode_seed

        seed = episode_seed(0, "trip", self.k, self.turn)
        self.turn += 1
        return self.sampler.sample(contexts, [seed], sampling)

    def update_weights(self, policy: torch.nn.Module) -> None:
        self.sampler.update_weights(policy)

    def release(self) -> None:
        self.sampler.release()


if __name__ == "__main__":
    sys.exit(main())
