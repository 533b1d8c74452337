"""Fixtures shared by every test tier."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mtg_ray.paths import benchmarks_dir

# What every job run end to end on the small world sets (tests/jobs, tests/cluster): two samples
# of at most 96 tokens per rewriting stage, evaluations of 96 tokens, micro-batches of 4. Each
# test adds its problem counts, batch size, engines and job settings (`small_run`).
SMALL_RUN = (
    "world=small",
    "rewrite.samples=2",
    "rewrite.guided_samples=2",
    "rewrite.max_tokens=96",
    "eval.max_tokens=96",
    "learner.micro_batch_size=4",
)


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


@pytest.fixture(scope="session")
def small_run(small_world) -> Callable[..., list[str]]:
    """`small_run(out, *extra)`: the overrides of a job on the session's small world (cached,
    not rebuilt) that writes to `out`: SMALL_RUN, then `extra`."""
    from mtg_ray.tinyworld import small

    assert small_world.config == small()  # configs/world/small.yaml is the session's world

    def overrides(out: Path, *extra: str) -> list[str]:
        return [*SMALL_RUN, f"cache_dir={small_world.root.parent}", f"output_dir={out}", *extra]

    return overrides
