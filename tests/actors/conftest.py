"""Session-scoped Ray and tiny models: Ray and vLLM engines are expensive to start."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from mtg_ray.models import TinyModelConfig, build_tiny_model


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(
        num_cpus=8,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny Qwen2 models of the same shape, different weights."""
    root = tmp_path_factory.mktemp("models")
    return (
        build_tiny_model(root / "a", TinyModelConfig(seed=0)),
        build_tiny_model(root / "b", TinyModelConfig(seed=1)),
    )
