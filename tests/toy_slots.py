"""The slots task (src/infopo/envs/slots.py) at toy scale: a word-level tokenizer, the tiny policy of
toy.py, a supervised warm start that seldom asks, about any slot, but uses what it is told, and a probe
that reads what a training step did (experiments/mechanism.py, tests/test_mechanism.py)."""

from __future__ import annotations

import contextlib
import itertools
import random
import re
from collections.abc import Iterator
from typing import Any

import torch
from toy import tiny_policy, word_tokenizer
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

import infopo.training.trainer as trainer_module
from infopo.core.advantages import AdvantageInputs, AdvantageOutput, compute_advantages
from infopo.envs.slots import RELEVANT, SLOTS, SlotsEnv, parse_move, reply_text
from infopo.rollout import ChatMarkers, TrajectoryBuilder
from infopo.rollout.trajectory import Trajectory
from infopo.training.config import TrainConfig

PLACEHOLDER = TrainConfig.placeholder  # the counterfactual's text, "No information found."
ASK = 0.25  # the warm start's probability of asking at each of the first two turns
MAX_TURNS = 3  # ask, ask, answer
COLOUR, SIZE = RELEVANT  # an answer is "<colour> <size>"


def slots_tokenizer() -> PreTrainedTokenizerFast:
    """One id per word or punctuation mark of the task's texts, the values and the placeholder."""
    env = SlotsEnv()
    opening = env.reset(SlotsEnv.builtin_tasks("train")[0])[0]["content"]
    texts = [opening, env.step("").feedback or "", reply_text("x"), PLACEHOLDER]
    words = [w for text in texts for w in re.findall(r"[a-z]+|[^\sa-z]", text.lower()) if w != "x"]
    words += ["which", *SLOTS, *(v for values in SLOTS.values() for v in values)]
    return word_tokenizer(list(dict.fromkeys(words)))


