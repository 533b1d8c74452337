"""The driver side of each weight-sync backend: how a push reaches the rollout group's engines
(through vLLM's weight-transfer API on their side), and how a restarted engine gets the group's
weights back. `RolloutGroup` owns placement, requests and restarts, and hands every push to
one of these, through the `WeightPush` methods alone:

- `ShmPush` (CPU, one node): bucket files the engines map, kept for a restarted engine.
- `GlooPush` (CPU or GPU, any node): one gloo broadcast per bucket from this process.
- `DirectPush` (`nccl`, or its CPU stand-in): learner rank 0 sends straight to every engine
  worker; this process only opens the transfer group and waits, within
  `rollout.sync_timeout_s`. It takes no weights held by this process.
"""

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import ray
import torch
from safetensors.torch import load_file
from torch import Tensor

from mtg_ray.ports import free_port
from mtg_ray.rollout import RolloutConfig
from mtg_ray.weight_sync import BucketMeta, bucket_meta, iter_buckets, unpack
from mtg_ray.weight_sync.direct import DIRECT_BACKENDS, chunk_bounds, engine_init_info, rank_offsets

log = logging.getLogger(__name__)

SHM_AWAY = (
    "rollout.weight_backend=shm needs every engine on this process's node (it writes the "
    "weights to files there), but engines were {where}: use rollout.weight_backend=gloo "
    "(or nccl on GPUs) when engines run on other nodes"
)


class WeightSource(Protocol):
    """The learner group, as a sync sees it: its weights streamed through this process (shm,
    gloo), or sent from its rank 0 straight to the engines (direct backends)."""

    def named_weights(self, bucket_bytes: int) -> Iterable[tuple[str, Tensor]]: ...

    def weight_meta(self) -> dict[str, Any]: ...

    def sync_address(self, host: str) -> tuple[str, int]: ...

    def open_weight_sync(
        self, backend: str, host: str, port: int, world_size: int, chunk_bytes: int,
        timeout_s: float,
    ) -> list[Any]: ...  # fmt: skip

    def broadcast_weights(self) -> list[Any]: ...

    def close_weight_sync(self, timeout_s: float | None = None) -> None: ...


class Engines(Protocol):
    """What a push needs of the rollout group: its settings, its engine actors, the model they
    start from, the version they hold, and a way to start them all over."""

    cfg: RolloutConfig
    model: str
    engines: list[Any]
    version: int

    def restart_all(self) -> None: ...


@dataclass(frozen=True)
class SyncStats:
    seconds: float
    bytes: int
    buckets: int
    version: int


