"""`infopo eval`: end to end on a tiny local model and on scripted endpoints, training runs as agents,
metrics, the perturbed user and the command's errors."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
from fake_llm_server import FakeServer
from fixtures import play, tiny_model, tiny_tokenizer
from scripted import clarify_agent

from infopo.cli import main
from infopo.envs.clarify import ClarifyEnv
from infopo.envs.simulators import PerturbedUser, make_env_factory, paraphrase, terse
from infopo.envs.telepathy import TelepathyEnv
from infopo.evaluation.agents import Decoding, EvalError, GreedySampler, LocalAgent, load_local
from infopo.evaluation.episodes import Episode
from infopo.evaluation.metrics import (
    Outcome,
    colbench_metrics,
    pass_at_k,
    pass_hat_k,
    tau_metrics,
    usergym_metrics,
)
from infopo.rollout.builder import ChatMarkers
from infopo.rollout.engine import SamplingConfig, generate_rollouts
from infopo.training.config import TrainConfig
from infopo.training.trainer import Trainer

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where load_local puts a model


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------- end to end


def test_local_model_over_two_environments(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["eval", "--agent", str(model_dir), "--envs", "clarify,telepathy", "--limit", "3"]
    argv += [
        "--samples",
        "2",
        "--max-turns",
        "2",
        "--max-new-tokens",
        "5",
        "--dtype",
        "float32",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["decoding"] == "greedy" and results["samples_per_task"] == 2
    assert [(r["env"], r["split"], r["episodes"], r["tasks"]) for r in results["results"]] == [
        ("clarify", "test", 6, 3),
        ("telepathy", "test", 6, 3),
    ]
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer)).to(DEVICE)  # where eval put it
    markers = ChatMarkers.from_tokenizer(tokenizer)
    sampler = GreedySampler(model, markers.end_of_turn_id(tokenizer), tokenizer.pad_token_id)
    made = {ClarifyEnv: ClarifyEnv, TelepathyEnv: functools.partial(TelepathyEnv, max_turns=2)}  # as eval
    for result, env_class in zip(results["results"], made, strict=True):
        records = _lines(out / result["conversations"])
        assert [(r["task_id"], r["sample"]) for r in records] == [
            (t.task_id, s) for t in env_class.load_tasks("test")[:3] for s in range(2)
        ]
        for r in records:
            assert r["score"] == math.fsum(r["rewards"]) and r["success"] == (r["score"] >= 1.0)
            assert len(r["info"]) == r["turns"] == sum(m["role"] == "assistant" for m in r["messages"])
        assert result["metrics"] == {
            "mean_score": math.fsum(r["score"] for r in records) / len(records),
            "success_rate": sum(r["success"] for r in records) / len(records),
        }
        # token-in/token-out: the conversations are the rollout engine's, as training would produce them
        tasks = [t for t in env_class.load_tasks("test")[:3] for _ in range(2)]
        trajectories = generate_rollouts(
            sampler,
            tokenizer,
            tasks,
            made[env_class],
            SamplingConfig(1, 2, 5),
            seed=0,
            markers=markers,
            group_ids=[f"{t.task_id}/sample-{i % 2}/trial-0" for i, t in enumerate(tasks)],
        )
        for r, trajectory in zip(records, trajectories, strict=True):
            actions = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
            ids = trajectory.input_ids
            assert actions == [
                tokenizer.decode(ids[t.action.start : t.action.end], skip_special_tokens=True)
                for t in trajectory.turns
            ]
    report = (out / "report.md").read_text()
    assert "## clarify (usergym)" in report and "## telepathy (usergym)" in report
    assert "| split | episodes | failed | turns | mean score | success rate |" in report


@pytest.mark.parametrize(("correct", "score"), [(True, 1.0), (False, 0.0)])
def test_scripted_endpoint_scores(server: FakeServer, tmp_path: Path, correct: bool, score: float) -> None:
    server.responder = clarify_agent(correct)
    argv = ["eval", "--agent", server.url, "--envs", "clarify", "--limit", "5", "--samples", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (result,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert result["metrics"] == {"mean_score": score, "success_rate": score}
    assert (result["episodes"], result["failed_episodes"], result["turns_mean"]) == (10, 0, 2.0)
    first = _lines(tmp_path / result["conversations"])[0]
    task = ClarifyEnv.load_tasks("test")[0]
    wanted = task.hidden["wanted"]
    answer = wanted if correct else next(o for o in task.hidden["options"] if o != wanted)
    assert first["messages"] == [
        *task.messages,
        {"role": "assistant", "content": "Which one do you want?"},
        {"role": "user", "content": f"I want {wanted}."},
        {"role": "assistant", "content": answer},
    ]
    assert (first["rewards"], first["done"], first["final"], first["trial_scores"]) == (
        [0.0, score],
        True,
        True,
        [score],
    )
    chats = [r for r in server.requests if r["path"].endswith("/chat/completions")]
    assert len(chats) == 20 and {r["model"] for r in chats} == {"sim"}  # the one model the server lists
    assert all(r["temperature"] == 0.0 and "seed" not in r for r in chats)  # greedy


def test_metric_family_declared_by_the_environment(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment that declares the "tau" family gets pass^k / pass@k with no change to eval."""
    monkeypatch.setattr(ClarifyEnv, "metric_family", "tau")
    server.responder = clarify_agent(True)
    argv = ["eval", "--agent", server.url, "--agent-model", "sim", "--envs", "clarify", "--limit", "2"]
    assert main([*argv, "--samples", "3", "--temperature", "0.7", "--out", str(tmp_path)]) == 0
    (result,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert result["metric_family"] == "tau"
    assert result["metrics"] == {f"pass{c}{k}": 1.0 for c in "^@" for k in (1, 2, 3)} | {"mean_reward": 1.0}
    seeds = [r["seed"] for r in server.requests if r["path"].endswith("/chat/completions")]
    assert len(seeds) == 12 and len(set(seeds)) == 12  # sampled: one random stream per episode turn


# --------------------------------------------------------------------------------- training runs


def _train_run(model_dir: Path, output: Path, lora: bool) -> Trainer:
    config = TrainConfig(
        model=str(model_dir),
        lora=lora,
        env="clarify",
        group_size=2,
        tasks_per_step=2,
        max_turns=2,
        max_new_tokens=4,
        lr=1e-2,
        steps=1,
        save_every=0,
        output_dir=str(output),
        report_to=["none"],
    )
    trainer = Trainer(config)
    trainer.train()
    return trainer


@pytest.mark.parametrize("lora", [True, False])
def test_training_run_as_agent(model_dir: Path, tmp_path: Path, lora: bool) -> None:
    trainer = _train_run(model_dir, tmp_path / "run", lora)
    policy = trainer.policy.eval()
    model, tokenizer, label = load_local(str(tmp_path / "run"), None, "float32")
    assert label == f"{tmp_path / 'run'} (step-1{', LoRA' if lora else ''})"
    ids = torch.tensor([tokenizer.encode("which colour do you want? i want red.")], device=DEVICE)
    base = tiny_model(len(tokenizer)).to(DEVICE)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        assert torch.equal(logits, policy(input_ids=ids).logits)
        assert not torch.allclose(logits, base(input_ids=ids).logits)  # the update is in the checkpoint
    for spec, step in ((tmp_path / "run", 1), (tmp_path / "run" / "checkpoints" / "step-1", None)):
        same, _, _ = load_local(str(spec), step, "float32")
        with torch.no_grad():
            assert torch.equal(same(input_ids=ids).logits, logits)
    # the same actions as the in-memory policy, episode by episode (sampled, seeded)
    decoding = Decoding(temperature=1.0, max_new_tokens=4, seed=5)
    tasks = ClarifyEnv.load_tasks("test")[:3]
    played = []
    for agent_model in (model, policy):
        episodes = [Episode(ClarifyEnv(), task) for task in tasks]
        LocalAgent(agent_model, tokenizer, "m", decoding).play(episodes, max_turns=2)
        played.append([e.trajectory.input_ids for e in episodes])
    assert played[0] == played[1]
    with pytest.raises(EvalError, match=r"has no checkpoint of step 7 \(saved: step-1\)"):
        load_local(str(tmp_path / "run"), 7, "float32")


# ----------------------------------------------------------------------------------------- metrics


def test_pass_k_by_hand() -> None:
    assert [pass_hat_k(4, 2, k) for k in (1, 2, 3, 4)] == [0.5, 1 / 6, 0.0, 0.0]
    assert [pass_at_k(4, 2, k) for k in (1, 2, 3, 4)] == [0.5, 1 - 1 / 6, 1.0, 1.0]
    assert (pass_hat_k(3, 3, 3), pass_at_k(3, 0, 2), pass_hat_k(5, 1, 1)) == (1.0, 0.0, 0.2)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_hat_k(2, 1, 3)
    outcomes = [Outcome("a", float(s), bool(s)) for s in (1, 0, 1, 0)]
    outcomes += [Outcome("b", 1.0, True) for _ in range(4)]
    metrics = tau_metrics(outcomes)
    assert list(metrics) == [
        "mean_reward",
        *(f"pass^{k}" for k in range(1, 5)),
        *(f"pass@{k}" for k in range(1, 5)),
    ]
    assert metrics["mean_reward"] == 0.75
    assert metrics["pass^1"] == 0.75 and metrics["pass^2"] == pytest.approx((1 / 6 + 1) / 2)
    assert metrics["pass^3"] == metrics["pass^4"] == 0.5
    assert metrics["pass@1"] == 0.75 and metrics["pass@2"] == pytest.approx((5 / 6 + 1) / 2)
    assert metrics["pass@3"] == metrics["pass@4"] == 1.0


def test_usergym_and_colbench_metrics() -> None:
    outcomes = [Outcome("a", 1.0, True), Outcome("b", 0.5, False), Outcome("c", 0.0, False)]
    outcomes.append(Outcome("d", 0.3 + 0.7, True))
    assert usergym_metrics(outcomes) == {"mean_score": 0.625, "success_rate": 0.5}
    assert colbench_metrics(outcomes) == {"average_correctness": 0.625, "fully_correct_pct": 50.0}


# --------------------------------------------------------------------------------- perturbed user


def _rollout(env: object, task: object, actions: list[str]) -> list[tuple[str | None, float, bool]]:
    env.reset(task)  # type: ignore[attr-defined]
    steps = []
    for action in actions:
        result = env.step(action)  # type: ignore[attr-defined]
        steps.append((result.feedback, result.reward, result.done))
        if result.done:
            break
    return steps


def test_perturbed_user_changes_text_never_rewards() -> None:
    questions = ["Is it alive?", "Is it an animal?", "Is it a place?", "Is it man-made?", "Is it food?"]
    actions = [f"ACTION: {q}" for q in questions] + ["ANSWER: a thing"]
    tasks = TelepathyEnv.load_tasks("test")[:8]

    def run(seed: int | None) -> list[list[tuple[str | None, float, bool]]]:
        make = TelepathyEnv if seed is None else make_env_factory("telepathy", "perturbed", {}, seed)
        return [_rollout(make(), task, actions) for task in tasks]

    plain, first, again, other = run(None), run(3), run(3), run(4)
    for perturbed in (first, other):
        assert [[(r, d) for _, r, d in ep] for ep in perturbed] == [
            [(r, d) for _, r, d in ep] for ep in plain
        ]
        changed = [
            a[0] != b[0] for p, q in zip(plain, perturbed, strict=True) for a, b in zip(p, q, strict=True)
        ]
        assert sum(changed) > len(changed) / 4
    assert first == again and first != other  # deterministic per seed
    # clarify: rewards and done are the offline user's whatever the text
    for task in ClarifyEnv.load_tasks("test")[:16]:
        assert play(PerturbedUser(ClarifyEnv(), seed=1), task, ["Which one?", task.hidden["wanted"]]) == 1.0


def test_perturbed_user_rewrites() -> None:
    import random

    rng = random.Random(0)
    assert paraphrase("Yes.", rng) in ("Yep, that's right.", "Yes, it is.", "Correct.")
    assert paraphrase("I want mango.", rng) in ("I'd like mango.", "Mango, please.", "My pick is mango.")
    assert paraphrase("Departure time: morning.", rng).endswith(" Departure time: morning.")
    assert terse("I want red. And nothing else!") == "I want red."
    long = "hotel: a pool, breakfast included, at least four stars, near the station, quiet rooms please"
    assert terse(long) == "hotel: a pool, breakfast included, at least four stars, near..."
    env = PerturbedUser(ClarifyEnv(), seed=0)
    env.reset(ClarifyEnv.load_tasks("test")[0])
    env.rng.random = lambda: 0.0  # type: ignore[method-assign]  (always "unhelpful")
    result = env.step("Which one?")
    assert result.feedback in ("I'm not sure, sorry.", "Hmm, I don't really know.", "Sorry, I can't say.")
    assert result.info == {"asked": True, "perturbation": "unhelpful"}
    telepathy = PerturbedUser(TelepathyEnv(), seed=0)
    telepathy.reset(TelepathyEnv.load_tasks("test")[0])
    telepathy.rng.random = lambda: 0.0  # type: ignore[method-assign]
    notice = telepathy.step('interact_with_env(choice="fly", content="up")')
    assert notice.feedback.startswith("[invalid action]") and "perturbation" not in notice.info


def test_env_factory_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown environment 'clarfy'.*Did you mean 'clarify'"):
        make_env_factory("clarfy")
    with pytest.raises(ValueError, match="clarify has no LLM user mode"):
        make_env_factory("clarify", "llm")
    with pytest.raises(ValueError, match="telepathy takes no option 'colour'"):
        make_env_factory("telepathy", "offline", {"colour": 1})
    with pytest.raises(ValueError, match="simulator must be one of offline, perturbed, llm"):
        make_env_factory("clarify", "human")
    assert isinstance(make_env_factory("telepathy", "llm", {"max_turns": 3})(), TelepathyEnv)


# ----------------------------------------------------------------------------------- the command


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "x", "--envs", "clarfy"], "unknown environment 'clarfy'"),
        (["--agent", "/no/such/model", "--envs", "clarify"], "is not a model directory"),
        (["--agent", "http://127.0.0.1:9/v1", "--envs", "clarify"], "does not answer"),
        (["--agent", "x", "--envs", "clarify", "--simulator", "llm"], "clarify has no LLM user mode"),
        (["--agent", "x", "--envs", "clarify", "--trials", "2"], "add --prompting reflexion"),
        (["--agent", "x", "--envs", "clarify", "--split", "dev"], "clarify has splits"),
        (["--agent", "x", "--envs", "clarify", "colour=red"], "takes the option 'colour'"),
        (["--agent", "x", "--envs", "clarify", "--samples", "0"], "samples must be >= 1"),
        (["--agent", "x", "--envs", "telepathy", "max_turns=3"], "--max-turns"),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    assert main(["eval", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infopo eval: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "results.json").exists()
