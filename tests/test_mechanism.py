"""InfoPO's mechanism on the toy `slots` task (condensed from experiments/mechanism.py; docs/results.md).

From the same warm start and seed, InfoPO and GRPO sample the same first rollouts. In the groups where
every rollout failed, GRPO's advantage is exactly 0, while InfoPO's is not: the question whose reply the
answer then copies carries a large IG, the question about the irrelevant slot almost none, and the fused
advantage ranks the informative question above the wasted one.

The race: InfoPO and GRPO with their presets train from the same warm starts (the experiment's seeds 0 to
3, its exact configuration and one thread, so each run repeats the experiment's run step for step) until
the trailing 5-step training success reaches 80%.
"""

from __future__ import annotations

import copy

import pytest
import torch
from toy_slots import StepProbe, slots_config, turn_kinds, warm_policy

from infopo.envs.slots import SlotsEnv
from infopo.training.config import load_config
from infopo.training.trainer import Trainer

SEEDS = (0, 1)
RACE_SEEDS, RACE_THRESHOLD, RACE_WINDOW, RACE_STEPS = range(4), 0.8, 5, 100


def first_step(method: str, seed: int, model: torch.nn.Module, tokenizer) -> StepProbe:
    options = {"beta0": 0.5, "tau": 0.5} if method == "infopo" else {}
    config = slots_config(advantage=method, advantage_options=options, seed=seed, tasks_per_step=32)
    trainer = Trainer(
        config, model=copy.deepcopy(model), tokenizer=tokenizer, tasks=SlotsEnv.builtin_tasks("train")
    )
    probe = StepProbe()
    with probe.attached():
        trainer.train_step()
    return probe


@pytest.mark.parametrize("seed", SEEDS)
def test_in_all_failed_groups_infopo_favours_informative_questions_and_grpo_is_silent(seed: int) -> None:
    model, tokenizer = warm_policy(seed)
    infopo, grpo = (first_step(method, seed, model, tokenizer) for method in ("infopo", "grpo"))
    assert [tr.input_ids for tr in infopo.trajectories] == [tr.input_ids for tr in grpo.trajectories]
    ours, theirs = infopo.stats(tokenizer), grpo.stats(tokenizer)
    assert ours["zv_fail_group_fraction"] == theirs["zv_fail_group_fraction"] >= 0.3
    scores, group = grpo.inputs.scores, grpo.inputs.group_index
    failed = torch.tensor([bool((scores[group == g] == 0).all()) for g in group.tolist()])
    assert bool(failed.any())
    assert float(grpo.output.advantages[failed].abs().max()) == 0.0
    assert ours["zv_fail_abs_signal"] > 0.0
    assert ours["zv_fail_signal_informative"] > 0.0 > ours["zv_fail_signal_wasted"]
    assert ours["ig_informative_before_answer"] > 0.5 > 0.1 > abs(ours["ig_wasted_before_answer"])
    assert turn_kinds(infopo.trajectories[0], tokenizer)  # (classification covers every turn)


def steps_to_success(method: str, seed: int) -> int:
    """Train the experiment's (method, seed) run until the trailing RACE_WINDOW-step mean training success
    reaches RACE_THRESHOLD; the step at which it does (RACE_STEPS if never)."""
    preset = load_config(method)
    config = slots_config(advantage=preset.advantage, advantage_options=preset.advantage_options, seed=seed)
    torch.manual_seed(seed)
    model, tokenizer = warm_policy(seed)
    trainer = Trainer(config, model=model, tokenizer=tokenizer, tasks=SlotsEnv.builtin_tasks("train"))
    success: list[float] = []
    for step in range(RACE_STEPS):
        success.append(trainer.train_step()["success_rate"])
        if step >= RACE_WINDOW - 1 and sum(success[-RACE_WINDOW:]) / RACE_WINDOW >= RACE_THRESHOLD:
            return step
    return RACE_STEPS


def test_infopo_reaches_80_percent_success_in_fewer_steps_than_grpo() -> None:
    """Over the experiment's 10 seeds, InfoPO reached 80% 9.6 +- 9.4 steps (95% t-interval of the paired
    difference) before GRPO, faster in 8 seeds and slower in 1 (by 6 steps). Asserted here on seeds 0 to 3
    (leads 8, 30, 0 and 6 there): a mean lead of at least 5 steps, and no seed in which InfoPO trails by
    more than that one slow seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the experiment's setting: float reductions, hence rollouts, match it
    try:
        lead = [steps_to_success("grpo", s) - steps_to_success("infopo", s) for s in RACE_SEEDS]
    finally:
        torch.set_num_threads(threads)
    assert sum(lead) / len(lead) >= 5, lead
    assert min(lead) >= -6, lead
