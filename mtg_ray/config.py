"""JobConfig: the whole run as typed dataclasses, composed by hydra from configs/.

The dataclasses are the schema and their defaults are the CPU default (`configs/tiny.yaml`
composes to exactly `JobConfig()`); YAML files document every key and override values. Each
group of configs/ (model, data, world, rollout, learner, objective, rewrite, train, eval,
resources, online) maps onto one dataclass under the same key, so a key is spelled the same in
YAML, on the command line (`learner.lr=1e-4`), in TensorBoard tags and in parquet columns. The
groups' own dataclasses live beside the code that reads them; this module only assembles them.
"""

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtg_ray.evaluate.config import EvalConfig
from mtg_ray.learner import LearnerConfig, TrainConfig
from mtg_ray.objectives import METHODS, ObjectiveConfig
from mtg_ray.online.config import OnlineConfig
from mtg_ray.paths import REPO_ROOT
from mtg_ray.rewriting import RewriteConfig
from mtg_ray.rollout import RolloutConfig
from mtg_ray.tinyworld import WorldConfig

CONFIG_DIR = REPO_ROOT / "configs"
# The CPU default compares the paper's four rows and our true-ratio extension.
DEFAULT_METHODS = ("sft", "dft", "dr_sft", "dr_dft", "dr_is")


@dataclass(frozen=True)
class ModelConfig:
    """path: HF folder or hub id of the policy, which both groups start from; "" = the tiny
    world's base model. template: prompt template (mtg_ray.rewriting.prompts): qwen-boxed |
    plain."""

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
class ResourcesConfig:
    """address: Ray cluster to join ("" = start a local one; "auto" inside `ray job submit`).
    num_cpus: CPUs of a local Ray (0 = all). host: address local Ray binds to."""

    address: str = ""
    num_cpus: int = 8
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
    methods: tuple[str, ...] = DEFAULT_METHODS

    def lr_of(self, method: str) -> float:
        """The peak lr `method` trains at: `train.method_lr[method]`, else `learner.lr`."""
        return float(self.train.method_lr.get(method, self.learner.lr))

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"methods must be a non-empty list of {list(METHODS)}, got {list(self.methods)}"
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
