"""Naive vs packed information gain on the embedded SmolLM2-135M-Instruct, side by side in one run.

For trajectories of 2, 4, 8 and 16 turns, times the naive path (a factual and a counterfactual forward
per turn, as the reference) and the packed path (one forward per micro-batch, which also yields the old
log-probs), alternating the two so that machine noise hits both alike. Prints one JSON object per turn
count, then a summary line; `speedup` = naive seconds / packed seconds.

    python benchmarks/bench_information_gain.py [--trajectories 4] [--repeats 2] [--threads 2]
        [--turns 2 4 8 16] [--head-dtype float64|float32]

`max_abs_ig_difference` is max |naive IG - packed IG| over the run, with the LM head in --head-dtype.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys

import torch
from bench_common import ANSWERS, QUESTIONS, timed
from transformers import AutoModelForCausalLM, AutoTokenizer

from infopo.information_gain import CounterfactualSpec, information_gain_naive, score_packed
from infopo.models.embedded import prepare_embedded_model
from infopo.rollout import ChatMarkers, Trajectory, TrajectoryBuilder


def make_trajectory(tokenizer, markers: ChatMarkers, turns: int, rng: random.Random) -> Trajectory:
    prompt = [{"role": "user", "content": "Plan a trip to Lisbon for me."}]
    builder = TrajectoryBuilder.from_messages(tokenizer, prompt, markers, task_id=f"{turns}-turns")
    eot = tokenizer.encode(markers.end_of_turn, add_special_tokens=False)
    for t in range(turns):
        action = tokenizer.encode(rng.choice(QUESTIONS), add_special_tokens=False) + eot
        builder.add_turn(action, rng.choice(ANSWERS) if t < turns - 1 else None)
    return builder.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trajectories", type=int, default=4, help="trajectories per turn count")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--turns", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--head-dtype", choices=["float32", "float64"], default="float64")
    args = parser.parse_args()
    dtype = getattr(torch, args.head_dtype)
    torch.set_num_threads(args.threads)

    path = prepare_embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()
    markers = ChatMarkers.from_tokenizer(tokenizer)
    spec = CounterfactualSpec()
    placeholder = spec.placeholder_ids(tokenizer, markers)
    rng = random.Random(0)
    results = []
    for turns in args.turns:
        batch = [make_trajectory(tokenizer, markers, turns, rng) for _ in range(args.trajectories)]
        naive_s, packed_s = [], []
        for _ in range(args.repeats):
            seconds, (naive, _) = timed(information_gain_naive, model, batch, placeholder, spec, dtype=dtype)
            naive_s.append(seconds)
            seconds, packed = timed(
                score_packed, model, batch, placeholder, spec, micro_batch_size=4, dtype=dtype
            )
            packed_s.append(seconds)
        row = {
            "head_dtype": args.head_dtype,
            "turns": turns,
            "trajectories": len(batch),
            "tokens_per_trajectory": statistics.mean(len(tr.input_ids) for tr in batch),
            "naive_s": statistics.median(naive_s),
            "packed_s": statistics.median(packed_s),
            "speedup": statistics.median(naive_s) / statistics.median(packed_s),
            "max_abs_ig_difference": float((packed.turn_ig - naive).abs().max()),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"summary": {str(r["turns"]): round(r["speedup"], 2) for r in results}}))


if __name__ == "__main__":
    sys.exit(main())
