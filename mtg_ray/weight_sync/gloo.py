"""A gloo weight-transfer backend for vLLM's weight-transfer API, for CPU engines.

vLLM's built-in backends (NCCL, CUDA IPC) need GPUs. This one plugs into the same API
(`WeightTransferEngineFactory`, the worker's `init_weight_transfer_engine` /
`start_weight_update` / `update_weights` / `finish_weight_update`) and moves each bucket with one
gloo broadcast from the trainer (rank 0) to every engine worker. Weights arrive in checkpoint
format and load through vLLM's layerwise reload, as the NCCL backend does.
"""

from dataclasses import dataclass
from typing import Any

import torch
from vllm.distributed.weight_transfer.base import (
    TInitInfo,
    TUpdateInfo,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)

from mtg_ray.weight_sync.buckets import BucketMeta, unpack
from mtg_ray.weight_sync.cpu_engine import CpuWeightTransferEngine
from mtg_ray.weight_sync.groups import broadcast, join_group, worker_rank

BACKEND = "gloo"


@dataclass
class GlooInitInfo(WeightTransferInitInfo):
    """Rendezvous of the transfer group: trainer is rank 0, engine workers follow."""

    master_address: str
    master_port: int
    rank_offset: int
    world_size: int


@dataclass
class GlooUpdateInfo(WeightTransferUpdateInfo):
    """One bucket: the tensors packed into the broadcast buffer, in order."""

    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]


class GlooGroupEngine(CpuWeightTransferEngine[TInitInfo, TUpdateInfo]):
    """A worker in a stateless gloo transfer group, at the rank vLLM's NCCL engine would take
    (`worker_rank`: `rank_offset`, its data-parallel block, its rank within the engine; init
    info with master_address, master_port, rank_offset, world_size). Subclasses define
    `receive_weights` over `joined()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group: Any = None

    def init_transfer_engine(self, init_info: Any) -> None:
        pc = self.parallel_config
        rank = worker_rank(init_info.rank_offset, pc.data_parallel_index, pc.world_size, pc.rank)
        self.group = join_group(
            init_info.master_address, init_info.master_port, rank, init_info.world_size
        )

    def joined(self) -> Any:
        if self.group is None:
            raise RuntimeError("weight transfer not initialised: call init first")
        return self.group

    def shutdown(self) -> None:
        self.group = None


class GlooWeightTransferEngine(GlooGroupEngine[GlooInitInfo, GlooUpdateInfo]):
    """Worker side: receives each bucket by broadcast and loads it into the model."""

    init_info_cls = GlooInitInfo
    update_info_cls = GlooUpdateInfo

    def receive_weights(self, update_info: GlooUpdateInfo) -> None:
        meta = BucketMeta(update_info.names, update_info.dtype_names, update_info.shapes)
        buf = torch.empty(meta.nbytes, dtype=torch.uint8)
        broadcast(self.joined(), buf)
        self.model.load_weights(unpack(buf, meta))
