"""Concurrency: a turn of 32 episodes keeps >= 16 requests in flight at a loopback server that answers
after 200 ms (the rollout engine, `infopo eval` with a local model or an endpoint); results stay in order
and deterministic; failures end only their own episode."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_llm_server import FakeServer
from fixtures import tiny_model, tiny_tokenizer
from scripted import clarify_agent

from infopo.cli import main
from infopo.envs.clarify import ClarifyEnv
from infopo.envs.llm import LLMClient, failed_step
from infopo.envs.telepathy import TelepathyEnv
from infopo.evaluation.agents import Decoding, EndpointAgent
from infopo.evaluation.episodes import Episode
from infopo.evaluation.runner import EvalSettings, evaluate, prepare
from infopo.rollout.builder import ChatMarkers
from infopo.rollout.engine import SamplingConfig, generate_rollouts

HOLD, HOLD_TIMEOUT = 16, 5.0  # requests wait until 16 are in flight (fake_llm_server.py)
_ENTITY = re.compile(r"The entity: ([^(]+) \(")


def llm_user(request: dict) -> str:
    """A telepathy user whose answer names its own entity, so that a reply in the wrong episode shows."""
    return f"No, it is not {_ENTITY.search(request['messages'][0]['content']).group(1)}."


@pytest.fixture
def users(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """The loopback server as the LLM user simulator of `--simulator llm` (environment variables)."""
    monkeypatch.setenv("INFOPO_SIM_BASE_URL", server.url)
    monkeypatch.setenv("INFOPO_SIM_MODEL", "sim")
    monkeypatch.setenv("INFOPO_SIM_API_KEY", "k")
    server.responder = llm_user
    yield server


class FixedSampler:
    """Every context gets the same action."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def sample(
        self, contexts: list[list[int]], seeds: list[int], sampling: SamplingConfig
    ) -> list[list[int]]:
        return [list(self.ids) for _ in contexts]

    def update_weights(self, policy: object) -> None:
        pass


def test_engine_steps_environments_concurrently(server: FakeServer) -> None:
    server.responder = llm_user
    tokenizer = tiny_tokenizer()
    markers = ChatMarkers.from_tokenizer(tokenizer)
    sampler = FixedSampler([*tokenizer.encode("ACTION: Is it alive?"), markers.end_of_turn_id(tokenizer)])
    tasks = TelepathyEnv.load_tasks("test")[:16]
    config = server.config(timeout_s=10)

    def rollouts(concurrency: int) -> list:
        return generate_rollouts(
            sampler,
            tokenizer,
            tasks,
            lambda: TelepathyEnv(simulator="llm", llm=config),
            SamplingConfig(group_size=2, max_turns=2, max_new_tokens=8),
            seed=0,
            markers=markers,
            max_concurrency=concurrency,
        )

    one_by_one = rollouts(1)
    assert server.max_active == 1
    server.hold, server.delay = HOLD, HOLD_TIMEOUT
    concurrent = rollouts(32)
    assert server.max_active >= HOLD
    assert concurrent == one_by_one  # same trajectories, same order
    first = one_by_one[0]
    feedback = first.input_ids[first.turns[0].feedback_text.start : first.turns[0].feedback_text.end]
    assert tokenizer.decode(feedback) == f"No, it is not {tasks[0].hidden['title']}."


def test_eval_with_llm_users_and_a_local_model(users: FakeServer, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    tiny_model(len(tokenizer)).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    users.hold, users.delay = HOLD, HOLD_TIMEOUT
    argv = ["eval", "--agent", str(tmp_path / "model"), "--envs", "telepathy", "--simulator", "llm"]
    argv += ["--limit", "32", "--max-turns", "1", "--max-new-tokens", "8", "--dtype", "float32"]
    argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 0
    (result,) = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert (result["episodes"], result["failed_episodes"]) == (32, 0)
    asked = len(users.requests)  # actions that parse as a question reach the user
    assert asked >= 16 and users.max_active >= HOLD


def test_endpoint_agent_requests_concurrently(server: FakeServer) -> None:
    server.responder = clarify_agent(True)
    server.hold, server.delay = HOLD, HOLD_TIMEOUT
    agent = EndpointAgent(LLMClient(server.config(timeout_s=10)), Decoding(), concurrency=32)
    episodes = [Episode(ClarifyEnv(), task) for task in ClarifyEnv.load_tasks("test")[:32]]
    agent.play(episodes, max_turns=4)
    assert server.max_active >= HOLD
    assert [e.score for e in episodes] == [1.0] * 32 and all(len(e.rewards) == 2 for e in episodes)
    assert [e.messages[0] for e in episodes] == [t.messages[0] for t in ClarifyEnv.load_tasks("test")[:32]]


def test_endpoint_agent_and_llm_users_on_two_servers(users: FakeServer, tmp_path: Path) -> None:
    agent_server = FakeServer()
    try:
        agent_server.responder = lambda request: "ACTION: Is it alive?"
        users.hold, users.delay = HOLD, HOLD_TIMEOUT
        argv = ["eval", "--agent", agent_server.url, "--envs", "telepathy", "--simulator", "llm"]
        assert main([*argv, "--limit", "32", "--max-turns", "2", "--out", str(tmp_path)]) == 0
    finally:
        agent_server.httpd.shutdown()
        agent_server.httpd.server_close()
    assert users.max_active >= HOLD and len(users.requests) == 64
    records = [json.loads(line) for line in (tmp_path / "conversations" / "telepathy-test.jsonl").open()]
    for record, task in zip(records, TelepathyEnv.load_tasks("test")[:32], strict=True):
        assert record["messages"][-1]["content"] == f"No, it is not {task.hidden['title']}."


def test_a_failing_agent_request_ends_only_its_episode(server: FakeServer, tmp_path: Path) -> None:
    tasks = ClarifyEnv.load_tasks("test")[:6]
    correct = clarify_agent(True)
    server.responder = lambda r: None if r["messages"][0] == tasks[2].messages[0] else correct(r)
    agent = EndpointAgent(LLMClient(server.config(timeout_s=10, max_retries=1)), Decoding(), concurrency=8)
    settings = EvalSettings(envs=["clarify"], limit=6)
    payload = evaluate(agent, settings, prepare(settings), tmp_path, {"agent": "scripted"}, progress=False)
    (result,) = payload["results"]
    assert (result["failed_episodes"], result["metrics"]["success_rate"]) == (1, 5 / 6)
    failed = [json.loads(line) for line in (tmp_path / result["conversations"]).open()][2]
    assert failed["failed"] and failed["failure"].startswith("agent unavailable: ")
    assert "failed after 2 attempt(s): HTTP 500; HTTP 500" in failed["failure"]
    assert (failed["turns"], failed["messages"]) == (0, tasks[2].messages)


def test_a_failing_simulator_marks_the_episode() -> None:
    class Down(ClarifyEnv):
        def step(self, action: str):  # type: ignore[no-untyped-def]
            return failed_step("the user model is down")

    episode = Episode(Down(), ClarifyEnv.load_tasks("test")[0])
    episode.reset(episode.task)
    episode.step("Which one?")
    assert (episode.failure, episode.active, episode.score) == ("the user model is down", False, 0.0)
    assert episode.messages[-1] == {
        "role": "user",
        "content": "[simulator unavailable] the user model is down",
    }
