"""Shared fixtures: the test helpers in fixtures.py and the embedded SmolLM2 tokenizer/model."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_llm_server import FakeServer


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The prepared embedded model (make test prepares it; the first call here converts it otherwise)."""
    from infopo.models.embedded import prepare_embedded_model

    return prepare_embedded_model()


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama of fixtures.py and its tokenizer, saved as a Hugging Face model directory."""
    from fixtures import tiny_model, tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = tiny_tokenizer()
    tiny_model(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A loopback chat-completions server: set `.replies` (texts) and `.script` (failure modes)."""
    fake = FakeServer()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()
