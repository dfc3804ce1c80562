"""LLM simulator mode: an OpenAI-compatible chat-completions client (stdlib only) and the role prompts.

`LLMClient.chat` retries connection errors, time-outs, 429 / 5xx answers and malformed replies with
exponential backoff, then raises `SimulatorUnavailable`; environments turn that into `failed_step(...)`.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from infopo.envs.base import StepResult

USER_SIMULATOR_PROMPT = """You are playing the part of a person who is talking with an AI assistant.
Stay in character for the whole conversation and never say that you are a simulator or an AI.

Your situation:
{scenario}

What only you know (the assistant cannot see this):
{hidden}

How to reply:
{rules}
- Answer only what the assistant's latest message asks; do not volunteer anything else.
- Keep each reply short: at most two sentences, plain text."""

JUDGE_PROMPT = """You are a careful and impartial judge of one step of a conversation.

{instructions}

Reference information:
{reference}

The assistant's message:
{candidate}

Reply with {answer_format} and nothing else."""


class SimulatorUnavailable(RuntimeError):
    """The simulator server could not give a usable answer after all retries."""


@dataclass
class LLMConfig:
    """Where the simulator model is served; `api_key` is left out of the repr."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    timeout_s: float = 30
    max_retries: int = 3
    backoff_s: float = 1.0
    temperature: float = 0.0
    max_tokens: int = 256

    @classmethod
    def from_env(cls, prefix: str = "INFOPO_SIM_", **overrides: object) -> LLMConfig:
        """Read {prefix}BASE_URL, {prefix}MODEL, {prefix}API_KEY (falling back to OPENAI_BASE_URL /
        OPENAI_API_KEY; defaults: the OpenAI endpoint and gpt-4o-mini, the paper's simulator)."""
        env = os.environ
        config = cls(
            base_url=env.get(f"{prefix}BASE_URL")
            or env.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1",
            model=env.get(f"{prefix}MODEL") or "gpt-4o-mini",
            api_key=env.get(f"{prefix}API_KEY") or env.get("OPENAI_API_KEY") or "",
        )
        for key, value in overrides.items():
            setattr(config, key, value)
        return config


class LLMClient:
    """Chat completions against `config.base_url`; one request plus up to `max_retries` retries."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"

    def _request(self, body: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
            payload = json.loads(response.read().decode("utf-8"))
        content = payload["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise ValueError("the reply has no text content")
        return content

    def chat(self, messages: list[dict[str, str]]) -> str:
        """The assistant text of one completion; raises SimulatorUnavailable after the retries."""
        cfg = self.config
        body = json.dumps(
            {
                "model": cfg.model,
                "messages": messages,
                "temperature": cfg.temperature,
                "max_tokens": cfg.max_tokens,
            }
        ).encode("utf-8")
        errors: list[str] = []
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                time.sleep(cfg.backoff_s * 2 ** (attempt - 1))
            try:
                return self._request(body)
            except urllib.error.HTTPError as err:
                errors.append(f"HTTP {err.code}")
                if err.code < 500 and err.code not in (408, 429):
                    break  # a client error: retrying will not help
            except (OSError, http.client.HTTPException) as err:  # connection errors, time-outs
                errors.append(f"{type(err).__name__}: {getattr(err, 'reason', err)}")
            except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as err:
                errors.append(f"malformed reply ({type(err).__name__}: {err})")
        raise SimulatorUnavailable(f"{self.url} failed after {len(errors)} attempt(s): {'; '.join(errors)}")


def failed_step(reason: str) -> StepResult:
    """A clearly marked failed episode: the simulator could not answer."""
    return StepResult(
        feedback=f"[simulator unavailable] {reason}",
        reward=0.0,
        done=True,
        info={"failed": True, "reason": reason},
    )


def simulator_client(simulator: str, llm: LLMConfig | None) -> LLMClient | None:
    """An environment's user-simulator client: None offline, an LLMClient in "llm" mode (config from
    `llm` or the environment variables); ValueError for any other mode."""
    if simulator not in ("offline", "llm"):
        raise ValueError(f"simulator must be 'offline' or 'llm', not {simulator!r}")
    return LLMClient(llm or LLMConfig.from_env()) if simulator == "llm" else None
