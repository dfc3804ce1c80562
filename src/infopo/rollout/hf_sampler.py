"""Sampling with a Hugging Face causal LM: a KV-cached decoding loop, one random stream per row.

`generate` draws one multinomial sample for the whole batch, so a row's tokens would depend on its batch
neighbours. Instead `RowSeededSampling` perturbs each row's tempered, nucleus-filtered logits with Gumbel
noise from that row's own generator and the loop takes the argmax: the Gumbel-max trick, an exact sample
of softmax(logits / T) restricted to the top-p nucleus.

Multi-turn rollouts send each turn the whole conversation so far. Re-encoding it every turn costs
O(turns^2) prefill; instead the sampler keeps, per row, the keys and values of the context it last saw
(context + action, less the action's last token, which was never fed) and a context that extends a kept
one prefills only its new tokens (the feedback block). Rows are re-batched each call: kept caches are
left-padded to a common width, the new tokens are left-padded after them, and explicit position ids
count each row's real tokens, so a row computes what it would compute alone up to float rounding.
A row that ends its turn leaves the batch, so the model runs on the unfinished rows only.
Kept caches are dropped when the weights change (`update_weights`, or any in-place change of a
parameter, detected through the tensors' version counters) and by `release()` after a rollout.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from transformers import LogitsProcessor
from transformers.cache_utils import Cache, DynamicLayer

from infopo.rollout.engine import SamplingConfig, cut_at_end_of_turn
from infopo.rollout.lora_weights import merged_weights


def nucleus_mask(logits: Tensor, top_p: float) -> Tensor:
    """(B, V) bool: the smallest set of highest-probability tokens whose mass reaches top_p (always >= 1)."""
    if top_p >= 1.0:
        return torch.ones_like(logits, dtype=torch.bool)
    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)
    before = probs.cumsum(dim=-1) - probs  # mass of the strictly more likely tokens
    return torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before < top_p)


class RowSeededSampling(LogitsProcessor):
    """Turns greedy decoding into sampling at `temperature` / `top_p` with one generator per row."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device: torch.device) -> None:
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        """scores: (B, V) next-token logits; returns logits + Gumbel noise, -inf outside the nucleus."""
        logits = scores.float() / self.temperature
        noise = torch.stack(
            [torch.rand(logits.shape[1], generator=g, device=logits.device) for g in self.generators]
        )
        gumbel = -torch.log(-torch.log(noise.clamp(min=torch.finfo(noise.dtype).tiny)))
        return torch.where(nucleus_mask(logits, self.top_p), logits + gumbel, -torch.inf)


def left_pad(contexts: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """(B, W) ids and attention mask of contexts padded on the left to the longest."""
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(contexts), width, dtype=torch.long)
    for i, context in enumerate(contexts):
        ids[i, width - len(context) :] = torch.tensor(context)
        mask[i, width - len(context) :] = 1
    return ids, mask


@dataclass
class KeptCache:
    """The keys and values of one row's `tokens`: per layer, (kv_heads, len(tokens), head_dim) each."""

    tokens: list[int]
    layers: list[tuple[Tensor, Tensor]]


class ReservedLayer(DynamicLayer):
    """A cache layer that writes new keys and values into a buffer with room for `reserve` more tokens,
    instead of concatenating the whole cache at every decoded token (O(context) copies per token)."""

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve, self.length = reserve, 0
        self._keys = self._values = torch.empty(0)

    def update(
        self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
    ) -> tuple[Tensor, Tensor]:
        new = key_states.shape[-2]
        if not self.is_initialized or self.length + new > self._keys.shape[-2]:
            shape = (*key_states.shape[:-2], self.length + new + self.reserve, key_states.shape[-1])
            keys, values = key_states.new_empty(shape), value_states.new_empty(shape)
            if self.is_initialized:
                keys[..., : self.length, :] = self.keys
                values[..., : self.length, :] = self.values
            self._keys, self._values, self.is_initialized = keys, values, True
            self.dtype, self.device = key_states.dtype, key_states.device
        self._keys[..., self.length : self.length + new, :] = key_states
        self._values[..., self.length : self.length + new, :] = value_states
        self.length += new
        self.keys, self.values = self._keys[..., : self.length, :], self._values[..., : self.length, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: Tensor) -> None:
        """Keep only the batch rows `indices` (buffers and views alike)."""
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self.keys, self.values = self._keys[..., : self.length, :], self._values[..., : self.length, :]


@dataclass
class CacheStats:
    """Tokens prefilled (run through the model as context) and reused from kept caches, since creation."""

    prefilled: int = 0
    reused: int = 0
    calls: int = 0


