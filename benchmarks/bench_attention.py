"""Where float32 attention beats bfloat16 on CPU: sdpa forward + backward at SmolLM2-135M's shapes.

One layer's attention of an update micro-batch (8 rows, 9 query heads, 3 key/value heads, head size 64,
a causal mask with right padding on half the rows, as the trainer's micro-batches have), forward and
backward, in bfloat16 and in float32, for several sequence lengths; variants interleaved, `--repeats`
times, medians. `FLOAT32_MAX_KEYS` in `infopo.models.attention` is read off this table.

    OMP_NUM_THREADS=1 python benchmarks/bench_attention.py [--lengths 150 300 600 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from bench_common import emit, machine, median, table, timed

ROWS, HEADS, KV_HEADS, HEAD_DIM = 8, 9, 3, 64


def padded_causal_mask(length: int) -> torch.Tensor:
    """(ROWS, 1, L, L) bool: causal, the last 30 positions of half the rows padding (they see themselves)."""
    mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None].repeat(ROWS, 1, 1, 1)
    pad = torch.arange(length - min(30, length // 2), length)
    mask[ROWS // 2 :, :, :, pad] = False
    mask[ROWS // 2 :, :, pad, pad] = True
    return mask


def forward_backward(length: int, dtype: torch.dtype, mask: torch.Tensor) -> None:
    q = torch.randn(ROWS, HEADS, length, HEAD_DIM, dtype=dtype, requires_grad=True)
    k = torch.randn(ROWS, KV_HEADS, length, HEAD_DIM, dtype=dtype, requires_grad=True)
    v = torch.randn(ROWS, KV_HEADS, length, HEAD_DIM, dtype=dtype, requires_grad=True)
    F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True).float().sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[150, 300, 600, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dtypes = (torch.bfloat16, torch.float32)
    masks = {length: padded_causal_mask(length) for length in args.lengths}
    seconds: dict[tuple[int, torch.dtype], list[float]] = {}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for length in args.lengths:
            for dtype in dtypes:
                t, _ = timed(forward_backward, length, dtype, masks[length])
                if repeat:
                    seconds.setdefault((length, dtype), []).append(t)
    rows = []
    for length in args.lengths:
        bf16, fp32 = (median(seconds[(length, dtype)]) for dtype in dtypes)
        row = {
            "keys": length,
            "bfloat16_ms": bf16 * 1000,
            "float32_ms": fp32 * 1000,
            "float32_over_bfloat16": fp32 / bf16,
            **machine(),
        }
        rows.append(row)
        emit(row)
    table(rows, ["keys", "bfloat16_ms", "float32_ms", "float32_over_bfloat16"])


if __name__ == "__main__":
    main()
