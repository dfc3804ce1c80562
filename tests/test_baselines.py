"""Every RL baseline of the paper is a preset, and each trains one step from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infopo.cli import main
from infopo.envs import ENVIRONMENTS
from infopo.training.config import load_config, preset_names

# method preset -> a metric only that estimator logs (None: nothing specific)
METHODS = {
    "grpo": None,
    "drgrpo": None,
    "userrl": None,
    "userrl-reward-to-go": None,
    "igpo": None,
    "ragen": "kept_group_fraction",
    "search-r1": None,
    "infopo": "gate_mean",
    "infopo-no-gate": "gate_mean",
    "infopo-no-rho": "rho",
    "infopo-intrinsic-only": "intrinsic_std",
    "infopo-placeholder-equal": "gate_mean",
    "infopo-placeholder-block": "gate_mean",
    "infopo-placeholder-silent": "gate_mean",
}


def test_every_method_has_a_preset() -> None:
    assert set(METHODS) <= set(preset_names())
    layered = load_config(["cpu-demo", "ragen"])
    assert (layered.advantage, layered.advantage_options, layered.env) == (
        "ragen",
        {"filter_ratio": 0.25},
        "clarify",
    )
    assert load_config(["cpu-demo", "infopo-no-gate"]).advantage_options["use_gate"] is False


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_trains_one_step_from_the_cli(
    method: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if method == "search-r1" and "search" not in ENVIRONMENTS:
        pytest.skip("search-r1 runs on the search environment, which is not registered")
    argv = ["train", "--config", "tiny-smoke", "--config", method, f"model={model_dir}"]
    argv += [f"output_dir={tmp_path}", "steps=1", "report_to=none", "group_size=3", "max_turns=3"]
    assert main(argv) == 0
    assert f"report: infopo report {tmp_path} --out {tmp_path / 'report'}" in capsys.readouterr().out
    (row,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "skipped" not in row and row["grad_norm"] >= 0
    if METHODS[method] is not None:
        assert METHODS[method] in row


def test_igpo_refuses_an_environment_without_ground_truth(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--config", "tiny-smoke", "--config", "igpo", "env=intention", f"model={model_dir}"]
    assert main([*argv, f"output_dir={tmp_path}", "report_to=none"]) == 2
    assert "advantage igpo scores each task's ground-truth answer, and environment 'intention'" in (
        capsys.readouterr().err
    )
