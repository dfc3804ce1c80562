"""The mechanism experiment (docs/results.md, "Mechanism experiment"): InfoPO against GRPO, IGPO and UserRL
on the toy `slots` task, where questions differ in how much they reveal.

Every (method, seed) trains the tiny word-level policy of tests/toy_slots.py from the warm start of that
seed, with the method's preset (src/infopo/training/presets) and the same budget: STEPS steps of
TASKS_PER_STEP tasks x GROUP_SIZE rollouts. One JSONL per run, `<out>/<method>/seed<k>.jsonl`: one row per
step (the trainer's metrics, wall-clock ones dropped, plus StepProbe.stats: asking behaviour, IG per
question kind, advantages in zero-variance groups), then a last row {"final": true, "test_success": ...}
(64 test tasks x 8 samples at the training temperature; the test split is read only here).

Runs are written to `seed<k>.jsonl.partial` and renamed when complete. Existing results:
  --resume     skip the (method, seed) pairs whose JSONL is complete; an interrupted run (a `.partial`
               file) starts again from step 0, which reproduces it exactly (everything is seeded)
  --overwrite  run the selected pairs again, replacing their results
  neither      refuse to start when any selected pair already has a complete result

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python experiments/mechanism.py --resume \
        > experiments/results/mechanism.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from toy_slots import ASK, StepProbe, slots_config, warm_policy  # noqa: E402

from infopo.envs.slots import SlotsEnv  # noqa: E402
from infopo.training.config import load_config  # noqa: E402
from infopo.training.trainer import Trainer  # noqa: E402

METHODS = ["infopo", "grpo", "igpo", "userrl"]
SEEDS = 10
STEPS, TASKS_PER_STEP, GROUP_SIZE = 150, 8, 5
TEST_SAMPLES, TEST_SEED = 8, 12345
DEFAULT_OUT = ROOT / "experiments" / "results" / "mechanism"


def run(method: str, seed: int, steps: int, ask: float, path: Path) -> None:
    """Train one (method, seed) from the warm start that asks with probability `ask` and write its JSONL
    to `path` (via `path.partial`)."""
    preset = load_config(method)
    config = slots_config(
        advantage=preset.advantage,
        advantage_options=preset.advantage_options,
        steps=steps,
        tasks_per_step=TASKS_PER_STEP,
        group_size=GROUP_SIZE,
        seed=seed,
        output_dir=tempfile.gettempdir(),  # train_step writes nothing there (no samples, no checkpoints)
    )
    torch.manual_seed(seed)
    model, tokenizer = warm_policy(seed, ask)
    trainer = Trainer(config, model=model, tokenizer=tokenizer, tasks=SlotsEnv.builtin_tasks("train"))
    partial = path.with_name(path.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    probe = StepProbe()
    with partial.open("w") as out, probe.attached():
        for step in range(steps):
            metrics = trainer.train_step()
            row = {k: v for k, v in metrics.items() if not k.startswith(("time_", "tokens_per_second"))}
            if not metrics.get("skipped"):
                row.update(probe.stats(tokenizer))
            out.write(json.dumps({"step": step, **row}) + "\n")
            out.flush()
        test = trainer.success_rate(SlotsEnv.builtin_tasks("test"), samples=TEST_SAMPLES, seed=TEST_SEED)
        out.write(json.dumps({"final": True, "test_success": test, "ask": ask}) + "\n")
    partial.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=METHODS, help="preset names")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="seeds 0 .. N-1")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--ask", type=float, default=ASK, help="the warm start's probability of asking")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="skip complete runs, redo interrupted ones")
    mode.add_argument("--overwrite", action="store_true", help="run every selected pair again")
    args = parser.parse_args()
    pairs = [(m, s) for s in range(args.seeds) for m in args.methods]  # seed-major: early results pair up
    done = [(m, s) for m, s in pairs if (args.out / m / f"seed{s}.jsonl").is_file()]
    if done and not (args.resume or args.overwrite):
        names = ", ".join(f"{m}/seed{s}" for m, s in done[:5])
        sys.exit(f"{len(done)} runs already have results ({names}, ...): pass --resume or --overwrite")
    todo = [p for p in pairs if not (args.resume and p in done)]
    print(f"{len(todo)} runs to do, {len(pairs) - len(todo)} complete", flush=True)
    for i, (method, seed) in enumerate(todo, 1):
        started = time.perf_counter()
        path = args.out / method / f"seed{seed}.jsonl"
        run(method, seed, args.steps, args.ask, path)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        last = [r["success_rate"] for r in rows[-11:-1] if "success_rate" in r]
        minutes = (time.perf_counter() - started) / 60
        print(
            f"[{i}/{len(todo)}] {method} seed {seed}: last-10-step success "
            f"{sum(last) / max(len(last), 1):.2f}, test {rows[-1]['test_success']:.2f}, {minutes:.1f} min",
            flush=True,
        )


if __name__ == "__main__":
    main()
