"""JobConfig: the whole run as typed dataclasses, composed by hydra from configs/.

The dataclasses are the schema and their defaults are the CPU default (`configs/tiny.yaml`
composes to exactly `JobConfig()`); YAML files document every key and override values. Each
group of configs/ (model, data, world, rollout, learner, objective, rewrite, train, eval,
resources, online) maps onto one dataclass under the same key, so a key is spelled the same in
YAML, on the command line (`learner.lr=1e-4`), in TensorBoard tags and in parquet columns. The
groups' own dataclasses live beside the code that reads them; this module only assembles them.
"""

import dataclasses
import difflib
import json
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtg_ray.checks import ConfigError, at_least, one_of, require
from mtg_ray.evaluate.config import EvalConfig
from mtg_ray.gpu_plan import GPU_MODES, gpu_plan
from mtg_ray.learner import LearnerConfig, TrainConfig
from mtg_ray.objectives import METHODS, ObjectiveConfig
from mtg_ray.online.config import NEAR_ZERO_LR, OnlineConfig
from mtg_ray.paths import REPO_ROOT
from mtg_ray.rewriting import RewriteConfig
from mtg_ray.rewriting.prompts import TEMPLATES
from mtg_ray.rollout import RolloutConfig, SamplingConfig
from mtg_ray.tinyworld import WorldConfig

CONFIG_DIR = REPO_ROOT / "configs"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # a model.path like Qwen/Qwen2.5-Math-1.5B
# The CPU default compares the paper's four rows and our true-ratio extension.
DEFAULT_METHODS = ("sft", "dft", "dr_sft", "dr_dft", "dr_is")


@dataclass(frozen=True)
class ModelConfig:
    """path: HF folder or hub id of the policy, which both groups start from; "" = the tiny
    world's base model. template: prompt template (mtg_ray.rewriting.prompts): qwen-boxed |
    plain."""

    path: str = ""
    template: str = "plain"

    def __post_init__(self) -> None:
        one_of("model.template", self.template, sorted(TEMPLATES))


@dataclass(frozen=True)
class TeacherModelConfig:
    """path: HF folder of the teacher ("" = the tiny world's teacher, built with it).
    template: the prompt format the teacher expects (mtg_ray.rewriting.prompts)."""

    path: str = ""
    template: str = "plain"

    def __post_init__(self) -> None:
        one_of("teacher.model.template", self.template, sorted(TEMPLATES))


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher that re-solves what the policy cannot (`rewrite.rewriter` teacher or
    distill): an engine group of its own on Ray beside the rollout group, never weight-synced.
    num_engines, device, tensor_parallel_size, cpus_per_engine, gpu_memory_utilization, dtype,
    max_model_len: its engines, as the rollout group's keys of those names (each engine of
    tensor_parallel_size GPUs, one bundle per GPU); its other engine settings are the rollout
    group's. n, temperature, top_p, max_tokens: each teacher stage's samples per problem."""

    model: TeacherModelConfig = field(default_factory=TeacherModelConfig)
    num_engines: int = 1
    device: str = "cpu"
    tensor_parallel_size: int = 1
    cpus_per_engine: int = 1
    gpu_memory_utilization: float = 0.5
    dtype: str = "float32"
    max_model_len: int = 768
    n: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 320

    def __post_init__(self) -> None:
        at_least("teacher.num_engines", self.num_engines, 1)
        at_least("teacher.tensor_parallel_size", self.tensor_parallel_size, 1)
        at_least("teacher.n", self.n, 1)
        at_least("teacher.temperature", self.temperature, 0)
        require(0 < self.top_p <= 1, "teacher.top_p", self.top_p, "must be in (0, 1]")
        at_least("teacher.max_tokens", self.max_tokens, 1)

    def engines(self, rollout: RolloutConfig) -> RolloutConfig:
        """The teacher group's engine settings: `rollout`'s, with the teacher's own keys."""
        return dataclasses.replace(
            rollout, num_engines=self.num_engines, device=self.device,
            tensor_parallel_size=self.tensor_parallel_size, pipeline_parallel_size=1,
            cpus_per_engine=self.cpus_per_engine,
            gpu_memory_utilization=self.gpu_memory_utilization, dtype=self.dtype,
            max_model_len=self.max_model_len, node_resource="",
            weight_backend="gloo",  # never synced: no backend's placement rule applies
        )  # fmt: skip

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
        )


