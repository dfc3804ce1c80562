"""Sampling with Hugging Face generate: one random stream per row, exact tempered top-p distribution."""

from __future__ import annotations

import math

import pytest
import torch
from fixtures import tiny_model, tiny_tokenizer

from infopo.rollout.engine import SamplingConfig, episode_seed
from infopo.rollout.hf_sampler import HFSampler, RowSeededSampling, nucleus_mask


def test_nucleus_mask_keeps_the_smallest_set_reaching_top_p() -> None:
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]])
    assert nucleus_mask(logits, 0.5).tolist() == [[True, False, False, False]]
    assert nucleus_mask(logits, 0.51).tolist() == [[True, True, False, False]]
    assert nucleus_mask(logits, 0.9).tolist() == [[True, True, True, False]]
    assert nucleus_mask(logits, 1.0).all()
    assert nucleus_mask(logits[:, [3, 1, 0, 2]], 0.7).tolist() == [[False, True, True, False]]


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.5, 1.0), (2.0, 0.8)])
def test_gumbel_max_samples_the_tempered_nucleus(temperature: float, top_p: float) -> None:
    """20,000 rows with their own seeds: frequencies match softmax(logits / T) renormalised on the
    nucleus within 4 standard errors, and nothing outside the nucleus is ever drawn."""
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    n = 20_000
    sampler = RowSeededSampling(list(range(n)), temperature, top_p, torch.device("cpu"))
    drawn = sampler(torch.zeros(n, 1, dtype=torch.long), logits.expand(n, -1)).argmax(dim=-1)
    tempered = logits / temperature
    keep = nucleus_mask(tempered[None], top_p)[0]
    expected = torch.where(keep, tempered, -torch.inf).softmax(-1)
    frequency = torch.bincount(drawn, minlength=5).double() / n
    error = (expected * (1 - expected) / n).sqrt()
    assert (frequency[~keep] == 0).all()
    assert ((frequency - expected).abs() <= 4 * error + 1e-12).all(), (frequency, expected)


def _sampler() -> tuple[HFSampler, list[list[int]]]:
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer))
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    contexts = [tokenizer.encode(text) for text in ("hello there", "a much longer context, to pad", "x")]
    return HFSampler(model.eval(), eot, tokenizer.pad_token_id or 0), contexts


def test_a_row_does_not_depend_on_its_batch_neighbours() -> None:
    sampler, contexts = _sampler()
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0)
    seeds = [episode_seed(7, f"group-{i}", 0, 0) for i in range(len(contexts))]
    batched = sampler.sample(contexts, seeds, sampling)
    alone = [sampler.sample([c], [s], sampling)[0] for c, s in zip(contexts, seeds, strict=True)]
    assert batched == alone
    assert all(len(a) == 12 or a.index(sampler.eot_id) == len(a) - 1 for a in batched)
    other = sampler.sample(contexts, [s + 1 for s in seeds], sampling)
    assert other != batched  # the seed matters


def test_the_models_own_generation_defaults_do_not_leak_in() -> None:
    sampler, contexts = _sampler()
    sampling = SamplingConfig(max_new_tokens=8, temperature=0.7, top_p=0.9)
    seeds = [1, 2, 3]
    clean = sampler.sample(contexts, seeds, sampling)
    config = sampler.model.generation_config
    config.do_sample, config.top_k, config.repetition_penalty, config.no_repeat_ngram_size = True, 1, 5.0, 1
    assert sampler.sample(contexts, seeds, sampling) == clean
    assert sampler.model.generation_config is config  # and the model keeps its own afterwards


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"max_new_tokens": 0}])
def test_sampling_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SamplingConfig(**bad)  # type: ignore[arg-type]
