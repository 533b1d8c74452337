"""configs/ documents one schema: the dataclasses of mtg_ray.config.

Every YAML maps onto its dataclass; the CPU default preset is exactly the dataclass defaults;
every field is documented (a comment above its key) in its group's base file or in the preset
that owns it; keys the code derives are not keys at all.
"""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from mtg_ray.config import JobConfig, compose, to_job_config
from mtg_ray.objectives import PAPER_METHODS
from mtg_ray.paths import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
FILES = sorted(CONFIGS.rglob("*.yaml"))
PRESETS = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
GROUP_FILES = sorted((p.parent.name, p.stem) for p in CONFIGS.glob("*/*.yaml"))


def base_files() -> dict[str, str]:
    """group -> the file that documents all its keys: the one configs/tiny.yaml picks."""
    defaults = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())["defaults"]
    return {k: v for entry in defaults if isinstance(entry, dict) for k, v in entry.items()}


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_there_are_configs() -> None:
    assert FILES and base_files()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_key_has_a_comment_above_it(path: Path) -> None:
    """Top-level keys: a comment right above. Nested keys: a comment above, or a run of keys
    under one comment (`temperature`/`top_p` share one)."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if not line or stripped.startswith(("#", "-")) or ":" not in line:
            continue
        above = lines[i - 1] if i else ""
        nested = line.startswith(" ")
        same_level_key = (
            nested
            and above.startswith(line[: len(line) - len(stripped)])
            and (":" in above and not above.rstrip().endswith(":"))
        )
        assert above.lstrip().startswith("#") or same_level_key, f"{path}:{i + 1}: {line}"


def test_every_field_is_documented_in_its_base_file_or_preset() -> None:
    tiny = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    online = yaml.safe_load((CONFIGS / "online.yaml").read_text())
    defaults = JobConfig()
    for f in dataclasses.fields(JobConfig):
        value = getattr(defaults, f.name)
        if not dataclasses.is_dataclass(value):
            assert f.name in tiny, f"{f.name} is not documented in configs/tiny.yaml"
            continue
        group = CONFIGS / f.name
        if group.is_dir():
            where = group / f"{base_files()[f.name]}.yaml"
            documented = yaml.safe_load(where.read_text())
        else:
            where = "configs/tiny.yaml or configs/online.yaml"
            documented = tiny.get(f.name) or online.get(f.name)
        assert set(documented) == field_names(type(value)), (f.name, where)
        for name, sub in documented.items():  # nested groups, e.g. world.model
            if dataclasses.is_dataclass(getattr(value, name)):
                assert set(sub) == field_names(type(getattr(value, name))), (f.name, name)


def test_the_cpu_default_is_the_dataclass_defaults() -> None:
    """One set of defaults: configs/tiny.yaml (and online.yaml, which adds online mode's keys)
    compose to exactly `JobConfig()`."""
    assert compose("tiny") == JobConfig()
    assert compose("online") == JobConfig()


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_into_a_job_config(preset: str) -> None:
    cfg = compose(preset)
    assert isinstance(cfg, JobConfig)
    assert cfg.learner.train_batch_size % cfg.learner.micro_batch_size == 0


@pytest.mark.parametrize(("group", "name"), GROUP_FILES, ids=lambda x: str(x))
def test_every_group_file_composes(group: str, name: str) -> None:
    cfg = compose("tiny", [f"{group}={name}"])
    assert isinstance(getattr(cfg, group), type(getattr(JobConfig(), group)))


def test_world_configs_are_the_tinyworld_recipes() -> None:
    """configs/world mirrors `WorldConfig()` and `small()` exactly: one recipe, one cache."""
    from mtg_ray.tinyworld import WorldConfig, small

    assert compose("tiny").world == WorldConfig()
    assert compose("tiny", ["world=small"]).world == small()


def test_paper_presets_share_one_base_and_differ_only_by_model() -> None:
    small, large = compose("paper_qwen2.5-math-1.5b"), compose("paper_qwen2.5-math-7b")
    assert small.model.path == "Qwen/Qwen2.5-Math-1.5B" and large.model.path.endswith("7B")
    assert dataclasses.replace(large, model=small.model, output_dir=small.output_dir) == small
    assert (small.learner.lr, small.learner.train_batch_size, small.learner.max_length) == (
        5e-5,
        256,
        2048,
    )
    assert small.learner.num_workers == 8 and small.learner.dtype == "bfloat16"
    assert (small.eval.n, small.eval.temperature, small.model.template) == (16, 1.0, "qwen-boxed")
    # the paper's rows, with the authors' weight decay and loss reduction
    assert small.methods == PAPER_METHODS
    assert (small.learner.weight_decay, small.learner.loss_reduction) == (0.01, "micro_batch_mean")


@pytest.mark.parametrize(
    "key", ["learner.model", "rollout.model", "learner.total_steps", "objective.name"]
)
def test_derived_values_are_not_keys(key: str) -> None:
    """The policy path (model.path), the schedule length (data and train.*) and each method's
    objective are derived: setting them fails by name instead of being overwritten later."""
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        compose("tiny", [f"+{key}=1"])


def test_unknown_keys_and_bad_values_fail_by_name() -> None:
    with pytest.raises(ValueError, match="learner.lrr"):
        to_job_config({"learner": {"lrr": 1.0}})
    with pytest.raises(ValueError, match="learner.zero_stage"):
        compose("tiny", ["learner.zero_stage=5"])
    with pytest.raises(ValueError, match="train.objective"):
        compose("tiny", ["train.objective=ppo"])
    with pytest.raises(ValueError, match="methods"):
        compose("tiny", ["methods=[sft,bogus]"])


def test_the_cpu_default_trains_at_the_studys_lr_selection() -> None:
    """train.method_lr's default is what `study` selected for the offline methods on the shipped
    world, nothing else (the selection may also hold online candidates' lrs, by run name)."""
    selection = json.loads((REPO_ROOT / "docs" / "lr_selection.json").read_text())
    methods = JobConfig().methods
    offline = {m: lr for m, lr in selection["selected"].items() if m in methods}
    assert set(offline) == set(methods)
    assert JobConfig().train.method_lr == offline
    assert compose("tiny").train.method_lr == offline
    assert list(JobConfig().train.lr_grid) == selection["lr_grid"]
    assert compose("paper_qwen2.5-math-1.5b").train.method_lr == {}  # the authors' single lr


def test_a_mapping_on_the_command_line_replaces_the_presets() -> None:
    """Hydra merges `key={...}` into the preset's mapping; a user means the mapping written."""
    assert compose("tiny", ["train.method_lr={}"]).train.method_lr == {}
    only = compose("tiny", ["train.method_lr={dr_dft: 3e-5}"]).train.method_lr
    assert only == {"dr_dft": 3e-5}
    one_key = compose("tiny", ["train.method_lr.dr_dft=3e-5"]).train.method_lr
    assert one_key["dr_dft"] == 3e-5 and len(one_key) == len(compose("tiny").train.method_lr)
