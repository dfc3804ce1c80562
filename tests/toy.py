"""A word-level tokenizer and tiny model for the clarify task: small enough to learn in CI minutes."""

from __future__ import annotations

import random

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


def word_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level: one id per word or punctuation mark; '<eot>' closes a turn."""
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS + COLOURS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.add_special_tokens(SPECIALS)
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eot>", pad_token="<pad>")
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def tiny_policy(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
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


def toy_trainer(config: TrainConfig, seed: int = 0) -> Trainer:
    tokenizer = word_tokenizer()
    return Trainer(
        config, model=tiny_policy(len(tokenizer), seed), tokenizer=tokenizer, tasks=colour_tasks(64, "train")
    )