@dataclass(frozen=True)
class DataConfig:
    """train: "tinyworld" or a verl-style SFT parquet. test: benchmark names
    (mtg_ray.data.BENCHMARKS), "tinyworld", or jsonl paths. max_train_problems / max_test_problems:
    use the first N (0 = all)."""

    train: str = "tinyworld"
    test: tuple[str, ...] = ("tinyworld",)
    max_train_problems: int = 0
    max_test_problems: int = 0

    def __post_init__(self) -> None:
        require(bool(self.test), "data.test", list(self.test), "needs at least one test set")
        at_least("data.max_train_problems", self.max_train_problems, 0)
        at_least("data.max_test_problems", self.max_test_problems, 0)


@dataclass(frozen=True)
class ResourcesConfig:
    """address: Ray cluster to join ("" = start a local one; "auto" inside `ray job submit`).
    num_cpus: CPUs of a local Ray (0 = all). host: the node address of a local Ray
    (where the learner's store listens; Ray's own servers listen on every interface).
    private_network: a local run started by scripts/run.py or scripts/demo.py re-executes
    itself in a private network namespace whose only interface is loopback (`mtg_ray.netns`),
    so nothing it starts can be reached from another machine; ignored when joining a cluster.
    gpu_mode: separate (engines and learner ranks on GPUs of their own) | colocate (they share
    GPUs; the engines sleep while the learner trains): `mtg_ray.gpu_plan`. autoscaler: the
    cluster may still add nodes, so a job that does not fit its GPUs now waits for them
    instead of failing at start.
    """

    address: str = ""
    num_cpus: int = 8
    host: str = "127.0.0.1"
    private_network: bool = True
    gpu_mode: str = "separate"
    autoscaler: bool = False

    def __post_init__(self) -> None:
        at_least("resources.num_cpus", self.num_cpus, 0)
        one_of("resources.gpu_mode", self.gpu_mode, GPU_MODES)


@dataclass(frozen=True)
class JobConfig:
    """A run: what to train, on what, with which resources, written under output_dir."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
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

    def rewrite_of(self, method: str) -> RewriteConfig:
        """The rewrite `method`'s data comes from: `rewrite`, with the method's own rewriter if
        it names one (`Method.rewriter`)."""
        rewriter = METHODS[method].rewriter
        if rewriter is None or rewriter == self.rewrite.rewriter:
            return self.rewrite
        after = self.rewrite.teacher_after_guided and rewriter == "teacher"
        return dataclasses.replace(self.rewrite, rewriter=rewriter, teacher_after_guided=after)

    def uses_teacher(self) -> bool:
        """Whether a job of this config may start the teacher: a method (or the online one,
        or the config's own rewrite) rewrites with it."""
        names = (*self.methods, self.online.method)
        return self.rewrite.uses_teacher or any(
            self.rewrite_of(m).uses_teacher for m in names if METHODS[m].dataset == "rewritten"
        )

    def online_lr(self) -> float:
        """The lr `online.method` trains at online: as offline, times NEAR_ZERO_LR for the
        near_zero_lr control."""
        lr = self.lr_of(self.online.method)
        return lr * NEAR_ZERO_LR if self.online.control == "near_zero_lr" else lr

    def flat(self) -> dict[str, Any]:
        """Every option as `section.key: value`, the value as JSON has it (a tuple as a list)."""
        flat: dict[str, Any] = {}

        def walk(value: Any, key: str) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, f"{key}.{k}" if key else str(k))
            else:
                flat[key] = value

        walk(dataclasses.asdict(self), "")
        return json.loads(json.dumps(flat))

    def __post_init__(self) -> None:
        try:
            gpu_plan(self.rollout, self.learner, self.resources.gpu_mode)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        require(
            not (self.resources.gpu_mode == "colocate" and self.online.overlap),
            "online.overlap", self.online.overlap,
            "must be false with resources.gpu_mode=colocate: the engines sleep while the "
            "learner trains, so no batch can be sampled meanwhile",
        )  # fmt: skip
        for key, value in [("learner.node_resource", self.learner.node_resource),
                           ("rollout.node_resource", self.rollout.node_resource)]:  # fmt: skip
            require(
                not (self.resources.gpu_mode == "colocate" and value), key, value,
                "must be empty with resources.gpu_mode=colocate (both groups share one "
                "placement group of GPU bundles)",
            )  # fmt: skip
        unknown = [m for m in self.methods if m not in METHODS]
        require(
            bool(self.methods) and not unknown and len(set(self.methods)) == len(self.methods),
            "methods", list(self.methods), f"a non-empty list of distinct names of {list(METHODS)}",
        )  # fmt: skip