@dataclass
class _Batch:
    """One call's rows laid out as [pad | kept cache | pad | new tokens]; `columns[i]`: row i's real
    cache columns in order (its tokens' keys, as the forward will store them)."""

    cache: Cache
    ids: Tensor
    mask: Tensor
    positions: Tensor
    columns: list[Tensor] = field(default_factory=list)


class HFSampler:
    """The engine's sampler on a (possibly peft-wrapped) Hugging Face causal LM, in the training process.

    reuse_cache: keep each row's KV cache between calls (multi-turn prefill of the new tokens only);
    False re-encodes every context from scratch. merge_lora: `update_weights` of a peft LoRA policy
    samples from a plain copy of the model holding W + scale * B A (one more copy of the base weights in
    memory; the adapter's extra matmuls cost a third of a decoding step on a 135M model); False samples
    through the adapter itself. The two compute the same function up to float rounding. dtype: sample
    from a copy of the weights in this dtype (None: the policy's own); bfloat16 halves what a decoding step
    reads and makes batched steps several times cheaper per row on CPU (docs/performance.md), but samples
    from the rounded policy (the trainer's old log-probs still come from the training weights), and
    bf16 matmul kernels round differently at different batch sizes, so a row's tokens can then depend on
    its batch: the batch invariance that float32 sampling keeps is given up.
    """

    def __init__(
        self,
        model: nn.Module,
        eot_id: int,
        pad_id: int,
        reuse_cache: bool = True,
        merge_lora: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.model, self.eot_id, self.pad_id = model, eot_id, pad_id
        self.reuse_cache, self.merge_lora, self.dtype = reuse_cache, merge_lora, dtype
        self.kept: list[KeptCache] = []
        self.stats = CacheStats()
        self._weights_version: tuple[int, ...] = ()
        self._copy: nn.Module | None = None

    def update_weights(self, policy: nn.Module) -> None:
        """Sample from `policy` from now on: the training weights themselves, or a copy refreshed with them
        (for a peft LoRA policy with merge_lora: a plain copy holding the merged weights; with a dtype other
        than the policy's: cast to it); kept caches are dropped."""
        self.release()
        merge = self.merge_lora and hasattr(policy, "get_base_model")
        cast = self.dtype is not None and self.dtype != next(policy.parameters()).dtype
        if not (merge or cast):
            self.model = policy
            return
        if self._copy is None:
            model = copy.deepcopy(policy)
            model = model.merge_and_unload() if merge else model
            self._copy = (model if self.dtype is None else model.to(self.dtype)).eval()
            self._copy.requires_grad_(False)
        else:
            params = dict(self._copy.named_parameters())
            weights = merged_weights(policy) if merge else policy.named_parameters()
            with torch.no_grad():
                for name, value in weights:
                    params[name].copy_(value)  # (casts to the copy's dtype)
        self.model = self._copy

    def release(self) -> None:
        """Drop the kept caches (the engine calls this when a rollout ends)."""
        self.kept = []

    def sample(
        self, contexts: list[list[int]], seeds: list[int], sampling: SamplingConfig
    ) -> list[list[int]]:
        device = next(self.model.parameters()).device
        rows = RowSeededSampling(seeds, sampling.temperature, sampling.top_p, device)
        return self.generate(contexts, [rows], sampling.max_new_tokens)

    def _version(self) -> tuple[int, ...]:
        """Changes whenever a parameter is replaced or modified in place (optimizer steps, loads)."""
        return (id(self.model), *(p._version for p in self.model.parameters()))

    def _match(self, context: list[int]) -> KeptCache | None:
        """The longest kept cache whose tokens are a proper prefix of `context`."""
        best = None
        for kept in self.kept:
            n = len(kept.tokens)
            if n < len(context) and (best is None or n > len(best.tokens)) and context[:n] == kept.tokens:
                best = kept
        return best

    def _layout(self, contexts: list[list[int]], device: torch.device, new_tokens: int) -> _Batch:
        """Re-batch the kept caches of `contexts` (if any) and their new tokens, both left-padded, in a cache
        with room for the new tokens and `new_tokens` generated ones."""
        found = [self._match(c) if self.reuse_cache else None for c in contexts]
        cached = [len(k.tokens) if k is not None else 0 for k in found]
        width_c = max(cached)
        width_n = max(len(c) - n for c, n in zip(contexts, cached, strict=True))
        bsz = len(contexts)
        ids = torch.full((bsz, width_n), self.pad_id, dtype=torch.long)
        mask = torch.zeros(bsz, width_c + width_n, dtype=torch.long)
        positions = torch.zeros(bsz, width_n, dtype=torch.long)
        columns = []
        for i, (context, n) in enumerate(zip(contexts, cached, strict=True)):
            new = len(context) - n
            ids[i, width_n - new :] = torch.tensor(context[n:])
            positions[i, width_n - new :] = torch.arange(n, len(context))
            mask[i, width_c - n : width_c] = 1
            mask[i, width_c + width_n - new :] = 1
            columns.append(mask[i].nonzero().squeeze(1))
        self.stats.prefilled += sum(len(c) for c in contexts) - sum(cached)
        self.stats.reused += sum(cached)
        reserve = width_n + new_tokens
        layers = [ReservedLayer(reserve) for _ in range(self.model.config.num_hidden_layers)]
        if width_c:
            template = next(k for k in found if k is not None).layers
            for n_layer, (key, value) in enumerate(template):
                shape = (bsz, key.shape[0], width_c, key.shape[2])
                keys, values = key.new_zeros(shape, device=device), value.new_zeros(shape, device=device)
                for i, kept in enumerate(found):
                    if kept is not None:
                        keys[i, :, width_c - cached[i] :] = kept.layers[n_layer][0]
                        values[i, :, width_c - cached[i] :] = kept.layers[n_layer][1]
                layers[n_layer].update(keys, values)
        cache = Cache(layers=layers)
        return _Batch(cache, ids.to(device), mask.to(device), positions.to(device), columns)

    @torch.no_grad()
    def generate(
        self, contexts: list[list[int]], processors: list[LogitsProcessor], max_new_tokens: int
    ) -> list[list[int]]:
        """Greedy decoding of the logits as `processors` leave them (none: plain greedy), cut at the end of
        turn. A row that ends its turn leaves the batch (its kept cache taken first): the model runs on the
        unfinished rows only, while the processors still see all rows (a finished row's logits are 0)."""
        device = next(self.model.parameters()).device
        version = self._version()
        if version != self._weights_version:
            self.release()
            self._weights_version = version
        self.stats.calls += 1
        batch = self._layout(contexts, device, max_new_tokens)
        cache = batch.cache
        mask, step_ids, positions = batch.mask, batch.ids, batch.positions
        kept: list[KeptCache | None] = [None] * len(contexts)
        alive = torch.arange(len(contexts), device=device)  # original row of each batch row
        generated = torch.zeros(len(contexts), 0, dtype=torch.long, device=device)
        finished = torch.zeros(len(contexts), dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            out = self.model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            logits = out.logits[:, -1, :].float()
            scores = logits.new_zeros(len(contexts), logits.shape[1]).index_copy_(0, alive, logits)
            for processor in processors:
                scores = processor(generated, scores)
            token = scores.argmax(dim=-1)
            token = torch.where(finished, self.pad_id, token)
            generated = torch.cat([generated, token[:, None]], dim=1)
            finished |= token == self.eot_id
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            going = ~finished[alive]
            if not bool(going.all()):
                for j in (~going).nonzero().squeeze(1).tolist() if self.reuse_cache else []:
                    kept[int(alive[j])] = self._kept_row(contexts, generated, batch, cache, alive, j)
                alive, mask, positions = alive[going], mask[going], positions[going]
                for layer in cache.layers:
                    layer.batch_select_indices(going.nonzero().squeeze(1))
            step_ids, positions = token[alive][:, None], positions[:, -1:] + 1
            mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
        if self.reuse_cache:
            for j in range(len(alive)):
                kept[int(alive[j])] = self._kept_row(contexts, generated, batch, cache, alive, j)
            self.kept = [k for k in kept if k is not None]
        return [cut_at_end_of_turn(row, self.eot_id) for row in generated.tolist()]

    def _kept_row(
        self, contexts: list[list[int]], generated: Tensor, batch: _Batch, cache: Cache, alive: Tensor, j: int
    ) -> KeptCache:
        """Batch row j's cache of its context and all but the last token of its action (those were fed to
        the model; the next turn's context starts with them)."""
        i = int(alive[j])
        action = cut_at_end_of_turn(generated[i].tolist(), self.eot_id)
        fed = len(action) - 1
        width = batch.mask.shape[1]
        index = torch.cat([batch.columns[i], torch.arange(width, width + fed)]).to(
            cache.layers[0].keys.device
        )
        layers = [(layer.keys[j][:, index], layer.values[j][:, index]) for layer in cache.layers]
        return KeptCache(contexts[i] + action[:fed], layers)
