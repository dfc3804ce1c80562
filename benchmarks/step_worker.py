"""One process that times whole training steps of a preset, for `bench_step.py` (and profiling).

Imports `infopo` from wherever PYTHONPATH points (today's tree or a baseline worktree), builds the trainer
of `--config` with `--set key=value` overrides, runs one warm-up step, then `--steps` timed steps, each
from the same weights, optimizer state and step index: identical rollouts and batches every time (up to
the sampler's float rounding). Prints one JSON line per timed step.

    python benchmarks/step_worker.py --config cpu-demo [--steps 1] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from typing import Any

import torch

import infopo
from infopo.training.config import load_config
from infopo.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu-demo")
    parser.add_argument("--steps", type=int, default=1, help="timed steps after the warm-up step")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output_dir={tmp}", "report_to=none", "trajectory_samples=0", *args.set]
        trainer = Trainer(load_config(args.config, overrides))
        weights = trainer._trainable_state()
        optimizer = copy.deepcopy(trainer.optimizer.state_dict())
        for i in range(args.warmup + args.steps):
            with torch.no_grad():
                for name, param in trainer.policy.named_parameters():
                    if name in weights:
                        param.copy_(weights[name])
            trainer.optimizer.load_state_dict(copy.deepcopy(optimizer))
            trainer.step = 0
            rollouts: list[Any] = []
            original = trainer._update

            def spy(
                trajectories: list, *rest: Any, seen: list = rollouts, update: Any = original, **kw: Any
            ) -> Any:
                seen.extend(trajectories)  # the batch the update sees
                return update(trajectories, *rest, **kw)

            trainer._update = spy
            start = time.perf_counter()
            metrics = trainer.train_step()
            seconds = time.perf_counter() - start
            trainer._update = original
            if i < args.warmup:
                continue
            ids = [tr.input_ids for tr in rollouts]
            digest = hashlib.blake2b(json.dumps(ids).encode(), digest_size=8).hexdigest()
            row = {
                "label": args.label,
                "source": infopo.__file__,
                "step_s": seconds,
                "generation_s": metrics.get("time_generation"),
                "scoring_s": metrics.get("time_scoring"),
                "update_s": metrics.get("time_update"),
                "tokens": sum(len(r) for r in ids),
                "generated_tokens": sum(len(turn.action) for tr in rollouts for turn in tr.turns),
                "rollout_digest": digest,
                "loss": metrics.get("loss"),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
