"""Fixtures shared by every test tier."""

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
def small_world(tmp_path_factory: pytest.TempPathFactory):
    """The small tiny world (`tinyworld.small()`), built once per session into a temp cache."""
    from mtg_ray.tinyworld import build_world, small

    return build_world(small(seed=0), tmp_path_factory.mktemp("tinyworld-cache"))
