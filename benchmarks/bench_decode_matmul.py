"""Goal 4's ceiling: what one decoding step's matmuls cost at batch 1 against batch B.

Batching B episodes pays off only as far as B rows of a decoding step cost less than B single rows. This
times the linear layers of one SmolLM2-135M decoding step (all 30 layers' q, k, v, o, gate, up and down
projections, no LM head) on (B, hidden) inputs, in fp32 (what `HFSampler` decodes in) and bf16, with the
weights as `nn.Linear` stores them (out, in), and in fp32 with the weights prepacked by MKL for that batch
size (`torch.ops.mkl._mkl_linear`, as torch's CPU inference freezing does; not what `HFSampler` uses).
Variants are interleaved, `--repeats` times; medians. `batch_speedup_cap` = B x t(1) / t(B): the most
that batching B rows can gain over one row at a time if nothing but these matmuls counted.

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
    megabytes = sum(w.numel() for w in weights[torch.float32]) * 4 / 2**20
    packed = {  # MKL's prepacked float32 layout, one copy per batch size (it serves that size only)
        batch: [torch.ops.mkl._mkl_reorder_linear_weight(w, batch) for w in weights[torch.float32]]
        for batch in args.batches
    }
    formats = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float32 MKL-prepacked": torch.float32}

    def step(batch: int, name: str) -> None:
        dtype = formats[name]
        inputs = {
            width: torch.randn(batch, width, dtype=dtype) for width in {w.shape[1] for w in weights[dtype]}
        }
        if name == "float32 MKL-prepacked":
            for w, p in zip(weights[dtype], packed[batch], strict=True):
                torch.ops.mkl._mkl_linear(inputs[w.shape[1]], p, w, None, batch)
            return
        for w in weights[dtype]:
            torch.nn.functional.linear(inputs[w.shape[1]], w)

    seconds: dict[tuple[int, str], list[float]] = {}
    with torch.no_grad():
        for batch in args.batches:  # warm-up
            for name in formats:
                step(batch, name)
        for _ in range(args.repeats):
            for batch in args.batches:
                for name in formats:
                    seconds.setdefault((batch, name), []).append(timed(step, batch, name)[0])
    rows = []
    for name, dtype in formats.items():
        one = median(seconds[(args.batches[0], name)]) / args.batches[0]
        size = megabytes / (2 if dtype == torch.bfloat16 else 1)
        for batch in args.batches:
            t = median(seconds[(batch, name)])
            row = {
                "weights": name,
                "batch": batch,
                "ms": t * 1000,
                "weight_gb_per_s": size / 1024 / t,
                "ms_per_row": t * 1000 / batch,
                "batch_speedup_cap": one * batch / t,
                **machine(),
            }
            rows.append(row)
            emit(row)
    table(rows, ["weights", "batch", "ms", "weight_gb_per_s", "ms_per_row", "batch_speedup_cap"])


if __name__ == "__main__":
    main()
