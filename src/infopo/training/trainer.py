"""The InfoPO / GRPO trainer: rollout -> old log-probs + packed IG -> advantages -> PPO update.

One `train_step` is the whole algorithm of docs/algorithm.md sections 2-5 on one batch of tasks. Runs on
accelerate (CPU, one GPU, DDP), with LoRA (peft) or full fine-tuning; checkpoints are atomic and `resume`
continues exactly (weights, optimizer, step; the data order and sampling seeds are functions of the step).

Data parallel: each process rolls out and scores its share of the step's tasks, the (small) per-turn
results are gathered so that advantages and metrics are computed on the global batch, and the loss is
weighted so that DDP's gradient average equals the one-process gradient of the same global batch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from infopo.core.advantages import compute_advantages
from infopo.core.logprobs import logprobs_from_hidden
from infopo.core.policy_loss import TOKEN_MEAN_METRICS, policy_loss
from infopo.envs import ENVIRONMENTS, Environment, Task
from infopo.envs.simulators import make_env_factory
from infopo.information_gain import CounterfactualSpec, PackedScores, score_packed
from infopo.models.attention import use_float32_cpu_attention
from infopo.models.embedded import prepare_embedded_model
from infopo.models.forward import final_hidden_states, output_embedding
from infopo.rollout.builder import ChatMarkers
from infopo.rollout.collate import advantage_inputs
from infopo.rollout.engine import Sampler, SamplingConfig, generate_rollouts
from infopo.rollout.hf_sampler import HFSampler
from infopo.rollout.trajectory import Trajectory
from infopo.training.checkpoint import read_checkpoint, write_checkpoint
from infopo.training.config import ConfigError, TrainConfig, dump_config
from infopo.training.gather import gather_scores
from infopo.training.metrics import MetricsLogger, rollout_metrics
from infopo.training.samples import sample_indices, trajectory_record, write_samples
from infopo.training.trackers import open_trackers


class ActionScorer(nn.Module):
    """Wraps the policy so that DDP sees one forward: token log-probs (and entropy) of chosen positions.

    Only the scored rows meet the LM head, chunk by chunk: no full-vocabulary logits (docs/algorithm.md 5).
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, rows: Tensor, cols: Tensor, temperature: float
    ) -> tuple[Tensor, Tensor]:
        """input_ids, attention_mask: (B, L); rows, cols: (N,) positions whose next token is scored."""
        hidden = final_hidden_states(self.policy, input_ids, attention_mask)
        logp, entropy = logprobs_from_hidden(
            hidden[rows, cols],
            output_embedding(self.policy),
            input_ids[rows, cols + 1],
            temperature=temperature,
            with_entropy=True,
        )
        assert entropy is not None
        return logp, entropy


def load_policy(config: TrainConfig) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The model named by config.model ("embedded" or a local directory), LoRA-wrapped if asked."""
    path = prepare_embedded_model() if config.model == "embedded" else Path(config.model)
    if not (path / "config.json").is_file():
        raise ConfigError(f"model: {config.model!r} is neither 'embedded' nor a Hugging Face model directory")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    return model, tokenizer


def wrap_lora(model: nn.Module, config: TrainConfig) -> nn.Module:
    """The model with a fresh peft LoRA adapter of the config's rank, alpha and target modules."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=config.lora_target_modules
    )
    return get_peft_model(model, lora)


def environment_factory(config: TrainConfig) -> Callable[[], Environment]:
    """A new environment per episode: config.env built with config.env_options under config.simulator,
    and with config.max_turns when its constructor takes max_turns."""
    options = dict(config.env_options)
    if "max_turns" in inspect.signature(ENVIRONMENTS.get(config.env)).parameters:
        options["max_turns"] = config.max_turns
    try:
        return make_env_factory(config.env, config.simulator, options, config.seed)
    except ValueError as err:
        raise ConfigError(f"environment {config.env!r}: {err}") from err


def load_training_tasks(config: TrainConfig) -> list[Task]:
    """config.task_split of config.task_source (the built-in set when None), minus config.exclude_tasks."""
    env_class = ENVIRONMENTS.get(config.env)
    try:
        tasks = env_class.load_tasks(config.task_split, config.task_source, config.exclude_tasks)
    except (OSError, ValueError, NotImplementedError) as err:
        raise ConfigError(f"tasks of {config.env!r}: {err}") from err
    if not tasks:
        raise ConfigError(f"environment {config.env!r} gave no tasks for split {config.task_split!r}")
    return tasks


