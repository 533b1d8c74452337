"""Learner group: W `LearnerActor`s forming one torch.distributed group, each driving DeepSpeed.

The group places the ranks (one placement-group bundle each), wires the process group (rank 0
hosts its store on its node's address alone and says at which port), splits each batch over
the ranks and reduces their reports into one `StepResult`.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from torch import Tensor

from actors.learner import LearnerActor
from mtg_ray.data import Record, write_text
from mtg_ray.learner import (
    LearnerConfig,
    StepResult,
    by_length,
    group_changes,
    reduce_ranks,
    response_tokens,
    shard,
)
from mtg_ray.objectives import Objective
from mtg_ray.pipelines.groups.cluster import SharedGpus, wait_placed

LATEST = "latest"
SHUTDOWN_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


class LearnerGroup:
    """W ranks training the HF model at `model` for `total_steps` optimizer steps."""

    def __init__(
        self, cfg: LearnerConfig, model: str, total_steps: int, shared: SharedGpus | None = None
    ) -> None:
        self.cfg, self.shared = cfg, shared
        if shared is None:
            bundle: dict[str, float] = {"CPU": cfg.cpus_per_worker}
            if cfg.gpus_per_worker:
                bundle["GPU"] = cfg.gpus_per_worker
            if cfg.node_resource:
                bundle[cfg.node_resource] = 1
            self.pg = placement_group([bundle] * cfg.num_workers, strategy="PACK")
            wait_placed(self.pg, "learner ranks")
        else:  # colocated: rank i shares bundle i's GPU with the engine placed there
            self.pg = shared.pg
        env = {"OMP_NUM_THREADS": str(cfg.cpus_per_worker)}
        if cfg.backend == "gloo":
            env["DS_ACCELERATOR"] = "cpu"
        self.workers = [
            ray.remote(LearnerActor)
            .options(
                num_cpus=cfg.cpus_per_worker,
                num_gpus=cfg.gpus_per_worker * (1.0 if shared is None else shared.share),
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.pg, placement_group_bundle_index=rank
                ),
                runtime_env={"env_vars": env},
            )
            .remote(cfg, rank, model, total_steps, shares_gpu=shared is not None)
            for rank in range(cfg.num_workers)
        ]
        addr, port = ray.get(self.workers[0].master_address.remote())
        ray.get([w.setup.remote(addr, port) for w in self.workers])
        self.step = 0
        self._weight_meta: dict[str, Any] | None = None

    def can_restart(self, cfg: LearnerConfig) -> bool:
        """Whether `restart` can take `cfg` (its ranks, placement and process group stay)."""
        return not group_changes(self.cfg, cfg)

    def restart(self, cfg: LearnerConfig, model: str, total_steps: int) -> None:
        """Start over on `model` with `cfg` for `total_steps` steps in the same ranks
        (`LearnerRank.restart`): what a new group would do, less its process starts (about 10
        s on 2 CPUs)."""
        ray.get([w.restart.remote(cfg, model, total_steps) for w in self.workers])
        self.cfg, self.step, self._weight_meta = cfg, 0, None

    def train_step(self, records: Sequence[Record], objective: Objective) -> StepResult:
        """One optimizer step on `records` (exactly learner.train_batch_size of them)."""
        cfg = self.cfg
        if len(records) != cfg.train_batch_size:
            raise ValueError(
                f"train_step got {len(records)} records; learner.train_batch_size is "
                f"{cfg.train_batch_size}"
            )
        if objective.expert_rows == "drop" and cfg.loss_reduction == "micro_batch_mean":
            raise ValueError(
                "expert_rows=drop needs learner.loss_reduction token_mean or sequence_mean: a "
                "micro-batch mean would still count the dropped rows' tokens"
            )
        trained = [r for r in records if objective.trains(r.source)]
        total = response_tokens(trained, cfg.max_length)
        if total == 0 and trained:
            raise ValueError("train_step got a batch with no response tokens")
        # every row dropped (expert_rows=drop): the step's gradient is zero; it still steps, so
        # the schedule and the policy version stay those of the other steps
        total = max(total, 1)
        start = time.perf_counter()
        # Round-robin over the length order: every rank gets short and long records alike, and
        # its micro-batches (consecutive records) similar lengths: less padding, same gradient.
        grouped = cfg.loss_reduction == "micro_batch_mean"  # its gradient depends on grouping
        ordered = records if grouped else by_length(records)
        shards = shard(ordered, cfg.num_workers)
        parts = ray.get(
            [
                w.train_step.remote(s, total, objective, max(len(trained), 1))
                for w, s in zip(self.workers, shards, strict=True)
            ]
        )
        self.step = parts[0]["step"]
        return reduce_ranks(parts, total, time.perf_counter() - start, objective.config.is_clip)

    def score(self, records: Sequence[Record]) -> list[list[float]]:
        """Per-token log-probs of each record's response under the learner's live weights.

        Every rank runs the same number of forwards (ZeRO-3 gathers are collective), so the
        list is padded with copies of its last record, which are dropped again.
        """
        if not records:
            return []
        world = self.cfg.num_workers
        unit = world * self.cfg.micro_batch_size
        padded = list(records) + [records[-1]] * (-len(records) % unit)
        parts = ray.get([w.score.remote(padded[r::world]) for r, w in enumerate(self.workers)])
        out: list[list[float]] = [[] for _ in padded]
        for r, part in enumerate(parts):
            out[r::world] = part
        return out[: len(records)]

    # ---- checkpoints and export -----------------------------------------------------------

    def save_checkpoint(self, ckpt_dir: str | Path, client_state: dict[str, Any]) -> str:
        """Save on every rank, then point `latest` at it (atomically, last)."""
        ckpt_dir = str(ckpt_dir)
        tags = ray.get([w.save_checkpoint.remote(ckpt_dir, client_state) for w in self.workers])
        write_text(Path(ckpt_dir) / LATEST, tags[0])
        return tags[0]

    def load_checkpoint(self, ckpt_dir: str | Path) -> dict[str, Any] | None:
        """Resume from `ckpt_dir/latest`, also one saved by another rank count
        (`LearnerRank.load_checkpoint`); None (and nothing changes) when there is none."""
        latest = Path(ckpt_dir) / LATEST
        if not latest.is_file():
            return None
        tag = latest.read_text().strip()
        states = ray.get([w.load_checkpoint.remote(str(ckpt_dir), tag) for w in self.workers])
        self.step = int(tag.removeprefix("global_step"))
        return states[0]

    def export_hf(self, out_dir: str | Path, bucket_bytes: int = 256 << 20) -> Path:
        ray.get([w.export_hf.remote(str(out_dir), bucket_bytes) for w in self.workers])
        return Path(out_dir)

    def named_weights(self, bucket_bytes: int = 64 << 20) -> Iterator[tuple[str, Tensor]]:
        """Full (name, tensor) pairs streamed from rank 0, one bucket in flight: feed this to
        `RolloutGroup.update_weights`."""
        stream = (
            self.workers[0]
            .stream_weights.options(num_returns="streaming", _generator_backpressure_num_objects=1)
            .remote(bucket_bytes)
        )
        drains = [w.drain_weights.remote(bucket_bytes) for w in self.workers[1:]]
        for ref in stream:
            yield from ray.get(ref)
        ray.get(drains)

    # ---- direct weight sync (see RolloutGroup.sync_from) ----------------------------------

    def sync_address(self, host: str) -> tuple[str, int]:
        """Where rank 0 hosts a transfer group's rendezvous: `host` ("auto": its Ray node
        address) and a port free there."""
        return ray.get(self.workers[0].rendezvous_address.remote(host))

    def weight_meta(self) -> dict[str, Any]:
        """What a direct sync sends: every parameter's name, dtype and full shape, in order."""
        if self._weight_meta is None:
            self._weight_meta = ray.get(self.workers[0].weight_meta.remote())
        return self._weight_meta

    def open_weight_sync(
        self, backend: str, host: str, port: int, world_size: int, chunk_bytes: int,
        timeout_s: float,
    ) -> list[ray.ObjectRef]:  # fmt: skip
        """Rank 0 joins the transfer group (refs: wait on them together with the engines')."""
        args = (backend, host, port, world_size, chunk_bytes, timeout_s)
        return [w.open_weight_sync.remote(*args) for w in self.workers]

    def broadcast_weights(self) -> list[ray.ObjectRef]:
        """Every rank gathers, rank 0 sends (refs: the engines receive concurrently)."""
        return [w.broadcast_weights.remote() for w in self.workers]

    def close_weight_sync(self, timeout_s: float | None = None) -> None:
        """Leave the transfer group (raises GetTimeoutError if a rank is still stuck in it)."""
        ray.get([w.close_weight_sync.remote() for w in self.workers], timeout=timeout_s)

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Leave the process group and end the ranks; ranks already dead (a lost node) are
        only cleaned up after, and ranks that have not left within `timeout_s` (stuck in a
        collective) are killed all the same."""
        try:
            ray.get([w.shutdown.remote() for w in self.workers], timeout=timeout_s)
        except GetTimeoutError:
            log.warning("learner ranks still busy %.0f s after shutdown; killing them", timeout_s)
        finally:
            for w in self.workers:
                ray.kill(w, no_restart=True)
            if self.shared is None:  # a shared group is its owner's to remove
                remove_placement_group(self.pg)
