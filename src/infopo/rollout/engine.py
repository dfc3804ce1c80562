"""Batched multi-turn rollouts with Hugging Face `generate`: G trajectories per task, token-in/token-out.

Each turn, every unfinished trajectory's context is left-padded into one batch, sampled until the end of
turn token (or the per-turn token cap), and the sampled ids are appended exactly as generated. The
decoded text goes to that trajectory's environment, whose feedback is appended inside the chat template's
turn markers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase

from infopo.envs.base import Environment, Task
from infopo.rollout.builder import ChatMarkers, TrajectoryBuilder
from infopo.rollout.trajectory import Trajectory


@dataclass(frozen=True)
class SamplingConfig:
    """How actions are sampled; the same temperature must score them (spec section 5)."""

    group_size: int = 5
    max_turns: int = 16
    max_new_tokens: int = 256  # per turn
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class Episode:
    """One trajectory being generated and the environment it talks to."""

    builder: TrajectoryBuilder
    env: Environment
    done: bool = False


def _left_pad(contexts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(contexts), width, dtype=torch.long)
    for i, context in enumerate(contexts):
        ids[i, width - len(context) :] = torch.tensor(context)
        mask[i, width - len(context) :] = 1
    return ids, mask


def _cut_at_end_of_turn(new_ids: list[int], eot_id: int) -> list[int]:
    """The sampled action: up to and including the first end-of-turn token (padding after it dropped)."""
    return new_ids[: new_ids.index(eot_id) + 1] if eot_id in new_ids else new_ids


@torch.no_grad()
def generate_rollouts(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[Task],
    make_env: Callable[[], Environment],
    sampling: SamplingConfig,
    seed: int,
    markers: ChatMarkers | None = None,
    group_prefix: str = "",
) -> list[Trajectory]:
    """G = sampling.group_size trajectories per task, task by task; a task's trajectories share the group
    id `group_prefix + task_id`. Sampling is seeded by `seed` without disturbing the global RNG.
    """
    markers = markers or ChatMarkers.from_tokenizer(tokenizer)
    eot_ids = tokenizer.encode(markers.end_of_turn, add_special_tokens=False)
    if len(eot_ids) != 1:
        raise ValueError(f"end-of-turn marker {markers.end_of_turn!r} must be one token, got {eot_ids}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot_ids[0]
    episodes = []
    for task in tasks:
        for _ in range(sampling.group_size):
            env = make_env()
            messages = env.reset(task)
            builder = TrajectoryBuilder.from_messages(
                tokenizer, messages, markers, task_id=task.task_id, group_id=group_prefix + task.task_id
            )
            episodes.append(Episode(builder, env))
    device = next(model.parameters()).device
    generation = GenerationConfig(
        do_sample=True,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=0,
        max_new_tokens=sampling.max_new_tokens,
        eos_token_id=eot_ids[0],
        pad_token_id=pad_id,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for turn in range(sampling.max_turns):
            active = [e for e in episodes if not e.done]
            if not active:
                break
            ids, mask = _left_pad([e.builder.input_ids for e in active], pad_id)
            out = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=generation
            )
            for episode, row in zip(active, out[:, ids.shape[1] :].tolist(), strict=True):
                action = _cut_at_end_of_turn(row, eot_ids[0])
                result = episode.env.step(tokenizer.decode(action, skip_special_tokens=True))
                last = result.done or turn == sampling.max_turns - 1
                feedback = None if last else (result.feedback or "")
                episode.builder.add_turn(action, feedback, result.reward)
                episode.done = last
    finally:
        torch.random.set_rng_state(generator_state)
    return [
        e.builder.build(final_score=e.env.final_score() if e.env.score_mode == "final" else None)
        for e in episodes
    ]