class NonFiniteStep(RuntimeError):
    """nan_policy "raise": a reward, IG value, advantage, loss or gradient of the step is NaN or infinite."""


class NonFiniteUpdate(RuntimeError):
    """Internal: the update met a non-finite loss or gradient and was undone."""


def nonfinite_inputs(batch: list[Trajectory], turn_ig: Tensor, turn_ig_mask: Tensor) -> str | None:
    """What is non-finite among the batch's step rewards, final scores and IG values (naming the first
    trajectory concerned), or None when all are finite."""
    for b, trajectory in enumerate(batch):
        rewards = [*trajectory.step_rewards, trajectory.final_score or 0.0]
        if not all(math.isfinite(r) for r in rewards):
            return f"a non-finite reward in {trajectory.name}: {rewards}"
        values = turn_ig[b][turn_ig_mask[b]]
        if not bool(torch.isfinite(values).all()):
            return f"a non-finite information gain in {trajectory.name}: {values.tolist()}"
    return None


def _right_pad(trajectories: list[Trajectory], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, L) ids, attention mask and action mask of right-padded trajectories."""
    width = max(len(tr.input_ids) for tr in trajectories)
    ids = torch.full((len(trajectories), width), pad_id, dtype=torch.long)
    attention = torch.zeros(len(trajectories), width, dtype=torch.long)
    actions = torch.zeros(len(trajectories), width, dtype=torch.bool)
    for b, trajectory in enumerate(trajectories):
        n = len(trajectory.input_ids)
        ids[b, :n] = torch.tensor(trajectory.input_ids)
        attention[b, :n] = 1
        actions[b, :n] = torch.tensor(trajectory.loss_mask, dtype=torch.bool)
    return ids, attention, actions


def micro_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indices of sequences grouped `size` at a time, longest first: each group is padded only to its own
    longest sequence, so the update's padding waste is small (the groups partition the batch, so the
    accumulated gradient is the same up to float rounding)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


class Trainer:
    """Owns the policy, optimizer, environment tasks and the run directory."""

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        tasks: list[Task] | None = None,
    ) -> None:
        self.config = config
        self.accelerator = Accelerator(
            mixed_precision="bf16" if config.dtype == "bfloat16" else "no", cpu=not torch.cuda.is_available()
        )
        world = self.accelerator.num_processes
        if config.tasks_per_step % world:
            raise ConfigError(
                f"tasks_per_step={config.tasks_per_step} must be a multiple of the {world} processes "
                "(every process takes the same number of tasks)"
            )
        if model is None or tokenizer is None:
            model, tokenizer = load_policy(config)
        torch.manual_seed(config.seed)  # the LoRA initialisation
        if config.lora:
            model = wrap_lora(model, config)
        if config.dtype == "bfloat16":
            use_float32_cpu_attention(model)  # the update's short attention: faster in float32 on CPU
        self.tokenizer = tokenizer
        self.make_env = environment_factory(config)
        self.tasks = tasks if tasks is not None else load_training_tasks(config)
        self.env_class = ENVIRONMENTS.get(config.env)
        if config.advantage == "igpo":
            lacking = [t.task_id for t in self.tasks if self.env_class.ground_truth(t) is None]
            if lacking:
                raise ConfigError(
                    f"advantage igpo scores each task's ground-truth answer, and environment {config.env!r} "
                    f"has none for {len(lacking)} of {len(self.tasks)} tasks (e.g. {lacking[0]!r}); "
                    "choose another advantage estimator"
                )
        self.markers = ChatMarkers.from_tokenizer(tokenizer)
        self.spec = CounterfactualSpec(
            config.placeholder, config.counterfactual_length, config.counterfactual_span
        )
        self.placeholder_ids = self.spec.placeholder_ids(tokenizer, self.markers)
        self.sampling = SamplingConfig(
            config.group_size, config.max_turns, config.max_new_tokens, config.temperature, config.top_p
        )
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.scorer, self.optimizer = self.accelerator.prepare(ActionScorer(model), optimizer)
        self.policy = self.accelerator.unwrap_model(self.scorer).policy
        self.sampler = self._make_sampler()
        self.step = 0
        self.output_dir = Path(config.output_dir)
        self._bar: tqdm | None = None

    def _make_sampler(self) -> Sampler:
        """Hugging Face generate on the training weights, or a colocated vLLM engine."""
        eot = self.markers.end_of_turn_id(self.tokenizer)
        if self.config.rollout_engine == "hf":
            pad = self.tokenizer.pad_token_id
            dtype = getattr(torch, self.config.rollout_dtype)
            return HFSampler(self.policy, eot, pad if pad is not None else eot, dtype=dtype)
        from infopo.rollout.vllm_sampler import VLLMSampler

        if self.accelerator.num_processes > 1:
            raise ConfigError("rollout_engine: vllm runs in a single process for now; use rollout_engine: hf")
        if self.config.model != "embedded" and not Path(self.config.model).is_dir():
            raise ConfigError(
                f"rollout_engine: vllm loads the model from a directory; {self.config.model!r} is not one"
            )
        path = prepare_embedded_model() if self.config.model == "embedded" else Path(self.config.model)
        return VLLMSampler(
            path,
            eot,
            self.config.vllm_gpu_memory_utilization,
            self.config.seed,
            dtype=self.config.rollout_dtype,
        )

    # ----------------------------------------------------------------------------------------------- data

    def tasks_for_step(self, step: int) -> tuple[list[str], list[Task]]:
        """This process's group ids and tasks of `step`: a seeded permutation per pass over the data, split
        by rank. A group id names the step and the task's place in it, so it is unique in the batch."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_step = self.config.tasks_per_step
        orders: dict[int, list[int]] = {}
        chosen = []
        for i in range(step * per_step, (step + 1) * per_step):
            epoch, offset = divmod(i, len(self.tasks))
            if epoch not in orders:
                orders[epoch] = list(range(len(self.tasks)))
                random.Random(f"{self.config.seed}-{epoch}").shuffle(orders[epoch])
            chosen.append(self.tasks[orders[epoch][offset]])
        mine = list(enumerate(chosen))[rank::world]
        return [f"step{step}/{i}/{task.task_id}" for i, task in mine], [task for _, task in mine]

    # --------------------------------------------------------------------------------------------- a step

    def train_step(self) -> dict[str, float]:
        """Rollout, scoring, advantages and one PPO update on this step's tasks; returns its metrics."""
        config, step = self.config, self.step
        group_ids, tasks = self.tasks_for_step(step)
        self.policy.eval()
        started = time.perf_counter()
        self.sampler.update_weights(self.policy)
        trajectories = generate_rollouts(
            self.sampler,
            self.tokenizer,
            tasks,
            self.make_env,
            self.sampling,
            seed=config.seed,
            markers=self.markers,
            group_ids=group_ids,
            max_concurrency=config.rollout_concurrency,
            progress=self._phase,
        )
        generated = time.perf_counter()
        self._phase("scoring" + (" with information gain" if config.advantage == "infopo" else ""))
        uses_ig = config.advantage == "infopo"
        scores = score_packed(
            self.policy,
            trajectories,
            self.placeholder_ids,
            self.spec,
            micro_batch_size=config.micro_batch_size,
            temperature=config.temperature,
            information_gain=uses_ig,
            answers=self._answers(tasks, trajectories) if config.advantage == "igpo" else None,
            dtype=getattr(torch, config.head_dtype),
        )
        scored = time.perf_counter()
        batch, turn_ig, turn_ig_mask, answer_logp, offset = gather_scores(
            trajectories, scores, self.accelerator.process_index
        )
        timing = {"time_generation": generated - started, "time_scoring": scored - generated}
        problem = nonfinite_inputs(batch, turn_ig, turn_ig_mask)
        if problem is not None:
            return self._skip_step(problem, timing)
        options = dict(config.advantage_options)
        if config.advantage == "infopo":
            options["epoch"] = step
        estimate = compute_advantages(
            config.advantage, advantage_inputs(batch, turn_ig, turn_ig_mask, answer_logp), **options
        )
        if not bool(torch.isfinite(estimate.advantages).all()):
            return self._skip_step("a non-finite advantage", timing)
        self.policy.train()
        self._phase("update")
        advantages = estimate.advantages[offset : offset + len(trajectories)]
        if config.trajectory_samples and self.accelerator.is_main_process:
            self._write_samples(trajectories, scores, advantages)
        keep = [True] * len(batch) if estimate.keep is None else estimate.keep.tolist()
        mine = [i for i in range(len(trajectories)) if keep[offset + i]]
        kept_batch = [tr for tr, k in zip(batch, keep, strict=True) if k]
        try:
            update = self._update(
                [trajectories[i] for i in mine] or trajectories[:1],  # (a process with none kept still
                scores.token_logprobs[mine or [0]],  # joins the gradient all-reduce, with weight 0)
                advantages[mine or [0]],
                kept_batch,
                weight=1.0 if mine else 0.0,
            )
        except NonFiniteUpdate as err:
            return self._skip_step(str(err), timing)
        updated = time.perf_counter()
        self.step += 1
        tokens = sum(len(tr.input_ids) for tr in batch)
        return {
            **rollout_metrics(batch, turn_ig, turn_ig_mask, config.success_threshold),
            **estimate.metrics,
            **update,
            **timing,
            "time_update": updated - scored,
            "tokens_per_second": tokens / (updated - started),
        }

    def _phase(self, what: str) -> None:
        """Show what the step is doing on the progress bar (a step can take minutes)."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"step {self.step}: {what}", refresh=True)

    def _write_samples(
        self, trajectories: list[Trajectory], scores: PackedScores, advantages: Tensor
    ) -> None:
        """A few of this step's trajectories, with their per-turn values, for the trajectory viewer."""
        chosen = sample_indices(len(trajectories), self.config.trajectory_samples)
        records = [
            trajectory_record(
                trajectories[b],
                b,
                scores,
                advantages,
                self.tokenizer,
                self.placeholder_ids,
                self.spec,
                self.config.success_threshold,
            )
            for b in chosen
        ]
        write_samples(self.output_dir, self.step, records)

    def _skip_step(self, problem: str, timing: dict[str, float]) -> dict[str, float]:
        """nan_policy "skip": leave weights and optimizer as they are, say why, and go on to the next step;
        "raise": stop with the same message."""
        message = f"step {self.step}: {problem}"
        if self.config.nan_policy == "raise":
            raise NonFiniteStep(message)
        if self.accelerator.is_main_process:
            tqdm.write(f"infopo train: skipped {message}")
        self.step += 1
        return {"skipped": 1.0, **timing}

    def _answers(self, tasks: list[Task], trajectories: list[Trajectory]) -> list[list[int]]:
        """Token ids of each trajectory's ground-truth answer (IGPO)."""
        truth = {task.task_id: self.env_class.ground_truth(task) for task in tasks}
        return [
            self.tokenizer.encode(truth[tr.task_id] or "", add_special_tokens=False) for tr in trajectories
        ]

    def _update(
        self,
        trajectories: list[Trajectory],
        old_logp: Tensor,
        advantages: Tensor,
        batch: list[Trajectory],
        weight: float = 1.0,
    ) -> dict[str, float]:
        """PPO epochs over this process's micro-batches with gradient accumulation; one optimizer step per
        epoch. Each micro-batch loss is weighted by its share of the global batch `batch` (the trajectories
        trained on, all processes: tokens or sequences) times the number of processes, which DDP's gradient
        average divides out again, times `weight`."""
        config, world = self.config, self.accelerator.num_processes
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        parts = []
        for rows in micro_batches([len(tr.input_ids) for tr in trajectories], config.micro_batch_size):
            ids, attention, actions = _right_pad([trajectories[i] for i in rows], pad)
            width = ids.shape[1]
            parts.append(
                (ids, attention, actions, old_logp[rows, :width].float(), advantages[rows, :width].float())
            )
        total_tokens, total_seqs = sum(sum(tr.loss_mask) for tr in batch), len(batch)
        sums: dict[str, float] = {}
        before = self._snapshot() if config.ppo_epochs > 1 else None
        for epoch in range(config.ppo_epochs):
            for k, (ids, attention, actions, old, adv) in enumerate(parts):
                last = k == len(parts) - 1  # gradients are all-reduced once, on the last backward
                with contextlib.nullcontext() if last else self.accelerator.no_sync(self.scorer):
                    loss, metrics = self.micro_batch_loss(ids, attention, actions, old, adv)
                    bad = torch.tensor([float(not torch.isfinite(loss))], device=self.accelerator.device)
                    if float(self.accelerator.reduce(bad, "sum")) > 0:  # every process takes the same branch
                        self._rollback(before)
                        raise NonFiniteUpdate(f"a non-finite loss (PPO epoch {epoch}, micro-batch {k})")
                    token_share = int(actions.sum()) / total_tokens
                    token_share *= weight
                    share = (
                        token_share
                        if config.loss_aggregation == "token-mean"
                        else actions.shape[0] / total_seqs * weight
                    )
                    self.accelerator.backward(loss * share * world)
                for key, value in metrics.items():
                    metric_share = token_share if key in TOKEN_MEAN_METRICS else share
                    sums[key] = sums.get(key, 0.0) + value * metric_share / config.ppo_epochs
            grad_norm = self.accelerator.clip_grad_norm_(self.scorer.parameters(), config.grad_clip)
            if not math.isfinite(float(grad_norm)):  # DDP: the norm of all-reduced gradients, the same
                self._rollback(before)
                raise NonFiniteUpdate(f"a non-finite gradient norm (PPO epoch {epoch})")
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm) / world / config.ppo_epochs
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        values = torch.tensor(list(sums.values()), dtype=torch.float64, device=self.accelerator.device)
        totals = self.accelerator.reduce(values, "sum")
        return dict(zip(sums, totals.tolist(), strict=True))

    def _snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The trainable weights and the optimizer state, to undo a multi-epoch update."""
        return self._trainable_state(), copy.deepcopy(self.optimizer.state_dict())

    def _rollback(self, before: tuple[dict[str, Tensor], dict[str, Any]] | None) -> None:
        """Drop the accumulated gradients and, after earlier PPO epochs, restore weights and optimizer."""
        self.optimizer.zero_grad(set_to_none=True)
        if before is not None:
            weights, optimizer = before
            with torch.no_grad():
                for name, param in self.policy.named_parameters():
                    if name in weights:
                        param.copy_(weights[name])
            self.optimizer.load_state_dict(optimizer)

    def micro_batch_loss(
        self, ids: Tensor, attention: Tensor, actions: Tensor, old_logp: Tensor, advantages: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """Policy loss of one micro-batch; all inputs (b, L), log-probs aligned with the scored token."""
        config, device = self.config, self.accelerator.device
        rows, cols = actions[:, 1:].nonzero(as_tuple=True)  # token cols + 1 is predicted at cols
        with self.accelerator.autocast():
            logp_flat, entropy_flat = self.scorer(
                ids.to(device), attention.to(device), rows.to(device), cols.to(device), config.temperature
            )
        logp = torch.zeros(actions.shape, device=device, dtype=logp_flat.dtype)
        logp = logp.index_put((rows.to(device), (cols + 1).to(device)), logp_flat)
        entropy = torch.zeros_like(logp).index_put((rows.to(device), (cols + 1).to(device)), entropy_flat)
        ref_logp = None
        if config.kl_coef > 0:
            ref_logp = self._reference_logprobs(ids, attention, rows, cols).to(device)
        return policy_loss(
            logp,
            old_logp.to(device),
            advantages.to(device),
            actions.to(device),
            clip_low=config.clip_low,
            clip_high=config.clip_high,
            dual_clip=config.dual_clip,
            aggregation=config.loss_aggregation,
            norm_length=config.max_new_tokens * config.max_turns,
            entropy=entropy,
            entropy_coef=config.entropy_coef,
            ref_logp=ref_logp,
            kl_coef=config.kl_coef,
            kl_estimator=config.kl_estimator,
        )

    @torch.no_grad()
    def _reference_logprobs(self, ids: Tensor, attention: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """log pi_ref on the same positions: the LoRA adapter switched off."""
        if not self.config.lora:
            raise ValueError(
                "kl_coef > 0 needs a reference policy: set lora: true (the adapter switched off)"
            )
        device = self.accelerator.device
        with self.policy.disable_adapter(), self.accelerator.autocast():
            logp_flat, _ = ActionScorer(self.policy)(
                ids.to(device),
                attention.to(device),
                rows.to(device),
                cols.to(device),
                self.config.temperature,
            )
        return torch.zeros(ids.shape, dtype=logp_flat.dtype).index_put((rows, cols + 1), logp_flat.cpu())

    # ---------------------------------------------------------------------------------------- the run

    def train(self, resume: bool = False) -> Path:
        """Run config.steps steps (continuing from the latest checkpoint if resume); returns metrics path."""
        config = self.config
        if resume:
            self.load_checkpoint()
        main = self.accelerator.is_main_process
        logger = None
        if main:
            run_name = config.run_name or self.output_dir.resolve().name
            trackers = open_trackers(config.report_to, self.output_dir, run_name, dataclasses.asdict(config))
            logger = MetricsLogger(self.output_dir, trackers, resume_after=self.step - 1 if resume else None)
        if main:
            (self.output_dir / "config.yaml").write_text(dump_config(config))
        bar = tqdm(total=config.steps, initial=self.step, desc="infopo train", disable=not main, unit="step")
        self._bar = bar
        try:
            while self.step < config.steps:
                metrics = self.train_step()
                if logger is not None:
                    logger.log(self.step - 1, metrics)
                if "success_rate" in metrics:  # (absent from a skipped step)
                    bar.set_postfix(
                        success=f"{metrics['success_rate']:.2f}", score=f"{metrics['score_mean']:.2f}"
                    )
                bar.update(1)
                if (config.save_every and self.step % config.save_every == 0) or self.step == config.steps:
                    self.save_checkpoint()
        finally:  # a failed step still finishes the trackers' runs
            self._bar = None
            bar.close()
            if logger is not None:
                logger.close()
        return self.output_dir / "metrics.jsonl"

    def _trainable_state(self) -> dict[str, Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.policy.named_parameters() if p.requires_grad}

    def save_checkpoint(self) -> Path:
        """Write checkpoints/step-N atomically (temporary directory, then rename) and point `latest` at it.

        Tensors go to safetensors files and everything else to JSON (`checkpoint.py`): loading a checkpoint
        never unpickles, so never runs code."""
        self.accelerator.wait_for_everyone()
        target = self.output_dir / "checkpoints" / f"step-{self.step}"
        if self.accelerator.is_main_process:
            staging = target.with_name(target.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            write_checkpoint(
                staging,
                step=self.step,
                trainable=self._trainable_state(),
                optimizer=self.optimizer.state_dict(),
                config=dataclasses.asdict(self.config),
            )
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            latest = target.parent / "latest.tmp"
            latest.write_text(target.name)
            os.replace(latest, target.parent / "latest")
        self.accelerator.wait_for_everyone()
        return target

    def load_checkpoint(self) -> None:
        """Restore the latest checkpoint of output_dir, if any (else start from step 0)."""
        pointer = self.output_dir / "checkpoints" / "latest"
        if not pointer.is_file():
            return
        state = read_checkpoint(pointer.parent / pointer.read_text().strip())
        missing = set(self._trainable_state()) - set(state.trainable)
        if missing:
            raise ValueError(
                f"checkpoint lacks trainable parameters {sorted(missing)[:3]}...: another model?"
            )
        with torch.no_grad():
            for name, param in self.policy.named_parameters():
                if name in state.trainable:
                    param.copy_(state.trainable[name])
        self.optimizer.load_state_dict(state.optimizer)
        torch.random.set_rng_state(state.torch_rng)
        random.setstate(state.python_rng)
        self.step = state.step

    @torch.no_grad()
    def success_rate(self, tasks: list[Task], samples: int, seed: int) -> float:
        """Fraction of `samples` rollouts per task (sampled at the training temperature) that succeed."""
        self.policy.eval()
        sampling = dataclasses.replace(self.sampling, group_size=samples)
        self.sampler.update_weights(self.policy)
        trajectories = generate_rollouts(
            self.sampler,
            self.tokenizer,
            tasks,
            self.make_env,
            sampling,
            seed=seed,
            markers=self.markers,
            max_concurrency=self.config.rollout_concurrency,
        )
        return sum(tr.score >= self.config.success_threshold for tr in trajectories) / len(trajectories)
