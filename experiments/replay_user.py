"""Replay a real-model run's saved intention trajectories through today's offline user; compare scores.

The GPU run of docs/results.md was trained against intention's lexical matcher before a fix (bare question
words such as "What?" matched hidden details); this re-scores its saved trajectories (the agent's turns
as they were sent, in order) with the matcher as it is now, so that the effect of the fix can be read off.
With the code the run used, the replay reproduces every logged score.

    python experiments/replay_user.py experiments/results/real-gpu --matcher lexical
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from real_trajectories import load_trajectories

from infopo.envs.intention import IntentionEnv
from infopo.envs.semantic import SemanticMatcher

LATE = 5  # steps: the success rate of the last LATE steps' saved trajectories, logged and replayed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path)
    parser.add_argument("--matcher", choices=("embedding", "lexical"), default="lexical")
    args = parser.parse_args()
    tasks = {task.task_id: task for task in IntentionEnv.load_tasks("train")}
    print(f"| run | trajectories | same score | lower | higher | success, last {LATE} steps: logged | now |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in sorted((args.results / "intention").glob("*/seed*")):
        trajectories = load_trajectories(run)
        env = IntentionEnv(matcher=SemanticMatcher(args.matcher), max_turns=len(trajectories[0]["turns"]))
        changes = {"same": 0, "lower": 0, "higher": 0}
        first_late = trajectories[-1]["step"] - LATE + 1
        late = [t for t in trajectories if t["step"] >= first_late]
        replayed_late = 0
        for trajectory in trajectories:
            env.reset(tasks[trajectory["task_id"]])
            score = sum(env.step(turn["action"]).reward for turn in trajectory["turns"])
            delta = round(score - trajectory["score"], 9)
            changes["same" if delta == 0 else "lower" if delta < 0 else "higher"] += 1
            replayed_late += trajectory["step"] >= first_late and score >= 1.0
        logged_late = sum(t["score"] >= 1.0 for t in late)
        print(
            f"| {run.parent.name}/{run.name} | {len(trajectories)} | {changes['same']} | "
            f"{changes['lower']} | {changes['higher']} | {logged_late / len(late):.2f} | "
            f"{replayed_late / len(late):.2f} |"
        )
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
