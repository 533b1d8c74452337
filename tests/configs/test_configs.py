"""Every YAML under configs/ maps onto its dataclass, and every key is documented."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

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
