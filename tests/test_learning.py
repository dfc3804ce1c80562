"""Learning that actually happens: a tiny word-level policy learns to clarify, then answer.

The task (tests/toy.py): the user wants one of twelve colours and does not say which; guessing wins 1/12,
asking ("ask") makes the user say "I want X." and answering X wins. The policy starts from a warm start
that can use a given answer but asks only 8% of the time (success about 16%); RL must make it ask.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from toy import colour_tasks, toy_config, toy_trainer


@pytest.mark.parametrize("advantage", ["grpo", "infopo"])
def test_success_rises_from_below_20_to_above_80_percent(tmp_path: Path, advantage: str) -> None:
    torch.manual_seed(0)
    trainer = toy_trainer(
        toy_config(advantage=advantage, lr=1e-3, steps=100, output_dir=str(tmp_path)), warm_start=True
    )
    test_tasks = colour_tasks(32, "test")
    before = trainer.success_rate(test_tasks, samples=8, seed=123)
    ig = []
    for _ in range(trainer.config.steps):
        metrics = trainer.train_step()
        if "ig_mean" in metrics:
            ig.append(metrics["ig_mean"])
    after = trainer.success_rate(test_tasks, samples=8, seed=123)
    assert before < 0.2 < 0.8 < after, (before, after)
    if advantage == "infopo":  # the user's answer changes the next action: asking carries information
        assert ig and min(ig) > 0
