"""Goal 5: peak memory of scoring and of one update against trajectory length (one process each).

For one trajectory of about 512, 2,048 and 8,192 tokens (turns of a 32-token action and a 96-token
answer), a fresh process builds the `cpu-demo` LoRA trainer on SmolLM2-135M-Instruct, runs the phase
once on a short trajectory (weights paged in, autocast's bf16 weight copies, optimizer state), notes its
peak resident set, then runs the packed scoring pass with IG (phase `scoring`) or that pass and one PPO
update (phase `update`) and reports the peak resident set size (ru_maxrss) above that starting point.
Linear growth means the slope (MiB per 1k more tokens) stays flat;
length x vocabulary (49,152) logits in fp32 would be 192 MiB per 1k tokens.

    python benchmarks/bench_memory.py [--lengths 512 2048 8192]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from bench_common import emit, peak_rss_mb, table

HERE = Path(__file__).resolve().parent


def trajectory(tokenizer: Any, markers: Any, length: int) -> Any:
    from infopo.rollout import TrajectoryBuilder

    rng = random.Random(length)
    # words that are one token after a space, so that a turn is 32 + 96 tokens and markers
    words = [
        w
        for w in tokenizer.get_vocab()
        if w.isalpha() and len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1
    ][:5000]
    builder = TrajectoryBuilder.from_messages(tokenizer, [{"role": "user", "content": "Help me."}], markers)
    eot = tokenizer.encode(markers.end_of_turn, add_special_tokens=False)
    turns = max(2, length // 128)
    for t in range(turns):
        action = [tokenizer.convert_tokens_to_ids(rng.choice(words)) for _ in range(31)] + eot
        answer = " ".join(rng.choice(words) for _ in range(96))
        builder.add_turn(action, answer if t < turns - 1 else None, 1.0)
    return builder.build()


def child(phase: str, length: int) -> None:
    from infopo.core.advantages import compute_advantages
    from infopo.information_gain import score_packed
    from infopo.rollout.collate import advantage_inputs
    from infopo.training.config import load_config
    from infopo.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(load_config("cpu-demo", [f"output_dir={tmp}", "report_to=none"]))
    head = getattr(torch, trainer.config.head_dtype)

    def run(batch: list) -> None:
        scores = score_packed(trainer.policy, batch, trainer.placeholder_ids, trainer.spec, dtype=head)
        if phase == "update":
            estimate = compute_advantages("grpo", advantage_inputs(batch))
            trainer.policy.train()
            trainer._update(batch, scores.token_logprobs, estimate.advantages, batch)
            trainer.policy.eval()

    run([trajectory(trainer.tokenizer, trainer.markers, 256)])  # weights paged in, kernels and caches set up
    tr = trajectory(trainer.tokenizer, trainer.markers, length)
    start = peak_rss_mb()
    run([tr])
    print(
        json.dumps({"phase": phase, "tokens": len(tr.input_ids), "start_mb": start, "peak_mb": peak_rss_mb()})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--child", nargs=2, metavar=("PHASE", "LENGTH"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    rows = []
    for phase in ("scoring", "update"):
        for length in args.lengths:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", phase, str(length)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row["growth_mb"] = row["peak_mb"] - row["start_mb"]
            row["mb_per_1k_tokens"] = row["growth_mb"] / row["tokens"] * 1000
            before = [r for r in rows if r["phase"] == phase]
            if before:  # the slope since the previous length: flat when memory is linear in length
                extra = (row["growth_mb"] - before[-1]["growth_mb"]) / (row["tokens"] - before[-1]["tokens"])
                row["slope_mb_per_1k"] = extra * 1000
            rows.append(row)
            emit(row)
    table(
        rows, ["phase", "tokens", "start_mb", "peak_mb", "growth_mb", "mb_per_1k_tokens", "slope_mb_per_1k"]
    )


if __name__ == "__main__":
    sys.exit(main())
