"""The trainer writes a sample of each step's trajectories with their per-turn values for the viewer."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from fixtures import tiny_model, tiny_tokenizer

from infopo.training.config import TrainConfig
from infopo.training.samples import sample_indices
from infopo.training.trainer import Trainer


def _trainer(tmp_path: Path, **extra: object) -> Trainer:
    values: dict[str, object] = dict(
        model="tiny",
        lora=False,
        env="clarify",
        group_size=3,
        tasks_per_step=2,
        max_turns=3,
        max_new_tokens=10,
        save_every=0,
        report_to=[],
        output_dir=str(tmp_path),
        temperature=1.5,
    )
    values.update(extra)
    tokenizer = tiny_tokenizer()
    return Trainer(TrainConfig(**values), model=tiny_model(len(tokenizer)), tokenizer=tokenizer)  # type: ignore[arg-type]


def test_sample_indices_spread_over_the_batch() -> None:
    assert sample_indices(10, 3) == [0, 4, 9] and sample_indices(4, 8) == [0, 1, 2, 3]
    assert sample_indices(5, 1) == [0] and sample_indices(5, 0) == []


def test_samples_hold_ig_counterfactuals_and_advantages(tmp_path: Path) -> None:
    # beta0 = 0: IG is scored (and sampled) but the advantage is exactly the GRPO one, checkable by hand;
    # a float64 head, so that IG_t and the sampled log-probs it is the mean of agree to 1e-9
    trainer = _trainer(
        tmp_path,
        advantage="infopo",
        advantage_options={"beta0": 0.0},
        trajectory_samples=6,
        head_dtype="float64",
    )
    trainer.train_step()
    records = [
        json.loads(line)
        for line in (tmp_path / "trajectories" / "step-000000.jsonl").read_text().splitlines()
    ]
    assert len(records) == 6 and all(r["step"] == 0 for r in records)
    counterfactuals = 0
    by_group: dict[str, list[float]] = {}
    for record in records:
        by_group.setdefault(record["group_id"], []).append(record["score"])
        assert record["score"] == pytest.approx(sum(turn["reward"] for turn in record["turns"]))
        for turn in record["turns"]:
            cf = turn["counterfactual"]
            if cf is None:
                continue
            counterfactuals += 1
            assert cf["placeholder"] == "No information found."
            assert len(cf["logp_with"]) == len(cf["logp_without"]) == len(cf["next_action_tokens"])
            gain = statistics.fmean(a - b for a, b in zip(cf["logp_with"], cf["logp_without"], strict=True))
            assert turn["ig"] == pytest.approx(gain, abs=1e-9)
    assert counterfactuals > 0  # the tiny policy's questions draw feedback
    for record in records:  # every action token gets the group z-score of the trajectory's score
        group = by_group[record["group_id"]]
        spread = statistics.stdev(group)
        expected = 0.0 if spread == 0 else (record["score"] - statistics.fmean(group)) / (spread + 1e-6)
        for turn in record["turns"]:
            assert all(adv == pytest.approx(expected, abs=1e-6) for _, adv in turn["action_tokens"])


def test_no_samples_when_switched_off(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, trajectory_samples=0)
    trainer.train_step()
    assert not (tmp_path / "trajectories").exists()
