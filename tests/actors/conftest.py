"""Session-scoped Ray and tiny models: Ray and vLLM engines are expensive to start."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from mtg_ray.data import Record
from mtg_ray.data.synthetic import arithmetic_records
from mtg_ray.models import TinyModelConfig, build_tiny_model
from mtg_ray.models.tiny import build_tokenizer
from mtg_ray.pipelines.cluster import init_local_ray


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    init_local_ray(8, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny Qwen2 models of the same shape, different weights."""
    root = tmp_path_factory.mktemp("models")
    return (
        build_tiny_model(root / "a", TinyModelConfig(), seed=0),
        build_tiny_model(root / "b", TinyModelConfig(), seed=1),
    )


def make_records(n: int, seed: int = 0) -> list[Record]:
    return arithmetic_records(n, build_tokenizer(), seed)


@pytest.fixture(scope="session")
def records() -> list[Record]:
    return make_records(8)
