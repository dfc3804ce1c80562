"""A word-level tokenizer and tiny model for the clarify task: small enough to learn in CI minutes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from infopo.envs.base import Task
from infopo.training.config import TrainConfig
from infopo.training.trainer import Trainer

TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}<eot> {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)
SPECIALS = ["<pad>", "<eot>", "<user>", "<assistant>", "<system>"]
WORDS = [
    "ask",
    "i",
    "want",
    "a",
    "the",
    "options",
    "are",
    "me",
    "which",
    "one",
    "then",
    "answer",
    "with",
    "just",
]
WORDS += ["that", ".", ",", "please", "or", "exactly", "of", ":", "colour"]
COLOURS = ["red", "blue", "green", "yellow", "black", "white"]
COLOURS += ["pink", "grey", "brown", "orange", "violet", "cyan"]


def word_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Word-level: one id per word or punctuation mark; '<eot>' closes a turn. `words` replaces the
    clarify task's vocabulary (WORDS + COLOURS)."""
    vocab = {w: i for i, w in enumerate(SPECIALS + (WORDS + COLOURS if words is None else words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.add_special_tokens(SPECIALS)
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eot>", pad_token="<pad>")
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def tiny_policy(vocab_size: int, seed: int = 0, initializer_range: float = 0.02) -> LlamaForCausalLM:
    """A 2-layer Llama of hidden size 64, initialised from `seed` with weights of std `initializer_range`."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
        initializer_range=initializer_range,
    )
    return LlamaForCausalLM(config)


def colour_tasks(n: int, split: str) -> list[Task]:
    """Clarify tasks over twelve colours, whose request does not list them: guessing wins 1/12."""
    rng = random.Random(split)
    colours = COLOURS
    request = "I want a colour. Ask me which one I want, then answer with just that colour."
    return [
        Task(
            task_id=f"colour-{split}-{i}",
            env="clarify",
            messages=[{"role": "user", "content": request}],
            hidden={"category": "colour", "options": colours, "wanted": rng.choice(colours)},
        )
        for i in range(n)
    ]


def toy_config(**overrides: object) -> TrainConfig:
    """Full fine-tuning of the tiny policy on one-word actions over at most two turns."""
    values: dict[str, object] = dict(
        model="toy",
        lora=False,
        env="clarify",
        group_size=8,
        tasks_per_step=8,
        max_turns=2,
        max_new_tokens=1,
        lr=3e-3,
        entropy_coef=0.0,
        weight_decay=0.0,
        micro_batch_size=64,
        save_every=0,
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def toy_trainer(config: TrainConfig, seed: int = 0, warm_start: bool = False) -> Trainer:
    tokenizer = word_tokenizer()
    model = tiny_policy(len(tokenizer), seed)
    if warm_start:
        teach_copying(model, tokenizer)
    return Trainer(config, model=model, tokenizer=tokenizer, tasks=colour_tasks(64, "train"))


SFT_LR = 3e-2


def teach_copying(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, steps: int = 300) -> None:
    """Supervised warm start standing in for the instruction tuning a real policy starts from.

    After "ask" and the user's "I want X.", the policy learns to say X (it can use an answer it is given).
    At the first turn it learns to ask 8% of the time and otherwise to guess a colour, so the untrained
    success rate is about 0.08 + 0.92 / 12 = 16% and RL must discover that asking pays.
    """
    from infopo.rollout import ChatMarkers, TrajectoryBuilder

    markers = ChatMarkers.from_tokenizer(tokenizer)
    ask = tokenizer.encode("ask", add_special_tokens=False)
    colour_ids = tokenizer.convert_tokens_to_ids(COLOURS)
    first = torch.zeros(len(tokenizer))
    first[ask[0]] = 0.08
    first[colour_ids] = 0.92 / len(COLOURS)
    rows, answers, prompt_end = [], [], 0
    for task in colour_tasks(64, "warmup"):
        builder = TrajectoryBuilder.from_messages(tokenizer, task.messages, markers)
        prompt_end = len(builder.input_ids) - 1
        builder.add_turn(ask, f"I want {task.hidden['wanted']}.")
        rows.append(builder.input_ids)
        answers.append(tokenizer.convert_tokens_to_ids(task.hidden["wanted"]))
    ids = torch.tensor(rows)  # all rows have the same length
    optimizer = torch.optim.Adam(model.parameters(), lr=SFT_LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)  # settle: robust to numerics
    model.train()
    for _ in range(steps):
        logits = model(input_ids=ids).logits
        answer_loss = torch.nn.functional.cross_entropy(logits[:, -1], torch.tensor(answers))
        first_loss = -(first * torch.log_softmax(logits[:, prompt_end], dim=-1)).sum(-1).mean()
        optimizer.zero_grad()
        (answer_loss + first_loss).backward()
        optimizer.step()
        schedule.step()


def logged_metrics(output: Path) -> list[dict[str, float]]:
    """The rows of a run's metrics.jsonl without the wall-clock ones (time_*, tokens_per_second)."""
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    wall_clock = ("time_", "tokens_per_second")
    return [{k: v for k, v in row.items() if not k.startswith(wall_clock)} for row in rows]
