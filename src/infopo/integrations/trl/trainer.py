"""`InfoPOTrainer`: TRL's GRPO loop with infopo's multi-turn rollouts, packed IG and turn-level advantages.

Per generation batch, `_generate_and_score_completions`:
1. rolls out one episode per row with infopo's engine (`generate_rollouts`, Hugging Face `generate` on the
   policy, one seeded random stream per (step, group, sample, turn), so the rollouts do not depend on
   how the batch is split over processes); TRL's `rollout_func` hook then hands TRL each trajectory as
   prompt ids + completion ids (actions and feedback) with `env_mask` 0 on feedback tokens, which TRL
   keeps out of the loss, and the trajectory score S as the reward (`trajectory_score`);
2. scores IG_t of every turn with `score_packed` on the policy (one forward per micro-batch);
3. gathers the per-turn values of all processes (TRL's groups are G consecutive rows of the global
   batch and may span processes), runs infopo's estimator (`args.advantage`) on the global batch,
   identically in every process, and replaces TRL's (B,) advantages with this process's (B, C)
   per-token advantages, which TRL's `_compute_loss` accepts.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset
from torch import Tensor
from trl import GRPOConfig, GRPOTrainer

from infopo.core.advantages import AdvantageOutput, compute_advantages
from infopo.envs import ENVIRONMENTS, Environment, Task
from infopo.information_gain import DEFAULT_PLACEHOLDER, CounterfactualSpec, score_packed
from infopo.rollout.builder import ChatMarkers
from infopo.rollout.collate import advantage_inputs
from infopo.rollout.engine import SamplingConfig, generate_rollouts
from infopo.rollout.hf_sampler import HFSampler
from infopo.rollout.trajectory import Trajectory
from infopo.training.gather import gather_scores

SCORE_KEY = "infopo_score"


@dataclass
class InfoPOConfig(GRPOConfig):
    """`GRPOConfig` plus infopo's settings (names as in infopo's `TrainConfig`). TRL's `num_generations` is
    the group size, `temperature` / `top_p` the sampling, `beta` the KL coefficient."""

    advantage: str = field(default="infopo", metadata={"help": "infopo estimator: infopo, grpo, igpo, ..."})
    advantage_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "the estimator's options"}
    )
    max_turns: int = field(default=16, metadata={"help": "agent turns per episode"})
    max_turn_tokens: int = field(default=256, metadata={"help": "new tokens per agent turn"})
    placeholder: str = field(default=DEFAULT_PLACEHOLDER, metadata={"help": "the text of m(o_t)"})
    counterfactual_length: str = field(default="natural", metadata={"help": "natural or equal"})
    counterfactual_span: str = field(default="text", metadata={"help": "text or block"})
    ig_micro_batch_size: int = field(default=8, metadata={"help": "trajectories per packed scoring forward"})


def task_dataset(tasks: list[Task]) -> Dataset:
    """The dataset of `tasks`: TRL's `prompt` column and the `task_id` the trainer looks tasks up by."""
    return Dataset.from_list([{"prompt": task.messages, "task_id": task.task_id} for task in tasks])


