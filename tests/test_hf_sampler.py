"""Sampling with Hugging Face generate: one random stream per row, exact tempered top-p distribution."""

from __future__ import annotations

import copy
import math
from typing import ClassVar, Literal

import pytest
import torch
from fixtures import tiny_model, tiny_tokenizer

from infopo.envs.base import Environment, StepResult, Task
from infopo.rollout.engine import SamplingConfig, episode_seed, generate_rollouts
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


class RecordLogits:
    """A pass-through processor that keeps the (B, V) logits of every decoding step."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(scores.clone())
        return scores


def _conversation(sampler: HFSampler, turns: int, greedy: bool) -> tuple[list[list[int]], list[torch.Tensor]]:
    """`turns` turns of the _sampler() contexts, each answered with a feedback text of its own length;
    the final contexts and the logits of every step."""
    tokenizer = tiny_tokenizer()
    contexts = [tokenizer.encode(text) for text in ("hello there", "a much longer context, to pad", "x")]
    recorder = RecordLogits()
    for turn in range(turns):
        seeds = [episode_seed(3, f"g{i}", 0, turn) for i in range(len(contexts))]
        rows = [] if greedy else [RowSeededSampling(seeds, 1.0, 1.0, torch.device("cpu"))]
        actions = sampler.generate(contexts, [recorder, *rows], 6)
        feedback = [tokenizer.encode(" ok" * (i + turn + 1)) for i in range(len(contexts))]
        contexts = [c + a + f for c, a, f in zip(contexts, actions, feedback, strict=True)]
    return contexts, recorder.steps


@pytest.mark.parametrize("greedy", [True, False])
def test_kv_reuse_samples_what_re_prefilling_samples(greedy: bool) -> None:
    """Kept caches (new tokens prefilled only) give the tokens of full re-prefilling, and the logits to
    float rounding (1e-5: the same sums in another order); the second turn on reuses kept tokens."""
    cached, _ = _sampler()
    fresh = HFSampler(cached.model, cached.eot_id, cached.pad_id, reuse_cache=False)
    got, got_logits = _conversation(cached, 4, greedy)
    expected, expected_logits = _conversation(fresh, 4, greedy)
    assert got == expected
    for a, b in zip(got_logits, expected_logits, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert cached.stats.reused > cached.stats.prefilled / 2 and fresh.stats.reused == 0
    assert cached.stats.prefilled + cached.stats.reused == fresh.stats.prefilled


def test_kv_reuse_keeps_rows_independent_of_their_batch() -> None:
    sampler, contexts = _sampler()
    sampling = SamplingConfig(max_new_tokens=5)
    together = [list(c) for c in contexts]
    alone = [[list(c)] for c in contexts]
    solo = [HFSampler(sampler.model, sampler.eot_id, sampler.pad_id) for _ in contexts]
    for turn in range(3):
        seeds = [episode_seed(1, f"g{i}", 0, turn) for i in range(len(contexts))]
        actions = sampler.sample(together, seeds, sampling)
        for i, one in enumerate(solo):
            assert one.sample(alone[i], [seeds[i]], sampling) == [actions[i]]
            alone[i] = [alone[i][0] + actions[i] + [5] * (i + 1)]
        together = [c + a + [5] * (i + 1) for i, (c, a) in enumerate(zip(together, actions, strict=True))]
    assert sampler.stats.reused > 0


class EndTurnAt:
    """Forces the end-of-turn token on row i at decoding step `steps[i]` (None: never)."""

    def __init__(self, eot: int, steps: list[int | None]) -> None:
        self.eot, self.steps, self.step = eot, steps, 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        for row, at in enumerate(self.steps):
            if at == self.step:
                scores[row, self.eot] = torch.inf
        self.step += 1
        return scores


def test_finished_rows_leave_the_batch_and_change_nothing() -> None:
    """Rows ending at steps 1 and 3 are dropped from the model's batch (3, 3, 2, 2, 1, ... rows per
    forward), yet every row samples what it samples alone, and the next turn, prefilled from the kept
    caches of the dropped rows, samples what full re-prefilling samples."""
    sampler, contexts = _sampler()
    fresh = HFSampler(sampler.model, sampler.eot_id, sampler.pad_id, reuse_cache=False)
    ends: list[int | None] = [1, 3, None]
    sizes: list[int] = []
    hook = sampler.model.register_forward_hook(
        lambda m, args, kwargs, out: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    seeds = [11, 12, 13]
    rows = RowSeededSampling(seeds, 1.0, 1.0, torch.device("cpu"))
    actions = sampler.generate(contexts, [EndTurnAt(sampler.eot_id, ends), rows], 6)
    hook.remove()
    assert sizes == [3, 3, 2, 2, 1, 1]
    assert [len(a) for a in actions] == [2, 4, 6] and actions[0][-1] == actions[1][-1] == sampler.eot_id
    for i, context in enumerate(contexts):
        one = RowSeededSampling([seeds[i]], 1.0, 1.0, torch.device("cpu"))
        assert fresh.generate([context], [EndTurnAt(sampler.eot_id, [ends[i]]), one], 6) == [actions[i]]
    following = [c + a + [5] * (i + 2) for i, (c, a) in enumerate(zip(contexts, actions, strict=True))]
    prefilled = sampler.stats.prefilled
    again = sampler.generate(following, [RowSeededSampling(seeds, 1.0, 1.0, torch.device("cpu"))], 6)
    assert sampler.stats.prefilled - prefilled == sum(i + 3 for i in range(3))  # last token + feedback
    assert again == fresh.generate(following, [RowSeededSampling(seeds, 1.0, 1.0, torch.device("cpu"))], 6)


def test_kept_caches_are_dropped_when_the_weights_change() -> None:
    sampler, contexts = _sampler()
    first = sampler.generate(contexts, [], 4)
    contexts = [c + a + [7, 8] for c, a in zip(contexts, first, strict=True)]
    with torch.no_grad():
        next(sampler.model.parameters()).mul_(1.5)  # an optimizer step, in place
    reused = sampler.stats.reused
    changed = sampler.generate(contexts, [], 4)
    assert sampler.stats.reused == reused  # nothing was reused
    assert changed == HFSampler(sampler.model, sampler.eot_id, sampler.pad_id).generate(contexts, [], 4)


def test_the_merged_lora_copy_samples_what_the_adapter_samples() -> None:
    from peft import LoraConfig, get_peft_model

    base, contexts = _sampler()
    policy = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    merged = HFSampler(policy, base.eot_id, base.pad_id)
    through = HFSampler(policy, base.eot_id, base.pad_id, merge_lora=False)
    sampling = SamplingConfig(max_new_tokens=8)
    for _ in range(2):  # the second time, after the adapter moved
        with torch.no_grad():
            for name, param in policy.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.5)
        merged.update_weights(policy)
        through.update_weights(policy)
        assert merged.model is not policy and through.model is policy
        assert merged.sample(contexts, [1, 2, 3], sampling) == through.sample(contexts, [1, 2, 3], sampling)
    for name, param in policy.named_parameters():  # the training weights were never merged in place
        assert "lora_B" in name or torch.equal(param, before[name])


def test_a_bfloat16_copy_samples_what_a_fresh_bfloat16_model_samples() -> None:
    """rollout_dtype: bfloat16. The copy is refreshed in place after each weight change and matches a
    model merged and cast from scratch; the training weights stay float32 and unmerged."""
    from peft import LoraConfig, get_peft_model

    base, contexts = _sampler()
    full = copy.deepcopy(base.model)  # (get_peft_model injects the adapter into the model it wraps)
    policy = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, wrapped in (("lora", policy), ("full", full)):
        sampler = HFSampler(wrapped, base.eot_id, base.pad_id, dtype=torch.bfloat16)
        sampling = SamplingConfig(max_new_tokens=8, temperature=1.0)
        for _ in range(2):  # the second time, after the weights moved in place
            with torch.no_grad():
                for pname, param in wrapped.named_parameters():
                    if name == "full" or "lora_B" in pname:
                        param.add_(torch.randn_like(param), alpha=0.2)
            sampler.update_weights(wrapped)
            fresh = copy.deepcopy(wrapped)
            fresh = (fresh.merge_and_unload() if name == "lora" else fresh).to(torch.bfloat16).eval()
            assert all(p.dtype == torch.bfloat16 for p in sampler.model.parameters())
            got = sampler.sample(contexts, [1, 2, 3], sampling)
            assert got == HFSampler(fresh, base.eot_id, base.pad_id).sample(contexts, [1, 2, 3], sampling)
        assert all(p.dtype == torch.float32 for p in wrapped.parameters())
        assert not any(".base_layer." in n for n, _ in sampler.model.named_parameters())  # merged


class Echo(Environment):
    """Answers every action with the same sentence until the turn limit."""

    score_mode: ClassVar[Literal["sum", "final"]] = "sum"

    def reset(self, task: Task) -> list[dict[str, str]]:
        return list(task.messages)

    def step(self, action: str) -> StepResult:
        return StepResult("fine, go on", 0.0, False)


def test_rollouts_with_kept_caches_equal_rollouts_without_and_free_them() -> None:
    tokenizer = tiny_tokenizer()
    sampler, _ = _sampler()
    fresh = HFSampler(sampler.model, sampler.eot_id, sampler.pad_id, reuse_cache=False)
    tasks = [Task(f"t{i}", "echo", [{"role": "user", "content": "hello " * (i + 1)}]) for i in range(2)]
    sampling = SamplingConfig(group_size=3, max_turns=4, max_new_tokens=5)
    got = generate_rollouts(sampler, tokenizer, tasks, Echo, sampling, seed=0)
    expected = generate_rollouts(fresh, tokenizer, tasks, Echo, sampling, seed=0)
    assert [t.input_ids for t in got] == [t.input_ids for t in expected]
    assert sampler.stats.reused > 0 and sampler.kept == []  # the engine released them at the end


def test_reserved_layer_holds_what_concatenation_would() -> None:
    """Writes into the reserved room, and grows past it, give the concatenated keys and values."""
    from infopo.rollout.hf_sampler import ReservedLayer

    layer = ReservedLayer(reserve=2)
    parts = [torch.randn(2, 3, n, 4) for n in (3, 1, 1, 1, 2)]  # the third 1 overflows the reserve
    for part in parts:
        keys, values = layer.update(part, -part)
    torch.testing.assert_close(keys, torch.cat(parts, dim=-2), rtol=0, atol=0)
    torch.testing.assert_close(values, -torch.cat(parts, dim=-2), rtol=0, atol=0)
    assert layer.get_seq_length() == 8
