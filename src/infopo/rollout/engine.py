"""Batched multi-turn rollouts: G trajectories per task, token-in/token-out, any sampling backend.

Each turn, the contexts of all unfinished trajectories go to the sampler in one batch; the sampled ids
are appended exactly as generated. The decoded text goes to that trajectory's environment, whose
feedback is appended inside the chat template's turn markers.

Sampling is rank-invariant: the random stream of (group, sample, turn) is seeded by `episode_seed`
alone, so a trajectory does not depend on which other trajectories share its batch or its process.
That is what lets N data-parallel processes reproduce a one-process run (docs/training.md).

Environments may be slow network clients (LLM users and judges): the resets and steps of a turn run on a
thread pool of up to `max_concurrency` workers, so a turn costs about one call's latency. Results are
consumed in episode order, so the trajectories do not depend on the pool.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from torch import nn
from transformers import PreTrainedTokenizerBase

from infopo.envs.base import Environment, Task
from infopo.rollout.builder import ChatMarkers, TrajectoryBuilder
from infopo.rollout.trajectory import Trajectory

R = TypeVar("R")


@dataclass(frozen=True)
class SamplingConfig:
    """How actions are sampled; the same temperature must score them (docs/algorithm.md section 5)."""

    group_size: int = 5
    max_turns: int = 16
    max_new_tokens: int = 256  # per turn
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if min(self.group_size, self.max_turns, self.max_new_tokens) < 1:
            raise ValueError(f"group_size, max_turns and max_new_tokens must be >= 1: {self}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be > 0 and top_p in (0, 1]: {self}")


class Sampler(Protocol):
    """A generation backend (Hugging Face `generate`, vLLM): one turn for a batch of contexts."""

    def sample(
        self, contexts: list[list[int]], seeds: list[int], sampling: SamplingConfig
    ) -> list[list[int]]:
        """The sampled ids of each context, up to and including the first end-of-turn token (or cut at
        sampling.max_new_tokens); context i draws its randomness from seeds[i] only."""
        ...

    def update_weights(self, policy: nn.Module) -> None:
        """Make the next samples come from `policy`'s current weights."""
        ...


def episode_seed(seed: int, group_id: str, sample: int, turn: int) -> int:
    """A 63-bit seed of one turn of one trajectory, the same in every process (no salted `hash`)."""
    digest = hashlib.blake2b(f"{seed}/{group_id}/{sample}/{turn}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def cut_at_end_of_turn(new_ids: list[int], eot_id: int) -> list[int]:
    """The sampled action: up to and including the first end-of-turn token (anything after it dropped)."""
    return new_ids[: new_ids.index(eot_id) + 1] if eot_id in new_ids else new_ids


@dataclass
class Episode:
    """One trajectory being generated and the environment it talks to."""

    builder: TrajectoryBuilder
    env: Environment
    sample: int
    done: bool = False


def _in_order(pool: ThreadPoolExecutor | None, fn: Callable[..., R], *columns: list[Any]) -> list[R]:
    """`fn` over the zipped columns (like `map`), on the pool's threads when there is one; the results in
    the columns' order."""
    return list(pool.map(fn, *columns)) if pool is not None else list(map(fn, *columns))


def generate_rollouts(
    sampler: Sampler,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[Task],
    make_env: Callable[[], Environment],
    sampling: SamplingConfig,
    seed: int,
    markers: ChatMarkers | None = None,
    group_ids: list[str] | None = None,
    max_concurrency: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[Trajectory]:
    """G = sampling.group_size trajectories per task, task by task; task i's trajectories share the group
    id group_ids[i] (default: its task id), which also names their random streams with `seed`. Up to
    `max_concurrency` environments reset or step at once (1: one after another, on this thread).
    `progress` is told each turn as it starts ("rollout turn 2/16, 37 active").
    """
    markers = markers or ChatMarkers.from_tokenizer(tokenizer)
    group_ids = group_ids if group_ids is not None else [task.task_id for task in tasks]
    if len(group_ids) != len(tasks):
        raise ValueError(f"{len(group_ids)} group ids for {len(tasks)} tasks")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    slots = [
        (task, gid, sample)
        for task, gid in zip(tasks, group_ids, strict=True)
        for sample in range(sampling.group_size)
    ]
    envs = [make_env() for _ in slots]  # made in order, on this thread
    pool_context = ThreadPoolExecutor(max_concurrency) if max_concurrency > 1 else contextlib.nullcontext()
    with pool_context as pool:
        openings = _in_order(pool, lambda env, task: env.reset(task), envs, [task for task, _, _ in slots])
        episodes = [
            Episode(
                TrajectoryBuilder.from_messages(
                    tokenizer, messages, markers, task_id=task.task_id, group_id=gid
                ),
                env,
                sample,
            )
            for (task, gid, sample), env, messages in zip(slots, envs, openings, strict=True)
        ]
        for turn in range(sampling.max_turns):
            active = [e for e in episodes if not e.done]
            if not active:
                break
            if progress is not None:
                progress(f"rollout turn {turn + 1}/{sampling.max_turns}, {len(active)} active")
            seeds = [episode_seed(seed, e.builder.group_id, e.sample, turn) for e in active]
            actions = sampler.sample([e.builder.input_ids for e in active], seeds, sampling)
            texts = [tokenizer.decode(action, skip_special_tokens=True) for action in actions]
            results = _in_order(pool, lambda env, text: env.step(text), [e.env for e in active], texts)
            for episode, action, result in zip(active, actions, results, strict=True):
                last = result.done or turn == sampling.max_turns - 1
                feedback = None if last else (result.feedback or "")
                episode.builder.add_turn(action, feedback, result.reward)
                episode.done = last
    release = getattr(sampler, "release", None)
    if release is not None:  # a sampler that keeps per-episode state between turns (KV caches) frees it
        release()
    return [
        e.builder.build(final_score=e.env.final_score() if e.env.score_mode == "final" else None)
        for e in episodes
    ]