def trajectory_score(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
    """TRL reward function: the environment's trajectory score S of each rollout."""
    return [float(s) for s in kwargs[SCORE_KEY]]


class InfoPOTrainer(GRPOTrainer):
    """GRPO in TRL with infopo's episodes and advantages; see the module docstring.

    tasks: the training tasks (the dataset is built from them); make_env: a new environment per episode
    (default: the tasks' environment with no options but `max_turns`, when it takes one).
    """

    def __init__(
        self,
        model: Any,
        args: InfoPOConfig,
        tasks: list[Task],
        make_env: Callable[[], Environment] | None = None,
        processing_class: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, InfoPOConfig):
            raise TypeError(f"InfoPOTrainer takes an InfoPOConfig, got {type(args).__name__}")
        if args.use_vllm:
            raise ValueError(
                "InfoPOTrainer samples its multi-turn episodes with Hugging Face generate; set use_vllm=False"
            )
        if not tasks:
            raise ValueError("InfoPOTrainer needs at least one task")
        envs = {task.env for task in tasks}
        if make_env is None and len(envs) != 1:
            raise ValueError(f"tasks of several environments {sorted(envs)}: pass make_env")
        self.tasks = {task.task_id: task for task in tasks}
        if make_env is None:
            env_class = ENVIRONMENTS.get(envs.pop())
            takes_turns = "max_turns" in inspect.signature(env_class).parameters
            make_env = functools.partial(env_class, **({"max_turns": args.max_turns} if takes_turns else {}))
        self.make_env = make_env
        self.spec = CounterfactualSpec(args.placeholder, args.counterfactual_length, args.counterfactual_span)  # type: ignore[arg-type]
        self._pending: list[Trajectory] | None = None
        super().__init__(
            model=model,
            reward_funcs=[trajectory_score],
            args=args,
            train_dataset=task_dataset(tasks),
            processing_class=processing_class,
            rollout_func=lambda prompts, trainer: trainer.rollout_output(),
            **kwargs,
        )
        self.markers = ChatMarkers.from_tokenizer(self._tokenizer)
        self.placeholder_ids = self.spec.placeholder_ids(self._tokenizer, self.markers)

    # ------------------------------------------------------------------------------------------ rollouts

    def _policy(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def roll_out(self, inputs: list[dict[str, Any]]) -> list[Trajectory]:
        """One episode per row of this process's share of the generation batch; group = the row's global
        position // G, its random streams named by (mode, step, group, sample)."""
        mode = "train" if self.model.training else "eval"
        size = self.num_generations if mode == "train" else self.num_generations_eval
        first = self.accelerator.process_index * len(inputs)
        positions = range(first, first + len(inputs))
        prefix = f"{mode}{self.state.global_step}"
        streams = [f"{prefix}/{p // size}/{p % size}" for p in positions]
        policy = self._policy()
        eot = self.markers.end_of_turn_id(self._tokenizer)
        pad = self._tokenizer.pad_token_id
        sampling = SamplingConfig(
            1, self.args.max_turns, self.args.max_turn_tokens, self.temperature, self.top_p
        )
        was_training = policy.training
        policy.eval()
        try:
            trajectories = generate_rollouts(
                HFSampler(policy, eot, eot if pad is None else pad),
                self._tokenizer,
                [self.tasks[row["task_id"]] for row in inputs],
                self.make_env,
                sampling,
                seed=self.args.seed,
                markers=self.markers,
                group_ids=streams,
            )
        finally:
            policy.train(was_training)
        for trajectory, p in zip(trajectories, positions, strict=True):
            trajectory.group_id = f"{prefix}/{p // size}"
        return trajectories

    def rollout_output(self) -> dict[str, list[Any]]:
        """TRL's `rollout_func` result for the episodes just rolled out."""
        if self._pending is None:
            raise RuntimeError("rollout_func called outside InfoPOTrainer._generate_and_score_completions")
        trajectories = self._pending
        return {
            "prompt_ids": [tr.input_ids[: tr.prompt_length] for tr in trajectories],
            "completion_ids": [tr.input_ids[tr.prompt_length :] for tr in trajectories],
            "logprobs": None,
            "env_mask": [tr.loss_mask[tr.prompt_length :] for tr in trajectories],
            SCORE_KEY: [tr.score for tr in trajectories],
        }

    # ----------------------------------------------------------------------------------------- advantages

    def infopo_advantages(self, trajectories: list[Trajectory]) -> tuple[Tensor, AdvantageOutput]:
        """(B_local, L) advantages of this process's trajectories, and the estimate on the global batch.

        IG (or IGPO's answer log-probs) is scored here on the policy; the per-turn values of every process
        are gathered, so the group statistics (and InfoPO's batch-wide rho) cover the whole batch.
        """
        advantage = self.args.advantage
        policy = self._policy()
        was_training = policy.training
        policy.eval()
        try:
            scores = score_packed(
                policy,
                trajectories,
                self.placeholder_ids,
                self.spec,
                micro_batch_size=self.args.ig_micro_batch_size,
                temperature=self.temperature,
                information_gain=advantage == "infopo",
                answers=self._answers(trajectories) if advantage == "igpo" else None,
            )
        finally:
            policy.train(was_training)
        batch, ig, ig_mask, answer_logp, offset = gather_scores(
            trajectories, scores, self.accelerator.process_index
        )
        options = dict(self.args.advantage_options)
        if advantage == "infopo":
            options["epoch"] = self.state.global_step
        estimate = compute_advantages(advantage, advantage_inputs(batch, ig, ig_mask, answer_logp), **options)
        return estimate.advantages[offset : offset + len(trajectories)], estimate

    def _answers(self, trajectories: list[Trajectory]) -> list[list[int]]:
        """Token ids of each trajectory's ground-truth answer (IGPO)."""
        answers = []
        for trajectory in trajectories:
            task = self.tasks[trajectory.task_id]
            truth = ENVIRONMENTS.get(task.env).ground_truth(task)
            if truth is None:
                raise ValueError(f"advantage igpo: task {task.task_id!r} has no ground-truth answer")
            answers.append(self._tokenizer.encode(truth, add_special_tokens=False))
        return answers

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._pending = self.roll_out(inputs)
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            trajectories, self._pending = self._pending, None
        advantages, estimate = self.infopo_advantages(trajectories)
        width = output["completion_ids"].shape[1]
        per_token = torch.zeros(len(trajectories), width, dtype=torch.float32)
        for b, trajectory in enumerate(trajectories):
            values = advantages[b, trajectory.prompt_length : len(trajectory.input_ids)]
            per_token[b, : len(values)] = values.float()
        output["advantages"] = per_token.to(output["completion_ids"].device)
        mode = "train" if self.model.training else "eval"
        for key, value in estimate.metrics.items():
            self._metrics[mode][f"infopo/{key}"].append(value)
        return output