class WeightPush(Protocol):
    """The driver side of one backend: what `RolloutGroup` calls, whatever the backend. The
    three ways in put `version` into every engine; the group records it once they return. A
    backend that cannot take weights one way raises ValueError."""

    def push(self, group: Engines, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        """Weights held by this process (pulled one bucket at a time)."""
        ...

    def sync_from(self, group: Engines, learner: WeightSource, version: int) -> SyncStats:
        """The learner's current weights."""
        ...

    def load_folder(self, group: Engines, folder: str | Path, version: int) -> None:
        """The weights of an HF folder (a finished run's export)."""
        ...

    def restore(self, group: Engines, engine: Any, index: int) -> None:
        """The group's weights into `engine`, just restarted as engine `index`."""
        ...

    def close(self) -> None: ...


def folder_weights(folder: str | Path) -> Iterable[tuple[str, Tensor]]:
    """The (name, tensor) pairs of an HF folder's `model.safetensors`, read by this process."""
    return load_file(Path(folder) / "model.safetensors").items()


class ShmPush:
    """Bucket files in `rollout.shm_dir` (every engine on this node). Bucket i goes into file i
    while the engines load bucket i - 1: each engine runs its updates in order, so the driver
    only waits at the end. The last sync's files serve a restarted engine."""

    def __init__(self, cfg: RolloutConfig) -> None:
        self.cfg = cfg
        self.sender: Any = None
        self.updates: list[dict[str, Any]] = []

    def push(self, group: Engines, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        from mtg_ray.weight_sync.sender import ShmSender

        start = time.perf_counter()
        if self.sender is None:
            self.sender = ShmSender(self.cfg.shm_dir)
        engines = group.engines
        ray.get([e.start_weight_update.remote() for e in engines])
        updates, loads, nbytes = [], [], 0
        for index, bucket in enumerate(iter_buckets(named, self.cfg.bucket_bytes)):
            update = self.sender.write(index, bucket)
            loads += [e.update_weights.remote(update) for e in engines]
            updates.append(update)
            nbytes += BucketMeta(update["names"], update["dtype_names"], update["shapes"]).nbytes
        ray.get(loads)
        ray.get([e.finish_weight_update.remote(version) for e in engines])
        self.updates = updates
        return SyncStats(time.perf_counter() - start, nbytes, len(updates), version)

    def sync_from(self, group: Engines, learner: WeightSource, version: int) -> SyncStats:
        """Streamed through this process, one bucket in flight."""
        return self.push(group, learner.named_weights(self.cfg.bucket_bytes), version)

    def load_folder(self, group: Engines, folder: str | Path, version: int) -> None:
        """Read by this process and pushed."""
        self.push(group, folder_weights(folder), version)

    def restore(self, group: Engines, engine: Any, index: int) -> None:
        node = ray.get(engine.node_id.remote())
        if node != ray.get_runtime_context().get_node_id():  # its first node was lost
            raise RuntimeError(SHM_AWAY.format(where=f"engine {index} restarted on {node}"))
        if self.updates:  # the last sync's files still hold its weights
            ray.get(engine.start_weight_update.remote())
            ray.get([engine.update_weights.remote(u) for u in self.updates])
            ray.get(engine.finish_weight_update.remote(group.version))

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()


class GlooPush:
    """A gloo transfer group of this process (rank 0) and every engine worker, kept across
    syncs; one broadcast per bucket. With `rollout.keep_weights_for_recovery` the last weights
    stay in Ray's object store for a restarted engine."""

    def __init__(self, cfg: RolloutConfig) -> None:
        self.cfg = cfg
        self.sender: Any = None
        self.snapshot: list[tuple[BucketMeta, Any]] = []

    def push(self, group: Engines, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        if self.sender is None:
            self.sender = self._connect(group.engines)
        keep = self.cfg.keep_weights_for_recovery
        try:
            return self._broadcast(group.engines, named, version, keep, self.sender)
        except BaseException:
            self.sender = None  # a broken group is never reused
            raise

    def _connect(self, engines: list[Any]) -> Any:
        from mtg_ray.weight_sync.sender import GlooSender

        cfg = self.cfg
        host = ray.util.get_node_ip_address() if cfg.sync_host == "auto" else cfg.sync_host
        sender = GlooSender(host, free_port(host), 1 + len(engines))
        joins = [
            e.init_weight_sync.remote(
                dict(master_address=host, master_port=sender.port, rank_offset=1 + i,
                     world_size=sender.world_size)
            )
            for i, e in enumerate(engines)
        ]  # fmt: skip
        sender.connect()
        ray.get(joins)
        return sender

    def _broadcast(
        self, engines: list[Any], named: Iterable[tuple[str, Tensor]], version: int, keep: bool,
        sender: Any,
    ) -> SyncStats:  # fmt: skip
        """One broadcast per bucket over `sender`'s group, whose members are `engines`."""
        start = time.perf_counter()
        ray.get([e.start_weight_update.remote() for e in engines])
        snapshot, nbytes, nbuckets = [], 0, 0
        for bucket in iter_buckets(named, self.cfg.bucket_bytes):
            meta = bucket_meta(bucket)
            receives = [e.update_weights.remote(asdict(meta)) for e in engines]
            buf = sender.send(bucket)
            ray.get(receives)
            if keep:  # numpy goes into the object store with one copy, no pickling
                snapshot.append((meta, ray.put(buf.numpy())))
            nbytes += buf.numel()
            nbuckets += 1
        ray.get([e.finish_weight_update.remote(version) for e in engines])
        if keep:
            self.snapshot = snapshot
        return SyncStats(time.perf_counter() - start, nbytes, nbuckets, version)

    def sync_from(self, group: Engines, learner: WeightSource, version: int) -> SyncStats:
        """Streamed through this process, one bucket in flight."""
        return self.push(group, learner.named_weights(self.cfg.bucket_bytes), version)

    def load_folder(self, group: Engines, folder: str | Path, version: int) -> None:
        """Read by this process and pushed."""
        self.push(group, folder_weights(folder), version)

    def restore(self, group: Engines, engine: Any, index: int) -> None:
        self.sender = None  # the transfer group lost a member
        if self.snapshot:
            named = (
                pair
                for meta, ref in self.snapshot
                for pair in unpack(torch.from_numpy(ray.get(ref).copy()), meta)
            )
            sender = self._connect([engine])  # the new engine alone, for this push
            self._broadcast([engine], named, group.version, keep=False, sender=sender)

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()


class DirectPush:
    """Learner rank 0 broadcasts to every engine worker (`nccl`, or `nccl_standin_gloo` on
    CPU): one transfer group, opened on the first sync, learner rank 0 its rank 0 and engine
    i's workers from `rank_offsets`. Remembers where the group's weights came from (the learner,
    or an HF folder) to give them back to a restarted engine."""

    def __init__(self, cfg: RolloutConfig) -> None:
        self.cfg = cfg
        self.open = False  # the learner/engines transfer group is up
        self.source: WeightSource | None = None  # who the last sync came from
        self.folder: str | None = None  # or the folder the weights came from

    def push(self, group: Engines, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        """Refused: the weights come from learner rank 0 or a folder, never this process."""
        raise ValueError(
            f"rollout.weight_backend={self.cfg.weight_backend} takes weights from the "
            "learner (sync_from) or an HF folder (load_folder), not through this process"
        )

    def sync_from(self, group: Engines, learner: WeightSource, version: int) -> SyncStats:
        """The learner's current weights into every engine as `version`. A sync that fails
        or takes longer than `rollout.sync_timeout_s` at any step tears the group down
        (learner rank 0 aborts its send within the timeout, `send_or_abort`; every engine
        restarted from the model, version 0) and raises one error; the next sync opens a new
        group."""
        start = time.perf_counter()
        self.source, self.folder = learner, None
        engines = group.engines
        try:
            if not self.open:
                self._open(engines, learner)
            meta = learner.weight_meta()
            self._wait([e.start_weight_update.remote() for e in engines])
            receives = [e.update_weights.remote(meta) for e in engines]
            sent = self._wait(receives + learner.broadcast_weights())
            self._wait([e.finish_weight_update.remote(version) for e in engines])
        except Exception as err:
            cause = getattr(err, "cause", None) or err  # a remote error: what was raised there
            first = (str(cause).strip().splitlines() or [""])[-1]
            failed = (
                f"weight sync of policy version {version} over {self.cfg.weight_backend} "
                f"failed ({type(cause).__name__}: {first})"
            )
            log.error("%s; restarting the engines", failed)  # first, whatever the restart does
            try:
                self._tear_down(group, learner)
            except Exception as restart_err:  # e.g. a GPU still held by a killed engine
                raise RuntimeError(
                    f"{failed}; then restarting the engines failed too "
                    f"({type(restart_err).__name__}: {restart_err})"
                ) from err
            raise RuntimeError(
                f"{failed}; learner rank 0 aborted its end of the transfer group (its send "
                f"runs on a thread it can abandon) and the engines restarted from {group.model}"
            ) from err
        nbytes = sum(sent[len(receives) :])
        chunks = len(chunk_bounds(BucketMeta(**meta).sizes(), self.cfg.bucket_bytes))
        return SyncStats(time.perf_counter() - start, nbytes, chunks, version)

    def _open(self, engines: list[Any], learner: WeightSource) -> None:
        """One transfer group: learner rank 0 is rank 0, engine i's workers follow from
        `rank_offsets` (its own offset: engines may differ in size)."""
        sizes = ray.get([e.num_workers.remote() for e in engines])
        offsets, world_size = rank_offsets(sizes)
        host, port = learner.sync_address(self.cfg.sync_host)
        joins = [
            e.init_weight_sync.remote(
                engine_init_info(host, port, offset, world_size, self.cfg.bucket_bytes)
            )
            for e, offset in zip(engines, offsets, strict=True)
        ]
        self._wait(
            joins + learner.open_weight_sync(
                self.cfg.weight_backend, host, port, world_size, self.cfg.bucket_bytes,
                self.cfg.sync_timeout_s,
            )
        )  # fmt: skip
        self.open = True

    def _wait(self, refs: list[Any]) -> list[Any]:
        """Results of `refs` in order; the first error raises at once (its peers may be blocked
        in a collective it will never join), and so does `sync_timeout_s` passing."""
        deadline = time.monotonic() + self.cfg.sync_timeout_s
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                raise TimeoutError(
                    f"{len(pending)} of {len(refs)} weight-sync calls still running after "
                    f"rollout.sync_timeout_s={self.cfg.sync_timeout_s}"
                )
            ray.get(done)
        return ray.get(refs)

    def _tear_down(self, group: Engines, learner: WeightSource) -> None:
        self.open = False
        try:
            learner.close_weight_sync(self.cfg.sync_timeout_s)
        except Exception as err:  # the learner may be what failed, or stuck
            log.warning("closing the learner's end of the transfer group failed: %r", err)
        group.restart_all()

    def restore(self, group: Engines, engine: Any, index: int) -> None:
        """A restarted engine gets back the weights the group holds: from the folder they came
        from, or by a new sync from the learner (the transfer group lost a member: it is
        opened again)."""
        if self.open:
            self.open = False
            ray.get([e.close_weight_sync.remote() for e in group.engines if e is not engine])
            try:
                if self.source is not None:
                    self.source.close_weight_sync(self.cfg.sync_timeout_s)
            except Exception as err:  # a learner that is gone: the sync below says so
                log.warning("closing the learner's end of the transfer group failed: %r", err)
        if self.folder is not None:
            ray.get(engine.load_folder.remote(self.folder, group.version))
        elif self.source is not None and group.version:
            self.sync_from(group, self.source, group.version)

    def load_folder(self, group: Engines, folder: str | Path, version: int) -> None:
        """Each engine reads the HF folder (on storage every engine's node sees)."""
        ray.get([e.load_folder.remote(str(folder), version) for e in group.engines])
        self.folder, self.source = str(folder), None

    def close(self) -> None:
        pass


def weight_push(cfg: RolloutConfig) -> WeightPush:
    """The driver side of `rollout.weight_backend`."""
    if cfg.weight_backend in DIRECT_BACKENDS:
        return DirectPush(cfg)
    return ShmPush(cfg) if cfg.weight_backend == "shm" else GlooPush(cfg)
