"""Experiment trackers chosen by name, like HF's `report_to`: TensorBoard, Weights & Biases and trackio."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

TRACKER_NAMES = ("tensorboard", "wandb", "trackio")


class TrackerUnavailable(RuntimeError):
    """A tracker was asked for by name but its package is not installed."""


class Tracker(ABC):
    """One experiment tracker: receives the scalar metrics of each step, then is closed once."""

    name: ClassVar[str]
    package: ClassVar[str]

    @abstractmethod
    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record `metrics` at training step `step`."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the tracker."""


class TensorBoardTracker(Tracker):
    """Scalars to `output_dir/tensorboard`, flushed after every step."""

    name = "tensorboard"
    package = "tensorboard"

    def __init__(self, output_dir: Path, run_name: str, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(output_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A W&B run (project from $WANDB_PROJECT) whose id is stable, so a resumed training continues it."""

    name = "wandb"
    package = "wandb"

    def __init__(self, output_dir: Path, run_name: str, config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "infopo"),
            name=run_name,
            config=config,
            dir=str(output_dir),
            resume="allow",
            id=stable_run_id(output_dir, run_name),
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class TrackioTracker(Tracker):
    """A trackio run (project from $TRACKIO_PROJECT), resumed by name when it already exists."""

    name = "trackio"
    package = "trackio"

    def __init__(self, output_dir: Path, run_name: str, config: dict[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        trackio.init(
            project=os.environ.get("TRACKIO_PROJECT", "infopo"),
            name=run_name,
            config=config,
            resume="allow",
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.trackio.log(metrics, step=step)

    def close(self) -> None:
        self.trackio.finish()


_TRACKERS: dict[str, type[Tracker]] = {
    cls.name: cls for cls in (TensorBoardTracker, WandbTracker, TrackioTracker)
}


def stable_run_id(output_dir: Path, run_name: str) -> str:
    """16 hex digits determined by the resolved output directory and the run name."""
    key = f"{output_dir.resolve()}\n{run_name}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def is_available(name: str) -> bool:
    """Whether the package behind tracker `name` can be imported."""
    return importlib.util.find_spec(_TRACKERS[name].package) is not None


def open_trackers(
    report_to: list[str], output_dir: Path, run_name: str, config: dict[str, Any]
) -> list[Tracker]:
    """Open the trackers named in `report_to` ("none": nothing, "all": every installed one).

    Raises ValueError for an unknown name and TrackerUnavailable for a named tracker that is not installed.
    """
    valid = (*TRACKER_NAMES, "all", "none")
    unknown = [name for name in report_to if name not in valid]
    if unknown:
        raise ValueError(f"unknown tracker(s) {unknown}; valid names: {', '.join(valid)}")
    names: list[str] = []
    for name in report_to:
        if name == "all":
            names += [n for n in TRACKER_NAMES if is_available(n)]
        elif name != "none":
            if not is_available(name):
                raise TrackerUnavailable(
                    f"report_to names {name!r} but it is not installed: pip install {_TRACKERS[name].package}"
                )
            names.append(name)
    trackers: list[Tracker] = []
    try:
        for name in dict.fromkeys(names):
            trackers.append(_TRACKERS[name](output_dir, run_name, config))
    except BaseException:
        for tracker in trackers:
            tracker.close()
        raise
    return trackers
