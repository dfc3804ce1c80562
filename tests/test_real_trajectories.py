"""The real-model experiment's trajectory table (experiments/real_trajectories.py) on hand-made runs."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from real_trajectories import trajectory_table


def turn(tokens: int, advantage: float, feedback: str | None = None, reward: float = 0.0,
         ig: float | None = None, next_tokens: int = 0) -> dict:  # fmt: skip
    counterfactual = {"next_action_tokens": ["t"] * next_tokens} if ig is not None else None
    return {
        "action_tokens": [["t", advantage]] * tokens,
        "feedback": feedback,
        "reward": reward,
        "ig": ig,
        "counterfactual": counterfactual,
    }


def write_run(folder: Path, trajectories: list[dict]) -> None:
    folder.mkdir(parents=True)
    with gzip.open(folder / "trajectories.jsonl.gz", "wt") as out:
        out.writelines(json.dumps(t) + "\n" for t in trajectories)


def test_trajectory_table_by_hand(tmp_path: Path) -> None:
    env = tmp_path / "intention"
    # Step 0: two trajectories of a tied group (last turn's advantage 0); step 1: a mixed group.
    write_run(
        env / "infopo" / "seed0",
        [
            {"step": 0, "turns": [turn(2, 0.5, "detail", 0.4, 1.0, 3), turn(1, 0.0)]},
            {"step": 0, "turns": [turn(20, -0.1, "refusal", 0.0, 0.2, 1), turn(1, 0.0)]},
            {"step": 1, "turns": [turn(3, 0.7, "refusal", 0.0, 0.6, 2), turn(1, 1.0)]},
        ],
    )
    write_run(env / "grpo" / "seed0", [{"step": 0, "turns": [turn(4, 0.0, "detail", 0.4), turn(1, 0.0)]}])
    rows = [{"action_tokens_mean": n} for n in (10, 10, 10, 10, 10, 40)]
    lines = trajectory_table(env, {"infopo": {"seed0": rows}, "grpo": {"seed0": rows}})
    # tokens: first 5 rows 10, last 5 (10 x 4 + 40) / 5 = 16. Informative turns: 1 of the 3 with
    # feedback. IG: 1.0 against (0.2 + 0.6) / 2. IG against next-action length (3, 1, 2): correlation 1.
    # Tied group only (the step-1 turn is left out): 2 tokens at +0.5, 20 tokens at -0.1, correlation -1.
    assert lines[2] == "| infopo | 10 -> 16 | 0.33 -> 0.33 | 1.00 / 0.40 | 1.00 | +0.50 / -0.10 | -1.00 |"
    assert lines[3] == "| grpo | 10 -> 16 | 1.00 -> 1.00 | — | — | — | — |"
