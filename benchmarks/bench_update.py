"""The update's attention: one PPO update with bfloat16 against float32 attention, side by side.

Builds the `--config` trainer (default `cpu-demo`: bf16 autocast), generates and scores one batch, then
times `Trainer._update` on that batch `--repeats` times per variant, alternating, each from the same
weights and optimizer state: `sdpa` (autocast runs attention in bfloat16) and `float32` (the trainer's
default under bfloat16, `infopo.models.attention`: attention in float32 up to FLOAT32_MAX_KEYS keys).
`--turns` lengthens the episodes (longer sequences: where float32 attention stops paying off).

    OMP_NUM_THREADS=2 python benchmarks/bench_update.py [--config cpu-demo] [--turns 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import torch
from bench_common import emit, machine, median, table, timed

from infopo.information_gain import score_packed
from infopo.models.attention import FLOAT32_CPU_SDPA
from infopo.rollout.engine import generate_rollouts
from infopo.training.config import load_config
from infopo.training.trainer import Trainer

VARIANTS = {"sdpa": "sdpa", "float32": FLOAT32_CPU_SDPA}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu-demo")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output_dir={tmp}", "report_to=none", f"max_turns={args.turns}"]
        trainer = Trainer(load_config(args.config, overrides))
        config, policy = trainer.config, trainer.policy
        group_ids, tasks = trainer.tasks_for_step(0)
        policy.eval()
        trainer.sampler.update_weights(policy)
        trajectories = generate_rollouts(
            trainer.sampler,
            trainer.tokenizer,
            tasks,
            trainer.make_env,
            trainer.sampling,
            seed=config.seed,
            markers=trainer.markers,
            group_ids=group_ids,
        )
        scores = score_packed(
            policy,
            trajectories,
            trainer.placeholder_ids,
            trainer.spec,
            micro_batch_size=config.micro_batch_size,
            temperature=config.temperature,
            dtype=torch.float32,
        )
        advantages = torch.randn(scores.token_logprobs.shape, generator=torch.Generator().manual_seed(0))
        weights = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
        optimizer = copy.deepcopy(trainer.optimizer.state_dict())

        def update() -> None:
            trainer._update(trajectories, scores.token_logprobs, advantages, trajectories)

        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        policy.train()
        for repeat in range(args.repeats + 1):  # the first round warms up
            for name, implementation in VARIANTS.items():
                base.set_attn_implementation(implementation)
                with torch.no_grad():
                    for n, p in policy.named_parameters():
                        if n in weights:
                            p.copy_(weights[n])
                trainer.optimizer.load_state_dict(copy.deepcopy(optimizer))
                t, _ = timed(update)
                if repeat:
                    seconds[name].append(t)
    lengths = [len(tr.input_ids) for tr in trajectories]
    reference = median(seconds["sdpa"])
    rows = []
    for name in VARIANTS:
        row = {
            "attention": name,
            "turns": args.turns,
            "trajectories": len(trajectories),
            "longest_tokens": max(lengths),
            "update_s": median(seconds[name]),
            "ratio": median(seconds[name]) / reference,
            **machine(),
        }
        rows.append(row)
        emit(row)
    table(rows, ["attention", "turns", "trajectories", "longest_tokens", "update_s", "ratio"])


if __name__ == "__main__":
    main()
