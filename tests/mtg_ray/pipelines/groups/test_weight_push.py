"""Weight pushes without Ray: every backend answers the same `WeightPush` calls, and the rollout
group hands each way in to its backend without knowing which one it has. The transfers
themselves run on real engines in the slow tests (tests/jobs/test_rollout.py, test_learner.py)."""

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from mtg_ray.pipelines.groups.rollout_group import RolloutGroup
from mtg_ray.pipelines.groups.weight_push import (
    DirectPush,
    GlooPush,
    ShmPush,
    SyncStats,
    WeightPush,
    weight_push,
)
from mtg_ray.rollout import RolloutConfig
from mtg_ray.rollout.config import WEIGHT_BACKENDS

CALLS = [name for name in vars(WeightPush) if not name.startswith("_")]


class RecordingPush:
    """A `WeightPush` that records what it was handed, and fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any, Any, int]] = []
        self.fail = fail

    def _record(self, call: str, group: Any, weights: Any, version: int) -> SyncStats:
        self.calls.append((call, group, weights, version))
        if self.fail:
            raise RuntimeError("the sync failed")
        return SyncStats(0.0, 0, 0, version)

    def push(self, group: Any, named: Any, version: int) -> SyncStats:
        return self._record("push", group, named, version)

    def sync_from(self, group: Any, learner: Any, version: int) -> SyncStats:
        return self._record("sync_from", group, learner, version)

    def load_folder(self, group: Any, folder: Any, version: int) -> None:
        self._record("load_folder", group, folder, version)

    def restore(self, group: Any, engine: Any, index: int) -> None: ...

    def close(self) -> None: ...


def group_with(push: WeightPush) -> RolloutGroup:
    """A rollout group without engines (nor Ray): only its weight calls are used."""
    group = object.__new__(RolloutGroup)
    group.cfg, group.version, group.push = RolloutConfig(), 0, push
    group.shared, group.asleep = None, set()
    return group


@pytest.mark.parametrize("backend", WEIGHT_BACKENDS)
def test_every_backend_answers_every_weight_push_call(backend: str) -> None:
    assert {"push", "sync_from", "load_folder", "restore", "close"} <= set(CALLS)
    push = weight_push(RolloutConfig(weight_backend=backend))
    for call in CALLS:
        want = list(inspect.signature(getattr(WeightPush, call)).parameters)
        assert list(inspect.signature(getattr(type(push), call)).parameters) == want, call


def test_the_group_hands_each_way_in_to_its_backend_and_records_the_version() -> None:
    push = RecordingPush()
    group = group_with(push)
    named, learner, folder = [("w", torch.ones(1))], object(), Path("export")
    assert group.update_weights(named, 1).version == 1 and group.version == 1
    assert group.sync_from(learner, 2).version == 2 and group.version == 2
    group.load_folder(folder, 3)
    assert group.version == 3
    assert push.calls == [
        ("push", group, named, 1), ("sync_from", group, learner, 2),
        ("load_folder", group, folder, 3),
    ]  # fmt: skip

    group.push = RecordingPush(fail=True)
    for call, weights in [("update_weights", named), ("sync_from", learner)]:
        with pytest.raises(RuntimeError, match="the sync failed"):
            getattr(group, call)(weights, 4)
    assert group.version == 3  # a failed push leaves the version as the backend left it


@pytest.mark.parametrize("backend", [ShmPush, GlooPush])
def test_host_backends_stream_the_learner_and_read_the_folder_here(
    backend: type, tmp_path: Path, monkeypatch
) -> None:
    push = backend(RolloutConfig(bucket_bytes=123))
    pushed, asked = [], []
    monkeypatch.setattr(push, "push", lambda g, named, v: pushed.append((g, dict(named), v)))

    class Learner:
        def named_weights(self, bucket_bytes: int):
            asked.append(bucket_bytes)
            return iter([("w", torch.ones(2))])

    save_file({"v": torch.arange(3.0)}, str(tmp_path / "model.safetensors"))
    push.sync_from("group", Learner(), 1)
    push.load_folder("group", tmp_path, 2)
    assert asked == [123]  # one bucket of the rollout's size in flight
    assert [(g, list(weights), v) for g, weights, v in pushed] == [
        ("group", ["w"], 1), ("group", ["v"], 2),
    ]  # fmt: skip
    assert torch.equal(pushed[1][1]["v"], torch.arange(3.0))


def test_direct_backends_refuse_weights_held_here() -> None:
    group = group_with(DirectPush(RolloutConfig(weight_backend="nccl_standin_gloo")))
    with pytest.raises(ValueError, match="sync_from.*load_folder"):
        group.update_weights([("w", torch.ones(1))], 1)
    assert group.version == 0


class FailingLearnerStandIn:
    """A learner (stand-in, no Ray) that fails the sync before anything is sent."""

    def weight_meta(self) -> dict[str, Any]:
        raise ConnectionError("rank 0's rendezvous refused")

    def close_weight_sync(self, timeout_s: float | None = None) -> None: ...


class EnginesStandIn:
    """Engines (stand-in) whose restart after the failed sync fails as well."""

    cfg, model, engines, version = RolloutConfig(), "base", [], 3

    def restart_all(self) -> None:
        raise RuntimeError("GPU has 2.0 GiB free of 80.0 GiB")


def test_a_failed_restart_after_a_failed_sync_keeps_the_sync_error_first(caplog) -> None:
    """The sync's error leads the raised message, and is logged before the restart is tried,
    so an engine that then fails its start-up check cannot hide why the sync failed."""
    push = DirectPush(RolloutConfig(weight_backend="nccl_standin_gloo"))
    push.open = True  # the group is up: the sync's first call is the failing one
    with caplog.at_level("ERROR"), pytest.raises(RuntimeError) as raised:
        push.sync_from(EnginesStandIn(), FailingLearnerStandIn(), 4)
    message = str(raised.value)
    assert message.index("rendezvous refused") < message.index("restarting the engines failed")
    assert "GPU has 2.0 GiB free" in message
    assert "rendezvous refused" in caplog.records[0].getMessage()
