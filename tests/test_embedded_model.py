"""`prepare_embedded_model`: the prepared tokenizer ends a sequence where the model config says."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers
from fixtures import tiny_model, tiny_tokenizer

from infopo.models import embedded


def test_prepare_keeps_the_model_configs_end_of_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What transformers 5.17 reads from the GGUF: <|im_start|> as end of sequence, no padding token.
    read = tiny_tokenizer()
    read.eos_token = "<|im_start|>"
    read.pad_token = None
    model = tiny_model(len(read))
    model.config.eos_token_id = read.convert_tokens_to_ids("<|im_end|>")
    load_tokenizer = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(embedded, "gguf_path", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: read)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)

    prepared = load_tokenizer(embedded.prepare_embedded_model(tmp_path / "prepared"))
    assert (prepared.eos_token, prepared.pad_token) == ("<|im_end|>", "<|im_end|>")
