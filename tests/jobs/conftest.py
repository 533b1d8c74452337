"""The slow tier's end-to-end tests (real Ray, vLLM and DeepSpeed on CPU): the learner and
rollout groups, the jobs, a local run's private network. Session-scoped Ray and tiny models here:
Ray and vLLM engines are expensive to start."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from mtg_ray.data import Record
from mtg_ray.data.synthetic import arithmetic_records
from mtg_ray.models import TinyModelConfig, build_tiny_model
from mtg_ray.models.tiny import build_tokenizer
from mtg_ray.pipelines.groups.cluster import init_local_ray
from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.jobs.session import KeptLearner, Run
from mtg_ray.rollout import RolloutConfig
from mtg_ray.tinyworld import World


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


@pytest.fixture(scope="session")
def shared_engines(ray_session, tiny_models: tuple[Path, Path]) -> Iterator[RolloutGroup]:
    """Two vLLM engines (shm weight sync) on tiny model a, shared by the tests of both groups:
    starting an engine costs about 16 s. Take it through `engines`, which resets it."""
    cfg = RolloutConfig(num_engines=2, max_model_len=256, bucket_bytes=64 << 10)
    group = RolloutGroup(cfg, str(tiny_models[0]))
    gcs = ray.get_runtime_context().gcs_address
    yield group
    # tests/cluster replace this Ray (ending the engines with it) before the session ends
    if ray.is_initialized() and ray.get_runtime_context().gcs_address == gcs:
        group.shutdown()


@pytest.fixture
def engines(shared_engines: RolloutGroup, tiny_models: tuple[Path, Path]) -> RolloutGroup:
    """The shared engines holding tiny model a again, as policy version 0."""
    state = AutoModelForCausalLM.from_pretrained(tiny_models[0], dtype=torch.float32).state_dict()
    shared_engines.update_weights(state.items(), version=0)
    return shared_engines


@pytest.fixture(scope="session")
def shared_small_engine(ray_session, small_world: World) -> Iterator[RolloutGroup]:
    """One engine on the small world's base model, shared by the job tests (their runs compose
    to this rollout config: `rollout.num_engines=1` over the CPU defaults). Take it through
    `small_engine`, which resets it."""
    group = RolloutGroup(RolloutConfig(num_engines=1), str(small_world.model_dir))
    gcs = ray.get_runtime_context().gcs_address
    yield group
    if ray.is_initialized() and ray.get_runtime_context().gcs_address == gcs:
        group.shutdown()


@pytest.fixture
def small_engine(shared_small_engine: RolloutGroup, small_world: World) -> RolloutGroup:
    """The shared small-world engine holding the base model again, as policy version 0: what
    a job's own `groups` would start with."""
    shared_small_engine.load_folder(small_world.model_dir, version=0)
    return shared_small_engine


@pytest.fixture(scope="module")
def kept_learner(ray_session) -> Iterator[KeptLearner]:
    """A learner group kept across a module's job runs (`dataclasses.replace(run,
    learner=kept_learner)`), as `groups` keeps one across a job's trainings: each training
    restarts it, the same as a new group (`test_a_restarted_group_trains_as_a_new_one`)."""
    kept = KeptLearner()
    yield kept
    kept.close()


def on_shared(run: Run, engine: RolloutGroup, kept: KeptLearner) -> Run:
    """`run` on the shared small-world engine and a kept learner group, which are what its own
    `groups` would start (checked)."""
    assert run.cfg.rollout == engine.cfg and run.model_path == engine.model
    return dataclasses.replace(run, learner=kept)


def make_records(n: int, seed: int = 0) -> list[Record]:
    return arithmetic_records(n, build_tokenizer(), seed)


@pytest.fixture(scope="session")
def records() -> list[Record]:
    return make_records(8)
