"""A word-level tokenizer and tiny model for the clarify task: small enough to learn in CI minutes."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from infopo.envs.clarify import CATEGORIES, make_tasks

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


def word_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level: one id per word or punctuation mark; '<eot>' closes a turn."""
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS + CATEGORIES["colour"])}
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


def colour_tasks(n: int, split: str):
    """Clarify tasks restricted to colours with 4 options (the word tokenizer knows only colours)."""
    tasks = []
    seed = 0
    while len(tasks) < n:
        tasks += [t for t in make_tasks(4 * n, seed, split=split) if t.hidden["category"] == "colour"]
        seed += 1
    return tasks[:n]
