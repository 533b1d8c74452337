"""JobConfig: the whole run as typed dataclasses, composed by hydra from configs/.

Each group of configs/ (model, data, world, rollout, learner, objective, rewrite, train, eval,
resources, online) maps onto one dataclass here, under the same key, so a key is spelled the
same in YAML, on the command line (`learner.lr=1e-4`), in TensorBoard tags and in parquet
columns.
"""

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtg_ray.learner import LearnerConfig
from mtg_ray.objectives import ObjectiveConfig
from mtg_ray.online.config import OnlineConfig
from mtg_ray.paths import REPO_ROOT
from mtg_ray.rollout import RolloutConfig
from mtg_ray.tinyworld import WorldConfig

CONFIG_DIR = REPO_ROOT / "configs"


@dataclass(frozen=True)
class ModelConfig:
    """path: HF folder or hub id of the policy; "" = the tiny world's base model.
    template: prompt template (mtg_ray.rewriting.prompts): qwen-boxed | plain."""

    path: str = ""
    template: str = "plain"


@dataclass(frozen=True)
class DataConfig:
    """train: "tinyworld" or a verl-style SFT parquet. test: benchmark names
    (mtg_ray.data.BENCHMARKS), "tinyworld", or jsonl paths. max_train_problems / max_test_problems:
    use the first N (0 = all)."""

    train: str = "tinyworld"
    test: tuple[str, ...] = ("tinyworld",)
    max_train_problems: int = 0
    max_test_problems: int = 0


@dataclass(frozen=True)
class RewriteConfig:
    """Three-stage rewriting. samples / guided_samples: K per problem in stages 1 and 2.
    keep: one | all | up_to (max_per_problem). shard_size: problems per output shard (the unit
    of resume). grading_tasks: parallel grading tasks."""

    samples: int = 8
    guided_samples: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    keep: str = "one"
    max_per_problem: int = 1
    shard_size: int = 256
    grading_tasks: int = 2
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """dataset: what the train job trains on: rewritten (this run's rewrite), expert (raw
    demonstrations), or a records parquet file or folder. epochs over it; max_steps caps them
    (0 = no cap). eval_every / save_every: optimizer steps between evaluations / checkpoints
    (0 = only at the end)."""

    dataset: str = "rewritten"
    epochs: int = 1
    max_steps: int = 0
    eval_every: int = 0
    save_every: int = 50


@dataclass(frozen=True)
class EvalConfig:
    """n samples per problem at temperature / top_p, up to max_tokens each; reports avg@n and
    pass@n per benchmark."""

    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024


@dataclass(frozen=True)
class ResourcesConfig:
    """address: Ray cluster to join ("" = start a local one; "auto" inside `ray job submit`).
    num_cpus: CPUs of a local Ray (0 = all). host: address local Ray binds to."""

    address: str = ""
    num_cpus: int = 0
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class JobConfig:
    """A run: what to train, on what, with which resources, written under output_dir."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    rewrite: RewriteConfig = field(default_factory=RewriteConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    output_dir: str = "runs/tiny"
    cache_dir: str = ""
    methods: tuple[str, ...] = ("sft", "dft", "dr_is", "dr_dft")

    def with_model(self, path: str | Path) -> "JobConfig":
        """The same job with the policy at `path` for both groups."""
        path = str(path)
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, path=path),
            rollout=dataclasses.replace(self.rollout, model=path),
            learner=dataclasses.replace(self.learner, model=path),
        )


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from nested dicts: unknown keys fail naming their full key, lists
    become tuples where the field is a tuple, and each dataclass validates itself."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        keys = ", ".join(f"{where}{k}" for k in unknown)
        raise ValueError(f"unknown config key(s): {keys}; {cls.__name__} has {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = from_dict(hint, value, f"{where}{name}.")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def to_job_config(cfg: DictConfig | Mapping[str, Any]) -> JobConfig:
    """A composed hydra config as a validated JobConfig."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    return from_dict(JobConfig, data)


def compose(config_name: str = "tiny", overrides: Sequence[str] = ()) -> JobConfig:
    """Compose configs/<config_name>.yaml with command-line style overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    return to_job_config(cfg)
