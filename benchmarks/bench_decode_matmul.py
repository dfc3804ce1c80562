"""Goal 4's ceiling: what one decoding step's matmuls cost at batch 1 against batch B.

Batching B episodes pays off only as far as B rows of a decoding step cost less than B single rows. This
times the linear layers of one SmolLM2-135M decoding step (all 30 layers' q, k, v, o, gate, up and down
projections, no LM head) on (B, hidden) inputs, in fp32 (what `HFSampler` decodes in) and bf16, with the
weights as `nn.Linear` stores them (out, in). Variants are interleaved, `--repeats` times; medians.
`batch_speedup_cap` = B x t(1) / t(B): the most that batching B rows can gain over one row at a time if
nothing but these matmuls counted.

    OMP_NUM_THREADS=1 python benchmarks/bench_decode_matmul.py [--batches 1 2 4 8 16] [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
from bench_common import emit, load_model, machine, median, table, timed
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model, _ = load_model()
    linears = [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and "lm_head" not in name]
    weights = {
        dtype: [m.weight.detach().to(dtype) for m in linears] for dtype in (torch.float32, torch.bfloat16)
    }
    megabytes = {
        dtype: sum(w.numel() * w.element_size() for w in ws) / 2**20 for dtype, ws in weights.items()
    }

    def step(batch: int, dtype: torch.dtype) -> None:
        inputs = {
            width: torch.randn(batch, width, dtype=dtype) for width in {w.shape[1] for w in weights[dtype]}
        }
        for w in weights[dtype]:
            torch.nn.functional.linear(inputs[w.shape[1]], w)

    seconds: dict[tuple[int, torch.dtype], list[float]] = {}
    with torch.no_grad():
        for batch in args.batches:  # warm-up
            for dtype in weights:
                step(batch, dtype)
        for _ in range(args.repeats):
            for batch in args.batches:
                for dtype in weights:
                    seconds.setdefault((batch, dtype), []).append(timed(step, batch, dtype)[0])
    rows = []
    for dtype in weights:
        one = median(seconds[(args.batches[0], dtype)]) / args.batches[0]
        for batch in args.batches:
            t = median(seconds[(batch, dtype)])
            row = {
                "dtype": str(dtype).removeprefix("torch."),
                "batch": batch,
                "ms": t * 1000,
                "weight_gb_per_s": megabytes[dtype] / 1024 / t,
                "ms_per_row": t * 1000 / batch,
                "batch_speedup_cap": one * batch / t,
                **machine(),
            }
            rows.append(row)
            emit(row)
    table(rows, ["dtype", "batch", "ms", "weight_gb_per_s", "ms_per_row", "batch_speedup_cap"])


if __name__ == "__main__":
    main()
