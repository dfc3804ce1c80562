"""Goal 1: what information gain adds to a training step, on the same rollouts, for 2 to 16 turns.

A LoRA trainer on SmolLM2-135M-Instruct (the `cpu-demo` settings) takes fixed synthetic dialogues
(`--groups` groups of 4) and runs the step after generation three ways, alternated per repeat:
GRPO (the old-log-prob pass, `score_packed(..., information_gain=False)`, then the update), InfoPO with
packed IG (one pass for old log-probs and every branch), and InfoPO with naive IG (the old-log-prob pass
plus a factual and a counterfactual forward per turn). Prints JSON lines and a table of medians; the
JSON feeds `plot_step_time.py`.

    python benchmarks/bench_ig_step.py [--turns 2 4 8 16] [--repeats 2] [--groups 2] > step-ig.jsonl
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile

import torch
from bench_common import dialogue, emit, load_model, machine, median, table, timed

from infopo.core.advantages import compute_advantages
from infopo.information_gain import information_gain_naive, score_packed
from infopo.rollout.collate import advantage_inputs
from infopo.training.config import load_config
from infopo.training.trainer import Trainer


def step_after_generation(trainer: Trainer, batch: list, mode: str) -> dict[str, float]:
    """Scoring (+ IG), advantages and the PPO update of `batch`; seconds of each part."""
    config = trainer.config
    head = getattr(torch, config.head_dtype)
    scoring_s, scores = timed(
        score_packed,
        trainer.policy,
        batch,
        trainer.placeholder_ids,
        trainer.spec,
        micro_batch_size=config.micro_batch_size,
        information_gain=mode == "infopo-packed",
        dtype=head,
    )
    ig, ig_mask = scores.turn_ig, scores.turn_ig_mask
    naive_s = 0.0
    if mode == "infopo-naive":
        naive_s, (ig, ig_mask) = timed(
            information_gain_naive, trainer.policy, batch, trainer.placeholder_ids, trainer.spec, dtype=head
        )
    advantage = "grpo" if mode == "grpo" else "infopo"
    options = {"epoch": 0} if advantage == "infopo" else {}
    estimate = compute_advantages(advantage, advantage_inputs(batch, ig, ig_mask), **options)
    trainer.policy.train()
    update_s, _ = timed(trainer._update, batch, scores.token_logprobs, estimate.advantages, batch)
    trainer.policy.eval()
    return {"scoring_s": scoring_s + naive_s, "update_s": update_s, "step_s": scoring_s + naive_s + update_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--groups", type=int, default=2, help="groups of 4 trajectories")
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    model, tokenizer = load_model()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config("cpu-demo", [f"output_dir={tmp}", "report_to=none", "trajectory_samples=0"])
        trainer = Trainer(config, model=model, tokenizer=tokenizer, tasks=None)
    weights = trainer._trainable_state()
    optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    modes = ["grpo", "infopo-packed"] + (["infopo-naive"] if args.naive else [])
    rows = []
    warm = [dialogue(tokenizer, trainer.markers, 2, random.Random(0), "warm-up") for _ in range(4)]
    step_after_generation(trainer, warm, "infopo-packed")  # first calls set up kernels: not timed
    for turns in args.turns:
        rng = random.Random(turns)
        batch = [
            dialogue(tokenizer, trainer.markers, turns, rng, f"group-{g}")
            for g in range(args.groups)
            for _ in range(4)
        ]
        times: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for repeat in range(args.repeats):
            for mode in modes:
                if mode == "infopo-naive" and repeat:
                    continue  # slow and steady: one run
                with torch.no_grad():
                    for name, param in trainer.policy.named_parameters():
                        if name in weights:
                            param.copy_(weights[name])
                trainer.optimizer.load_state_dict(copy.deepcopy(optimizer))
                times[mode].append(step_after_generation(trainer, batch, mode))
        scoring_only = timed(
            score_packed,
            trainer.policy,
            batch,
            trainer.placeholder_ids,
            trainer.spec,
            information_gain=False,
            dtype=getattr(torch, config.head_dtype),
        )[0]
        with_ig = timed(
            score_packed,
            trainer.policy,
            batch,
            trainer.placeholder_ids,
            trainer.spec,
            information_gain=True,
            dtype=getattr(torch, config.head_dtype),
        )[0]
        for mode in modes:
            row = {
                "turns": turns,
                "mode": mode,
                "trajectories": len(batch),
                "tokens_per_trajectory": sum(len(t.input_ids) for t in batch) / len(batch),
                **{k: median([t[k] for t in times[mode]]) for k in ("step_s", "scoring_s", "update_s")},
                **machine(),
            }
            rows.append(row)
            emit(row)
        grpo = next(r for r in rows if r["turns"] == turns and r["mode"] == "grpo")
        for row in rows:
            if row["turns"] == turns:
                row["vs_grpo"] = row["step_s"] / grpo["step_s"]
        rows[-1 if not args.naive else -2]["scoring_ig_over_plain"] = with_ig / scoring_only
        emit({"turns": turns, "scoring_plain_s": scoring_only, "scoring_ig_s": with_ig})
    table(
        rows,
        [
            "turns",
            "mode",
            "tokens_per_trajectory",
            "scoring_s",
            "update_s",
            "step_s",
            "vs_grpo",
            "scoring_ig_over_plain",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