def _typed(value: Any, hint: Any, key: str) -> Any:
    """`value` as the field type `hint` wants (lists become tuples, ints floats), or a
    ConfigError naming the key."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        for arg in args:
            try:
                return _typed(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}={value!r}: expected {hint}")
    if hint is type(None):
        require(value is None, key, value, "expected null")
        return value
    if hint is bool:
        require(isinstance(value, bool), key, value, "expected true or false")
        return value
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, value,
                "expected an integer")  # fmt: skip
        return value
    if hint is float:
        require(isinstance(value, int | float) and not isinstance(value, bool), key, value,
                "expected a number")  # fmt: skip
        return float(value)
    if hint is str:
        require(isinstance(value, str), key, value, "expected a string")
        return value
    if origin is tuple:
        require(isinstance(value, list | tuple), key, value, "expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        require(len(value) == len(args), key, value, f"expected a list of {len(args)}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_typed(v, a, f"{key}[{i}]") for i, (v, a) in pairs)
    if origin is dict:
        require(isinstance(value, Mapping), key, value, "expected a mapping")
        return {_typed(k, args[0], key): _typed(v, args[1], f"{key}.{k}") for k, v in value.items()}
    return value


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from nested dicts: an unknown key or a value of the wrong type
    fails naming its full key (one line), and each dataclass checks its own ranges."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in sorted(set(data) - names):
        close = difflib.get_close_matches(key, names, n=1)
        hint = (
            f"; did you mean {where}{close[0]}?"
            if close
            else f"; {where or 'the top level'} has {sorted(names)}"
        )
        raise ConfigError(f"unknown config key {where}{key}{hint}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            require(isinstance(value, Mapping), f"{where}{name}", value, "expected a mapping")
            value = from_dict(hint, value, f"{where}{name}.")
        else:
            value = _typed(value, hint, f"{where}{name}")
        kwargs[name] = value
    return cls(**kwargs)


def to_job_config(cfg: DictConfig | Mapping[str, Any]) -> JobConfig:
    """A composed hydra config as a validated JobConfig."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    return from_dict(JobConfig, data)


def _is_mapping_field(key: str) -> bool:
    """Whether the dotted `key` names a mapping field of the schema (`train.method_lr`), not a
    section (`train`, which a mapping override merges into, as Hydra does)."""
    hint: Any = JobConfig
    for part in key.split("."):
        if not dataclasses.is_dataclass(hint):
            return False
        hint = typing.get_type_hints(hint).get(part)
    return typing.get_origin(hint) is dict


def _suggest(key: str) -> str:
    """ "did you mean <closest key>?" for a mistyped dotted key, else the keys at its level."""
    cls: Any = JobConfig
    *parents, last = key.split(".")
    for part in parents:
        hint = typing.get_type_hints(cls).get(part)
        if typing.get_origin(hint) is dict:  # a mapping's entry the preset does not list
            return f"add it with +{key}=..., or give the whole mapping: {'.'.join(parents)}={{...}}"
        if not dataclasses.is_dataclass(hint):
            return "see configs/ for the keys"
        cls = hint
    names = [f.name for f in dataclasses.fields(cls)]
    if last in names:
        return f"this preset does not set it: add it with +{key}=..."
    close = difflib.get_close_matches(last, names, n=1)
    prefix = ".".join(parents) + "." if parents else ""
    return f"did you mean {prefix}{close[0]}?" if close else f"known here: {names}"


def uses_teacher(cfg: JobConfig, method: str) -> bool:
    """Whether `method`'s data is rewritten with the teacher under `cfg`."""
    return METHODS[method].dataset == "rewritten" and cfg.rewrite_of(method).uses_teacher


def check_paths(cfg: JobConfig) -> JobConfig:
    """The file-system half of validation, run before any work: inputs that must exist do,
    and a relative `output_dir` stays inside the working directory (a path that climbs out with
    `..` must be given as an absolute path, so nothing writes elsewhere by accident)."""
    from mtg_ray.data import BENCHMARKS

    def exists(key: str, value: str) -> None:
        require(Path(value).exists(), key, value, "no such file or folder")

    if cfg.data.train != "tinyworld":
        exists("data.train", cfg.data.train)
    for i, name in enumerate(cfg.data.test):
        if name != "tinyworld" and name not in BENCHMARKS:
            require(
                Path(name).is_file(), f"data.test[{i}]", name,
                f"a benchmark name of {list(BENCHMARKS)}, tinyworld, or an existing jsonl file",
            )  # fmt: skip
    if cfg.train.dataset not in ("rewritten", "expert"):
        exists("train.dataset", cfg.train.dataset)
    if cfg.model.path and not HUB_ID.fullmatch(cfg.model.path):
        exists("model.path", cfg.model.path)
    teacher = cfg.teacher.model.path
    if cfg.uses_teacher() and teacher and not HUB_ID.fullmatch(teacher):
        exists("teacher.model.path", teacher)
        require(
            (Path(teacher) / "config.json").is_file(), "teacher.model.path", teacher,
            "is not an HF model folder (no config.json)",
        )  # fmt: skip
    for key in ("output_dir", "cache_dir"):
        value = getattr(cfg, key)
        require(
            os.path.isabs(value) or not os.path.normpath(value or ".").startswith(".."),
            key, value, "a relative path must stay inside the working directory; give an "
            "absolute path to write elsewhere",
        )  # fmt: skip
    return cfg


