"""Training configuration: presets, overrides, and errors that name the key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infopo.cli import main
from infopo.training.config import ConfigError, dump_config, load_config, preset_names


def test_presets_load_and_round_trip(tmp_path: Path) -> None:
    assert {"cpu-demo", "reference", "tiny-smoke"} <= set(preset_names())
    reference = load_config("reference")
    assert (reference.counterfactual_length, reference.lr, reference.group_size) == ("equal", 3e-7, 5)
    assert reference.advantage_options == {"beta0": 0.5, "tau": 0.5}
    path = tmp_path / "run.yaml"
    path.write_text(dump_config(reference))
    assert load_config(path) == reference


def test_overrides_are_parsed_as_yaml() -> None:
    config = load_config(
        "cpu-demo", ["lr=1e-3", "dual_clip=null", "advantage=grpo", "lora_target_modules=[q_proj]"]
    )
    assert (config.lr, config.dual_clip, config.advantage, config.lora_target_modules) == (
        1e-3,
        None,
        "grpo",
        ["q_proj"],
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lrr=1"], "unknown 'lrr'.*Did you mean 'lr'"),
        (["env=intension"], "env: unknown 'intension'.*Did you mean 'intention'"),
        (["advantage=grpoo"], "advantage: unknown 'grpoo'.*Did you mean 'grpo'"),
        (["advantage_options={tua: 1}"], "advantage_options for 'infopo': unknown 'tua'.*Did you mean 'tau'"),
        (["group_size=0"], "group_size must be >= 1, got 0"),
        (["lora=maybe"], "lora must be true or false"),
        (["lr=fast"], "lr must be a number"),
        (["counterfactual_span=all"], "counterfactual_span must be one of"),
        (["top_p=1.5"], r"top_p must be in \(0, 1\]"),
        (["steps"], "must look like key=value"),
        (["report_to=[tensorbord]"], "report_to: unknown 'tensorbord'.*Did you mean 'tensorboard'"),
        (["report_to=7"], "report_to must be a list"),
        (["env_options={simulater: llm}"], "env_options for 'clarify': unknown 'simulater'"),
        (["env=telepathy", "env_options={simulater: llm}"], "'simulater': set the config key simulator"),
        (["env=telepathy", "env_options={max_turns: 3}"], "'max_turns': set the config key max_turns"),
        (["env=telepathy", "env_options={matchr: x}"], "unknown 'matchr'.*Did you mean 'matcher'"),
    ],
)
def test_bad_configs_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("none", ["none"]), ("[none]", ["none"]), ("tensorboard,wandb", ["tensorboard", "wandb"]), ("[]", [])],
)
def test_list_values_take_the_hf_forms(value: str, expected: list[str]) -> None:
    assert load_config(None, [f"report_to={value}"]).report_to == expected


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- lr\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listed)


def test_cli_reports_config_errors_and_lists_envs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "lrr=1"]) == 2
    assert "Did you mean 'lr'" in capsys.readouterr().err
    assert main(["envs", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    paper = ["colbench", "function", "intention", "persuasion", "search", "sokoban", "tau", "tau2"]
    paper += ["telepathy", "travel", "turtle"]
    assert listed == sorted(["clarify", "slots", *paper])


@pytest.mark.parametrize(
    ("override", "module", "message"),
    [
        ("report_to=[wandb]", "wandb", "pip install wandb"),
        ("rollout_engine=vllm", "vllm", "pip install vllm"),
    ],
)
def test_cli_reports_settings_this_machine_cannot_run(
    override: str,
    module: str,
    message: str,
    smollm2_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    argv = ["train", "--config", "tiny-smoke", f"output_dir={tmp_path}", f"model={smollm2_path}", override]
    # (a later key=value wins: the last case replaces the model)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "metrics.jsonl").exists()
