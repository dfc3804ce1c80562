"""The trainer on a tiny word-level policy: one step, masking, checkpoints and resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from toy import logged_metrics, toy_config, toy_trainer

from infopo.training.trainer import _right_pad, micro_batches

HERE = Path(__file__).parent


def test_one_training_step_moves_parameters(tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config(output_dir=str(tmp_path), advantage="infopo"))
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
    metrics = trainer.train_step()
    moved = [n for n, p in trainer.policy.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) == len(before)
    assert trainer.step == 1
    for key in ("success_rate", "score_mean", "gate_mean", "rho", "clip_fraction", "approx_kl", "entropy"):
        assert key in metrics
    assert metrics["time_generation"] > 0 and metrics["tokens_per_second"] > 0


def test_tokens_outside_actions_do_not_reach_the_loss(tmp_path: Path) -> None:
    """Changing old log-probs and advantages on prompt, feedback and padding changes neither the loss
    nor any gradient."""
    trainer = toy_trainer(toy_config(output_dir=str(tmp_path)))
    trainer.policy.eval()
    from infopo.rollout.engine import generate_rollouts

    trajectories = generate_rollouts(
        trainer.sampler, trainer.tokenizer, trainer.tasks[:4], trainer.make_env, trainer.sampling, seed=3
    )
    ids, attention, actions = _right_pad(trajectories, 0)
    generator = torch.Generator().manual_seed(0)
    old = torch.randn(ids.shape, generator=generator) - 3
    advantages = torch.randn(ids.shape, generator=generator)
    results = []
    for noise in (0.0, 100.0):
        junk = torch.where(actions, 0.0, noise)
        trainer.optimizer.zero_grad()
        loss, _ = trainer.micro_batch_loss(ids, attention, actions, old + junk, advantages + junk)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in trainer.policy.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=True))
    assert any(float(g.abs().sum()) > 0 for g in results[0][1])


def _run(output: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    return subprocess.Popen([sys.executable, str(HERE / "run_toy_training.py"), str(output), *extra], env=env)


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(straight).wait(timeout=300) == 0
    process = _run(killed)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step-4").is_dir():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert len(logged_metrics(killed)) < len(logged_metrics(straight))
    assert _run(killed, "--resume").wait(timeout=300) == 0
    assert logged_metrics(killed) == logged_metrics(straight)


def test_each_pass_over_the_data_visits_every_task_once(tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config(output_dir=str(tmp_path)))  # 64 tasks, 8 per step
    first = [t.task_id for step in range(8) for t in trainer.tasks_for_step(step)[1]]
    second = [t.task_id for step in range(8, 16) for t in trainer.tasks_for_step(step)[1]]
    everything = sorted(t.task_id for t in trainer.tasks)
    assert sorted(first) == everything == sorted(second)
    assert first != second  # reshuffled for the second pass
    assert [t.task_id for t in trainer.tasks_for_step(3)[1]] == first[24:32]  # a function of the step alone


def test_a_step_reports_its_phases(tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config(output_dir=str(tmp_path), advantage="infopo"))
    phases: list[str] = []
    trainer._phase = phases.append  # type: ignore[method-assign]
    trainer.train_step()
    assert phases[0] == "rollout turn 1/2, 64 active"
    assert phases[1].startswith("rollout turn 2/2, ") and int(phases[1].split(", ")[1].split()[0]) < 64
    assert phases[2:] == ["scoring with information gain", "update"]


def test_micro_batches_partition_the_batch_longest_first() -> None:
    lengths = [5, 90, 12, 60, 61, 7, 33]
    groups = micro_batches(lengths, 3)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert [[lengths[i] for i in g] for g in groups] == [[90, 61, 60], [33, 12, 7], [5]]


def test_the_update_does_not_depend_on_the_micro_batch_grouping(tmp_path: Path) -> None:
    """Sorted, per-group padded micro-batches accumulate the gradient of the whole batch at once."""
    gradients = {}
    for size in (3, 64):
        trainer = toy_trainer(toy_config(output_dir=str(tmp_path / str(size)), micro_batch_size=size))
        step = trainer.optimizer.step

        def record(*args: Any, size: int = size, trainer: Any = trainer, step: Any = step) -> Any:
            gradients[size] = {n: p.grad.clone() for n, p in trainer.policy.named_parameters()}
            return step(*args)

        trainer.optimizer.step = record
        trainer.train_step()
    for name, value in gradients[64].items():
        torch.testing.assert_close(gradients[3][name], value, rtol=1e-4, atol=1e-6)


def test_the_scoring_head_dtype_is_a_config_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import infopo.training.trainer as trainer_module

    seen = []
    original = trainer_module.score_packed

    def score_packed(*args: Any, **kwargs: Any) -> Any:
        scores = original(*args, **kwargs)
        seen.append(scores.token_logprobs.dtype)
        return scores

    monkeypatch.setattr(trainer_module, "score_packed", score_packed)
    for dtype in ("float32", "float64"):
        toy_trainer(toy_config(output_dir=str(tmp_path / dtype), head_dtype=dtype)).train_step()
    assert seen == [torch.float32, torch.float64]


def test_rollouts_sample_from_a_bfloat16_copy_when_asked(tmp_path: Path) -> None:
    trainer = toy_trainer(toy_config(output_dir=str(tmp_path), advantage="infopo", rollout_dtype="bfloat16"))
    trainer.train_step()
    assert {p.dtype for p in trainer.sampler.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in trainer.policy.parameters()} == {torch.float32}  # the training weights
