"""Goal 2: the `cpu-demo` training step, today's tree against a baseline commit, in one benchmark.

Each variant runs in its own process (`step_worker.py`, with PYTHONPATH at that tree's src/), rounds
alternate the variants so that machine noise hits both alike; every process runs one warm-up step and
then `--steps` timed steps from the same weights and step index (identical rollouts and batches; the
rollout digest says whether they were). Prints one JSON line per timed step, then a table of medians.

    git worktree add /tmp/infopo-base <commit>
    python benchmarks/bench_step.py --baseline /tmp/infopo-base [--rounds 2] [--steps 1] [--set k=v ...]
        [--also k=v ...]

`--set` applies to every variant; `--also` adds a third variant, today's tree with those settings too
(for example `--also rollout_dtype=bfloat16`: other rollouts, so its digest differs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench_common import emit, median, table

HERE = Path(__file__).resolve().parent


def run_worker(src: Path, label: str, steps: int, overrides: list[str], python: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [python, str(HERE / "step_worker.py"), "--steps", str(steps), "--label", label]
    if overrides:
        command += ["--set", *overrides]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, default=Path("/tmp/infopo-base"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--also", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    variants = {"baseline": (args.baseline / "src", args.set), "today": (HERE.parent / "src", args.set)}
    if args.also:
        variants["today, " + " ".join(args.also)] = (HERE.parent / "src", args.set + args.also)
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (src, overrides) in variants.items():
            for row in run_worker(src, name, args.steps, overrides, args.python):
                row["load_average"] = os.getloadavg()[0]
                rows[name].append(row)
                emit(row)
    summary = []
    for name, runs in rows.items():
        summary.append(
            {
                "variant": name,
                **{
                    k: median([r[k] for r in runs])
                    for k in ("step_s", "generation_s", "scoring_s", "update_s")
                },
                "digests": ",".join(sorted({r["rollout_digest"] for r in runs})),
            }
        )
    base = summary[0]["step_s"]
    for row in summary:
        row["ratio"] = row["step_s"] / base
    emit({"summary": summary})
    table(summary, ["variant", "step_s", "generation_s", "scoring_s", "update_s", "ratio", "digests"])


if __name__ == "__main__":
    sys.exit(main())
