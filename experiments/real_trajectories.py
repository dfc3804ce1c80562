"""What the saved trajectories of the real-model experiment show (docs/results.md, "Reading"): how long
the agent's turns are, how often a turn drew information, what IG_t measured, and what InfoPO's
information term did in the groups where GRPO has no signal.

Each run saves `trajectory_samples` trajectories per step (experiments/real_model.py gathers them into
`trajectories.jsonl.gz`), with each turn's action tokens and their advantages, its feedback, its step
reward, IG_t and the counterfactual's next-action tokens. Statistics are pooled over a run's steps and
given per seed.

A trajectory's group had zero outcome variance exactly when the advantage of its last turn is 0: the last
turn carries no information term (`docs/algorithm.md` 4.2), so its advantage is the outcome advantage,
which is 0 for every member of a tied group (this reproduces metrics.jsonl's
`zero_variance_group_fraction`).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from statistics import correlation, mean

SHORT_TURN = 16  # tokens: a turn at most this long counts as short (half of intention's 32-token cap)
EARLY = 10  # steps: the first and the last EARLY steps are compared
# Per env, whether a turn's reply revealed something the agent did not know. Intention's step reward is
# positive exactly when the turn covered a new hidden detail; clarify's offline user names the wanted
# option in every reply to a question, so the distinction is empty there.
DREW_INFORMATION: dict[str, Callable[[dict], bool]] = {"intention": lambda turn: turn["reward"] > 0}


def load_trajectories(run: Path) -> list[dict]:
    """The run's saved trajectories, in step order (empty if it saved none)."""
    path = run / "trajectories.jsonl.gz"
    if not path.is_file():
        return []
    with gzip.open(path, "rt") as lines:
        return [json.loads(line) for line in lines]


def _per_seed(values: list[str]) -> str:
    return ", ".join(values) if values else "—"


def _ratio(part: list[dict], predicate: Callable[[dict], bool]) -> float:
    turns = [turn for t in part for turn in t["turns"] if turn["feedback"] is not None]
    return sum(map(predicate, turns)) / len(turns)


def _signals(trajectories: list[dict], drew: Callable[[dict], bool] | None) -> dict[str, str]:
    """The InfoPO-only cells for one run (IG-carrying turns, zero-variance groups)."""
    scored = [turn for t in trajectories for turn in t["turns"] if turn.get("ig") is not None]
    cells: dict[str, str] = {}
    if drew is not None:
        informative = [turn["ig"] for turn in scored if drew(turn)]
        other = [turn["ig"] for turn in scored if not drew(turn)]
        cells["ig"] = f"{mean(informative):.2f} / {mean(other):.2f}" if informative and other else "—"
    next_length = [len(turn["counterfactual"]["next_action_tokens"]) for turn in scored]
    cells["ig_vs_next"] = f"{correlation([turn['ig'] for turn in scored], next_length):.2f}"
    tied = [t for t in trajectories if all(a == 0 for _, a in t["turns"][-1]["action_tokens"])]
    turns = [turn for t in tied for turn in t["turns"][:-1] if turn.get("ig") is not None]
    lengths = [len(turn["action_tokens"]) for turn in turns]
    advantages = [turn["action_tokens"][0][1] for turn in turns]  # the turn's tokens share one A_int
    short = [a for n, a in zip(lengths, advantages, strict=True) if n <= SHORT_TURN]
    long = [a for n, a in zip(lengths, advantages, strict=True) if n > SHORT_TURN]
    cells["short_long"] = f"{mean(short):+.2f} / {mean(long):+.2f}" if short and long else "—"
    cells["length_vs_adv"] = f"{correlation(lengths, advantages):.2f}" if len(set(lengths)) > 1 else "—"
    return cells


def trajectory_table(env_dir: Path, methods: dict[str, dict[str, list[dict]]]) -> list[str]:
    """Markdown table, one row per method, per-seed cells; `methods` is method -> seed -> metrics rows."""
    drew = DREW_INFORMATION.get(env_dir.name)
    lines = [
        "| method | tokens per agent turn, first 5 steps -> last 5 | turns whose reply revealed a detail, "
        f"first {EARLY} steps -> last {EARLY} | IG_t per token: those turns / the others | correlation of "
        "IG_t with the next action's length | zero-variance groups: mean advantage of turns of at most "
        f"{SHORT_TURN} tokens / longer | correlation of turn length and advantage there |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, runs in methods.items():
        cells: dict[str, list[str]] = {}
        for seed, rows in runs.items():
            lengths = [row["action_tokens_mean"] for row in rows]
            cells.setdefault("tokens", []).append(f"{mean(lengths[:5]):.0f} -> {mean(lengths[-5:]):.0f}")
            trajectories = load_trajectories(env_dir / method / seed)
            if not trajectories:
                continue
            if drew is not None:
                last = trajectories[-1]["step"]
                early = [t for t in trajectories if t["step"] < EARLY]
                late = [t for t in trajectories if t["step"] > last - EARLY]
                cells.setdefault("drew", []).append(f"{_ratio(early, drew):.2f} -> {_ratio(late, drew):.2f}")
            if any(turn.get("ig") is not None for t in trajectories for turn in t["turns"]):
                for key, value in _signals(trajectories, drew).items():
                    cells.setdefault(key, []).append(value)
        keys = ("tokens", "drew", "ig", "ig_vs_next", "short_long", "length_vs_adv")
        lines.append(f"| {method} | " + " | ".join(_per_seed(cells.get(k, [])) for k in keys) + " |")
    return lines
