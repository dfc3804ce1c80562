"""Shared fixtures: the test helpers in fixtures.py and the embedded SmolLM2 tokenizer/model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The prepared embedded model (make test prepares it; the first call here converts it otherwise)."""
    from infopo.models.embedded import prepare_embedded_model

    return prepare_embedded_model()


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)
