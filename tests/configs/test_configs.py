"""Every YAML under configs/ maps onto its dataclass, and every key is documented."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mtg_ray.config import JobConfig, compose, to_job_config
from mtg_ray.objectives import ObjectiveConfig, get_objective
from mtg_ray.paths import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
FILES = sorted(CONFIGS.rglob("*.yaml"))


def test_there_are_configs() -> None:
    assert FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_key_has_a_comment_above_it(path: Path) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")) and ":" in line:
            assert i > 0 and lines[i - 1].lstrip().startswith("#"), f"{path}:{i + 1}: {line}"


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "objective").glob("*.yaml")), ids=lambda p: p.stem
)
def test_objective_configs_convert_to_the_dataclass(path: Path) -> None:
    merged = OmegaConf.merge(OmegaConf.structured(ObjectiveConfig), OmegaConf.load(path))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, ObjectiveConfig)
    assert cfg.name == path.stem
    get_objective(cfg.name)


PRESETS = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
GROUP_FILES = sorted(
    (p.parent.name, p.stem) for p in CONFIGS.glob("*/*.yaml") if p.parent.name != "objective"
)


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


def test_paper_presets_have_the_papers_hyperparameters() -> None:
    cfg = compose("paper_qwen2.5-math-1.5b")
    assert (cfg.learner.lr, cfg.learner.train_batch_size, cfg.learner.max_length) == (
        5e-5,
        256,
        2048,
    )
    assert cfg.learner.num_workers == 8 and cfg.learner.dtype == "bfloat16"
    assert (cfg.eval.n, cfg.eval.temperature, cfg.model.template) == (16, 1.0, "qwen-boxed")


def test_unknown_keys_and_bad_values_fail_by_name() -> None:
    with pytest.raises(ValueError, match="learner.lrr"):
        to_job_config({"learner": {"lrr": 1.0}})
    with pytest.raises(ValueError, match="learner.zero_stage"):
        compose("tiny", ["learner.zero_stage=5"])
