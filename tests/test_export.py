"""`infopo export`: the exported directory loads with transformers and gives the trained log-probs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from infopo.cli import main
from infopo.training.runs import policy_from_run


def _train(model_dir: Path, out: Path, lora: bool) -> None:
    argv = [
        "train",
        "--config",
        "tiny-smoke",
        f"model={model_dir}",
        f"output_dir={out}",
        f"lora={str(lora).lower()}",
    ]
    assert main([*argv, "steps=2", "save_every=1", "report_to=none", "lr=0.05", "max_new_tokens=6"]) == 0


def _logprobs(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)


@pytest.mark.parametrize(("lora", "merge"), [(True, False), (True, True), (False, False)])
def test_export_loads_and_matches_the_policy(
    model_dir: Path, tmp_path: Path, lora: bool, merge: bool
) -> None:
    run = tmp_path / "run"
    _train(model_dir, run, lora)
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out), *(["--merge"] if merge else [])]) == 0
    assert (out / ("adapter_config.json" if lora and not merge else "config.json")).is_file()
    assert not list(out.glob("*.bin")) and list(out.glob("*.safetensors"))
    if lora and not merge:
        assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
            model_dir.resolve()
        )
    policy, _, _ = policy_from_run(run)
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([AutoTokenizer.from_pretrained(out).encode("Which one do you want? I want red.")])
    trained = _logprobs(policy, ids)
    assert torch.allclose(_logprobs(exported, ids), trained, atol=1e-5)
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    assert float((_logprobs(base, ids) - trained).abs().max()) > 1e-3  # training moved the policy


def test_export_of_an_earlier_step_and_bad_runs(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    _train(model_dir, run, lora=True)
    first, last = policy_from_run(run, step=1)[0], policy_from_run(run)[0]
    ids = torch.tensor([[5, 6, 7, 8]])
    assert not torch.allclose(_logprobs(first, ids), _logprobs(last, ids))
    assert main(["export", str(run), "--out", str(tmp_path / "x"), "--step", "7"]) == 2
    assert "no checkpoint of step 7 (saved: step-1, step-2)" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "is not a training run" in capsys.readouterr().err
