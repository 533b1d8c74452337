"""The vLLM rollout group: N engine actors behind one object, kept in sync with the learner.

`RolloutGroup` hosts `RolloutActor`s with resources from `RolloutConfig` (one placement-group
bundle per engine), spreads requests over the engines, restarts a dead engine from the latest
weights, and pushes new weights through vLLM's weight-transfer API (our shm or gloo backend on
CPU). It never decides a policy version: each push is told which version it carries.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import ray
import torch
from ray.exceptions import RayActorError
from ray.util.placement_group import (
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from safetensors.torch import load_file
from torch import Tensor

from actors.rollout import RolloutActor
from mtg_ray.pipelines.cluster import wait_placed
from mtg_ray.ports import free_port
from mtg_ray.rollout import RolloutConfig, Sample, SamplingConfig, merge_in_order, split_by_weight
from mtg_ray.rollout.config import per_prompt
from mtg_ray.rollout.placement import engine_placement
from mtg_ray.tempdirs import OwnedTempDir
from mtg_ray.weight_sync import BucketMeta, bucket_meta, iter_buckets, unpack
from mtg_ray.weight_sync.direct import (
    DIRECT_BACKENDS,
    chunk_bounds,
    engine_init_info,
    rank_offsets,
)

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


@dataclass(frozen=True)
class SyncStats:
    seconds: float
    bytes: int
    buckets: int
    version: int


class RolloutGroup:
    """N engines serving the HF model at `model`; requests are split evenly and merged back in
    order. `version` is the policy version of the weights last pushed (0: `model` itself)."""

    def __init__(self, cfg: RolloutConfig, model: str) -> None:
        self.cfg, self.model = cfg, model
        self.placement = engine_placement(
            cfg.num_engines, cfg.gpus_per_engine, cfg.device == "cuda", cfg.cpus_per_engine,
            cfg.node_resource,
        )  # fmt: skip
        self.pg = placement_group(self.placement.bundles, strategy=cfg.placement_strategy)
        wait_placed(self.pg, "rollout engines")
        if cfg.weight_backend == "shm":
            placed = placement_group_table(self.pg)["bundles_to_node_id"].values()
            away = set(placed) - {ray.get_runtime_context().get_node_id()}
            if away:
                remove_placement_group(self.pg)
                raise ValueError(SHM_AWAY.format(where=f"placed on node(s) {sorted(away)}"))
        # The engines' temp folder (vLLM leaves a rendezvous file per engine there): removed
        # at shutdown, or by the next group on this machine if this process dies first.
        self.tmp = OwnedTempDir("mtg-ray-engines-")
        self.engines = [self._start(i) for i in range(cfg.num_engines)]
        ray.get([e.ready.remote() for e in self.engines])
        self.version = 0
        self.restarts = 0
        self.in_flight = 0  # requests submitted to engines and not yet answered
        self._snapshot: list[tuple[BucketMeta, Any]] = []  # gloo: the last weights, for restarts
        self._updates: list[dict[str, Any]] = []  # shm: the last sync's bucket files
        self._sender: Any = None  # gloo transfer group to all engines, or the shm files
        self._direct_open = False  # direct backends: the learner/engines transfer group is up
        self._source: WeightSource | None = None  # direct backends: who the last sync came from
        self._folder: str | None = None  # direct backends: or the folder the weights came from

    def _start(self, index: int) -> Any:
        cfg = self.cfg
        threads = str(cfg.cpus_per_engine)
        env = {
            "OMP_NUM_THREADS": threads, "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "TMPDIR": self.tmp.path, **self.placement.env(index),
        }  # fmt: skip
        actor = ray.remote(RolloutActor).options(
            num_cpus=cfg.cpus_per_engine,
            num_gpus=self.placement.actor_gpus,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                self.pg,
                placement_group_bundle_index=self.placement.actor_bundle[index],
                placement_group_capture_child_tasks=True,  # vLLM's workers join this group
            ),
            runtime_env={"env_vars": env},
        )
        return actor.remote(cfg, index, self.model)

    # ---- requests -------------------------------------------------------------------------

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig | Sequence[SamplingConfig]
    ) -> list[list[Sample]]:
        """`n` samples per prompt, in prompt order; one sampling config for all prompts or one
        per prompt. Engines get contiguous runs of prompts with about equal numbers of samples."""
        configs = per_prompt(sampling, len(prompts))
        parts = split_by_weight([c.n for c in configs], len(self.engines))
        return self._map("generate", parts, prompts, configs)

    def score(self, prompts: list[list[int]], responses: list[list[int]]) -> list[list[float]]:
        """Per-token log-probs of each response under the engines' current weights."""
        pairs = list(zip(prompts, responses, strict=True))
        parts = split_by_weight([len(p) + len(r) for p, r in pairs], len(self.engines))
        return self._map("score", parts, pairs)

    def _map(self, method: str, parts: list[range], *columns: list[Any]) -> list[Any]:
        """Engine i answers `method(*[column[j] for j in parts[i]])`; answers back in order."""
        results: list[Any] = [None] * len(parts)
        attempts = [0] * len(parts)

        def submit(i: int) -> Any:
            args = [[column[j] for j in parts[i]] for column in columns]
            return getattr(self.engines[i], method).remote(*args)

        pending = {submit(i): i for i, part in enumerate(parts) if len(part)}
        for i, part in enumerate(parts):
            if not len(part):
                results[i] = []
        while pending:
            self.in_flight = len(pending)
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except RayActorError as err:
                attempts[i] += 1
                if attempts[i] > self.cfg.max_retries:
                    raise RuntimeError(f"rollout engine {i} failed {attempts[i]} times") from err
                log.warning("rollout engine %d died (%s); restarting", i, err)
                self._restart(i)
                pending[submit(i)] = i
        self.in_flight = 0
        return merge_in_order(parts, results, len(columns[0]))

    def _restart(self, index: int) -> None:
        ray.kill(self.engines[index], no_restart=True)
        self.engines[index] = self._start(index)
        ray.get(self.engines[index].ready.remote())
        self.restarts += 1
        engine = self.engines[index]
        if self.cfg.weight_backend in DIRECT_BACKENDS:
            self._restore_direct(engine)
            return
        if self.cfg.weight_backend == "shm":
            node = ray.get(engine.node_id.remote())
            if node != ray.get_runtime_context().get_node_id():  # its first node was lost
                raise RuntimeError(SHM_AWAY.format(where=f"engine {index} restarted on {node}"))
            if self._updates:  # the last sync's files still hold its weights
                ray.get(engine.start_weight_update.remote())
                ray.get([engine.update_weights.remote(u) for u in self._updates])
                ray.get(engine.finish_weight_update.remote(self.version))
            return
        self._sender = None  # the gloo transfer group lost a member
        if self._snapshot:
            named = (
                pair
                for meta, ref in self._snapshot
                for pair in unpack(torch.from_numpy(ray.get(ref).copy()), meta)
            )
            sender = self._connect_gloo([engine])  # the new engine alone, for this push
            self._push_gloo([engine], named, self.version, keep=False, sender=sender)

    # ---- weights --------------------------------------------------------------------------

    @property
    def bucket_bytes(self) -> int:
        """Size of one weight-sync bucket: what a sender should gather at a time."""
        return self.cfg.bucket_bytes

    def update_weights(self, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        """Push (name, tensor) pairs to every engine in buckets; the engines then stamp their
        samples with `version` (the caller's: the training loop owns policy versions).

        Call it in the process that holds the weights (the learner's rank 0, or the driver the
        learner streams them to): with gloo it is rank 0 of the transfer group, with shm it
        writes the bucket files. Tensors are pulled one bucket at a time.
        """
        if self.cfg.weight_backend in DIRECT_BACKENDS:
            raise ValueError(
                f"rollout.weight_backend={self.cfg.weight_backend} takes weights from the "
                "learner (sync_from) or an HF folder (load_folder), not through this process"
            )
        if self.cfg.weight_backend == "shm":
            stats = self._push_shm(named, version)
        else:  # gloo
            if self._sender is None:
                self._sender = self._connect_gloo(self.engines)
            keep = self.cfg.keep_weights_for_recovery
            try:
                stats = self._push_gloo(self.engines, named, version, keep, self._sender)
            except BaseException:
                self._sender = None  # a broken group is never reused
                raise
        self.version = version
        return stats

    def _push_shm(self, named: Iterable[tuple[str, Tensor]], version: int) -> SyncStats:
        """Bucket i goes into file i while the engines load bucket i - 1: each engine runs its
        updates in order, so the driver only waits at the end."""
        from mtg_ray.weight_sync.sender import ShmSender

        start = time.perf_counter()
        if self._sender is None:
            self._sender = ShmSender(self.cfg.shm_dir)
        engines = self.engines
        ray.get([e.start_weight_update.remote() for e in engines])
        updates, loads, nbytes = [], [], 0
        for index, bucket in enumerate(iter_buckets(named, self.cfg.bucket_bytes)):
            update = self._sender.write(index, bucket)
            loads += [e.update_weights.remote(update) for e in engines]
            updates.append(update)
            nbytes += BucketMeta(update["names"], update["dtype_names"], update["shapes"]).nbytes
        ray.get(loads)
        ray.get([e.finish_weight_update.remote(version) for e in engines])
        self._updates = updates
        return SyncStats(time.perf_counter() - start, nbytes, len(updates), version)

    def _connect_gloo(self, engines: list[Any]) -> Any:
        """A transfer group of this process (rank 0) and every engine worker."""
        from mtg_ray.weight_sync.sender import GlooSender

        host = (
            ray.util.get_node_ip_address() if self.cfg.sync_host == "auto" else self.cfg.sync_host
        )
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

    def _push_gloo(
        self,
        engines: list[Any],
        named: Iterable[tuple[str, Tensor]],
        version: int,
        keep: bool,
        sender: Any,
    ) -> SyncStats:
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
            self._snapshot = snapshot
        return SyncStats(time.perf_counter() - start, nbytes, nbuckets, version)

    def sync_from(self, learner: WeightSource, version: int) -> SyncStats:
        """The learner's current weights into every engine as `version`. Direct backends: the
        engines and learner rank 0 form one transfer group (opened on the first sync) and rank
        0 sends; otherwise the weights stream through this process (`update_weights`).

        A direct sync that fails or takes longer than `rollout.sync_timeout_s` at any step tears
        the group down (learner rank 0 aborts its send within the timeout, `send_or_abort`;
        every engine restarted from `model`, version 0) and raises one error; the next sync
        opens a new group."""
        if self.cfg.weight_backend not in DIRECT_BACKENDS:
            return self.update_weights(learner.named_weights(self.bucket_bytes), version)
        start = time.perf_counter()
        self._source, self._folder = learner, None
        try:
            if not self._direct_open:
                self._open_direct(learner)
            meta = learner.weight_meta()
            self._wait([e.start_weight_update.remote() for e in self.engines])
            receives = [e.update_weights.remote(meta) for e in self.engines]
            sent = self._wait(receives + learner.broadcast_weights())
            self._wait([e.finish_weight_update.remote(version) for e in self.engines])
        except Exception as err:
            self._tear_down_direct(learner)
            cause = getattr(err, "cause", None) or err  # a remote error: what was raised there
            first = (str(cause).strip().splitlines() or [""])[-1]
            raise RuntimeError(
                f"weight sync of policy version {version} over {self.cfg.weight_backend} "
                f"failed ({type(cause).__name__}: {first}); learner rank 0 aborted its end of "
                f"the transfer group (its send runs on a thread it can abandon) and the "
                f"engines restarted from {self.model}"
            ) from err
        self.version = version
        nbytes = sum(sent[len(receives) :])
        chunks = len(chunk_bounds(BucketMeta(**meta).sizes(), self.cfg.bucket_bytes))
        return SyncStats(time.perf_counter() - start, nbytes, chunks, version)

    def _open_direct(self, learner: WeightSource) -> None:
        """One transfer group: learner rank 0 is rank 0, engine i's workers follow from
        `rank_offsets` (its own offset: engines may differ in size)."""
        sizes = ray.get([e.num_workers.remote() for e in self.engines])
        offsets, world_size = rank_offsets(sizes)
        host, port = learner.sync_address(self.cfg.sync_host)
        joins = [
            e.init_weight_sync.remote(
                engine_init_info(host, port, offset, world_size, self.cfg.bucket_bytes)
            )
            for e, offset in zip(self.engines, offsets, strict=True)
        ]
        self._wait(
            joins + learner.open_weight_sync(
                self.cfg.weight_backend, host, port, world_size, self.cfg.bucket_bytes,
                self.cfg.sync_timeout_s,
            )
        )  # fmt: skip
        self._direct_open = True

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

    def _tear_down_direct(self, learner: WeightSource) -> None:
        self._direct_open = False
        try:
            learner.close_weight_sync(self.cfg.sync_timeout_s)
        except Exception as err:  # the learner may be what failed, or stuck
            log.warning("closing the learner's end of the transfer group failed: %r", err)
        for i in range(len(self.engines)):
            ray.kill(self.engines[i], no_restart=True)
            self.engines[i] = self._start(i)
        ray.get([e.ready.remote() for e in self.engines])
        self.restarts += len(self.engines)
        self.version = 0

    def _restore_direct(self, engine: Any) -> None:
        """A restarted engine gets back the weights the group holds: from the folder they came
        from, or by a new sync from the learner (the transfer group lost a member: it is
        opened again)."""
        if self._direct_open:
            self._direct_open = False
            ray.get([e.close_weight_sync.remote() for e in self.engines if e is not engine])
            try:
                if self._source is not None:
                    self._source.close_weight_sync(self.cfg.sync_timeout_s)
            except Exception as err:  # a learner that is gone: the sync below says so
                log.warning("closing the learner's end of the transfer group failed: %r", err)
        if self._folder is not None:
            ray.get(engine.load_folder.remote(self._folder, self.version))
        elif self._source is not None and self.version:
            self.sync_from(self._source, self.version)

    def load_folder(self, folder: str | Path, version: int) -> None:
        """The weights of an HF folder (a finished run's export) into every engine as
        `version`. Direct backends: each engine reads the folder, which must be on storage
        every engine's node sees; otherwise this process reads it and pushes it."""
        if self.cfg.weight_backend not in DIRECT_BACKENDS:
            self.update_weights(load_file(Path(folder) / "model.safetensors").items(), version)
            return
        ray.get([e.load_folder.remote(str(folder), version) for e in self.engines])
        self.version, self._folder, self._source = version, str(folder), None

    def versions(self) -> list[int]:
        return ray.get([e.ready.remote() for e in self.engines])

    def shutdown(self) -> None:
        for e in self.engines:
            ray.kill(e, no_restart=True)
        remove_placement_group(self.pg)
        if self._sender is not None:
            self._sender.close()
        self.tmp.close()
