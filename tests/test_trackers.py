"""Experiment trackers: real TensorBoard event files, fake wandb/trackio modules, name resolution."""

from __future__ import annotations

import dataclasses
import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from infopo.training.trackers import (
    TensorBoardTracker,
    TrackerUnavailable,
    TrackioTracker,
    WandbTracker,
    open_trackers,
    stable_run_id,
)

CONFIG = {"lr": 1e-5, "group_size": 4}


def fake_module(name: str, **attrs: Any) -> types.ModuleType:
    """A module with a spec (so find_spec finds it) and the given attributes."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for attr, value in attrs.items():
        setattr(module, attr, value)
    return module


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []

    class Run:
        def log(self, metrics: dict[str, float], step: int) -> None:
            calls.append(("log", (dict(metrics), step)))

        def finish(self) -> None:
            calls.append(("finish", None))

    def init(**kwargs: Any) -> Run:
        calls.append(("init", kwargs))
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", fake_module("wandb", init=init))
    return calls


@pytest.fixture
def fake_trackio(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []

    def init(**kwargs: Any) -> None:
        calls.append(("init", kwargs))

    def log(metrics: dict[str, float], step: int | None = None) -> None:
        calls.append(("log", (dict(metrics), step)))

    def finish() -> None:
        calls.append(("finish", None))

    monkeypatch.setitem(sys.modules, "trackio", fake_module("trackio", init=init, log=log, finish=finish))
    return calls


def test_tensorboard_writes_readable_scalars(tmp_path: Path) -> None:
    [tracker] = open_trackers(["tensorboard"], tmp_path, "run", CONFIG)
    tracker.log(1, {"loss": 0.5, "reward": 2.0})
    tracker.log(3, {"loss": 0.25})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()  # readable while the writer is still open
    tracker.close()
    assert sorted(acc.Tags()["scalars"]) == ["loss", "reward"]
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.5), (3, 0.25)]
    assert [(e.step, e.value) for e in acc.Scalars("reward")] == [(1, 2.0)]


def test_tensorboard_flushes_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [tracker] = open_trackers(["tensorboard"], tmp_path, "run", CONFIG)
    assert isinstance(tracker, TensorBoardTracker)
    flushes: list[int] = []
    flush = tracker.writer.flush
    monkeypatch.setattr(tracker.writer, "flush", lambda: (flushes.append(1), flush()))
    tracker.log(1, {"loss": 0.5})
    tracker.log(2, {"loss": 0.5, "kl": 0.0})
    assert len(flushes) == 2
    tracker.close()


def test_wandb_init_log_finish(
    tmp_path: Path, fake_wandb: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "proj")
    [tracker] = open_trackers(["wandb"], tmp_path, "run-a", CONFIG)
    assert isinstance(tracker, WandbTracker)
    tracker.log(2, {"loss": 0.5})
    tracker.log(4, {"loss": 0.25, "kl": 0.1})
    tracker.close()
    assert fake_wandb == [
        (
            "init",
            {
                "project": "proj",
                "name": "run-a",
                "config": CONFIG,
                "dir": str(tmp_path),
                "resume": "allow",
                "id": stable_run_id(tmp_path, "run-a"),
            },
        ),
        ("log", ({"loss": 0.5}, 2)),
        ("log", ({"loss": 0.25, "kl": 0.1}, 4)),
        ("finish", None),
    ]


def test_wandb_project_defaults_to_infopo(
    tmp_path: Path, fake_wandb: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    open_trackers(["wandb"], tmp_path, "run", CONFIG)
    assert fake_wandb[0][1]["project"] == "infopo"


def test_stable_run_id_depends_on_dir_and_name_only(tmp_path: Path) -> None:
    run_id = stable_run_id(tmp_path, "run")
    assert run_id == stable_run_id(tmp_path / "x" / "..", "run")
    assert len(run_id) == 16 and all(c in "0123456789abcdef" for c in run_id)
    assert run_id != stable_run_id(tmp_path, "other")
    assert run_id != stable_run_id(tmp_path / "sub", "run")


def test_trackio_init_log_finish(
    tmp_path: Path, fake_trackio: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACKIO_PROJECT", raising=False)
    [tracker] = open_trackers(["trackio"], tmp_path, "run-b", CONFIG)
    assert isinstance(tracker, TrackioTracker)
    tracker.log(0, {"loss": 1.5})
    tracker.log(5, {"loss": 0.75})
    tracker.close()
    assert fake_trackio == [
        ("init", {"project": "infopo", "name": "run-b", "config": CONFIG, "resume": "allow"}),
        ("log", ({"loss": 1.5}, 0)),
        ("log", ({"loss": 0.75}, 5)),
        ("finish", None),
    ]


def test_trackio_project_from_env(
    tmp_path: Path, fake_trackio: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKIO_PROJECT", "mine")
    open_trackers(["trackio"], tmp_path, "run", CONFIG)
    assert fake_trackio[0][1]["project"] == "mine"


@pytest.mark.parametrize("name", ["wandb", "trackio", "tensorboard"])
def test_named_but_missing_raises_with_pip_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(TrackerUnavailable, match=f"pip install {name}$"):
        open_trackers(["tensorboard", name], tmp_path, "run", CONFIG)
    assert not (tmp_path / "tensorboard").exists()


def test_all_opens_only_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "trackio", None)
    trackers = open_trackers(["all"], tmp_path, "run", CONFIG)
    assert [type(t) for t in trackers] == [TensorBoardTracker]
    trackers[0].close()


def test_all_includes_wandb_when_installed(
    tmp_path: Path, fake_wandb: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "trackio", None)
    trackers = open_trackers(["all", "wandb"], tmp_path, "run", CONFIG)
    assert [type(t) for t in trackers] == [TensorBoardTracker, WandbTracker]
    for tracker in trackers:
        tracker.close()
    assert [kind for kind, _ in fake_wandb] == ["init", "finish"]


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid names: tensorboard, wandb, trackio, all, none"):
        open_trackers(["tensorbord"], tmp_path, "run", CONFIG)


@pytest.mark.parametrize("report_to", [[], ["none"]])
def test_none_opens_nothing(tmp_path: Path, report_to: list[str]) -> None:
    assert open_trackers(report_to, tmp_path, "run", CONFIG) == []
    assert list(tmp_path.iterdir()) == []


def test_failed_open_closes_already_opened(
    tmp_path: Path, fake_wandb: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    close = TensorBoardTracker.close
    monkeypatch.setattr(TensorBoardTracker, "close", lambda self: (closed.append(True), close(self)))

    def broken_init(**kwargs: Any) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(sys.modules["wandb"], "init", broken_init)
    with pytest.raises(ConnectionError):
        open_trackers(["tensorboard", "wandb"], tmp_path, "run", CONFIG)
    assert closed == [True]


def test_a_training_run_reports_every_step_and_resumes_the_same_run(
    tmp_path: Path, fake_wandb: list[tuple[str, Any]]
) -> None:
    from toy import toy_config, toy_trainer

    config = toy_config(output_dir=str(tmp_path / "toy"), steps=2, report_to=["wandb"], run_name="colours")
    toy_trainer(config).train()
    toy_trainer(dataclasses.replace(config, steps=3)).train(resume=True)
    inits = [args for kind, args in fake_wandb if kind == "init"]
    assert [i["name"] for i in inits] == ["colours", "colours"] and inits[0]["id"] == inits[1]["id"]
    assert inits[0]["config"]["steps"] == 2 and inits[1]["config"]["steps"] == 3
    steps = [args[1] for kind, args in fake_wandb if kind == "log"]
    assert steps == [0, 1, 2]
    assert all("success_rate" in args[0] for kind, args in fake_wandb if kind == "log")
    assert [kind for kind, _ in fake_wandb].count("finish") == 2
    assert not (tmp_path / "toy" / "tensorboard").exists()


def test_a_missing_tracker_stops_the_run_before_its_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toy import toy_config, toy_trainer

    monkeypatch.setitem(sys.modules, "wandb", None)
    trainer = toy_trainer(toy_config(output_dir=str(tmp_path), steps=2, report_to=["wandb"]))
    with pytest.raises(TrackerUnavailable, match="pip install wandb"):
        trainer.train()
    assert trainer.step == 0 and not (tmp_path / "metrics.jsonl").exists()


def test_a_failed_step_still_finishes_the_trackers_run(
    tmp_path: Path, fake_wandb: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from toy import toy_config, toy_trainer

    trainer = toy_trainer(toy_config(output_dir=str(tmp_path), steps=2, report_to=["wandb"]))

    def broken_step() -> dict[str, float]:
        raise RuntimeError("simulator died")

    monkeypatch.setattr(trainer, "train_step", broken_step)
    with pytest.raises(RuntimeError, match="simulator died"):
        trainer.train()
    assert [kind for kind, _ in fake_wandb] == ["init", "finish"]
