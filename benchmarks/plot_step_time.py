"""The plot of docs/performance.md: step time (after generation) against turns, from bench_ig_step.py.

python benchmarks/bench_ig_step.py > /tmp/step-ig.jsonl
python benchmarks/plot_step_time.py /tmp/step-ig.jsonl docs/step-time-vs-turns.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {"grpo": "GRPO", "infopo-packed": "InfoPO, packed IG", "infopo-naive": "InfoPO, naive IG"}


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.startswith('{"turns"')]
    rows = [r for r in rows if "mode" in r]
    figure, axis = plt.subplots(figsize=(6, 4))
    for mode, label in LABELS.items():
        points = sorted((r["turns"], r["step_s"]) for r in rows if r["mode"] == mode)
        if points:
            axis.plot(*zip(*points, strict=True), marker="o", label=label)
    axis.set_xscale("log", base=2)
    axis.set_xticks([2, 4, 8, 16], ["2", "4", "8", "16"])
    axis.set_xlabel("turns per trajectory")
    axis.set_ylabel(f"seconds per step (scoring + update, {rows[0]['trajectories']} trajectories)")
    axis.set_title(f"SmolLM2-135M + LoRA, CPU, {rows[0]['threads']} thread(s)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    print(target)


if __name__ == "__main__":
    sys.exit(main())
