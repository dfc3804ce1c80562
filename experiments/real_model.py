"""The real-model experiment (docs/results.md, "Real-model experiment"): SmolLM2-135M-Instruct + LoRA,
InfoPO against GRPO on built-in environments, 3 seeds each, the same budget, evaluated on the test split
before and after training under the offline user and the perturbed one (the simulator shift of
docs/evaluation.md).

Everything goes through the CLI, so each run is what a user would type:

    infopo train --config cpu-demo --config <method> <SETTINGS[env]> seed=<k> output_dir=<run> --resume
    infopo eval --agent <run> --envs <env> --split test --simulator <offline|perturbed> ...

Training runs live in experiments/runs/ (checkpoints every SAVE_EVERY steps; not committed); what is
committed goes to experiments/results/real/<env>/<method>/seed<k>/: the run's metrics.jsonl and
config.yaml, its saved trajectories (trajectories.jsonl.gz, `trajectory_samples` per step) and
eval-<simulator>.json (the eval's results.json). The base model's evaluations go to
experiments/results/real/<env>/base/. Each piece is skipped when its result exists, and an interrupted
training run continues from its latest checkpoint (`infopo train --resume`), so the whole script resumes:

    OMP_NUM_THREADS=2 nice -n 10 python experiments/real_model.py >> experiments/results/real.log 2>&1 &
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFOPO = [sys.executable, "-m", "infopo.cli"]
RESULTS = ROOT / "experiments" / "results" / "real"
RUNS = ROOT / "experiments" / "runs" / "real"

METHODS = ["grpo", "infopo"]
SEEDS = [0, 1, 2]
SIMULATORS = ["offline", "perturbed"]
SAVE_EVERY = 5
# Shared by every run on top of the cpu-demo preset (LoRA r 16, bf16 autocast): why these values is in
# docs/results.md ("Regime").
COMMON = {"temperature": 0.7, "group_size": 8, "tasks_per_step": 4, "lr": 5e-4, "trajectory_samples": 8}
SETTINGS: dict[str, dict[str, object]] = {
    "clarify": {"env": "clarify", "max_turns": 3, "max_new_tokens": 24, "steps": 40},
    "intention": {"env": "intention", "max_turns": 3, "max_new_tokens": 32, "steps": 30, "tasks_per_step": 2},
}
EVAL_SAMPLES = 2  # episodes per test task, sampled at the training temperature


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def evaluate(agent: str, env: str, simulator: str, out: Path, scratch: Path) -> None:
    """`infopo eval` of `agent` on env's test split, written to `scratch`; its results.json becomes `out`."""
    if out.is_file():
        return
    settings = SETTINGS[env]
    run(
        [
            *INFOPO, "eval", "--agent", agent, "--envs", env, "--split", "test",
            "--simulator", simulator, "--samples", str(EVAL_SAMPLES),
            "--temperature", str(COMMON["temperature"]), "--max-turns", str(settings["max_turns"]),
            "--max-new-tokens", str(settings["max_new_tokens"]), "--out", str(scratch),
        ]
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scratch / "results.json", out)


def gather_trajectories(folder: Path, results: Path) -> None:
    """The run's saved trajectories (trajectories/step-*.jsonl) as one gzipped file in the results."""
    target = results / "trajectories.jsonl.gz"
    steps = sorted((folder / "trajectories").glob("step-*.jsonl"))
    if target.is_file() or not steps:
        return
    with gzip.GzipFile(target, "wb", mtime=0) as out:  # mtime 0: the same runs give the same bytes
        for step in steps:
            out.write(step.read_bytes())


def train(env: str, method: str, seed: int, results: Path, folder: Path, extra: dict[str, object]) -> None:
    """Train (or continue) one run in `folder` and copy its metrics, config and trajectories to `results`."""
    if (results / "metrics.jsonl").is_file():
        return
    overrides = {
        **COMMON,
        **SETTINGS[env],
        **extra,
        "seed": seed,
        "save_every": SAVE_EVERY,
        "output_dir": folder,
    }
    started = time.perf_counter()
    run(
        [*INFOPO, "train", "--config", "cpu-demo", "--config", method, "--resume"]
        + [f"{key}={value}" for key, value in overrides.items()]
    )
    results.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "config.yaml"):
        shutil.copyfile(folder / name, results / name)
    gather_trajectories(folder, results)
    minutes = (time.perf_counter() - started) / 60
    print(f"{env}/{method}/seed{seed}: {minutes:.1f} min (this invocation)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where results go (committed)")
    parser.add_argument("--runs", type=Path, default=RUNS, help="where runs and evaluations work")
    parser.add_argument(
        "--tasks-per-step", type=int, help="a larger batch than SETTINGS' (the GPU run of docs/results.md)"
    )
    args = parser.parse_args()
    extra = {} if args.tasks_per_step is None else {"tasks_per_step": args.tasks_per_step}
    for env in args.envs:
        for simulator in SIMULATORS:
            out = args.results / env / "base" / f"eval-{simulator}.json"
            evaluate("embedded", env, simulator, out, args.runs / "eval" / env / "base" / simulator)
    for seed in args.seeds:  # seed-major: both methods of a seed finish before the next seed starts
        for env in args.envs:
            for method in args.methods:
                run_id = Path(env, method, f"seed{seed}")
                folder = args.runs / run_id
                train(env, method, seed, args.results / run_id, folder, extra)
                for simulator in SIMULATORS:
                    out = args.results / run_id / f"eval-{simulator}.json"
                    evaluate(str(folder), env, simulator, out, args.runs / "eval" / run_id / simulator)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
