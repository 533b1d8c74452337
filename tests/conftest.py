"""Fixtures shared by every test tier."""

import shutil
from pathlib import Path

import pytest

from mtg_ray.paths import benchmarks_dir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """tests/cluster last: they replace this process's local Ray with a simulated cluster."""
    items.sort(key=lambda item: "tests/cluster/" in item.path.as_posix())


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    """The benchmark folder the package reads (its own copies unless MTG_RAY_BENCHMARKS says
    otherwise); missing data is a setup error, not a skip."""
    path = benchmarks_dir()
    if not (path / "math500.jsonl").is_file():
        pytest.fail(f"benchmark data not found at {path}: the package ships it")
    return path


@pytest.fixture(scope="session")
def shipped_small_world() -> Path:
    """The small world, built once and committed like the package's default world, so every
    machine tests on the same bytes and no session pretrains (`scripts/build_world.py --small
    --ship tests/data/tinyworld-small` rebuilds it)."""
    return Path(__file__).parent / "data" / "tinyworld-small"


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory, shipped_small_world: Path):
    """The small tiny world (`tinyworld.small()`) in a temp cache of this session's: the copy
    shipped in tests/data (built there instead if the recipe no longer matches it)."""
    from mtg_ray.tinyworld import build_world, recipe_hash, shipped_hash, small

    cache = tmp_path_factory.mktemp("tinyworld-cache")
    digest = recipe_hash(small())
    if shipped_hash(shipped_small_world) == digest:
        shutil.copytree(shipped_small_world, cache / f"tinyworld-{digest}")
    return build_world(small(), cache)