# The jobs that train at `lr_of`: the main job every method of `methods`, the online jobs
# `online.method` (compare_online also offline). `train` trains at `learner.lr`, `select_lr` at
# each value of `train.lr_grid`; the other jobs train nothing.
LR_OF_JOBS = {"main", "online", "compare_online"}


def trained_lrs(
    cfg: JobConfig, job: str, methods: Sequence[str] = ()
) -> dict[str, tuple[float, str]]:
    """Each method `job` trains -> (its peak lr, the key that sets it). `methods`: more methods
    the job trains at `lr_of` (a study's online methods). A study selecting its lrs is
    `select_lr`; one given `--no-select-lr` is `main`."""
    if job == "train":
        return {f"train-{cfg.train.objective}": (cfg.learner.lr, "learner.lr")}
    if job == "select_lr":
        return {m: (lr, "train.lr_grid") for m in cfg.methods for lr in cfg.train.lr_grid}
    if job not in LR_OF_JOBS:
        return {}

    def key(method: str) -> str:
        return "train.method_lr" if method in cfg.train.method_lr else "learner.lr"

    named = {"main": cfg.methods, "compare_online": (cfg.online.method,)}.get(job, ())
    lrs = {m: (cfg.lr_of(m), key(m)) for m in dict.fromkeys([*named, *methods])}
    if job in ("online", "compare_online"):
        lrs[f"online {cfg.online.method}"] = (cfg.online_lr(), key(cfg.online.method))
    return lrs


def override_keys(overrides: Sequence[str]) -> set[str]:
    """The keys a list of hydra overrides sets (`+key=v`, `++key=v` and `~key` included)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def check_lr_override(lrs: Mapping[str, tuple[float, str]], overrides: Sequence[str]) -> None:
    """Fail, naming the key that decides instead, when `learner.lr` is overridden but sets the
    lr of no run the job trains (`lrs`: `trained_lrs`): an override that changes nothing
    trained is a trap, not a setting."""
    if "learner.lr" not in override_keys(overrides) or not lrs:
        return
    keys = sorted({key for _, key in lrs.values()})
    if "learner.lr" in keys:
        return
    hint = (
        "override train.method_lr.<method>=<lr>, or train.method_lr={} to train every method "
        "at learner.lr"
        if keys == ["train.method_lr"]
        else "override train.lr_grid, or train the chosen lrs with train.method_lr"
    )
    raise ConfigError(
        f"learner.lr is read by no run of this job: {' and '.join(keys)} sets the lr of every "
        f"method it trains ({', '.join(lrs)}); {hint}"
    )


def compose(config_name: str = "tiny", overrides: Sequence[str] = ()) -> JobConfig:
    """Compose configs/<config_name>.yaml with command-line style overrides and check types,
    ranges and names (`check_paths` checks the file system): every error is one line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        # Hydra merges a mapping given on the command line into the preset's (and refuses a
        # key the preset lacks); for a mapping field the user means the mapping they wrote
        # (`train.method_lr={}` lists no method, `train.method_lr={distill: 1e-3}` that one),
        # so it replaces; into a section (`train={epochs: 3}`) it merges, as Hydra does.
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        mappings = [o for o in parsed if isinstance(o.value(), dict) and not o.is_delete()
                    and _is_mapping_field(o.key_or_group)]  # fmt: skip
        rest = [text for o, text in zip(parsed, overrides, strict=True) if o not in mappings]
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = hydra_compose(config_name=config_name, overrides=rest)
        for override in mappings:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
    except (HydraException, OmegaConfBaseException) as e:
        text = f"{e}\n{e.__cause__ or ''}"
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        key = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("full_key:")), "")
        if key and "not in struct" in text:
            raise ConfigError(f"unknown config key {key}; {_suggest(key)}") from None
        raise ConfigError(" ".join(lines[:2])) from None
    return to_job_config(cfg)