def slots_config(**overrides: object) -> TrainConfig:
    """Full fine-tuning of the tiny policy on two-token actions ("which colour", "red large"), 3 turns."""
    values: dict[str, object] = dict(
        model="toy",
        lora=False,
        env="slots",
        group_size=5,
        tasks_per_step=8,
        max_turns=MAX_TURNS,
        max_new_tokens=2,
        lr=1e-3,
        entropy_coef=0.0,
        weight_decay=0.0,
        micro_batch_size=64,
        save_every=0,
        trajectory_samples=0,
        report_to=["none"],
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def warm_policy(seed: int, ask: float = ASK) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The tiny policy of `seed` after `teach_slots`."""
    tokenizer = slots_tokenizer()
    # std 0.1 instead of 0.02: with the small initialisation the warm start sits on a long plateau before
    # it learns to copy a value from an earlier reply
    model = tiny_policy(len(tokenizer), seed, initializer_range=0.1)
    teach_slots(model, tokenizer, ask)
    return model, tokenizer


History = tuple[tuple[str, str | None], ...]  # questions asked: (slot, the reply's value or None)
SFT_LR, SFT_STEPS, SFT_TWO_QUESTIONS = 3e-3, 150, 100


def sft_histories() -> list[History]:
    """The warm start's histories: none, each single question with each reply or the placeholder, and
    SFT_TWO_QUESTIONS of the consistent two-question histories (a fixed sample; the others are left for
    the policy to generalise to)."""
    one = [(slot, value) for slot, values in SLOTS.items() for value in [*values, None]]
    two = []
    for history in itertools.product(one, repeat=2):
        said: dict[str, str] = {}
        if all(v is None or said.setdefault(s, v) == v for s, v in history):
            two.append(history)
    return [(), *((q,) for q in one), *random.Random(0).sample(two, SFT_TWO_QUESTIONS)]


def teach_slots(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, ask: float = ASK) -> None:
    """Supervised warm start standing in for the instruction tuning a real policy starts from.

    On the histories of `sft_histories` (the placeholder among the replies, which the policy thus learns
    to read as "nothing was said", as a language model would), the policy is fit to:
    at turns 1 and 2, ask ("which") with probability `ask`, about a slot drawn uniformly (relevant or not,
    asked before or not); otherwise, and always at turn 3, answer: each relevant slot's value copied when a
    reply revealed it, guessed uniformly when not. Untrained success is then about 8% (docs/results.md).
    """
    markers = ChatMarkers.from_tokenizer(tokenizer)
    messages = SlotsEnv.builtin_tasks("train")[0].messages
    token = {w: tokenizer.convert_tokens_to_ids(w) for w in tokenizer.get_vocab()}
    rng = random.Random(0)
    rows, firsts, seconds = [], [], []
    for history in sft_histories():
        builder = TrajectoryBuilder.from_messages(tokenizer, messages, markers)
        for slot, value in history:
            builder.add_turn(
                [token["which"], token[slot]], PLACEHOLDER if value is None else reply_text(value)
            )
        known = {s: v for s, v in history if v is not None}
        first = torch.zeros(len(tokenizer))
        asks = ask if len(history) < MAX_TURNS - 1 else 0.0
        first[token["which"]] = asks
        colours = [known[COLOUR]] if COLOUR in known else SLOTS[COLOUR]
        first[[token[c] for c in colours]] = (1 - asks) / len(colours)
        after_which = torch.zeros(len(tokenizer))
        after_which[[token[s] for s in SLOTS]] = 1 / len(SLOTS)
        after_colour = torch.zeros(len(tokenizer))
        sizes = [known[SIZE]] if SIZE in known else SLOTS[SIZE]
        after_colour[[token[s] for s in sizes]] = 1 / len(sizes)
        for follow, second in ((token["which"], after_which), (token[rng.choice(colours)], after_colour)):
            rows.append([*builder.input_ids, follow])
            firsts.append(first)
            seconds.append(second)
    width = max(map(len, rows))
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
    attention = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    at = torch.tensor([len(row) - 2 for row in rows])  # predicts the action's first token
    batch = torch.arange(len(rows))
    targets = torch.stack(firsts), torch.stack(seconds)
    optimizer = torch.optim.Adam(model.parameters(), lr=SFT_LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, SFT_STEPS)
    model.train()
    for _ in range(SFT_STEPS):
        logits = model(input_ids=ids, attention_mask=attention).logits
        loss = sum(
            -(target * torch.log_softmax(logits[batch, at + k], dim=-1)).sum(-1).mean()
            for k, target in enumerate(targets)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


def turn_kinds(trajectory: Trajectory, tokenizer: PreTrainedTokenizerFast) -> list[str]:
    """Each turn's kind: "informative" (asks a relevant slot not asked before), "wasted" (asks the
    irrelevant slot or a slot asked before), "answer" or "invalid"."""
    kinds, asked = [], set()
    for turn in trajectory.turns:
        text = tokenizer.decode(
            trajectory.input_ids[turn.action.start : turn.action.end], skip_special_tokens=True
        )
        move = parse_move(text, SLOTS)
        if move.kind == "question":
            kinds.append("informative" if move.slot in RELEVANT and move.slot not in asked else "wasted")
            asked.add(move.slot)
        else:
            kinds.append(move.kind)
    return kinds


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _correlation(x: list[float], y: list[float]) -> float | None:
    """Pearson correlation, None when either side is constant or there are fewer than 3 points."""
    if len(x) < 3:
        return None
    xs, ys = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    if float(xs.std()) == 0 or float(ys.std()) == 0:
        return None
    return float(torch.corrcoef(torch.stack([xs, ys]))[0, 1])


class StepProbe:
    """What a Trainer's step rolled out and the advantages it computed, read by wrapping the two functions
    that `infopo.training.trainer` calls (the trainer itself is unchanged); `stats` summarises them."""

    def __init__(self) -> None:
        self.trajectories: list[Trajectory] = []
        self.inputs: AdvantageInputs | None = None
        self.output: AdvantageOutput | None = None

    @contextlib.contextmanager
    def attached(self) -> Iterator[StepProbe]:
        rollouts, advantages = trainer_module.generate_rollouts, trainer_module.compute_advantages

        def generate(*args: Any, **kwargs: Any) -> list[Trajectory]:
            self.trajectories = rollouts(*args, **kwargs)
            return self.trajectories

        def estimate(name: str, inputs: AdvantageInputs, **options: Any) -> AdvantageOutput:
            self.inputs, self.output = inputs, advantages(name, inputs, **options)
            return self.output

        trainer_module.generate_rollouts, trainer_module.compute_advantages = generate, estimate
        try:
            yield self
        finally:
            trainer_module.generate_rollouts, trainer_module.compute_advantages = rollouts, advantages

    def stats(self, tokenizer: PreTrainedTokenizerFast) -> dict[str, float | int | None]:
        """The step's asking behaviour, its IG per question kind, and its extra signal per group type.

        IG: mean IG_t of informative and wasted questions, also split by what follows them (the answer or
        another question). Extra signal: the advantage minus GRPO's on the same rollouts (InfoPO: exactly
        beta * gate * rho * A_int; in a zero-variance group, where GRPO's is 0, the whole advantage), in
        groups that all failed ("zv_fail"), all succeeded ("zv_success") or are mixed ("mixed"): their share
        of the groups, mean |signal| per action token and the token count, the mean turn signal (over the
        turn's tokens) per turn kind with its mean square and turn count (to pool steps), and the
        correlation over their questions of the turn signal with "the question was informative".
        """
        inputs, output = self.inputs, self.output
        assert inputs is not None and output is not None, "no step was probed"
        kinds = [turn_kinds(tr, tokenizer) for tr in self.trajectories]
        questions = [k for ks in kinds for k in ks if k in ("informative", "wasted")]
        result: dict[str, float | int | None] = {
            "ask_rate": len(questions) / sum(map(len, kinds)),
            "informative_share": _mean([float(k == "informative") for k in questions]),
            "asked_both": sum(ks.count("informative") == len(RELEVANT) for ks in kinds) / len(kinds),
            **_ig_by_kind(inputs, kinds),
        }
        signal = (output.advantages - compute_advantages("grpo", inputs).advantages).double()
        scores, group = inputs.scores.double(), inputs.group_index
        high, low = (
            torch.zeros(int(group.max()) + 1, dtype=torch.float64).scatter_reduce(
                0, group, scores, reduce, include_self=False
            )[group]
            for reduce in ("amax", "amin")
        )
        subsets = {"zv_fail": (high == low) & (scores == 0), "zv_success": (high == low) & (scores > 0)}
        subsets["mixed"] = high != low
        for name, rows in subsets.items():
            by_kind: dict[str, list[float]] = {"informative": [], "wasted": [], "answer": []}
            for b in rows.nonzero().flatten().tolist():
                for t, kind in enumerate(kinds[b]):
                    by_kind.get(kind, []).append(float(signal[b][inputs.token_turn[b] == t].mean()))
            tokens = inputs.action_mask & rows[:, None]
            informative = [1.0] * len(by_kind["informative"]) + [0.0] * len(by_kind["wasted"])
            result |= {
                f"{name}_group_fraction": len(set(group[rows].tolist())) / len(set(group.tolist())),
                f"{name}_tokens": int(tokens.sum()),
                f"{name}_abs_signal": float(signal[tokens].abs().mean()) if bool(tokens.any()) else None,
                **{f"{name}_signal_{kind}": _mean(values) for kind, values in by_kind.items()},
                **{
                    f"{name}_square_{kind}": _mean([v * v for v in values])
                    for kind, values in by_kind.items()
                },
                **{f"{name}_count_{kind}": len(values) for kind, values in by_kind.items()},
                f"{name}_correlation": _correlation(by_kind["informative"] + by_kind["wasted"], informative),
            }
        return result


def _ig_by_kind(inputs: AdvantageInputs, kinds: list[list[str]]) -> dict[str, float | None]:
    """Mean IG_t of informative and wasted questions, also of those followed by the answer or by another
    question (None where there is none, and for estimators that compute no IG)."""
    ig: dict[str, list[float]] = {}
    if inputs.turn_ig is not None and inputs.turn_ig_mask is not None:
        for b, ks in enumerate(kinds):
            for t, (kind, after) in enumerate(itertools.pairwise(ks)):
                if kind in ("informative", "wasted") and bool(inputs.turn_ig_mask[b, t]):
                    value = float(inputs.turn_ig[b, t])
                    ig.setdefault(kind, []).append(value)
                    if after != "invalid":
                        before = "answer" if after == "answer" else "question"
                        ig.setdefault(f"{kind}_before_{before}", []).append(value)
    return {
        f"ig_{kind}{suffix}": _mean(ig.get(kind + suffix, []))
        for kind in ("informative", "wasted")
        for suffix in ("", "_before_answer", "_before_question")
    }
